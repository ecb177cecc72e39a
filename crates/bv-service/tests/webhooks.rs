//! Webhook delivery attacked where the API's check cannot help: a stored URL
//! that points inside the network (set while private addresses were
//! allowed, or a name whose DNS answer changed since it was set) is refused
//! at connection time, nothing reaches the inside address, and the tenant
//! sees why. On both catalog backends.

use std::sync::Arc;
use std::time::Duration;

use bv_service::webhooks::{Poster, deliver_due};
use bv_testkit::{TestDb, on_both};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both!(
    an_inside_address_is_refused_at_connection_and_the_tenant_sees_why,
    a_silent_endpoint_delays_no_other_tenants_events,
);

/// A tenant with a webhook at `url` and one event queued for it.
async fn tenant_with_event(
    catalog: &bv_catalog::Catalog,
    vault: &bv_vault::Vault,
    name: &str,
    url: &str,
) -> String {
    let t = bv_testkit::tenant(catalog, name).await;
    let sealed = bv_service::fields::seal(vault, &t.id, bv_service::fields::WEBHOOK_URL, url)
        .await
        .unwrap();
    catalog.set_webhook(&t.id, &sealed).await.unwrap();
    assert!(
        catalog
            .enqueue_webhook(&t.id, &bv_catalog::new_id().unwrap(), "job.succeeded", "{}")
            .await
            .unwrap()
    );
    t.id
}

/// Finding 7 of the outside review: deliveries went one after the other,
/// so one tenant's silent endpoint held everybody's events for its timeout.
async fn a_silent_endpoint_delays_no_other_tenants_events(db: &TestDb) {
    let catalog = db.open().await;
    let (vault, _dir) = bv_testkit::vault(&catalog);
    let vault = Arc::new(vault);
    // Tenant A's endpoint takes connections and never answers; its events
    // are older, and there are more of them than the sender takes at once.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_url = format!("http://127.0.0.1:{}/a", silent.local_addr().unwrap().port());
    let a = tenant_with_event(&catalog, &vault, "silent", &a_url).await;
    for _ in 0..200 {
        let id = bv_catalog::new_id().unwrap();
        catalog
            .enqueue_webhook(&a, &id, "job.cancelled", "{}")
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let prompt = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_url = format!("http://127.0.0.1:{}/b", prompt.local_addr().unwrap().port());
    let b = tenant_with_event(&catalog, &vault, "prompt", &b_url).await;
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = silent.accept().await.unwrap();
            held.push(s);
        }
    });
    let poster = Poster::new(Duration::from_secs(6), true).unwrap();
    let (c, v) = (catalog.clone(), Arc::clone(&vault));
    let round = tokio::spawn(async move { deliver_due(&c, &v, &poster).await.unwrap() });
    // B's event arrives while A's is still waiting for its answer.
    let got = tokio::time::timeout(Duration::from_secs(3), async {
        let (mut s, _) = prompt.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    })
    .await
    .expect("tenant B's event waited behind tenant A's silent endpoint");
    assert!(got.starts_with("POST /b "), "{got}");
    // A gets its two slots, B its one: A's backlog hid nothing.
    assert_eq!(round.await.unwrap(), 3);
    held.abort();
    let a_seen = catalog.webhook_deliveries(&a, 1000).await.unwrap();
    let tried: Vec<_> = a_seen.iter().filter(|d| d.attempts > 0).collect();
    assert_eq!(tried.len(), 2, "two of A's events were tried");
    assert!(tried.iter().all(|d| {
        d.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no answer"))
    }));
    let b_seen = catalog.webhook_deliveries(&b, 1).await.unwrap();
    assert!(b_seen[0].delivered_ms.is_some());
}

async fn an_inside_address_is_refused_at_connection_and_the_tenant_sees_why(db: &TestDb) {
    let catalog = db.open().await;
    let (vault, _dir) = bv_testkit::vault(&catalog);
    let vault = Arc::new(vault);
    let t = bv_testkit::tenant(&catalog, "acme").await;
    // An endpoint on this host's loopback: what an attacker would aim at.
    let inside = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hook",
        inside.local_addr().unwrap().port()
    );
    let sealed = bv_service::fields::seal(&vault, &t.id, bv_service::fields::WEBHOOK_URL, &url)
        .await
        .unwrap();
    catalog.set_webhook(&t.id, &sealed).await.unwrap();
    assert!(
        catalog
            .enqueue_webhook(&t.id, &bv_catalog::new_id().unwrap(), "job.succeeded", "{}")
            .await
            .unwrap()
    );

    let strict = Poster::new(Duration::from_secs(2), false).unwrap();
    assert_eq!(deliver_due(&catalog, &vault, &strict).await.unwrap(), 1);
    let nothing = tokio::time::timeout(Duration::from_millis(300), inside.accept()).await;
    assert!(nothing.is_err(), "the refused delivery connected anyway");
    let seen = catalog.webhook_deliveries(&t.id, 10).await.unwrap();
    assert_eq!(seen.len(), 1);
    let why = seen[0].last_error.as_deref().unwrap();
    assert!(
        why.contains("loopback") && why.contains("public addresses only"),
        "{why}"
    );
    assert!(
        !why.contains("/hook"),
        "the sealed URL is not repeated in the error: {why}"
    );
    assert_eq!((seen[0].attempts, seen[0].delivered_ms), (1, None));
    assert!(seen[0].next_ms.is_some(), "it will be tried again");

    // Allowed (development): the same delivery goes through once it is due.
    let server = tokio::spawn(async move {
        let (mut s, _) = inside.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
    });
    let lenient = Poster::new(Duration::from_secs(2), true).unwrap();
    let t0 = std::time::Instant::now();
    while deliver_due(&catalog, &vault, &lenient).await.unwrap() == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the retry never came due"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.await.unwrap();
    let seen = catalog.webhook_deliveries(&t.id, 10).await.unwrap();
    assert_eq!((seen[0].attempts, seen[0].last_error.as_deref()), (2, None));
    assert!(seen[0].delivered_ms.is_some() && seen[0].next_ms.is_none());
}
