//! Hostile clients: slow headers, slow bodies, oversized heads, huge and deep
//! JSON, traversal and junk in every id field. Each is refused cleanly (a
//! JSON error with a stable code, or the connection closed), never with a
//! 500 or a stuck connection, and the server keeps serving.

use std::time::Duration;

use bv_api::routes::ENDPOINTS;
use bv_catalog::Backend;
use reqwest::Method;
use serde_json::Value;

use crate::harness::Server;
use bv_testkit::on_both;

on_both!(backend;
    slow_oversized_and_malformed_requests_are_refused_cleanly,
    connections_cannot_be_held_open,
);

/// The raw exchange, failing the test if the server holds the connection
/// open (a generous bound: it is a hang detector, not a timing check).
async fn raw(s: &Server, bytes: &[u8]) -> String {
    let out = tokio::time::timeout(Duration::from_secs(60), s.raw_https(bytes))
        .await
        .expect("the server kept a stalled connection open");
    String::from_utf8_lossy(&out).into_owned()
}

async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
    assert!(
        status < 400 || (ctype.starts_with("application/json") && !code.is_empty()),
        "{status} without the API's error format: {ctype} {body}"
    );
    (status, code)
}

async fn healthy(s: &Server) {
    let r = s
        .http
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the server keeps serving");
}

async fn slow_oversized_and_malformed_requests_are_refused_cleanly(b: Backend) {
    let s = Server::start_with(
        b,
        &[
            ("BV_SERVE_HEADER_TIMEOUT_SECONDS", "2"),
            ("BV_SERVE_BODY_IDLE_TIMEOUT_SECONDS", "2"),
        ],
    )
    .await;

    // Slow headers: a head that never ends is cut off.
    let out = raw(&s, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: a").await;
    assert!(!out.contains("200 OK"), "{out}");
    // Slow body: a body that stops arriving gets 408 body_timeout.
    let head = format!(
        "POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        s.key
    );
    let out = raw(&s, head.as_bytes()).await;
    assert!(
        out.starts_with("HTTP/1.1 408") && out.contains("\"body_timeout\""),
        "{out}"
    );
    healthy(&s).await;

    // Oversized head: 431 (HTTP/1.1), never accepted.
    let big = "x".repeat(200 * 1024);
    let out = raw(
        &s,
        format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    // 431, or the connection closed while the client was still sending it.
    assert!(
        out.is_empty() || out.starts_with("HTTP/1.1 431"),
        "{}",
        &out[..out.len().min(200)]
    );
    // And over HTTP/2 (reqwest negotiates it): refused, not served.
    let r = s
        .http
        .get(format!("{}/v1/me", s.url))
        .bearer_auth(&s.key)
        .header("x-big", &big)
        .send()
        .await;
    assert!(r.map_or(true, |r| !r.status().is_success()));
    // A very long URI.
    let r = s
        .req(Method::GET, &format!("/v1/videos?cursor={big}"), &s.key)
        .send()
        .await;
    assert!(r.map_or(true, |r| !r.status().is_success() && r.status() != 500));
    healthy(&s).await;

    // Huge JSON: 413 in the API's format. Deep JSON: 400 invalid_json.
    let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(3 << 20));
    let r = s
        .req(Method::POST, "/v1/keys", &s.key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (413, "body_too_large".into()));
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    for path in ["/v1/keys", "/v1/jobs", "/v1/webhook", "/v1/access/settings"] {
        let m = if path == "/v1/keys" || path == "/v1/jobs" {
            Method::POST
        } else {
            Method::PUT
        };
        let r = s
            .req(m, path, &s.key)
            .header("content-type", "application/json")
            .body(deep.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(r).await, (400, "invalid_json".into()), "{path}");
    }
    healthy(&s).await;

    // A request refused before its body was read (here by its credentials)
    // says it closes the connection, so a client does not send its next
    // request down it (schemathesis once met that race as a TLS EOF); one
    // whose body was read keeps the connection for the next request.
    let key = &s.key;
    let refused = "POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer bv_0_nokey\r\n\
         Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"name\":\"a\"}\
         GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let out = raw(&s, refused.as_bytes()).await.to_ascii_lowercase();
    let first = out.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        first.starts_with("http/1.1 401") && first.contains("connection: close"),
        "{out}"
    );
    let read = format!(
        "POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{{\"x\":1}}\
         GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    let out = raw(&s, read.as_bytes()).await.to_ascii_lowercase();
    let first = out.split("\r\n\r\n").next().unwrap_or_default();
    assert!(
        first.starts_with("http/1.1 400") && !first.contains("connection: close"),
        "{out}"
    );
    assert_eq!(out.matches("http/1.1 ").count(), 2, "{out}");

    // Traversal and junk in every id field: 4xx in the API's format, no file, no 500.
    let ids = [
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "..%5C..%5Cwindows",
        "%00",
        "0123456789abcdef0123456789abcdeg",
        &"a".repeat(4000),
        "%F0%9F%92%A9",
    ];
    for e in ENDPOINTS.iter().filter(|e| e.path.contains("{id}")) {
        for id in ids {
            let path = e.path.replace("{id}", id);
            let m = Method::from_bytes(e.method.as_bytes()).unwrap();
            let mut req = s.req(m.clone(), &path, &s.key);
            if e.path.starts_with("/v1/uploads") {
                req = req
                    .header("tus-resumable", "1.0.0")
                    .header("upload-offset", "0")
                    .header("content-type", "application/offset+octet-stream");
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            assert!(
                (400..500).contains(&status),
                "{} {path}: {status}",
                e.method
            );
            if m != Method::HEAD {
                let (_, code) = error_code(r).await;
                assert!(!code.is_empty());
            }
        }
    }
    // Unknown routes and methods are answered in the same format.
    let r = s
        .req(Method::GET, "/v1/../../etc/passwd", &s.key)
        .send()
        .await
        .unwrap();
    let (st, _) = error_code(r).await;
    assert_eq!(st, 404);
    let r = s
        .req(Method::PATCH, "/v1/keys", &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await, (405, "method_not_allowed".into()));
    healthy(&s).await;
}

/// The outside review's held connections: a TLS client that never speaks,
/// a body trickled a byte at a time, an HTTP/2 connection that only answers
/// PINGs, and one address opening connection after connection. Each is cut
/// off within a bound (generous here: they are hang detectors).
async fn connections_cannot_be_held_open(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start_with(
        b,
        &[
            ("BV_SERVE_HEADER_TIMEOUT_SECONDS", "2"),
            ("BV_SERVE_BODY_IDLE_TIMEOUT_SECONDS", "2"),
            ("BV_SERVE_IDLE_TIMEOUT_SECONDS", "2"),
            ("BV_SERVE_MAX_CONNECTIONS_PER_ADDRESS", "8"),
        ],
    )
    .await;
    let bound = Duration::from_secs(20);

    // Silent after the handshake: closed (the HTTP timers start only once
    // a request begins, so this used to stay open for good).
    let mut tls = s.tls_connect(&[b"http/1.1"]).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(bound, tls.read_to_end(&mut out)).await;
    assert!(closed.is_ok(), "a silent connection was held open");

    // A body trickled one byte every half second: never stalls for the idle
    // timeout, but far below the minimum rate: 408 body_timeout.
    let tls = s.tls_connect(&[b"http/1.1"]).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(tls);
    let head = format!(
        "POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        s.key
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if wr.write_all(b" ").await.is_err() || wr.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut out = Vec::new();
    let answered = tokio::time::timeout(bound, rd.read_to_end(&mut out)).await;
    trickle.abort();
    assert!(answered.is_ok(), "a trickled body held its request open");
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with("HTTP/1.1 408") && out.contains("\"body_timeout\""),
        "{out}"
    );

    // HTTP/2 with no stream, answering every PING: closed once idle.
    let tls = s.tls_connect(&[b"h2"]).await.unwrap();
    let (_send, conn) = h2::client::handshake(tls).await.unwrap();
    let ended = tokio::time::timeout(bound, conn).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection was held open");

    // One address: connections past the cap are closed at accept.
    let mut held = Vec::new();
    let mut refused = false;
    for _ in 0..20 {
        match s.tls_connect(&[b"http/1.1"]).await {
            Ok(c) => held.push(c),
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "{} connections from one address", held.len());
    assert!(
        (6..=8).contains(&held.len()),
        "{} before the cap",
        held.len()
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;
    healthy(&s).await;
}
