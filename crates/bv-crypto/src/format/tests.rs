//! Round trips, tampering, truncation, ranges and the published test vectors.

use super::*;

const SMALL: u8 = 12; // 4 KiB segments keep exhaustive tests fast

fn binding(t: u8, o: u8) -> Binding {
    Binding {
        tenant: [t; 16],
        object: [o; 16],
        key_version: 1,
    }
}

fn plain(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 7) as u8).collect()
}

fn seal(data: &[u8], dek: &SecretKey, b: &Binding, log2: u8) -> Vec<u8> {
    let mut out = Vec::new();
    seal_stream(data, &mut out, Sealer::new(dek, b, log2).unwrap()).unwrap();
    out
}

/// Opens and returns (result, what was released to the writer).
fn open(sealed: &[u8], dek: &SecretKey, b: &Binding) -> (Result<u64, CryptoError>, Vec<u8>) {
    let mut out = Vec::new();
    let r = open_stream(sealed, &mut out, dek, b).map_err(|e| match e {
        StreamError::Crypto(c) => c,
        StreamError::Io(e) => panic!("io: {e}"),
    });
    (r, out)
}

#[test]
fn roundtrip_at_segment_edges() {
    let dek = SecretKey::generate().unwrap();
    let b = binding(1, 2);
    let s = 1usize << SMALL;
    for n in [0, 1, s - 1, s, s + 1, 2 * s, 7 * s + 3] {
        let data = plain(n);
        let sealed = seal(&data, &dek, &b, SMALL);
        assert_eq!(sealed.len() as u64, sealed_len(n as u64, s), "n={n}");
        assert_eq!(plain_len(sealed.len() as u64, s).unwrap(), n as u64);
        let (r, out) = open(&sealed, &dek, &b);
        assert_eq!(r, Ok(n as u64), "n={n}");
        assert_eq!(out, data, "n={n}");
    }
}

#[test]
fn every_single_bit_flip_is_detected_and_releases_nothing_false() {
    let dek = SecretKey::generate().unwrap();
    let b = binding(1, 2);
    let s = 1usize << SMALL;
    let data = plain(2 * s + 100);
    let sealed = seal(&data, &dek, &b, SMALL);
    for byte in 0..sealed.len() {
        for bit in 0..8 {
            let mut t = sealed.clone();
            t[byte] ^= 1 << bit;
            let (r, out) = open(&t, &dek, &b);
            let err = r.expect_err("a flipped bit must not open");
            assert!(
                data.starts_with(&out),
                "only authentic plaintext may be released"
            );
            if byte < HEADER_LEN {
                assert!(
                    matches!(
                        err,
                        CryptoError::Format(_) | CryptoError::Auth { segment: 0 }
                    ),
                    "{byte}: {err:?}"
                );
                assert!(out.is_empty());
            } else {
                let seg = ((byte - HEADER_LEN) / (s + TAG_LEN)) as u64;
                assert_eq!(err, CryptoError::Auth { segment: seg }, "byte {byte}");
                assert_eq!(out.len() as u64, seg * s as u64);
            }
        }
    }
}

#[test]
fn random_bit_flips_over_a_larger_object() {
    let dek = SecretKey::generate().unwrap();
    let b = binding(3, 4);
    let data = plain(3 << 20);
    let sealed = seal(&data, &dek, &b, DEFAULT_SEGMENT_LOG2);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let pos = (x % sealed.len() as u64) as usize;
        let mut t = sealed.clone();
        t[pos] ^= 1 << (x >> 61);
        let (r, out) = open(&t, &dek, &b);
        assert!(r.is_err(), "flip at {pos} went unnoticed");
        assert!(data.starts_with(&out));
    }
}

#[test]
fn truncation_at_every_boundary_and_mid_segment() {
    let dek = SecretKey::generate().unwrap();
    let b = binding(1, 2);
    let s = 1usize << SMALL;
    let full = s + TAG_LEN;
    let data = plain(4 * s + 10);
    let sealed = seal(&data, &dek, &b, SMALL);
    let n_segments = 5;
    for k in 0..n_segments {
        let cut = HEADER_LEN + k * full;
        let (r, out) = open(&sealed[..cut], &dek, &b);
        assert_eq!(
            r,
            Err(CryptoError::Truncated { segments: k as u64 }),
            "boundary {k}"
        );
        assert!(data.starts_with(&out));
        let mid = cut + full / 2;
        let (r, out) = open(&sealed[..mid.min(sealed.len() - 1)], &dek, &b);
        assert_eq!(r, Err(CryptoError::Auth { segment: k as u64 }), "mid {k}");
        assert!(data.starts_with(&out));
    }
    let (r, _) = open(&sealed[..HEADER_LEN - 1], &dek, &b);
    assert_eq!(r, Err(CryptoError::Format("shorter than a header")));
    let mut longer = sealed.clone();
    longer.extend_from_slice(&sealed[HEADER_LEN..HEADER_LEN + full]);
    assert!(open(&longer, &dek, &b).0.is_err(), "appended data");
}

fn segments(sealed: &[u8], s: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let full = s + TAG_LEN;
    (
        sealed[..HEADER_LEN].to_vec(),
        sealed[HEADER_LEN..]
            .chunks(full)
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

#[test]
fn reorder_duplicate_delete_and_splice_are_detected() {
    let dek = SecretKey::generate().unwrap();
    let b = binding(1, 2);
    let s = 1usize << SMALL;
    let data = plain(4 * s + 10);
    let (h, segs) = segments(&seal(&data, &dek, &b, SMALL), s);
    let join = |parts: Vec<Vec<u8>>| [vec![h.clone()], parts].concat().concat();
    let cases: Vec<(&str, Vec<Vec<u8>>, CryptoError)> = vec![
        (
            "swap 1 and 2",
            vec![
                segs[0].clone(),
                segs[2].clone(),
                segs[1].clone(),
                segs[3].clone(),
                segs[4].clone(),
            ],
            CryptoError::Auth { segment: 1 },
        ),
        (
            "duplicate 1",
            vec![
                segs[0].clone(),
                segs[1].clone(),
                segs[1].clone(),
                segs[2].clone(),
                segs[3].clone(),
                segs[4].clone(),
            ],
            CryptoError::Auth { segment: 2 },
        ),
        (
            "delete 2",
            vec![
                segs[0].clone(),
                segs[1].clone(),
                segs[3].clone(),
                segs[4].clone(),
            ],
            CryptoError::Auth { segment: 2 },
        ),
        (
            "drop the last",
            segs[..4].to_vec(),
            CryptoError::Truncated { segments: 4 },
        ),
    ];
    for (name, parts, want) in cases {
        let (r, out) = open(&join(parts), &dek, &b);
        assert_eq!(r, Err(want), "{name}");
        assert!(data.starts_with(&out), "{name}");
    }
    // A segment from another object of the same tenant, even under the same data key.
    let (_, other) = segments(&seal(&data, &dek, &binding(1, 9), SMALL), s);
    let mut parts = segs.clone();
    parts[2] = other[2].clone();
    assert_eq!(
        open(&join(parts), &dek, &b).0,
        Err(CryptoError::Auth { segment: 2 })
    );
}

#[test]
fn wrong_tenant_object_key_version_or_key_fail_at_the_first_segment() {
    let dek = SecretKey::generate().unwrap();
    let b = binding(1, 2);
    let sealed = seal(&plain(10_000), &dek, &b, SMALL);
    for other in [
        binding(7, 2),
        binding(1, 7),
        Binding {
            key_version: 2,
            ..b
        },
    ] {
        let (r, out) = open(&sealed, &dek, &other);
        assert_eq!(r, Err(CryptoError::Auth { segment: 0 }), "{other:?}");
        assert!(out.is_empty());
    }
    assert_eq!(
        open(&sealed, &SecretKey::generate().unwrap(), &b).0,
        Err(CryptoError::Auth { segment: 0 })
    );
    // Editing the header's key version (or any field) breaks every segment.
    let mut t = sealed.clone();
    t[11] ^= 2;
    assert_eq!(open(&t, &dek, &b).0, Err(CryptoError::Auth { segment: 0 }));
    t = sealed.clone();
    t[4] = 2;
    assert_eq!(
        open(&t, &dek, &b).0,
        Err(CryptoError::Format("unsupported version"))
    );
}

#[test]
fn ranges_return_exact_bytes_and_read_only_their_segments() {
    let dek = SecretKey::generate().unwrap();
    let b = binding(5, 6);
    let s = 1usize << SMALL;
    let data = plain(9 * s + 123);
    let sealed = seal(&data, &dek, &b, SMALL);
    let opener = Opener::new(&sealed, &dek, &b).unwrap();
    let len = data.len() as u64;
    let n = segment_count(len, s);
    let mut x = 88172645463325252u64;
    let mut checked = 0;
    while checked < 500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = x % (len + 1);
        let e = a + (x >> 20) % (3 * s as u64 + 1);
        if e > len || (a == e && a != 0) {
            continue;
        }
        let (first, last, bytes) = range_plan(len, s, a, e).unwrap();
        let chunk = &sealed[bytes.start as usize..bytes.end as usize];
        let mut got = Vec::new();
        let mut out = Vec::new();
        for (k, seg) in chunk.chunks(s + TAG_LEN).enumerate() {
            let idx = first + k as u64;
            opener
                .open_segment(idx, seg, idx == n - 1, &mut out)
                .unwrap();
            got.extend_from_slice(&out);
        }
        assert_eq!(
            last - first + 1,
            chunk.chunks(s + TAG_LEN).count() as u64,
            "only the needed segments"
        );
        let off = (a - first * s as u64) as usize;
        assert_eq!(
            &got[off..off + (e - a) as usize],
            &data[a as usize..e as usize]
        );
        checked += 1;
    }
    assert!(range_plan(len, s, 5, len + 1).is_err());
    assert!(range_plan(len, s, 7, 3).is_err());
    assert_eq!(range_plan(0, s, 0, 0).unwrap().0, 0);
}

#[test]
fn published_test_vectors() {
    // docs/sealed-object-format.md, "Test vectors": keep both in sync.
    let dek = SecretKey::from_bytes([0x11; 32]);
    let b = Binding {
        tenant: [0x22; 16],
        object: [0x33; 16],
        key_version: 7,
    };
    for (plain, want) in VECTORS {
        let sealer = Sealer::with_nonce_material(&dek, &b, SMALL, [0x44; 32], [0x55; 7]).unwrap();
        let mut out = Vec::new();
        seal_stream(plain.as_bytes(), &mut out, sealer).unwrap();
        let hex: String = out.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(hex, *want, "vector for {plain:?}");
        assert_eq!(open(&out, &dek, &b).1, plain.as_bytes());
    }
}

const VECTORS: &[(&str, &str)] = &[
    (
        "",
        "4256534f01010c00000000074444444444444444444444444444444444444444444444444444444444444444555555555555550046d85a1e551b10f23f912eb3606ba92c",
    ),
    (
        "BetterVideo",
        "4256534f01010c000000000744444444444444444444444444444444444444444444444444444444444444445555555555555500555f943c94120797d22b092da9dafbbf1a7a8aa47ea733c1765704",
    ),
];
