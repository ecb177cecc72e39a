//! The vault's key store in the catalog (decision 0021), on SQLite and on
//! PostgreSQL: two vaults over two separate connection pools to one catalog
//! stand for two machines of a cluster sharing a root key and a blob store.

use std::sync::Arc;

use bv_catalog::Catalog;
use bv_testkit::TestDb;
use bv_vault::{FileKeyStore, KeyStore, ObjectId, TenantId, Vault, VaultConfig, VaultError};

bv_testkit::on_both!(
    two_machines_share_keys_through_the_catalog,
    a_file_key_store_is_imported_once,
);

fn config(root: &str) -> VaultConfig {
    VaultConfig {
        root_key: Some(root.to_string()),
        generate_root_key: false,
        part_size_mib: 5,
        ..VaultConfig::default()
    }
}

/// A vault over its own pool to the catalog at `db` (one "machine").
async fn machine(db: &TestDb, cfg: &VaultConfig, data: &std::path::Path) -> (Catalog, Vault) {
    let cat = Catalog::open(&db.url, 4).await.unwrap();
    let vault = Vault::open(cfg, data, Arc::new(cat.clone())).unwrap().0;
    (cat, vault)
}

async fn get(v: &Vault, t: &TenantId, o: &ObjectId) -> Result<Vec<u8>, VaultError> {
    let mut out = Vec::new();
    v.get(t, o, &mut out).await?;
    Ok(out)
}

async fn two_machines_share_keys_through_the_catalog(db: &TestDb) {
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&format!("v1:{}", "5a".repeat(32)));
    let (cat_a, a) = machine(db, &cfg, data.path()).await;
    let (_cat_b, b) = machine(db, &cfg, data.path()).await;
    let t = TenantId::random().unwrap();

    // Both create the tenant's first key at the same moment: one wins, both use it.
    let body_a = vec![0xa5u8; 300_000];
    let body_b = vec![0x5au8; 200_000];
    let (pa, pb) = tokio::join!(a.put(&t, &body_a[..]), b.put(&t, &body_b[..]));
    let (oa, ob): (ObjectId, ObjectId) = (
        pa.unwrap().object.parse().unwrap(),
        pb.unwrap().object.parse().unwrap(),
    );
    assert_eq!(
        cat_a.tenant_keys(&t).await.unwrap().len(),
        1,
        "one first key"
    );
    assert_eq!(
        get(&b, &t, &oa).await.unwrap(),
        body_a,
        "sealed on A, opened on B"
    );
    assert_eq!(
        get(&a, &t, &ob).await.unwrap(),
        body_b,
        "sealed on B, opened on A"
    );

    // Nothing in the catalog is a key in the clear: every key is wrapped.
    let recs = cat_a.tenant_objects(&t).await.unwrap();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.wrapped_dek.len() > 64));

    // Rotation on A re-wraps what B reads next.
    let (v, n) = a.keys().rotate_tenant(&t).await.unwrap();
    assert_eq!((v, n), (2, 2));
    assert_eq!(get(&b, &t, &oa).await.unwrap(), body_a);

    // A link key rotated on A verifies on B at once (B had cached version 1).
    let (v1, tag1) = b.mac("links", b"m").await.unwrap();
    assert_eq!(v1, 1);
    let v2 = a.keys().rotate_service_key("links", 2).await.unwrap();
    let (v, tag2) = a.mac("links", b"m").await.unwrap();
    assert_eq!(v, v2);
    assert!(b.mac_verify("links", v2, b"m", &tag2).await.unwrap());
    assert!(
        b.mac_verify("links", v1, b"m", &tag1).await.unwrap(),
        "previous stays"
    );
    assert!(!b.mac_verify("links", v2, b"n", &tag2).await.unwrap());

    // Shredded on B: gone for A too, the record with it.
    b.delete(&t, &oa).await.unwrap();
    assert!(matches!(get(&a, &t, &oa).await, Err(VaultError::NotFound)));
    assert!(cat_a.object(&oa).await.unwrap().is_none());
    // Another tenant sees nothing of this one's.
    let other = TenantId::random().unwrap();
    assert!(matches!(
        get(&a, &other, &ob).await,
        Err(VaultError::NotFound)
    ));

    // A machine with a different root key opens nothing.
    let (_c, stranger) =
        machine(db, &config(&format!("v1:{}", "77".repeat(32))), data.path()).await;
    assert!(matches!(
        get(&stranger, &t, &ob).await,
        Err(VaultError::Key(_))
    ));
}

async fn a_file_key_store_is_imported_once(db: &TestDb) {
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&format!("v1:{}", "3c".repeat(32)));
    let files = Arc::new(FileKeyStore::for_config(&cfg, data.path()));
    let old = Vault::open(&cfg, data.path(), files.clone()).unwrap().0;
    let t = TenantId::random().unwrap();
    let o: ObjectId = old
        .put(&t, &b"before the move"[..])
        .await
        .unwrap()
        .object
        .parse()
        .unwrap();
    old.mac("queue", b"x").await.unwrap();

    let cat = Catalog::open(&db.url, 2).await.unwrap();
    // One tenant key, one service key, one object.
    assert_eq!(bv_catalog::keys::import(&*files, &cat).await.unwrap(), 3);
    assert_eq!(
        bv_catalog::keys::import(&*files, &cat).await.unwrap(),
        0,
        "idempotent"
    );
    let new = Vault::open(&cfg, data.path(), Arc::new(cat)).unwrap().0;
    assert_eq!(get(&new, &t, &o).await.unwrap(), b"before the move");
}
