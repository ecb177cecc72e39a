//! Uploads: simple and tus, limits, interruption, restart, kill -9, delete.

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{Server, files_containing, files_containing_since, payload};
use bv_testkit::on_both;

on_both!(backend;
    tus_uploads_resume_and_round_trip,
    restart_resumes_and_kill9_leaves_no_plaintext,
    limits_quota_and_bad_requests,
);

fn tus(s: &Server, m: Method, path: &str) -> reqwest::RequestBuilder {
    s.req(m, path, &s.key).header("tus-resumable", "1.0.0")
}

async fn create(s: &Server, len: usize, name_b64: &str) -> (String, String) {
    let r = tus(s, Method::POST, "/v1/uploads")
        .header("upload-length", len.to_string())
        .header(
            "upload-metadata",
            format!("filename {name_b64},filetype dmlkZW8vbXA0"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let video = r.headers()["bv-video-id"].to_str().unwrap().to_string();
    (loc, video)
}

async fn patch(s: &Server, loc: &str, at: usize, bytes: Vec<u8>) -> reqwest::Response {
    tus(s, Method::PATCH, loc)
        .header("upload-offset", at.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

async fn offset(s: &Server, loc: &str) -> u64 {
    let r = tus(s, Method::HEAD, loc).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn content(s: &Server, video: &str) -> Vec<u8> {
    let r = s
        .req(Method::GET, &format!("/v1/videos/{video}/content"), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

async fn tus_uploads_resume_and_round_trip(b: Backend) {
    let s = Server::start(b).await;
    let r = tus(&s, Method::OPTIONS, "/v1/uploads")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["tus-version"], "1.0.0");
    assert!(
        r.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("creation-with-upload")
    );

    let data = payload(2_700_000, b"TUSMARK");
    let (loc, video) = create(&s, data.len(), "Y2xpcC5tcDQ=").await;
    assert_eq!(offset(&s, &loc).await, 0);
    let r = patch(&s, &loc, 0, data[..1_200_000].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"], "1200000");
    // Wrong offset: 409, nothing changes.
    let r = patch(&s, &loc, 5, data[5..100].to_vec()).await;
    assert_eq!(r.status(), 409);
    assert_eq!(offset(&s, &loc).await, 1_200_000);
    // Not visible until complete.
    let list: Value = s
        .req(Method::GET, "/v1/videos", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["videos"].as_array().unwrap().len(), 0);
    // An interrupted request: what arrived before the drop is kept, and the upload resumes from HEAD.
    let (tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let mut tx2 = tx.clone();
    let chunk = bytes::Bytes::copy_from_slice(&data[1_200_000..1_500_000]);
    let sender = tokio::spawn(async move {
        use futures::SinkExt;
        tx2.send(Ok(chunk)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        tx2.send(Err(std::io::Error::other("client gave up")))
            .await
            .unwrap();
    });
    drop(tx);
    let _ = tus(&s, Method::PATCH, &loc)
        .header("upload-offset", "1200000")
        .header("content-type", "application/offset+octet-stream")
        .body(reqwest::Body::wrap_stream(rx))
        .send()
        .await;
    sender.await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let at = offset(&s, &loc).await as usize;
    assert!((1_200_000..=1_500_000).contains(&at), "{at}");
    let r = patch(&s, &loc, at, data[at..].to_vec()).await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["upload-offset"], data.len().to_string());
    assert_eq!(content(&s, &video).await, data);
    let v: Value = s
        .req(Method::GET, &format!("/v1/videos/{video}"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["name"].as_str(), v["content_type"].as_str()),
        (Some("clip.mp4"), Some("video/mp4"))
    );
    // Finished: the upload URL is gone.
    assert_eq!(
        tus(&s, Method::HEAD, &loc).send().await.unwrap().status(),
        404
    );

    // Creation with upload in one request; termination of another.
    let small = payload(5000, b"SMALL");
    let r = tus(&s, Method::POST, "/v1/uploads")
        .header("upload-length", "5000")
        .header("content-type", "application/offset+octet-stream")
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["upload-offset"], "5000");
    let v2 = r.headers()["bv-video-id"].to_str().unwrap().to_string();
    assert_eq!(content(&s, &v2).await, small);
    let (loc3, v3) = create(&s, 100, "eA==").await;
    patch(&s, &loc3, 0, vec![1; 50]).await;
    assert_eq!(
        tus(&s, Method::DELETE, &loc3)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        tus(&s, Method::HEAD, &loc3).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        s.req(Method::GET, &format!("/v1/videos/{v3}"), &s.key)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // Delete a finished video: gone, and its bytes unreadable.
    assert_eq!(
        s.req(Method::DELETE, &format!("/v1/videos/{video}"), &s.key)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        s.req(Method::GET, &format!("/v1/videos/{video}/content"), &s.key)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

async fn restart_resumes_and_kill9_leaves_no_plaintext(b: Backend) {
    let started = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
    let mut s = Server::start(b).await;
    // Made at run time, so no source file or build output can contain it.
    let marker = format!(
        "PLAINTEXT-MARKER-{}",
        bv_crypto::secret::random_hex(8).unwrap()
    );
    let marker = marker.as_bytes();
    let data = payload(3_100_000, marker);
    let (loc, video) = create(&s, data.len(), "ci5tcDQ=").await;
    assert_eq!(
        patch(&s, &loc, 0, data[..1_700_000].to_vec())
            .await
            .status(),
        204
    );
    s.restart();
    assert_eq!(
        offset(&s, &loc).await,
        1_700_000,
        "the offset survives a restart"
    );
    assert_eq!(
        patch(&s, &loc, 1_700_000, data[1_700_000..].to_vec())
            .await
            .status(),
        204
    );
    assert_eq!(content(&s, &video).await, data);

    // kill -9 in the middle of a PATCH.
    let (loc2, video2) = create(&s, data.len(), "ay5tcDQ=").await;
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let req = tus(&s, Method::PATCH, &loc2)
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(reqwest::Body::wrap_stream(rx))
        .send();
    let pending = tokio::spawn(req);
    {
        use futures::SinkExt;
        tx.send(Ok(bytes::Bytes::copy_from_slice(&data[..1_300_000])))
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    s.kill9();
    let _ = pending.await;
    s.restart();
    let list: Value = s
        .req(Method::GET, "/v1/videos", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&video2.as_str()),
        "a half-uploaded video is not visible"
    );
    assert_eq!(ids, vec![video.as_str()]);
    // Plaintext never touched the disk: not in the data directory, not in the temp directory.
    let hits = files_containing(s.dir.path(), marker);
    assert!(hits.is_empty(), "plaintext on disk: {hits:?}");
    let hits = files_containing_since(&std::env::temp_dir(), marker, started);
    assert!(hits.is_empty(), "plaintext in the temp dir: {hits:?}");
    // The upload can still be resumed (or abandoned) after the crash.
    let at = offset(&s, &loc2).await as usize;
    assert_eq!(
        patch(&s, &loc2, at, data[at..].to_vec()).await.status(),
        204
    );
    assert_eq!(content(&s, &video2).await, data);
}

async fn limits_quota_and_bad_requests(b: Backend) {
    let s = Server::start_with(
        b,
        &[
            ("BV_SERVE_DEFAULT_MAX_UPLOAD_MIB", "3"),
            ("BV_SERVE_DEFAULT_QUOTA_MIB", "4"),
            ("BV_SERVE_SIMPLE_UPLOAD_MAX_MIB", "2"),
        ],
    )
    .await;
    let code = |r: reqwest::Response| async move {
        let st = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        (
            st,
            v["error"]["code"].as_str().unwrap_or_default().to_string(),
        )
    };
    // Too large for one upload; too large for a simple upload; no tus version; no length.
    let r = tus(&s, Method::POST, "/v1/uploads")
        .header("upload-length", (4u64 << 20).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (413, "upload_too_large".into()));
    let r = s
        .req(Method::POST, "/v1/videos?name=big", &s.key)
        .body(vec![0u8; 3 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (413, "upload_too_large".into()));
    let r = s
        .req(Method::POST, "/v1/uploads", &s.key)
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (412, "tus_version_unsupported".into()));
    let r = tus(&s, Method::POST, "/v1/uploads").send().await.unwrap();
    assert_eq!(code(r).await, (400, "invalid_request".into()));
    let r = tus(&s, Method::POST, "/v1/uploads")
        .header("upload-length", "10")
        .header("upload-metadata", "filename !!!")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (400, "invalid_request".into()));
    let (loc, _) = create(&s, 10, "eA==").await;
    let r = tus(&s, Method::PATCH, &loc)
        .header("upload-offset", "0")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (415, "tus_content_type".into()));
    // Quota: 4 MiB in all, uploads in flight count.
    let (_l1, _) = create(&s, 3 << 20, "eA==").await;
    let r = tus(&s, Method::POST, "/v1/uploads")
        .header("upload-length", (1u64 << 20).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (507, "quota_exceeded".into()));
    // Malformed ids and cursors are plain errors.
    let r = s
        .req(Method::GET, "/v1/videos?cursor=zzz", &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (400, "invalid_request".into()));
    let r = s
        .req(Method::GET, "/v1/videos/not-an-id", &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(code(r).await, (404, "not_found".into()));
}
