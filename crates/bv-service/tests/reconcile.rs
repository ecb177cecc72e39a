//! Every sealed object belongs to a video (issue 20, finding 12: an upload
//! deleted while its last piece was being sealed, or a crash between sealing
//! a piece and recording it, left a sealed object and its key that no row
//! refers to, kept forever). The attack leaves such objects behind, on both
//! catalog backends; the reconciliation must shred them once past the grace
//! period, audit it, and touch nothing a video still holds.

use bv_catalog::{Piece, VideoState};
use bv_service::retention::{ORPHAN_GRACE_SECONDS, reconcile};
use bv_testkit::{Backend, TestDb};
use bv_vault::{ObjectId, VaultError};

bv_testkit::on_both!(backend; orphans_are_shredded_after_the_grace_period);

async fn orphans_are_shredded_after_the_grace_period(backend: Backend) {
    let db = TestDb::new(backend).await;
    let catalog = db.open().await;
    let (vault, _dir) = bv_testkit::vault(&catalog);
    let t = bv_testkit::tenant(&catalog, "acme").await;
    let tid = bv_service::media::tenant_id(&t.id).unwrap();

    // A video that keeps its piece.
    let v = catalog
        .create_video(&t.id, "kept.mp4", "video/mp4", 4, VideoState::Uploading)
        .await
        .unwrap();
    let kept = vault
        .put_piece(&tid, &b"kept"[..], None)
        .await
        .unwrap()
        .object;
    let p = Piece {
        seq: 0,
        object_id: kept.clone(),
        plain_offset: 0,
        plain_len: 4,
    };
    catalog.add_piece(&v.id, &p).await.unwrap();

    // The race: an upload's last piece is sealed, the upload is deleted
    // before the piece is recorded, and recording it then fails.
    let gone = catalog
        .create_video(&t.id, "gone.mp4", "video/mp4", 0, VideoState::Uploading)
        .await
        .unwrap();
    let raced = vault
        .put_piece(&tid, &b"raced"[..], None)
        .await
        .unwrap()
        .object;
    bv_service::media::shred_video(&catalog, &vault, &t.id, &gone.id)
        .await
        .unwrap();
    let late = Piece {
        seq: 0,
        object_id: raced.clone(),
        plain_offset: 0,
        plain_len: 5,
    };
    assert!(catalog.add_piece(&gone.id, &late).await.is_err());
    // A crash between sealing and recording: nothing refers to it at all.
    let crashed = vault
        .put_piece(&tid, &b"crashed"[..], None)
        .await
        .unwrap()
        .object;
    // Objects that never belong to a video: the tenant's field key (made by
    // sealing a name) and an operator's `bv vault put`.
    let sealed_name =
        bv_service::fields::seal(&vault, &t.id, bv_service::fields::VIDEO_NAME, "holiday.mp4")
            .await
            .unwrap();
    let operators = vault
        .put(&tid, &b"an operator's object"[..])
        .await
        .unwrap()
        .object;

    let now = bv_catalog::now_ms();
    // Inside the grace period it may be a put in flight: left alone.
    let r = reconcile(&catalog, &vault, now).await.unwrap();
    assert_eq!(r.orphan_objects, 0, "{r:?}");
    for o in [&raced, &crashed, &kept] {
        let o: ObjectId = o.parse().unwrap();
        vault.stat(&tid, &o).await.unwrap();
    }

    let later = now + (ORPHAN_GRACE_SECONDS as i64 + 60) * 1000;
    let r = reconcile(&catalog, &vault, later).await.unwrap();
    assert_eq!(r.orphan_objects, 2, "{r:?}");
    let blobs: Vec<String> = vault
        .blobs()
        .list()
        .await
        .unwrap()
        .iter()
        .map(|(o, _)| o.to_string())
        .collect();
    for o in [&raced, &crashed] {
        let id: ObjectId = o.parse().unwrap();
        assert!(
            matches!(vault.stat(&tid, &id).await, Err(VaultError::NotFound)),
            "{o} is shredded"
        );
        assert!(!blobs.contains(o), "{o}'s blob is gone");
    }
    let id: ObjectId = kept.parse().unwrap();
    let mut back = Vec::new();
    vault.get(&tid, &id, &mut back).await.unwrap();
    assert_eq!(back, b"kept", "a video's piece is untouched");
    // What never was a piece stays: the field key opens the sealed name
    // (a fresh vault, so no key is served from memory), the operator's
    // object opens.
    let (fresh, _) = bv_vault::Vault::open(
        &bv_vault::VaultConfig::default(),
        _dir.path(),
        std::sync::Arc::new(catalog.clone()),
    )
    .unwrap();
    assert_eq!(
        bv_service::fields::open(&fresh, &t.id, bv_service::fields::VIDEO_NAME, &sealed_name)
            .await
            .unwrap(),
        "holiday.mp4"
    );
    let id: ObjectId = operators.parse().unwrap();
    vault.stat(&tid, &id).await.unwrap();
    assert_eq!(
        catalog
            .audit_count("object.shredded", "ok", Some(&t.id), 0)
            .await
            .unwrap(),
        2,
        "each shred is in the tenant's audit log"
    );
    // Nothing left to do: a second run finds nothing.
    let r = reconcile(&catalog, &vault, later).await.unwrap();
    assert_eq!(r.orphan_objects, 0, "{r:?}");
}
