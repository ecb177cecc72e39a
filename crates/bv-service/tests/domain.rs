//! The domain's rules where they live, on both catalog backends: the
//! retention sweeper, a tenant's erasure and its receipt, and its export —
//! each against a real catalog and a real sealed vault, no HTTP.

use bv_catalog::{Catalog, Piece, Rule, Tenant, VideoState};
use bv_testkit::{TestDb, on_both};
use bv_vault::Vault;

on_both!(
    the_sweeper_shreds_what_is_due_and_abandoned_and_audits_each,
    erasure_destroys_keys_first_and_signs_what_it_did,
    the_export_holds_everything_of_one_tenant_and_nothing_of_another,
    a_video_probed_without_a_frame_count_is_counted_again_before_any_price,
);

struct Domain {
    catalog: Catalog,
    vault: Vault,
    _dir: tempfile::TempDir,
}

impl Domain {
    async fn new(db: &TestDb) -> Self {
        let catalog = db.open().await;
        let (vault, dir) = bv_testkit::vault(&catalog);
        Self {
            catalog,
            vault,
            _dir: dir,
        }
    }

    async fn tenant(&self, name: &str) -> Tenant {
        bv_testkit::tenant(&self.catalog, name).await
    }

    /// A finished video of `pieces` sealed pieces named `name` (sealed too).
    async fn video(&self, t: &Tenant, name: &str, pieces: i64) -> (String, Vec<String>) {
        let sealed =
            bv_service::fields::seal(&self.vault, &t.id, bv_service::fields::VIDEO_NAME, name)
                .await
                .unwrap();
        let v = self
            .catalog
            .create_video(&t.id, &sealed, "video/mp4", 0, VideoState::Uploading)
            .await
            .unwrap();
        let tid = bv_service::media::tenant_id(&t.id).unwrap();
        let mut objects = Vec::new();
        for seq in 0..pieces {
            let info = self
                .vault
                .put(&tid, &vec![seq as u8; 1000][..])
                .await
                .unwrap();
            let p = Piece {
                seq,
                object_id: info.object.clone(),
                plain_offset: seq * 1000,
                plain_len: 1000,
            };
            self.catalog.add_piece(&v.id, &p).await.unwrap();
            objects.push(info.object);
        }
        self.catalog
            .complete_video(&t.id, &v.id, pieces * 1000)
            .await
            .unwrap();
        (v.id, objects)
    }

    async fn opens(&self, t: &Tenant, object: &str) -> bool {
        let tid = bv_service::media::tenant_id(&t.id).unwrap();
        let mut out = Vec::new();
        self.vault
            .get(&tid, &object.parse().unwrap(), &mut out)
            .await
            .is_ok()
    }
}

async fn the_sweeper_shreds_what_is_due_and_abandoned_and_audits_each(db: &TestDb) {
    let d = Domain::new(db).await;
    let t = d.tenant("acme").await;
    let (due, due_objects) = d.video(&t, "old-output.mp4", 2).await;
    let (kept, kept_objects) = d.video(&t, "keep.mp4", 1).await;
    let now = bv_catalog::now_ms();
    d.catalog
        .schedule_deletion(&t.id, &due, now - 1, Rule::Output)
        .await
        .unwrap();
    d.catalog
        .schedule_deletion(&t.id, &kept, now + 3_600_000, Rule::Output)
        .await
        .unwrap();
    // An upload that was started and never finished, already past its lifetime.
    let (upload, _) = d
        .catalog
        .create_upload(&bv_catalog::NewUpload {
            tenant_id: &t.id,
            principal_id: &d
                .catalog
                .create_service_account(&t.id, "ci")
                .await
                .unwrap()
                .id,
            name: "never-finished",
            content_type: "video/mp4",
            length: 10_000,
            metadata: "",
            ttl_ms: -1,
            max_uploading: None,
        })
        .await
        .unwrap();

    let swept = bv_service::retention::sweep(&d.catalog, &d.vault, bv_catalog::now_ms())
        .await
        .unwrap();
    assert_eq!((swept.expired, swept.abandoned), (1, 1), "{swept:?}");
    assert!(
        d.catalog.video(&t.id, &due).await.is_err(),
        "the due video is gone"
    );
    for o in &due_objects {
        assert!(!d.opens(&t, o).await, "a shredded piece still opens");
    }
    assert!(d.catalog.video(&t.id, &kept).await.is_ok());
    assert!(
        d.opens(&t, &kept_objects[0]).await,
        "what is not due stays readable"
    );
    assert!(d.catalog.video(&t.id, &upload.video_id).await.is_err());
    let expired = d
        .catalog
        .audit_count("video.expired", "%", Some(&t.id), 0)
        .await
        .unwrap();
    assert_eq!(expired, 2, "each deletion is in the tenant's audit log");
    // A second sweep finds nothing more.
    let again = bv_service::retention::sweep(&d.catalog, &d.vault, bv_catalog::now_ms())
        .await
        .unwrap();
    assert_eq!(again, Default::default());
}

async fn erasure_destroys_keys_first_and_signs_what_it_did(db: &TestDb) {
    let d = Domain::new(db).await;
    let t = d.tenant("acme").await;
    let other = d.tenant("globex").await;
    let (_, objects) = d.video(&t, "a.mp4", 3).await;
    let (_, theirs) = d.video(&other, "b.mp4", 1).await;
    assert!(matches!(
        bv_service::erasure::check_confirmation(&t, "globex"),
        Err(bv_service::ServiceError::ConfirmationRequired)
    ));
    let signed = bv_service::erasure::erase(
        &d.catalog,
        &d.vault,
        &t,
        "operator:test",
        &Default::default(),
    )
    .await
    .unwrap();
    let r = &signed.receipt;
    assert_eq!((r.tenant_name.as_str(), r.objects), ("acme", 3));
    assert_eq!(r.bytes, 3000);
    assert!(!r.key_versions.is_empty());
    for o in &objects {
        assert!(
            !d.opens(&t, o).await,
            "an erased tenant's object still opens"
        );
    }
    assert!(
        d.opens(&other, &theirs[0]).await,
        "another tenant is untouched"
    );
    assert!(d.catalog.tenant(&t.id).await.is_err(), "its rows are gone");
    assert_eq!(
        bv_service::erasure::verify(&d.vault, &signed)
            .await
            .unwrap(),
        Ok(())
    );
    // A receipt edited after signing does not verify.
    let mut forged = signed.clone();
    forged.receipt.objects = 2;
    assert_eq!(
        bv_service::erasure::verify(&d.vault, &forged)
            .await
            .unwrap(),
        Err(bv_service::erasure::ReceiptProblem::Signature)
    );
}

async fn the_export_holds_everything_of_one_tenant_and_nothing_of_another(db: &TestDb) {
    let d = Domain::new(db).await;
    let t = d.tenant("acme").await;
    let other = d.tenant("globex").await;
    let (mine, _) = d.video(&t, "mine.mp4", 1).await;
    d.video(&other, "theirs.mp4", 1).await;
    d.catalog
        .grant_credits(&t.id, 500, "welcome")
        .await
        .unwrap();
    let doc = bv_service::export::export(&d.catalog, &d.vault, &t.id)
        .await
        .unwrap();
    let doc = serde_json::to_value(doc).unwrap();
    assert_eq!(doc["format"], bv_service::export::EXPORT_FORMAT);
    assert_eq!(doc["tenant"]["name"], "acme");
    let videos = doc["videos"].as_array().unwrap();
    assert_eq!(videos.len(), 1);
    assert_eq!(
        (videos[0]["id"].as_str(), videos[0]["name"].as_str()),
        (Some(mine.as_str()), Some("mine.mp4"))
    );
    assert_eq!(doc["credits"]["balance"]["available"], 500);
    assert_eq!(doc["credits"]["ledger"][0]["note"], "welcome");
    assert!(!doc.to_string().contains("theirs.mp4"));
    assert!(
        bv_service::export::export(&d.catalog, &d.vault, &"0".repeat(32))
            .await
            .unwrap_err()
            .is_not_found()
    );
}

/// A video an earlier version probed recorded 0 frames where its container
/// stated no count, and was priced as one frame (the outside review's
/// finding 3, for videos from before its fix): it has no price now, and the
/// first job asked for queues one free probe that counts what plays —
/// one, however often it is asked.
async fn a_video_probed_without_a_frame_count_is_counted_again_before_any_price(db: &TestDb) {
    let d = Domain::new(db).await;
    let t = d.tenant("acme").await;
    let (id, _) = d.video(&t, "legacy.h264", 1).await;
    d.catalog
        .set_video_media(&t.id, &id, "{}", 0, 640, 360)
        .await
        .unwrap();
    let v = d.catalog.video(&t.id, &id).await.unwrap();
    let billing = bv_service::BillingConfig::default();
    assert!(matches!(
        bv_service::jobs::price(&billing, &v, 2),
        Err(bv_service::ServiceError::VideoNotReady)
    ));
    let who = d.catalog.create_service_account(&t.id, "ci").await.unwrap();
    let jobs = bv_service::JobsConfig::default();
    for _ in 0..3 {
        bv_service::jobs::reprobe_if_uncounted(&d.catalog, &d.vault, &jobs, &v, &who.id, None)
            .await
            .unwrap();
    }
    let queued = d.catalog.all_jobs(&t.id).await.unwrap();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(
        (queued[0].input_video_id.as_str(), queued[0].price),
        (id.as_str(), 0)
    );
    assert!(queued[0].preset.contains("probe"), "{}", queued[0].preset);
    // Counted: priced for every frame.
    d.catalog
        .set_video_media(&t.id, &id, "{}", 500, 640, 360)
        .await
        .unwrap();
    let v = d.catalog.video(&t.id, &id).await.unwrap();
    let one = (1280.0 * 720.0 / 1e6 * billing.price_per_megapixel_frame).ceil() as i64;
    assert!(bv_service::jobs::price(&billing, &v, 2).unwrap() > 400 * one);
    bv_service::jobs::reprobe_if_uncounted(&d.catalog, &d.vault, &jobs, &v, &who.id, None)
        .await
        .unwrap();
    assert_eq!(d.catalog.all_jobs(&t.id).await.unwrap().len(), 1);
}
