//! `bv-jail`: the sandbox launcher (see `bv_sandbox::launch`). Not meant to be
//! run by hand: `bv` starts it for every job.
#![forbid(unsafe_code)]

fn main() {
    bv_sandbox::launch::main()
}
