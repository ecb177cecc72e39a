//! The catalog suite, run on SQLite and on PostgreSQL alike.

use std::time::Duration;

use bv_catalog::uploads::NewUpload;
use bv_catalog::{Backend, Catalog, CatalogError, Piece, Scope, TenantLimits, VideoState};
use bv_testkit::TestDb;

const LIMITS: TenantLimits = TenantLimits {
    max_upload_bytes: 1000,
    quota_bytes: 1500,
};

bv_testkit::on_both!(
    migrations_apply_once_and_refuse_a_newer_schema,
    tenants_and_users,
    api_keys_are_hashed_scoped_and_die_at_once,
    sessions_time_out_and_sign_out,
    login_failures_are_counted_per_subject,
    videos_are_scoped_limited_and_deleted_in_two_phases,
    uploads_advance_only_under_their_lease,
    operator_grants_cover_one_video_for_a_time_and_wait_for_approval,
    webhook_secret_versions_never_repeat,
    a_setup_link_makes_one_user_once_within_its_lifetime,
);

async fn two_tenants(c: &Catalog) -> (String, String, String, String) {
    let a = c.create_tenant("acme", LIMITS).await.unwrap();
    let b = c.create_tenant("globex", LIMITS).await.unwrap();
    let pa = c.create_service_account(&a.id, "ci").await.unwrap();
    let pb = c.create_service_account(&b.id, "ci").await.unwrap();
    (a.id, pa.id, b.id, pb.id)
}

async fn migrations_apply_once_and_refuse_a_newer_schema(db: &TestDb) {
    let c = db.open().await;
    assert_eq!(
        c.backend(),
        if db.url.starts_with("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    );
    c.create_tenant("acme", LIMITS).await.unwrap();
    c.close().await;
    // Reopening applies nothing and keeps the data.
    let c = db.open().await;
    assert_eq!(c.tenants().await.unwrap().len(), 1);
    assert!(c.ping().await);
    c.close().await;
    // A schema from a newer program is refused, not clobbered.
    let raw = Catalog::open(&db.url, 1).await.unwrap();
    raw.close().await;
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let url = if db.url.starts_with("sqlite") {
            format!("{}?mode=rw", db.url)
        } else {
            db.url.clone()
        };
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (999, 'future', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let e = Catalog::open(&db.url, 1).await.unwrap_err();
    assert_eq!(e.code(), "schema_too_new", "{e}");
}

async fn tenants_and_users(db: &TestDb) {
    let c = db.open().await;
    let t = c.create_tenant("acme", LIMITS).await.unwrap();
    assert_eq!(
        c.create_tenant("acme", LIMITS).await.unwrap_err().code(),
        "already_exists"
    );
    assert_eq!(
        c.create_tenant("bad name\n", LIMITS)
            .await
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
    assert_eq!(c.find_tenant("acme").await.unwrap(), t);
    assert_eq!(c.find_tenant(&t.id).await.unwrap(), t);
    assert!(matches!(
        c.find_tenant("nope").await,
        Err(CatalogError::NotFound)
    ));

    assert_eq!(
        c.create_user(&t.id, "alice@acme", "short")
            .await
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
    let alice = c
        .create_user(&t.id, "alice@acme", "a long passphrase")
        .await
        .unwrap();
    assert_eq!(alice.kind, "user");
    let other = c.create_tenant("globex", LIMITS).await.unwrap();
    assert_eq!(
        c.create_user(&other.id, "alice@acme", "a long passphrase")
            .await
            .unwrap_err()
            .code(),
        "already_exists",
        "sign-in names are unique across tenants"
    );
    assert_eq!(
        c.check_password("alice@acme", "a long passphrase")
            .await
            .unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        c.check_password("alice@acme", "a long passphrasE")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        c.check_password("mallory", "a long passphrase")
            .await
            .unwrap(),
        None
    );
    let svc = c.create_service_account(&t.id, "ci").await.unwrap();
    assert_eq!(
        c.check_password("ci", "").await.unwrap(),
        None,
        "service accounts cannot sign in"
    );
    assert_eq!(c.find_principal(&t.id, "ci").await.unwrap(), svc);
    assert!(matches!(
        c.find_principal(&other.id, &svc.id).await,
        Err(CatalogError::NotFound)
    ));
}

async fn api_keys_are_hashed_scoped_and_die_at_once(db: &TestDb) {
    let c = db.open().await;
    let (a, pa, b, _) = two_tenants(&c).await;
    let (k, token) = c
        .create_api_key(
            &a,
            &pa,
            "deploy",
            &[Scope::VideosWrite, Scope::VideosRead],
            None,
        )
        .await
        .unwrap();
    assert!(
        token.starts_with("bv_") && token.len() == 3 + 16 + 1 + 64,
        "{token}"
    );
    assert_eq!(k.scopes, vec![Scope::VideosRead, Scope::VideosWrite]);
    let auth = c
        .authenticate_key(&token)
        .await
        .unwrap()
        .expect("valid key");
    assert_eq!(
        (auth.tenant_id.as_str(), auth.principal_id.as_str()),
        (a.as_str(), pa.as_str())
    );
    assert_eq!(auth.scopes, k.scopes);
    assert!(c.api_key(&a, &k.id).await.unwrap().last_used_ms.is_some());

    // One changed character anywhere: refused.
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        c.authenticate_key(std::str::from_utf8(&flipped).unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(c.authenticate_key("bv_garbage").await.unwrap(), None);

    // The table holds no usable secret.
    let listed = c.api_keys(&a).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!format!("{listed:?}").contains(&token[20..]));

    // Other tenants cannot see or revoke it.
    assert!(c.api_keys(&b).await.unwrap().is_empty());
    assert!(matches!(
        c.revoke_api_key(&b, &k.id).await,
        Err(CatalogError::NotFound)
    ));
    assert!(c.authenticate_key(&token).await.unwrap().is_some());

    // Revocation is immediate.
    let r = c.revoke_api_key(&a, &k.id).await.unwrap();
    assert!(r.revoked_ms.is_some());
    assert_eq!(c.authenticate_key(&token).await.unwrap(), None);

    // Expiry.
    let soon = bv_catalog::now_ms() + 300;
    let (_, t2) = c
        .create_api_key(&a, &pa, "short", &[Scope::Admin], Some(soon))
        .await
        .unwrap();
    assert!(c.authenticate_key(&t2).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.authenticate_key(&t2).await.unwrap(), None);
    assert_eq!(
        c.create_api_key(&a, &pa, "past", &[Scope::Admin], Some(1))
            .await
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
    assert_eq!(
        c.create_api_key(&a, &pa, "none", &[], None)
            .await
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
    // A key for another tenant's principal cannot be made.
    assert!(matches!(
        c.create_api_key(&b, &pa, "x", &[Scope::Admin], None).await,
        Err(CatalogError::NotFound)
    ));
}

async fn sessions_time_out_and_sign_out(db: &TestDb) {
    let c = db.open().await;
    let t = c.create_tenant("acme", LIMITS).await.unwrap();
    let u = c
        .create_user(&t.id, "alice", "a long passphrase")
        .await
        .unwrap();
    let s = c.create_session(&t.id, &u.id, 60_000).await.unwrap();
    let auth = c
        .authenticate_session(&s.token, 60_000)
        .await
        .unwrap()
        .expect("alive");
    assert_eq!(auth.principal_id, u.id);
    assert_eq!(
        auth.csrf_hash,
        bv_crypto::secret::token_hash(s.csrf.as_bytes())
    );
    assert_eq!(
        c.authenticate_session(&"0".repeat(64), 60_000)
            .await
            .unwrap(),
        None
    );
    // Idle timeout.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(c.authenticate_session(&s.token, 200).await.unwrap(), None);
    assert_eq!(
        c.authenticate_session(&s.token, 60_000).await.unwrap(),
        None,
        "removed when it died"
    );
    // Absolute timeout, however active.
    let s = c.create_session(&t.id, &u.id, 300).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = c.authenticate_session(&s.token, 60_000).await.unwrap();
    }
    assert_eq!(
        c.authenticate_session(&s.token, 60_000).await.unwrap(),
        None
    );
    // Sign-out.
    let s = c.create_session(&t.id, &u.id, 60_000).await.unwrap();
    let auth = c
        .authenticate_session(&s.token, 60_000)
        .await
        .unwrap()
        .unwrap();
    c.end_session(&auth.token_hash).await.unwrap();
    assert_eq!(
        c.authenticate_session(&s.token, 60_000).await.unwrap(),
        None
    );
}

async fn login_failures_are_counted_per_subject(db: &TestDb) {
    let c = db.open().await;
    let subj = vec!["login:alice".to_string(), "ip:10.0.0.1".to_string()];
    for _ in 0..3 {
        c.record_login_failure(&subj).await.unwrap();
    }
    c.record_login_failure(&["ip:10.0.0.1".to_string()])
        .await
        .unwrap();
    assert_eq!(c.login_failures(&subj, 60_000).await.unwrap(), 4);
    assert_eq!(
        c.login_failures(&["login:alice".into()], 60_000)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        c.login_failures(&["login:bob".into()], 60_000)
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        c.login_failures(&subj, 100).await.unwrap(),
        0,
        "the window slides"
    );
}

async fn videos_are_scoped_limited_and_deleted_in_two_phases(db: &TestDb) {
    let c = db.open().await;
    let (a, _, b, _) = two_tenants(&c).await;
    assert_eq!(
        c.create_video(&a, "big.mp4", "video/mp4", 1001, VideoState::Uploaded)
            .await
            .unwrap_err()
            .code(),
        "upload_too_large",
        "over the per-upload limit"
    );
    assert_eq!(
        c.create_video(&a, "bad\r\nname", "video/mp4", 1, VideoState::Uploaded)
            .await
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
    let v1 = c
        .create_video(&a, "one.mp4", "video/mp4", 1000, VideoState::Uploaded)
        .await
        .unwrap();
    let e = c
        .create_video(&a, "two.mp4", "video/mp4", 501, VideoState::Uploaded)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "quota_exceeded", "{e}");
    let v2 = c
        .create_video(&a, "two.mp4", "video/mp4", 500, VideoState::Uploaded)
        .await
        .unwrap();
    assert_eq!(c.tenant_usage(&a).await.unwrap(), 1500);
    let p = Piece {
        seq: 0,
        object_id: "o1".into(),
        plain_offset: 0,
        plain_len: 500,
    };
    c.add_piece(&v2.id, &p).await.unwrap();
    assert_eq!(c.pieces(&v2.id).await.unwrap(), vec![p.clone()]);

    // Scoped by tenant.
    assert_eq!(c.video(&a, &v1.id).await.unwrap(), v1);
    assert!(matches!(
        c.video(&b, &v1.id).await,
        Err(CatalogError::NotFound)
    ));
    assert!(c.videos(&b, 10, None).await.unwrap().is_empty());
    assert!(matches!(
        c.begin_delete_video(&b, &v1.id).await,
        Err(CatalogError::NotFound)
    ));
    assert_eq!(c.video_for_link(&v1.id).await.unwrap().tenant_id, a);

    // Pagination, newest first.
    let page1 = c.videos(&a, 1, None).await.unwrap();
    assert_eq!(page1.len(), 1);
    let last = page1.last().unwrap();
    let page2 = c
        .videos(&a, 10, Some((last.created_ms, &last.id)))
        .await
        .unwrap();
    assert_eq!(page2.len(), 1);
    assert_ne!(page1[0].id, page2[0].id);

    // Delete: invisible at once, rows gone after the purge, quota freed.
    assert_eq!(c.begin_delete_video(&a, &v2.id).await.unwrap(), vec![p]);
    assert!(matches!(
        c.video(&a, &v2.id).await,
        Err(CatalogError::NotFound)
    ));
    assert!(matches!(
        c.video_for_link(&v2.id).await,
        Err(CatalogError::NotFound)
    ));
    assert_eq!(c.videos_being_deleted().await.unwrap().len(), 1);
    c.purge_video(&a, &v2.id).await.unwrap();
    assert!(c.videos_being_deleted().await.unwrap().is_empty());
    assert!(c.pieces(&v2.id).await.unwrap().is_empty());
    assert_eq!(c.tenant_usage(&a).await.unwrap(), 1000);
}

async fn uploads_advance_only_under_their_lease(db: &TestDb) {
    let c = db.open().await;
    let (a, pa, b, _) = two_tenants(&c).await;
    let new = |len| NewUpload {
        tenant_id: &a,
        principal_id: &pa,
        name: "clip.mp4",
        content_type: "video/mp4",
        length: len,
        metadata: "filename Y2xpcC5tcDQ=",
        ttl_ms: 60_000,
        max_uploading: None,
    };
    let (u, v) = c.create_upload(&new(100)).await.unwrap();
    assert_eq!(
        (u.received, u.length, v.state),
        (0, 100, VideoState::Uploading)
    );
    assert!(
        c.videos(&a, 10, None).await.unwrap().is_empty(),
        "invisible until complete"
    );
    assert!(matches!(
        c.upload(&b, &u.id).await,
        Err(CatalogError::NotFound)
    ));
    assert!(matches!(
        c.lock_upload(&b, &u.id, "x", 1000).await,
        Err(CatalogError::NotFound)
    ));

    let u = c.lock_upload(&a, &u.id, "server-1", 60_000).await.unwrap();
    assert_eq!(
        c.lock_upload(&a, &u.id, "server-2", 60_000)
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    // Wrong offset, or not the lease holder: refused.
    assert_eq!(
        c.append_upload_piece(&u, "server-1", 10, "o0", 40)
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    assert_eq!(
        c.append_upload_piece(&u, "server-2", 0, "o0", 40)
            .await
            .unwrap_err()
            .code(),
        "conflict"
    );
    assert_eq!(
        c.append_upload_piece(&u, "server-1", 0, "o0", 101)
            .await
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
    assert_eq!(
        c.append_upload_piece(&u, "server-1", 0, "o0", 40)
            .await
            .unwrap(),
        40
    );
    assert_eq!(
        c.finish_upload(&u).await.unwrap_err().code(),
        "conflict",
        "not complete"
    );
    c.unlock_upload(&u.id, "server-1").await.unwrap();
    // Another server resumes where the first stopped.
    let u = c.lock_upload(&a, &u.id, "server-2", 60_000).await.unwrap();
    assert_eq!(u.received, 40);
    assert_eq!(
        c.append_upload_piece(&u, "server-2", 40, "o1", 60)
            .await
            .unwrap(),
        100
    );
    let u = c.upload(&a, &u.id).await.unwrap();
    c.finish_upload(&u).await.unwrap();
    let v = c.video(&a, &v.id).await.unwrap();
    assert_eq!((v.state, v.size_bytes), (VideoState::Uploaded, 100));
    let pieces = c.pieces(&v.id).await.unwrap();
    assert_eq!(
        pieces
            .iter()
            .map(|p| (p.plain_offset, p.plain_len))
            .collect::<Vec<_>>(),
        vec![(0, 40), (40, 60)]
    );
    assert!(matches!(
        c.upload(&a, &u.id).await,
        Err(CatalogError::NotFound)
    ));

    // An expired lease can be taken over; an expired upload is found by the sweeper.
    let (u2, _) = c
        .create_upload(&NewUpload {
            ttl_ms: -1,
            ..new(10)
        })
        .await
        .unwrap();
    c.lock_upload(&a, &u2.id, "server-1", -1).await.unwrap();
    c.lock_upload(&a, &u2.id, "server-2", 60_000).await.unwrap();
    let expired = c.expired_uploads(bv_catalog::now_ms()).await.unwrap();
    assert_eq!(
        expired.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        vec![u2.id.as_str()]
    );
    // Racing creations cannot overdraw the quota (1500 bytes; 110 used so far).
    let t3 = c.create_tenant("racers", LIMITS).await.unwrap();
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (c, t) = (c.clone(), t3.id.clone());
        racers.push(tokio::spawn(async move {
            c.create_video(&t, "r.mp4", "video/mp4", 400, VideoState::Uploaded)
                .await
                .is_ok()
        }));
    }
    let mut won = 0;
    for r in racers {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 3, "3 x 400 fit in 1500, a 4th does not");
    assert_eq!(c.tenant_usage(&t3.id).await.unwrap(), 1200);
    // Quota counts announced lengths of uploads in flight.
    c.create_upload(&new(1000)).await.unwrap();
    assert_eq!(
        c.create_upload(&new(1000)).await.unwrap_err().code(),
        "quota_exceeded"
    );
}

async fn operator_grants_cover_one_video_for_a_time_and_wait_for_approval(db: &TestDb) {
    use bv_catalog::{GrantStatus, NewGrant};
    let c = db.open().await;
    let (a, _, b, _) = two_tenants(&c).await;
    let v1 = c
        .create_video(&a, "one.mp4", "video/mp4", 10, VideoState::Uploaded)
        .await
        .unwrap();
    let v2 = c
        .create_video(&a, "two.mp4", "video/mp4", 10, VideoState::Uploaded)
        .await
        .unwrap();
    let vb = c
        .create_video(&b, "b.mp4", "video/mp4", 10, VideoState::Uploaded)
        .await
        .unwrap();
    c.add_piece(
        &v1.id,
        &Piece {
            seq: 0,
            object_id: "obj-1".into(),
            plain_offset: 0,
            plain_len: 10,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        c.object_owner("obj-1").await.unwrap(),
        Some((a.clone(), v1.id.clone()))
    );
    assert_eq!(c.object_owner("nope").await.unwrap(), None);
    let req = |video: &'static str| NewGrant {
        tenant_id: "",
        video_id: video,
        operator: "alice",
        reason_code: "customer_request",
        reason: "the customer reports a green frame at 0:03",
        ticket: "SUP-1",
        ttl_ms: 60_000,
    };
    let g = NewGrant {
        tenant_id: &a,
        video_id: &v1.id,
        ..req("")
    };
    assert_eq!(
        c.request_access(&g).await.unwrap_err().code(),
        "not_found",
        "an unregistered operator asks for nothing"
    );
    c.add_operator("alice", "BetterVideo Ltd", "Dublin, IE")
        .await
        .unwrap();
    assert_eq!(
        c.add_operator("alice", "x", "y").await.unwrap_err().code(),
        "already_exists"
    );
    for bad in [
        NewGrant {
            reason_code: "curiosity",
            ..g.clone()
        },
        NewGrant {
            reason: " ",
            ..g.clone()
        },
        NewGrant {
            ticket: "a\nb",
            ..g.clone()
        },
        NewGrant {
            ttl_ms: 25 * 3600 * 1000,
            ..g.clone()
        },
    ] {
        assert_eq!(
            c.request_access(&bad).await.unwrap_err().code(),
            "invalid_argument"
        );
    }
    let other = NewGrant {
        tenant_id: &a,
        video_id: &vb.id,
        ..req("")
    };
    assert_eq!(
        c.request_access(&other).await.unwrap_err().code(),
        "not_found",
        "another tenant's video looks missing"
    );
    assert_eq!(c.usable_grant(&a, &v1.id, "alice").await.unwrap(), None);

    // No approval required: in effect at once, for that video only.
    let g1 = c.request_access(&g).await.unwrap();
    assert_eq!(g1.status(bv_catalog::now_ms()), GrantStatus::Active);
    assert_eq!(g1.decided_by.as_deref(), Some("policy"));
    assert_eq!(
        c.usable_grant(&a, &v1.id, "alice")
            .await
            .unwrap()
            .unwrap()
            .id,
        g1.id
    );
    assert_eq!(c.usable_grant(&a, &v2.id, "alice").await.unwrap(), None);
    assert_eq!(c.usable_grant(&b, &v1.id, "alice").await.unwrap(), None);
    assert_eq!(c.usable_grant(&a, &v1.id, "bob").await.unwrap(), None);
    c.revoke_grant(&g1.id, "operator:alice").await.unwrap();
    assert_eq!(c.usable_grant(&a, &v1.id, "alice").await.unwrap(), None);

    // A short grant ends on its own.
    let short = c
        .request_access(&NewGrant {
            ttl_ms: 1000,
            ..g.clone()
        })
        .await
        .unwrap();
    assert!(c.usable_grant(&a, &v1.id, "alice").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.usable_grant(&a, &v1.id, "alice").await.unwrap(), None);
    assert_eq!(
        c.grant(&short.id)
            .await
            .unwrap()
            .status(bv_catalog::now_ms()),
        GrantStatus::Expired
    );

    // Approval required: nothing until the tenant approves; only the tenant decides.
    assert!(!c.access_approval(&a).await.unwrap());
    c.set_access_approval(&a, true).await.unwrap();
    assert!(c.access_approval(&a).await.unwrap());
    let p = c.request_access(&g).await.unwrap();
    assert_eq!(p.status(bv_catalog::now_ms()), GrantStatus::Pending);
    assert_eq!(c.usable_grant(&a, &v1.id, "alice").await.unwrap(), None);
    assert_eq!(
        c.decide_access(&b, &p.id, true, "principal:x")
            .await
            .unwrap_err()
            .code(),
        "not_found",
        "another tenant cannot approve"
    );
    let ok = c
        .decide_access(&a, &p.id, true, "principal:y")
        .await
        .unwrap();
    assert_eq!(ok.status(bv_catalog::now_ms()), GrantStatus::Active);
    assert!(ok.expires_ms.unwrap() - ok.decided_ms.unwrap() == 60_000);
    assert!(c.usable_grant(&a, &v1.id, "alice").await.unwrap().is_some());
    assert_eq!(
        c.decide_access(&a, &p.id, true, "principal:y")
            .await
            .unwrap_err()
            .code(),
        "invalid_argument",
        "approved once"
    );
    // Denying a grant in effect revokes it.
    let r = c
        .decide_access(&a, &p.id, false, "principal:y")
        .await
        .unwrap();
    assert_eq!(r.status(bv_catalog::now_ms()), GrantStatus::Revoked);
    assert_eq!(c.usable_grant(&a, &v1.id, "alice").await.unwrap(), None);
    let d = c.request_access(&g).await.unwrap();
    c.decide_access(&a, &d.id, false, "principal:y")
        .await
        .unwrap();
    assert_eq!(c.usable_grant(&a, &v1.id, "alice").await.unwrap(), None);

    // A disabled operator's grant stops working.
    c.set_access_approval(&a, false).await.unwrap();
    c.request_access(&g).await.unwrap();
    assert!(c.usable_grant(&a, &v1.id, "alice").await.unwrap().is_some());
    c.disable_operator("alice").await.unwrap();
    assert_eq!(c.usable_grant(&a, &v1.id, "alice").await.unwrap(), None);
    assert_eq!(
        c.request_access(&g).await.unwrap_err().code(),
        "invalid_argument"
    );
    assert_eq!(c.tenant_grants(&a, 100).await.unwrap().len(), 5);
    assert!(c.tenant_grants(&b, 100).await.unwrap().is_empty());
}

/// A webhook's secret is derived from its version: deleting the webhook and
/// setting it again must not bring version 1 (and its leaked secret) back.
async fn webhook_secret_versions_never_repeat(db: &TestDb) {
    let c = db.open().await;
    let (a, _, b, _) = two_tenants(&c).await;
    let w = c.set_webhook(&a, "https://one.example.com/").await.unwrap();
    assert_eq!(w.secret_version, 1);
    assert_eq!(
        c.set_webhook(&a, "https://two.example.com/")
            .await
            .unwrap()
            .secret_version,
        1,
        "a new URL keeps the secret"
    );
    assert_eq!(c.rotate_webhook(&a, 1000).await.unwrap().secret_version, 2);
    c.delete_webhook(&a).await.unwrap();
    let again = c.set_webhook(&a, "https://one.example.com/").await.unwrap();
    assert_eq!(again.secret_version, 3, "not 1 again");
    assert_eq!(
        again.previous_until_ms, None,
        "no earlier secret signs beside it"
    );
    assert_eq!(c.rotate_webhook(&a, 1000).await.unwrap().secret_version, 4);
    c.delete_webhook(&a).await.unwrap();
    assert!(matches!(
        c.rotate_webhook(&a, 1000).await,
        Err(CatalogError::NotFound)
    ));
    assert_eq!(
        c.set_webhook(&a, "https://x.example.com/")
            .await
            .unwrap()
            .secret_version,
        5
    );
    // Each tenant counts its own.
    assert_eq!(
        c.set_webhook(&b, "https://b.example.com/")
            .await
            .unwrap()
            .secret_version,
        1
    );
}

async fn a_setup_link_makes_one_user_once_within_its_lifetime(db: &TestDb) {
    let c = db.open().await;
    let t = c.create_tenant("default", LIMITS).await.unwrap();
    assert!(!c.has_users().await.unwrap());
    let old = c.create_setup_link(&t.id, 60_000).await.unwrap();
    let token = c.create_setup_link(&t.id, 60_000).await.unwrap();
    let pw = "correct horse battery";
    // The earlier link died with the new one; a short password or a bad
    // login is refused without using the link up.
    assert!(
        c.redeem_setup_link(&old, "admin", pw)
            .await
            .unwrap()
            .is_none()
    );
    assert!(c.redeem_setup_link(&token, "admin", "short").await.is_err());
    assert!(
        c.redeem_setup_link(&token, "bad login!\n", pw)
            .await
            .is_err()
    );
    let p = c
        .redeem_setup_link(&token, "admin", pw)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.tenant_id, t.id);
    assert!(c.has_users().await.unwrap());
    assert!(c.check_password("admin", pw).await.unwrap().is_some());
    // Once only.
    assert!(
        c.redeem_setup_link(&token, "admin2", pw)
            .await
            .unwrap()
            .is_none()
    );
    // Once a user exists, a new link makes nobody: it is for the first only.
    let again = c.create_setup_link(&t.id, 60_000).await.unwrap();
    let none = c.redeem_setup_link(&again, "admin4", pw).await.unwrap();
    assert!(none.is_none());
    // Not after its lifetime (in a tenant without users).
    let t2 = c.create_tenant("other", LIMITS).await.unwrap();
    let expired = c.create_setup_link(&t2.id, -1).await.unwrap();
    let none = c.redeem_setup_link(&expired, "admin3", pw).await.unwrap();
    assert!(none.is_none());
    let fresh = c.create_setup_link(&t2.id, 60_000).await.unwrap();
    let made = c.redeem_setup_link(&fresh, "admin3", pw).await.unwrap();
    assert!(made.is_some());
    // Only the digest is stored.
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = if db.url.starts_with("sqlite") {
        format!("{}?mode=rw", db.url)
    } else {
        db.url.clone()
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM setup_links")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|h| *h != fresh && h.len() == 64),
        "{stored:?}"
    );
}

/// A SQLite catalog written before `secure_delete` was on still holds what
/// was deleted back then (a shredded video's wrapped key, say) in its free
/// pages; the first open by this version rewrites the file once. The attack:
/// delete a row the old way (secure_delete off, as earlier versions did),
/// find its bytes in the file, open the catalog, look again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_deleted_before_secure_delete_leave_the_file_at_the_next_open() {
    use sqlx::{Connection, Executor};
    let db = TestDb::new(Backend::Sqlite).await;
    drop(db.open().await);
    let path = db.url.strip_prefix("sqlite://").unwrap().to_string();
    let needle = format!("wrapped-{}", "7e".repeat(40));
    let found = || {
        let dir = std::path::Path::new(&path).parent().unwrap();
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("catalog.db"))
            .any(|e| {
                let bytes = std::fs::read(e.path()).unwrap();
                bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            })
    };
    {
        // What an earlier version did: no secure_delete, no rewrite yet.
        let mut old = sqlx::sqlite::SqliteConnection::connect(&db.url)
            .await
            .unwrap();
        old.execute("PRAGMA secure_delete = OFF").await.unwrap();
        old.execute("PRAGMA user_version = 0").await.unwrap();
        for i in 0..50 {
            let q = format!(
                "INSERT INTO vault_objects (object, tenant, record) VALUES ('o{i}', 't', '{needle}')"
            );
            old.execute(sqlx::AssertSqlSafe(q)).await.unwrap();
        }
        old.execute("DELETE FROM vault_objects").await.unwrap();
        old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .unwrap();
        old.close().await.unwrap();
    }
    assert!(
        found(),
        "the deleted rows are in the file (the attack works)"
    );
    let c = db.open().await;
    assert!(!found(), "the first open rewrote the file without them");
    // Once: a later open does not rewrite it again (user_version says so).
    let v: i64 = sqlx::Row::try_get(
        &sqlx::query("PRAGMA user_version")
            .fetch_one(
                &mut sqlx::sqlite::SqliteConnection::connect(&db.url)
                    .await
                    .unwrap(),
            )
            .await
            .unwrap(),
        0,
    )
    .unwrap();
    assert_eq!(v, 1);
    drop(c);
}
