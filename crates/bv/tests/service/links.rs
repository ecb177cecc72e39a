//! Signed download links: Range, tampering, expiry, method, deletion, rotation.

use std::time::Duration;

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, payload};
use bv_testkit::on_both;

on_both!(backend; signed_links_hold_against_tampering_expiry_deletion_and_rotation);

async fn mint(s: &Server, video: &str, body: Value) -> String {
    let r = s
        .req(Method::POST, &format!("/v1/videos/{video}/links"), &s.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn code(r: reqwest::Response) -> (u16, String) {
    let st = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (
        st,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
    )
}

async fn signed_links_hold_against_tampering_expiry_deletion_and_rotation(b: Backend) {
    let s = Server::start(b).await;
    let data = payload(2_600_000, b"LINKMARK");
    let r = s
        .req(Method::POST, "/v1/videos?name=clip%20%C3%A9.mp4", &s.key)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let video = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let url = mint(&s, &video, json!({})).await;
    assert!(url.starts_with(&format!("{}/v1/dl/{video}?", s.url)));

    // Whole object, with the download headers.
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "private, no-store");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename*=UTF-8''clip%20%C3%A9.mp4")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);
    // Ranges equal the plaintext slices (inside a piece, across pieces, suffix, open).
    for (range, lo, hi) in [
        ("bytes=0-0", 0, 1),
        ("bytes=100-70000", 100, 70001),
        ("bytes=1048000-1049000", 1_048_000, 1_049_001),
        ("bytes=65530-2200000", 65530, 2_200_001),
        ("bytes=-5", data.len() - 5, data.len()),
        ("bytes=2500000-", 2_500_000, data.len()),
    ] {
        let r = s
            .http
            .get(&url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {lo}-{}/{}", hi - 1, data.len())
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[lo..hi], "{range}");
    }
    let r = s
        .http
        .get(&url)
        .header("range", "bytes=9999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", data.len())
    );

    // Tampering with any part, or another object, or another method: refused.
    let (base, query) = url.split_once('?').unwrap();
    let q: Vec<(&str, &str)> = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    let get = |k: &str| q.iter().find(|(n, _)| *n == k).unwrap().1.to_string();
    let (e, v, sig) = (get("e"), get("v"), get("s"));
    let mut flipped = sig.clone().into_bytes();
    flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();
    let later = (e.parse::<u64>().unwrap() + 3600).to_string();
    let other = {
        let r = s
            .req(Method::POST, "/v1/videos?name=o", &s.key)
            .body("other")
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for bad in [
        format!("{base}?e={e}&v={v}&s={flipped}"),
        format!("{base}?e={later}&v={v}&s={sig}"),
        format!("{base}?e={e}&v=9&s={sig}"),
        format!("{base}?e={e}&v={v}"),
        format!("{}/v1/dl/{other}?{query}", s.url),
    ] {
        assert_eq!(
            code(s.http.get(&bad).send().await.unwrap()).await,
            (403, "link_invalid".into()),
            "{bad}"
        );
    }
    let r = s.http.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 403, "a GET link does not allow HEAD");
    let head_url = mint(&s, &video, json!({"method": "HEAD"})).await;
    let r = s.http.head(&head_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], data.len().to_string());
    assert_eq!(
        s.http.get(&head_url).send().await.unwrap().status(),
        403,
        "a HEAD link does not allow GET"
    );

    // TTL bounds, and expiry.
    let r = s
        .req(Method::POST, &format!("/v1/videos/{video}/links"), &s.key)
        .json(&json!({"ttl_seconds": 8 * 86400}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let short = mint(&s, &video, json!({"ttl_seconds": 1})).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        code(s.http.get(&short).send().await.unwrap()).await,
        (403, "link_expired".into())
    );

    // Rotation: links survive one rotation, not two.
    s.admin(&["links", "rotate"], None);
    tokio::time::sleep(Duration::from_millis(2100)).await; // the server re-reads keys every 2 s
    assert_eq!(
        s.http
            .get(&url)
            .header("range", "bytes=0-9")
            .send()
            .await
            .unwrap()
            .status(),
        206
    );
    let fresh = mint(&s, &video, json!({})).await;
    assert!(fresh.contains("&v=2&"), "{fresh}");
    s.admin(&["links", "rotate"], None);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        code(s.http.get(&url).send().await.unwrap()).await,
        (403, "link_invalid".into())
    );
    assert_eq!(
        s.http
            .get(&fresh)
            .header("range", "bytes=0-9")
            .send()
            .await
            .unwrap()
            .status(),
        206
    );

    // Deleting the video kills its links.
    let r = s
        .req(Method::DELETE, &format!("/v1/videos/{video}"), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        code(s.http.get(&fresh).send().await.unwrap()).await,
        (403, "link_invalid".into())
    );

    // Signatures and keys never reach the log.
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    assert!(
        !log.contains(&sig) && !log.contains(&s.key),
        "a secret is in the server log"
    );
    assert!(log.contains("\"route\":\"/v1/dl/{id}\""));
}
