#!/usr/bin/env bash
# Launch-plus-teardown overhead of the job sandbox next to a plain fork/exec,
# `unshare … true` and `bwrap … true`, interleaved in one run (medians).
# Target: ours ≤ 10 ms.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/bettervideo/target}
(cd "$ROOT" && cargo build --release --locked -q -p bv-sandbox --bins --example launch_bench)
"$CARGO_TARGET_DIR/release/examples/launch_bench" "${1:-40}"
