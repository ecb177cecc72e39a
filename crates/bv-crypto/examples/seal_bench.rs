//! Single-core seal and open throughput, in memory (used by bench/vault.sh).
//! `seal_bench [MiB] [segment log2 ...]` prints one line per segment size.
use std::time::Instant;

use bv_crypto::SecretKey;
use bv_crypto::format::{Binding, Opener, Sealer, TAG_LEN};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: usize = args.get(1).map_or(1024, |a| a.parse().unwrap());
    let logs: Vec<u8> = if args.len() > 2 {
        args[2..].iter().map(|a| a.parse().unwrap()).collect()
    } else {
        vec![16]
    };
    let dek = SecretKey::generate().unwrap();
    let b = Binding {
        tenant: [1; 16],
        object: [2; 16],
        key_version: 1,
    };
    for log2 in logs {
        let s = 1usize << log2;
        let total = mib << 20;
        let n = total / s;
        let mut sealer = Sealer::new(&dek, &b, log2).unwrap();
        // One segment buffer reused: measures the cipher, not the allocator or memory bandwidth.
        let mut buf: Vec<u8> = (0..s).map(|i| i as u8).collect();
        let mut keep = Vec::new();
        let t = Instant::now();
        for i in 0..n {
            buf.truncate(s);
            sealer.seal_segment(&mut buf, i == n - 1).unwrap();
            if i == 0 {
                keep = buf.clone();
            }
        }
        let seal = total as f64 / t.elapsed().as_secs_f64() / 1e9;
        let opener = Opener::new(sealer.header(), &dek, &b).unwrap();
        let mut out = Vec::with_capacity(s);
        let t = Instant::now();
        for _ in 0..n {
            // Segment 0 over and over: the cost of verifying and decrypting a segment.
            opener
                .open_segment(0, &keep[..s + TAG_LEN], false, &mut out)
                .unwrap();
        }
        let open = total as f64 / t.elapsed().as_secs_f64() / 1e9;
        println!("segment {s:>8} B  seal {seal:.2} GB/s  open {open:.2} GB/s  ({mib} MiB)");
    }
}
