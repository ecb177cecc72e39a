//! The credit ledger and the job queue, on SQLite and on PostgreSQL.

use std::time::Duration;

use bv_catalog::{Catalog, CatalogError, JobState, NewJob, TenantLimits, VideoState};
use bv_testkit::TestDb;

const LIMITS: TenantLimits = TenantLimits {
    max_upload_bytes: 1 << 30,
    quota_bytes: 1 << 40,
};

bv_testkit::on_both!(
    workers = 4;
    ledger_derives_the_balance_and_never_expires,
    concurrent_submits_never_overdraw,
    lease_heartbeat_expiry_and_exactly_once_settlement,
    retries_backoff_and_running_out_of_attempts,
    cancellation_queued_and_running,
    segments_lease_retry_and_stop_with_their_job,
    retention_deadlines_come_forward_and_wait_for_jobs,
    workers_are_shared_fairly_between_tenants,
);

struct Fixture {
    c: Catalog,
    t: String,
    p: String,
    v: String,
}

async fn fixture(db: &TestDb) -> Fixture {
    let c = db.open().await;
    let t = c.create_tenant("acme", LIMITS).await.unwrap().id;
    let p = c.create_service_account(&t, "ci").await.unwrap().id;
    let v = c
        .create_video(&t, "in.mp4", "video/mp4", 10, VideoState::Uploaded)
        .await
        .unwrap()
        .id;
    Fixture { c, t, p, v }
}

async fn submit(
    f: &Fixture,
    price: i64,
    key: Option<&str>,
) -> Result<bv_catalog::Job, CatalogError> {
    let id = bv_catalog::new_id().unwrap();
    f.c.submit_job(&NewJob {
        id: &id,
        tenant_id: &f.t,
        principal_id: &f.p,
        input_video_id: &f.v,
        preset: r#"{"model":"realesr-animevideov3","scale":2}"#,
        price,
        payload_mac: "00",
        mac_key_version: 1,
        priority: 0,
        max_attempts: 3,
        idempotency_key: key,
        custody: None,
        max_active: None,
    })
    .await
}

async fn ledger_derives_the_balance_and_never_expires(db: &TestDb) {
    let f = fixture(db).await;
    assert_eq!(f.c.credit_balance(&f.t).await.unwrap().available, 0);
    assert_eq!(
        submit(&f, 10, None).await.unwrap_err().code(),
        "insufficient_credits"
    );
    f.c.grant_credits(&f.t, 100, "welcome").await.unwrap();
    assert_eq!(
        f.c.grant_credits(&f.t, 0, "x").await.unwrap_err().code(),
        "invalid_argument"
    );
    let j = submit(&f, 30, Some("k1")).await.unwrap();
    let b = f.c.credit_balance(&f.t).await.unwrap();
    assert_eq!((b.available, b.reserved), (70, 30));
    // The same idempotency key: the same job, no second reservation.
    let again = submit(&f, 30, Some("k1")).await.unwrap();
    assert_eq!(again.id, j.id);
    assert_eq!(f.c.credit_balance(&f.t).await.unwrap().available, 70);
    let h = f.c.credit_history(&f.t, 10, None).await.unwrap();
    // (Both may fall in the same millisecond, so compare them as a set.)
    let mut kinds: Vec<&str> = h.iter().map(|e| e.kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, vec!["grant", "reserve"]);
    // Another tenant sees none of it; the input must be the submitter's own.
    let other = f.c.create_tenant("globex", LIMITS).await.unwrap().id;
    assert_eq!(f.c.credit_balance(&other).await.unwrap().available, 0);
    assert!(matches!(
        f.c.job(&other, &j.id).await,
        Err(CatalogError::NotFound)
    ));
    let op = f.c.create_service_account(&other, "x").await.unwrap().id;
    f.c.grant_credits(&other, 100, "x").await.unwrap();
    let id = bv_catalog::new_id().unwrap();
    let stolen =
        f.c.submit_job(&NewJob {
            id: &id,
            tenant_id: &other,
            principal_id: &op,
            input_video_id: &f.v,
            preset: "{}",
            price: 1,
            payload_mac: "00",
            mac_key_version: 1,
            priority: 0,
            max_attempts: 1,
            idempotency_key: None,
            custody: None,
            max_active: None,
        })
        .await;
    assert!(
        matches!(stolen, Err(CatalogError::NotFound)),
        "another tenant's video cannot be an input"
    );
}

async fn concurrent_submits_never_overdraw(db: &TestDb) {
    let f = fixture(db).await;
    f.c.grant_credits(&f.t, 100, "covers ten").await.unwrap();
    let f = std::sync::Arc::new(f);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let f = std::sync::Arc::clone(&f);
        tasks.push(tokio::spawn(async move { submit(&f, 10, None).await }));
    }
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(e.code(), "insufficient_credits", "{e}"),
        }
    }
    assert_eq!(accepted, 10);
    let b = f.c.credit_balance(&f.t).await.unwrap();
    assert_eq!((b.available, b.reserved), (0, 100));
}

async fn lease_heartbeat_expiry_and_exactly_once_settlement(db: &TestDb) {
    let f = fixture(db).await;
    f.c.grant_credits(&f.t, 100, "g").await.unwrap();
    let j = submit(&f, 40, None).await.unwrap();
    let a =
        f.c.lease_job("worker-a", 300)
            .await
            .unwrap()
            .expect("a job");
    assert_eq!(
        (a.id.as_str(), a.state, a.attempts),
        (j.id.as_str(), JobState::Running, 1)
    );
    assert!(
        f.c.lease_job("worker-b", 300).await.unwrap().is_none(),
        "leased jobs are invisible"
    );
    assert!(
        !f.c.heartbeat_job(&j.id, "worker-a", 300, 5, Some(10))
            .await
            .unwrap()
    );
    assert_eq!(
        f.c.heartbeat_job(&j.id, "worker-b", 300, 5, None)
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    // worker-a dies: after the lease runs out, worker-b takes over.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b =
        f.c.lease_job("worker-b", 60_000)
            .await
            .unwrap()
            .expect("the expired lease");
    assert_eq!((b.id.as_str(), b.attempts), (j.id.as_str(), 2));
    // The dead worker coming back cannot settle it.
    assert_eq!(
        f.c.complete_job(
            &j.id,
            "worker-a",
            Some(("out-a", 0)),
            30,
            None,
            Default::default()
        )
        .await
        .unwrap_err()
        .code(),
        "conflict"
    );
    assert_eq!(
        f.c.heartbeat_job(&j.id, "worker-a", 300, 9, None)
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    // It ends before a heartbeat reported its frames: completing says them.
    f.c.complete_job(
        &j.id,
        "worker-b",
        Some(("out-b", 0)),
        30,
        Some(12),
        Default::default(),
    )
    .await
    .unwrap();
    let j2 = f.c.job(&f.t, &j.id).await.unwrap();
    assert_eq!((j2.frames_done, j2.frames_total), (12, Some(12)));
    assert_eq!(
        f.c.complete_job(
            &j.id,
            "worker-b",
            Some(("out-b", 0)),
            30,
            None,
            Default::default()
        )
        .await
        .unwrap_err()
        .code(),
        "conflict"
    );
    let done = f.c.job(&f.t, &j.id).await.unwrap();
    assert_eq!(
        (done.state, done.output_video_id.as_deref()),
        (JobState::Succeeded, Some("out-b"))
    );
    // One capture of the actual cost; the rest of the reservation is free again.
    let b = f.c.credit_balance(&f.t).await.unwrap();
    assert_eq!((b.available, b.reserved), (70, 0));
    let kinds: Vec<String> =
        f.c.credit_history(&f.t, 10, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "capture").count(), 1);
    // A cost above the reservation is capped at it.
    let j2 = submit(&f, 20, None).await.unwrap();
    f.c.lease_job("w", 60_000).await.unwrap().unwrap();
    f.c.complete_job(&j2.id, "w", Some(("o2", 0)), 999, None, Default::default())
        .await
        .unwrap();
    assert_eq!(f.c.credit_balance(&f.t).await.unwrap().available, 50);
}

async fn retries_backoff_and_running_out_of_attempts(db: &TestDb) {
    let f = fixture(db).await;
    f.c.grant_credits(&f.t, 100, "g").await.unwrap();
    let j = submit(&f, 10, None).await.unwrap();
    f.c.lease_job("w", 60_000).await.unwrap().unwrap();
    assert_eq!(
        f.c.fail_job(&j.id, "w", "ffmpeg crashed", true, 300)
            .await
            .unwrap(),
        JobState::Queued
    );
    assert!(
        f.c.lease_job("w", 60_000).await.unwrap().is_none(),
        "backing off"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let again = f.c.lease_job("w", 60_000).await.unwrap().unwrap();
    assert_eq!(
        (again.attempts, again.last_error.as_deref()),
        (2, Some("ffmpeg crashed"))
    );
    // A permanent error: failed, released.
    assert_eq!(
        f.c.fail_job(&j.id, "w", "input_not_video", false, 0)
            .await
            .unwrap(),
        JobState::Failed
    );
    assert_eq!(
        f.c.credit_balance(&f.t).await.unwrap(),
        bv_catalog::Balance {
            available: 100,
            reserved: 0
        }
    );
    // Workers that keep dying use up the attempts; then the job fails and is released.
    let k = submit(&f, 10, None).await.unwrap();
    for _ in 0..3 {
        assert_eq!(f.c.lease_job("w", 1).await.unwrap().unwrap().id, k.id);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(f.c.lease_job("w", 1).await.unwrap().is_none());
    let k = f.c.job(&f.t, &k.id).await.unwrap();
    assert_eq!((k.state, k.attempts), (JobState::Failed, 3));
    assert_eq!(f.c.credit_balance(&f.t).await.unwrap().available, 100);
}

async fn cancellation_queued_and_running(db: &TestDb) {
    let f = fixture(db).await;
    f.c.grant_credits(&f.t, 100, "g").await.unwrap();
    let q = submit(&f, 10, None).await.unwrap();
    assert_eq!(
        f.c.cancel_job(&f.t, &q.id).await.unwrap().state,
        JobState::Cancelled
    );
    assert_eq!(f.c.credit_balance(&f.t).await.unwrap().available, 100);
    assert!(
        f.c.lease_job("w", 60_000).await.unwrap().is_none(),
        "a cancelled job never runs"
    );
    let r = submit(&f, 10, None).await.unwrap();
    f.c.lease_job("w", 60_000).await.unwrap().unwrap();
    assert_eq!(
        f.c.cancel_job(&f.t, &r.id).await.unwrap().state,
        JobState::Running
    );
    assert!(
        f.c.heartbeat_job(&r.id, "w", 60_000, 1, None)
            .await
            .unwrap(),
        "the worker learns of it"
    );
    f.c.finish_cancelled_job(&r.id, "w").await.unwrap();
    let r = f.c.job(&f.t, &r.id).await.unwrap();
    assert_eq!(r.state, JobState::Cancelled);
    assert_eq!(
        f.c.credit_balance(&f.t).await.unwrap(),
        bv_catalog::Balance {
            available: 100,
            reserved: 0
        }
    );
    // Cancelling a finished job changes nothing.
    assert_eq!(
        f.c.cancel_job(&f.t, &r.id).await.unwrap().state,
        JobState::Cancelled
    );
    let other = f.c.create_tenant("globex", LIMITS).await.unwrap().id;
    assert!(matches!(
        f.c.cancel_job(&other, &r.id).await,
        Err(CatalogError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wakes_idle_workers_when_a_job_is_queued() {
    let db = TestDb::new(bv_catalog::Backend::Postgres).await;
    let f = fixture(&db).await;
    f.c.grant_credits(&f.t, 100, "g").await.unwrap();
    let mut waker =
        f.c.job_waker()
            .await
            .unwrap()
            .expect("PostgreSQL has LISTEN/NOTIFY");
    assert!(
        !waker.wait(Duration::from_millis(200)).await,
        "nothing queued yet"
    );
    let f = std::sync::Arc::new(f);
    let f2 = std::sync::Arc::clone(&f);
    let submitter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        submit(&f2, 10, None).await.unwrap()
    });
    assert!(
        waker.wait(Duration::from_secs(30)).await,
        "woken by the submit, not by the timeout"
    );
    submitter.await.unwrap();
    let sqlite = TestDb::new(bv_catalog::Backend::Sqlite).await;
    assert!(sqlite.open().await.job_waker().await.unwrap().is_none());
}

fn seg(index: i64, start: Option<i64>, end: Option<i64>) -> bv_catalog::NewSegment {
    bv_catalog::NewSegment {
        index,
        start_us: start,
        end_us: end,
        payload_mac: "00".into(),
        mac_key_version: 1,
    }
}

async fn segments_lease_retry_and_stop_with_their_job(db: &TestDb) {
    use bv_catalog::SegmentState;
    let f = fixture(db).await;
    f.c.grant_credits(&f.t, 100, "x").await.unwrap();
    let j = submit(&f, 10, None).await.unwrap();
    let cut = [seg(0, None, Some(2_000_000)), seg(1, Some(2_000_000), None)];
    // Only the job's lease holder cuts it; nothing runs before it is leased.
    assert_eq!(
        f.c.plan_segments(&j.id, "w1", &cut)
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    f.c.lease_job("w1", 60_000).await.unwrap().unwrap();
    let segs = f.c.plan_segments(&j.id, "w1", &cut).await.unwrap();
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[1].tenant_id, f.t);
    assert_eq!(segs[1].start_us, Some(2_000_000));
    // Cut once: a resumed coordinator gets the same segments back.
    let again = f.c.plan_segments(&j.id, "w1", &cut[..1]).await.unwrap();
    assert_eq!(again, segs);
    // Two workers take one each; a third finds nothing.
    let a =
        f.c.lease_segment("w1", 60_000, Some(&j.id))
            .await
            .unwrap()
            .unwrap();
    let b =
        f.c.lease_segment("w2", 60_000, None)
            .await
            .unwrap()
            .unwrap();
    assert_eq!((a.index, b.index), (0, 1));
    assert!(
        f.c.lease_segment("w3", 60_000, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !f.c.heartbeat_segment(&j.id, 0, "w1", 60_000, 5)
            .await
            .unwrap()
    );
    assert_eq!(
        f.c.heartbeat_segment(&j.id, 0, "w2", 60_000, 5)
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    f.c.set_segment_output(&j.id, 0, "w1", "vid-0")
        .await
        .unwrap();
    f.c.complete_segment(&j.id, 0, "w1", 1234, 60)
        .await
        .unwrap();
    // A retryable failure queues it again after its backoff.
    assert_eq!(
        f.c.fail_segment(&j.id, 1, "w2", "storage: timeout", true, 300)
            .await
            .unwrap(),
        SegmentState::Queued
    );
    assert!(
        f.c.lease_segment("w3", 60_000, None)
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let b = f.c.lease_segment("w3", 100, None).await.unwrap().unwrap();
    assert_eq!((b.index, b.attempts), (1, 2));
    // A worker that stops renewing loses it to the next.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let b =
        f.c.lease_segment("w2", 60_000, None)
            .await
            .unwrap()
            .unwrap();
    assert_eq!((b.index, b.attempts), (1, 3));
    assert_eq!(
        f.c.complete_segment(&j.id, 1, "w3", 1, 1)
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    let (n, done) = f.c.segment_counts(&j.id).await.unwrap();
    assert_eq!((n, done), (2, 1));
    // The job's attempts bound its segments too: a third failure is the last.
    f.c.fail_segment(&j.id, 1, "w2", "again", true, 0)
        .await
        .unwrap();
    assert!(
        f.c.lease_segment("w2", 60_000, None)
            .await
            .unwrap()
            .is_none()
    );
    let segs = f.c.segments(&j.id).await.unwrap();
    assert!(segs[1].is_lost(3, bv_catalog::now_ms()));
    assert!(!segs[0].is_lost(3, bv_catalog::now_ms()));
    assert_eq!(segs[0].frames_done, 60);
    assert_eq!(segs[0].output_video_id.as_deref(), Some("vid-0"));

    // Cancelling the job stops its running segments and refuses their results.
    let k = submit(&f, 10, None).await.unwrap();
    f.c.lease_job("w1", 60_000).await.unwrap().unwrap();
    f.c.plan_segments(&k.id, "w1", &cut).await.unwrap();
    f.c.lease_segment("w2", 60_000, Some(&k.id))
        .await
        .unwrap()
        .unwrap();
    f.c.cancel_job(&f.t, &k.id).await.unwrap();
    assert!(
        f.c.heartbeat_segment(&k.id, 0, "w2", 60_000, 1)
            .await
            .unwrap()
    );
    assert_eq!(
        f.c.complete_segment(&k.id, 0, "w2", 1, 1)
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    assert!(
        f.c.lease_segment("w3", 60_000, None)
            .await
            .unwrap()
            .is_none()
    );
}

async fn retention_deadlines_come_forward_and_wait_for_jobs(db: &TestDb) {
    use bv_catalog::{Retain, Rule, TenantRetention};
    let f = fixture(db).await;
    f.c.grant_credits(&f.t, 100, "x").await.unwrap();
    let out =
        f.c.create_video(&f.t, "out.mp4", "video/mp4", 0, VideoState::Uploading)
            .await
            .unwrap()
            .id;
    let j = submit(&f, 10, None).await.unwrap();
    f.c.lease_job("w", 60_000).await.unwrap().unwrap();
    let now = bv_catalog::now_ms();
    let retain = Retain {
        output_until_ms: Some(now + 60_000),
        input_until_ms: Some(now),
    };
    f.c.complete_job(&j.id, "w", Some((&out, 5)), 10, None, retain)
        .await
        .unwrap();
    let o = f.c.video(&f.t, &out).await.unwrap();
    assert_eq!(
        (o.delete_after_ms, o.retention.as_deref()),
        (Some(now + 60_000), Some("output"))
    );
    let i = f.c.video(&f.t, &f.v).await.unwrap();
    assert_eq!(
        (i.delete_after_ms, i.retention.as_deref()),
        (Some(now), Some("original"))
    );
    // Never postponed: a later deadline under another rule leaves it.
    f.c.schedule_deletion(&f.t, &f.v, now + 1_000, Rule::FailedInput)
        .await
        .unwrap();
    assert_eq!(
        f.c.video(&f.t, &f.v).await.unwrap().delete_after_ms,
        Some(now)
    );
    // Brought forward: yes.
    f.c.schedule_deletion(&f.t, &out, now + 30_000, Rule::Output)
        .await
        .unwrap();
    assert_eq!(
        f.c.video(&f.t, &out).await.unwrap().delete_after_ms,
        Some(now + 30_000)
    );
    // Another tenant cannot schedule this tenant's video.
    let other = f.c.create_tenant("globex", LIMITS).await.unwrap().id;
    assert!(matches!(
        f.c.schedule_deletion(&other, &f.v, now, Rule::Output).await,
        Err(CatalogError::NotFound)
    ));
    // Due: the original, not the output (not yet), and not while a job reads it.
    let due = f.c.due_videos(now, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].video_id.as_str(), due[0].retention.as_str()),
        (f.v.as_str(), "original")
    );
    let k = submit(&f, 10, None).await.unwrap();
    assert!(
        f.c.due_videos(now, 10).await.unwrap().is_empty(),
        "a queued job needs it"
    );
    f.c.cancel_job(&f.t, &k.id).await.unwrap();
    assert_eq!(f.c.due_videos(now, 10).await.unwrap().len(), 1);
    assert_eq!(f.c.due_videos(now + 30_000, 10).await.unwrap().len(), 2);
    // A tenant's own policy, and back to the defaults.
    assert_eq!(
        f.c.tenant_retention(&f.t).await.unwrap(),
        TenantRetention::default()
    );
    let p = TenantRetention {
        keep_originals: Some(true),
        output_retention_s: Some(3_600),
    };
    f.c.set_tenant_retention(&f.t, p).await.unwrap();
    assert_eq!(f.c.tenant_retention(&f.t).await.unwrap(), p);
    assert_eq!(
        f.c.tenant_retention(&other).await.unwrap(),
        TenantRetention::default()
    );
    f.c.set_tenant_retention(&f.t, TenantRetention::default())
        .await
        .unwrap();
    assert_eq!(
        f.c.tenant_retention(&f.t).await.unwrap(),
        TenantRetention::default()
    );
}

/// Finding 11 of the outside review: one queue in submission order let one
/// tenant's backlog hold every worker. Now a tenant with fewer jobs running
/// goes first, whatever the age of the other's queue.
async fn workers_are_shared_fairly_between_tenants(db: &TestDb) {
    let f = fixture(db).await;
    f.c.grant_credits(&f.t, 1_000, "t").await.unwrap();
    // Apart in time: "oldest" is by creation time (ms), ties go by id.
    let tick = || tokio::time::sleep(Duration::from_millis(5));
    let a: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(submit(&f, 1, None).await.unwrap().id);
            tick().await;
        }
        ids
    };
    // Tenant B submits later.
    let b_t = f.c.create_tenant("globex", LIMITS).await.unwrap().id;
    let b_p = f.c.create_service_account(&b_t, "ci").await.unwrap().id;
    let b_v =
        f.c.create_video(&b_t, "in.mp4", "video/mp4", 10, VideoState::Uploaded)
            .await
            .unwrap()
            .id;
    f.c.grant_credits(&b_t, 1_000, "t").await.unwrap();
    let b_id = bv_catalog::new_id().unwrap();
    f.c.submit_job(&NewJob {
        id: &b_id,
        tenant_id: &b_t,
        principal_id: &b_p,
        input_video_id: &b_v,
        preset: r#"{"model":"realesr-animevideov3","scale":2}"#,
        price: 1,
        payload_mac: "00",
        mac_key_version: 1,
        priority: 0,
        max_attempts: 3,
        idempotency_key: None,
        custody: None,
        max_active: None,
    })
    .await
    .unwrap();
    let first = f.c.lease_job("w1", 60_000).await.unwrap().unwrap();
    assert_eq!(first.id, a[0], "the oldest job first");
    let second = f.c.lease_job("w2", 60_000).await.unwrap().unwrap();
    assert_eq!(second.id, b_id, "the other tenant's job before A's second");
    let third = f.c.lease_job("w3", 60_000).await.unwrap().unwrap();
    assert_eq!(third.id, a[1], "then A again, oldest first");
}
