//! The vault suite, run against the local backend and against s3s-fs.

mod common;

use bv_crypto::CryptoError;
use bv_vault::{ObjectId, TenantId, VaultError};
use common::*;

const S: usize = 1 << 16;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn get(v: &TestVault, t: &TenantId, o: &ObjectId) -> (Result<u64, VaultError>, Vec<u8>) {
    let mut out = Vec::new();
    let r = v.vault.get(t, o, &mut out).await;
    (r, out)
}

fn integrity(r: Result<u64, VaultError>) -> CryptoError {
    match r {
        Err(VaultError::Integrity(e)) => e,
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod local { $( #[test] fn $name() { super::$name(super::Backend::Local) } )* }
        mod s3 { $( #[test] fn $name() { super::$name(super::Backend::S3) } )* }
    };
}

both_backends!(
    roundtrip_sizes,
    ranges_are_exact,
    bit_flips_truncation_and_splices_are_refused,
    tenants_are_isolated_and_moves_detected,
    delete_shreds_the_key_first,
    rotation_rewraps_without_touching_blobs,
    customer_held_keys_are_needed_to_open_and_survive_rotation,
);

fn roundtrip_sizes(b: Backend) {
    let v = TestVault::new(b);
    let t = TenantId::random().unwrap();
    rt().block_on(async {
        for n in [0, 1, S - 1, S, S + 1, 5 * S + 7, 12 << 20] {
            let data = bytes(n, n as u64);
            let info = v.vault.put(&t, &data[..]).await.unwrap();
            assert_eq!(info.plain_len, n as u64);
            let o: ObjectId = info.object.parse().unwrap();
            assert_eq!(
                std::fs::metadata(v.blob_file(&o)).unwrap().len(),
                info.sealed_len
            );
            let stored = std::fs::read(v.blob_file(&o)).unwrap();
            if n >= 64 {
                assert!(
                    !stored.windows(32).any(|w| w == &data[..32]),
                    "plaintext must not reach the store"
                );
            }
            let (r, out) = get(&v, &t, &o).await;
            assert_eq!(r.unwrap(), n as u64);
            assert!(out == data, "roundtrip of {n} bytes");
            assert_eq!(v.vault.verify(&t, &o).await.unwrap(), n as u64);
        }
    });
}

fn ranges_are_exact(b: Backend) {
    let v = TestVault::new(b);
    let t = TenantId::random().unwrap();
    rt().block_on(async {
        let data = bytes(9 * S + 1234, 7);
        let o: ObjectId = v
            .vault
            .put(&t, &data[..])
            .await
            .unwrap()
            .object
            .parse()
            .unwrap();
        let len = data.len() as u64;
        let mut x = 12345u64;
        for _ in 0..60 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let a = (x >> 11) % len;
            let e = (a + 1 + (x >> 40) % (3 * S as u64)).min(len);
            let got = v.vault.get_range(&t, &o, a..e).await.unwrap();
            assert!(got == data[a as usize..e as usize], "range {a}..{e}");
        }
        assert!(matches!(
            v.vault.get_range(&t, &o, 0..len + 1).await,
            Err(VaultError::Range(_))
        ));
    });
}

fn bit_flips_truncation_and_splices_are_refused(b: Backend) {
    let v = TestVault::new(b);
    let t = TenantId::random().unwrap();
    rt().block_on(async {
        let data = bytes(4 * S + 10, 3);
        let o: ObjectId = v
            .vault
            .put(&t, &data[..])
            .await
            .unwrap()
            .object
            .parse()
            .unwrap();
        let f = v.blob_file(&o);
        let good = std::fs::read(&f).unwrap();
        let full = S + 16;
        // Bit flips in the header and in segments 0 and 3.
        for (pos, want) in [
            (20usize, CryptoError::Auth { segment: 0 }),
            (52 + 5, CryptoError::Auth { segment: 0 }),
            (52 + 3 * full + 9, CryptoError::Auth { segment: 3 }),
        ] {
            let mut bad = good.clone();
            bad[pos] ^= 0x10;
            std::fs::write(&f, &bad).unwrap();
            let (r, out) = get(&v, &t, &o).await;
            assert_eq!(integrity(r), want, "flip at {pos}");
            assert!(
                data.starts_with(&out),
                "only authentic plaintext is released"
            );
        }
        // Truncated at a segment boundary and inside a segment.
        std::fs::write(&f, &good[..52 + 2 * full]).unwrap();
        assert_eq!(
            integrity(get(&v, &t, &o).await.0),
            CryptoError::Truncated { segments: 2 }
        );
        std::fs::write(&f, &good[..52 + 2 * full + 100]).unwrap();
        assert!(matches!(
            integrity(get(&v, &t, &o).await.0),
            CryptoError::Auth { segment: 2 } | CryptoError::Truncated { segments: 2 }
        ));
        // Segments 1 and 2 swapped.
        let mut swapped = good.clone();
        swapped[52 + full..52 + 2 * full].copy_from_slice(&good[52 + 2 * full..52 + 3 * full]);
        swapped[52 + 2 * full..52 + 3 * full].copy_from_slice(&good[52 + full..52 + 2 * full]);
        std::fs::write(&f, &swapped).unwrap();
        assert_eq!(
            integrity(get(&v, &t, &o).await.0),
            CryptoError::Auth { segment: 1 }
        );
        // Extra data at the end.
        let mut longer = good.clone();
        longer.extend_from_slice(&good[52..52 + full]);
        std::fs::write(&f, &longer).unwrap();
        assert!(get(&v, &t, &o).await.0.is_err());
        std::fs::write(&f, &good).unwrap();
        assert_eq!(get(&v, &t, &o).await.1, data);
        // A wrong data-key version in the record (the key store edited).
        let rec = v.keys_dir().join("objects").join(format!("{o}.json"));
        let text = std::fs::read_to_string(&rec).unwrap();
        std::fs::write(
            &rec,
            text.replace("\"dek_version\": 1", "\"dek_version\": 2"),
        )
        .unwrap();
        assert!(
            get(&v, &t, &o).await.0.is_err(),
            "wrong key version must not open"
        );
        std::fs::write(&rec, text).unwrap();
        assert_eq!(get(&v, &t, &o).await.1, data);
    });
}

fn tenants_are_isolated_and_moves_detected(b: Backend) {
    let v = TestVault::new(b);
    let (ta, tb) = (TenantId::random().unwrap(), TenantId::random().unwrap());
    rt().block_on(async {
        let a: ObjectId = v
            .vault
            .put(&ta, &bytes(3 * S, 1)[..])
            .await
            .unwrap()
            .object
            .parse()
            .unwrap();
        let a2: ObjectId = v
            .vault
            .put(&ta, &bytes(3 * S, 2)[..])
            .await
            .unwrap()
            .object
            .parse()
            .unwrap();
        let bo: ObjectId = v
            .vault
            .put(&tb, &bytes(3 * S, 3)[..])
            .await
            .unwrap()
            .object
            .parse()
            .unwrap();
        // Another tenant's object answers exactly like a missing one.
        assert!(matches!(
            get(&v, &tb, &a).await.0,
            Err(VaultError::NotFound)
        ));
        assert!(matches!(
            v.vault.get_range(&tb, &a, 0..10).await,
            Err(VaultError::NotFound)
        ));
        assert!(matches!(
            v.vault.stat(&tb, &a).await,
            Err(VaultError::NotFound)
        ));
        assert!(matches!(
            v.vault.delete(&tb, &a).await,
            Err(VaultError::NotFound)
        ));
        assert!(matches!(
            get(&v, &ta, &ObjectId::random().unwrap()).await.0,
            Err(VaultError::NotFound)
        ));
        // A blob moved onto another object of the same tenant, or of another tenant, does not open.
        let keep = std::fs::read(v.blob_file(&a2)).unwrap();
        std::fs::copy(v.blob_file(&a), v.blob_file(&a2)).unwrap();
        assert_eq!(
            integrity(get(&v, &ta, &a2).await.0),
            CryptoError::Auth { segment: 0 }
        );
        std::fs::write(v.blob_file(&a2), keep).unwrap();
        std::fs::copy(v.blob_file(&a), v.blob_file(&bo)).unwrap();
        assert_eq!(
            integrity(get(&v, &tb, &bo).await.0),
            CryptoError::Auth { segment: 0 }
        );
        // One segment spliced in from another object.
        let (mut mixed, other) = (
            std::fs::read(v.blob_file(&a)).unwrap(),
            std::fs::read(v.blob_file(&a2)).unwrap(),
        );
        let full = S + 16;
        mixed[52 + full..52 + 2 * full].copy_from_slice(&other[52 + full..52 + 2 * full]);
        std::fs::write(v.blob_file(&a), mixed).unwrap();
        assert_eq!(
            integrity(get(&v, &ta, &a).await.0),
            CryptoError::Auth { segment: 1 }
        );
    });
}

fn delete_shreds_the_key_first(b: Backend) {
    let v = TestVault::new(b);
    let t = TenantId::random().unwrap();
    rt().block_on(async {
        let data = bytes(2 * S, 9);
        let o: ObjectId = v
            .vault
            .put(&t, &data[..])
            .await
            .unwrap()
            .object
            .parse()
            .unwrap();
        let backup = std::fs::read(v.blob_file(&o)).unwrap();
        v.vault.delete(&t, &o).await.unwrap();
        assert!(
            !v.keys_dir()
                .join("objects")
                .join(format!("{o}.json"))
                .exists(),
            "wrapped key destroyed"
        );
        assert!(!v.blob_file(&o).exists(), "blob removed");
        // A backup of the blob restored later is useless: its key is gone.
        std::fs::create_dir_all(v.blob_file(&o).parent().unwrap()).unwrap();
        std::fs::write(v.blob_file(&o), backup).unwrap();
        assert!(matches!(get(&v, &t, &o).await.0, Err(VaultError::NotFound)));
        assert!(matches!(
            v.vault.delete(&t, &o).await,
            Err(VaultError::NotFound)
        ));
    });
}

fn rotation_rewraps_without_touching_blobs(b: Backend) {
    let mut v = TestVault::new(b);
    let (ta, tb) = (TenantId::random().unwrap(), TenantId::random().unwrap());
    let runtime = rt();
    let mut objects = Vec::new();
    runtime.block_on(async {
        for (i, t) in [ta, ta, tb].iter().enumerate() {
            let data = bytes(S + i * 1000, i as u64 + 50);
            let o: ObjectId = v
                .vault
                .put(t, &data[..])
                .await
                .unwrap()
                .object
                .parse()
                .unwrap();
            objects.push((*t, o, data));
        }
    });
    let sums = |v: &TestVault| {
        objects
            .iter()
            .map(|(_, o, _)| {
                (
                    std::fs::read(v.blob_file(o)).unwrap(),
                    std::fs::metadata(v.blob_file(o))
                        .unwrap()
                        .modified()
                        .unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = sums(&v);
    let (rv, n_tenant_keys) = runtime.block_on(v.vault.keys().rotate_root()).unwrap();
    assert_eq!((rv, n_tenant_keys), (2, 2));
    let (tv, n_deks) = runtime.block_on(v.vault.keys().rotate_tenant(&ta)).unwrap();
    assert_eq!((tv, n_deks), (2, 2));
    v.reopen();
    runtime.block_on(async {
        for (t, o, data) in &objects {
            assert_eq!(&get(&v, t, o).await.1, data);
        }
    });
    assert!(sums(&v) == before, "no blob may be rewritten");
    let st = runtime.block_on(v.vault.keys().status()).unwrap();
    assert_eq!(st.root_versions, vec![2], "retired root versions are gone");
    let a = st
        .tenants
        .iter()
        .find(|x| x.tenant == ta.to_string())
        .unwrap();
    assert_eq!(
        a.versions,
        vec![(2, 2)],
        "tenant A keeps only its new version"
    );
    let root_file = std::fs::read_to_string(v.data.path().join("root.key")).unwrap();
    assert!(root_file.starts_with("v2:") && root_file.lines().count() == 1);
}

fn customer_held_keys_are_needed_to_open_and_survive_rotation(b: Backend) {
    use bv_vault::CustomerKey;
    let mut v = TestVault::new(b);
    let t = TenantId::random().unwrap();
    let ck = CustomerKey::from_slice(&[7u8; 32]).unwrap();
    let wrong = CustomerKey::from_slice(&[8u8; 32]).unwrap();
    assert_eq!(
        CustomerKey::from_slice(&[1u8; 31]).unwrap_err().code(),
        "invalid_argument"
    );
    let data = bytes(3 * S + 5, 99);
    let runtime = rt();
    let o: ObjectId = runtime.block_on(async {
        v.vault
            .put_for(&t, &data[..], Some(&ck))
            .await
            .unwrap()
            .object
            .parse()
            .unwrap()
    });
    // The key store keeps a fingerprint and a wrapped share, never the key.
    let keys: Vec<u8> = walk(&v.keys_dir());
    assert!(!keys.windows(32).any(|w| w == [7u8; 32]));
    let hex = bv_crypto::secret::hex(&[7u8; 32]);
    assert!(!keys.windows(64).any(|w| w == hex.as_bytes()));
    let check = |v: &TestVault| {
        runtime.block_on(async {
            let mut out = Vec::new();
            let e = v.vault.get(&t, &o, &mut out).await.unwrap_err();
            assert_eq!(e.code(), "customer_key_required");
            assert!(out.is_empty(), "nothing released without the key");
            let e = v
                .vault
                .get_for(&t, &o, &mut out, Some(&wrong))
                .await
                .unwrap_err();
            assert_eq!(e.code(), "customer_key_mismatch");
            assert!(v.vault.verify(&t, &o).await.is_err());
            assert!(v.vault.get_range(&t, &o, 0..10).await.is_err());
            v.vault.get_for(&t, &o, &mut out, Some(&ck)).await.unwrap();
            assert!(out == data);
            assert_eq!(
                v.vault
                    .get_range_for(&t, &o, S as u64..S as u64 + 10, Some(&ck))
                    .await
                    .unwrap(),
                &data[S..S + 10]
            );
        })
    };
    check(&v);
    // Rotating the root and the tenant key needs no customer key and changes nothing for it.
    runtime.block_on(v.vault.keys().rotate_root()).unwrap();
    assert_eq!(
        runtime
            .block_on(v.vault.keys().rotate_tenant(&t))
            .unwrap()
            .1,
        1
    );
    v.reopen();
    check(&v);
    // Deleting still shreds.
    runtime.block_on(async {
        v.vault.delete(&t, &o).await.unwrap();
        let mut out = Vec::new();
        assert_eq!(
            v.vault
                .get_for(&t, &o, &mut out, Some(&ck))
                .await
                .unwrap_err()
                .code(),
            "object_not_found"
        );
    });
}

/// Every byte under `dir`, concatenated.
fn walk(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all.extend(walk(&p));
        } else {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    all
}
