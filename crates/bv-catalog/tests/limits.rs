//! Rate buckets and concurrency limits, on SQLite and on PostgreSQL: two
//! catalog handles on one database (two servers) share every count.

use std::time::Duration;

use bv_catalog::{
    CatalogError, NewJob, NewUpload, Rate, TenantLimitOverrides, TenantLimits, VideoState,
};
use bv_testkit::TestDb;

const LIMITS: TenantLimits = TenantLimits {
    max_upload_bytes: 1 << 30,
    quota_bytes: 1 << 40,
};

bv_testkit::on_both!(
    workers = 4;
    a_bucket_allows_its_burst_then_refuses_with_the_wait,
    racing_requests_from_two_handles_never_exceed_the_burst,
    unfinished_uploads_and_active_jobs_are_bounded,
    tenant_overrides_round_trip,
);

async fn a_bucket_allows_its_burst_then_refuses_with_the_wait(db: &TestDb) {
    let (a, b) = (db.open().await, db.open().await);
    // 60 a minute: one a second, five at once.
    let rate = Rate {
        per_minute: 60,
        burst: 5,
    };
    for i in 0..5 {
        let h = if i % 2 == 0 { &a } else { &b };
        assert_eq!(h.take_rate("key:k1", rate).await.unwrap(), None, "#{i}");
    }
    let wait = a.take_rate("key:k1", rate).await.unwrap().expect("refused");
    assert!((1..=1000).contains(&wait), "wait {wait} ms");
    // A refusal spends nothing: the wait does not grow.
    let again = b.take_rate("key:k1", rate).await.unwrap().expect("refused");
    assert!(again <= wait, "{again} > {wait}");
    // Another bucket is untouched; an unlimited rate never refuses.
    assert_eq!(a.take_rate("key:k2", rate).await.unwrap(), None);
    let off = Rate {
        per_minute: 0,
        burst: 1,
    };
    for _ in 0..20 {
        assert_eq!(a.take_rate("key:k1", off).await.unwrap(), None);
    }
    // After the wait, one more passes (and only one).
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    assert_eq!(a.take_rate("key:k1", rate).await.unwrap(), None);
    // A bucket that still counts survives a purge.
    a.purge_rate_buckets().await.unwrap();
    assert!(b.take_rate("key:k1", rate).await.unwrap().is_some());
}

async fn racing_requests_from_two_handles_never_exceed_the_burst(db: &TestDb) {
    let handles = [db.open().await, db.open().await];
    // One a minute: nothing refills during the race, so exactly the burst passes.
    let rate = Rate {
        per_minute: 1,
        burst: 7,
    };
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = handles[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            c.take_rate("tenant:t", rate).await.unwrap()
        }));
    }
    let mut passed = 0;
    for t in tasks {
        if t.await.unwrap().is_none() {
            passed += 1;
        }
    }
    assert_eq!(passed, 7);
}

async fn unfinished_uploads_and_active_jobs_are_bounded(db: &TestDb) {
    let c = db.open().await;
    let t = c.create_tenant("acme", LIMITS).await.unwrap().id;
    let p = c.create_service_account(&t, "ci").await.unwrap().id;
    let upload = |n: &'static str| NewUpload {
        tenant_id: &t,
        principal_id: &p,
        name: n,
        content_type: "video/mp4",
        length: 10,
        metadata: "",
        ttl_ms: 60_000,
        max_uploading: Some(2),
    };
    c.create_upload(&upload("a.mp4")).await.unwrap();
    c.create_upload(&upload("b.mp4")).await.unwrap();
    let e = c.create_upload(&upload("c.mp4")).await.unwrap_err();
    assert!(
        matches!(e, CatalogError::TooManyUploads { limit: 2 }),
        "{e}"
    );
    assert_eq!(e.code(), "too_many_uploads");
    // A single-request upload counts the same way; nothing was created.
    let e = c
        .create_upload_video(&t, "d.mp4", "video/mp4", 10, VideoState::Uploading, Some(2))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "too_many_uploads");
    assert_eq!(c.tenant_usage(&t).await.unwrap(), 20);
    // Another tenant is not affected.
    let other = c.create_tenant("globex", LIMITS).await.unwrap().id;
    c.create_upload_video(
        &other,
        "x.mp4",
        "video/mp4",
        1,
        VideoState::Uploading,
        Some(2),
    )
    .await
    .unwrap();

    let v = c
        .create_video(&t, "in.mp4", "video/mp4", 10, VideoState::Uploaded)
        .await
        .unwrap()
        .id;
    c.grant_credits(&t, 100, "x").await.unwrap();
    let submit = |preset: &'static str, key: Option<&'static str>| {
        let (c, t, p, v) = (c.clone(), t.clone(), p.clone(), v.clone());
        async move {
            let id = bv_catalog::new_id().unwrap();
            c.submit_job(&NewJob {
                id: &id,
                tenant_id: &t,
                principal_id: &p,
                input_video_id: &v,
                preset,
                price: i64::from(preset != bv_catalog::jobs::PROBE_PRESET),
                payload_mac: "00",
                mac_key_version: 1,
                priority: 0,
                max_attempts: 1,
                idempotency_key: key,
                custody: None,
                max_active: Some(2),
            })
            .await
        }
    };
    let first = submit("{}", Some("k")).await.unwrap();
    submit("{}", None).await.unwrap();
    // Probes do not count (and are not refused).
    submit(bv_catalog::jobs::PROBE_PRESET, None).await.unwrap();
    let e = submit("{}", None).await.unwrap_err();
    assert!(matches!(e, CatalogError::TooManyJobs { limit: 2 }), "{e}");
    // A retried submission with its idempotency key still finds its job.
    assert_eq!(submit("{}", Some("k")).await.unwrap().id, first.id);
    // An ended job frees its slot.
    c.cancel_job(&t, &first.id).await.unwrap();
    submit("{}", None).await.unwrap();
}

async fn tenant_overrides_round_trip(db: &TestDb) {
    let c = db.open().await;
    let t = c.create_tenant("acme", LIMITS).await.unwrap().id;
    assert_eq!(
        c.tenant_limit_overrides(&t).await.unwrap(),
        TenantLimitOverrides::default()
    );
    let o = TenantLimitOverrides {
        key_requests_per_minute: Some(10),
        tenant_requests_per_minute: None,
        concurrent_uploads: Some(0),
        active_jobs: Some(3),
    };
    c.set_tenant_limit_overrides(&t, o).await.unwrap();
    assert_eq!(c.tenant_limit_overrides(&t).await.unwrap(), o);
    let bad = TenantLimitOverrides {
        active_jobs: Some(-1),
        ..o
    };
    assert_eq!(
        c.set_tenant_limit_overrides(&t, bad)
            .await
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
    c.set_tenant_storage(&t, Some(5000), None).await.unwrap();
    let t2 = c.tenant(&t).await.unwrap();
    assert_eq!((t2.quota_bytes, t2.max_upload_bytes), (5000, 1 << 30));
    assert_eq!(
        c.set_tenant_limit_overrides("0".repeat(32).as_str(), o)
            .await
            .unwrap_err()
            .code(),
        "not_found"
    );
}
