//! Sealed metadata: file names (simple and tus uploads, the raw tus
//! `Upload-Metadata`) and webhook URLs reach the catalog only sealed under
//! their tenant's key. The test dumps the whole catalog — every row of every
//! table, and on SQLite the database files byte for byte — and finds the
//! marker nowhere, in plain text, base64 or hex; the API still shows every
//! value as it was given.

use base64::Engine;
use bv_catalog::Backend;
use reqwest::Method;
use serde_json::Value;
use sqlx::Row;

use crate::harness::{Server, files_containing, payload};
use bv_testkit::on_both;

on_both!(backend; the_catalog_holds_no_file_name_or_webhook_url);

const MARKER: &str = "Qx7NameMarkerZ3";
/// In a name an older version wrote in plain text (so it may linger in the
/// SQLite file's free space after it is sealed: only the rows are checked).
const LEGACY: &str = "Lg8OldMarkerW2";

/// Every row of every table, as text.
async fn dump(s: &Server) -> String {
    let mut db = s.raw_db().await;
    let sqlite = s.catalog_url.starts_with("sqlite");
    let list = if sqlite {
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    } else {
        "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema()"
    };
    let tables: Vec<String> = sqlx::query(list)
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.iter().any(|t| t == "videos"), "{tables:?}");
    let mut out = String::new();
    for t in tables {
        // Every column as text, whatever its type.
        let cols: Vec<String> = if sqlite {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{t}')"
            )))
            .fetch_all(&mut db)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
        } else {
            sqlx::query(
                "SELECT column_name::TEXT FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1",
            )
            .bind(&t)
            .fetch_all(&mut db)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
        };
        let expr = cols
            .iter()
            .map(|c| format!("COALESCE(CAST({c} AS TEXT), '')"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        for r in sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {expr} FROM {t}")))
            .fetch_all(&mut db)
            .await
            .unwrap()
        {
            out.push_str(&t);
            out.push_str(": ");
            out.push_str(&r.get::<String, _>(0));
            out.push('\n');
        }
    }
    out
}

async fn the_catalog_holds_no_file_name_or_webhook_url(b: Backend) {
    let s = Server::start(b).await;
    let name = format!("holiday {MARKER}.mp4");
    let tus_name = format!("tus-{MARKER}.mov");
    let url = format!("https://{}.example.com/hook", MARKER.to_lowercase());

    // A simple upload, a tus upload (finished) and one left unfinished.
    let r = s
        .req(
            Method::POST,
            &format!("/v1/videos?name={}", name.replace(' ', "%20")),
            &s.key,
        )
        .body(payload(2 << 20, b"CONTENT"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let simple: Value = r.json().await.unwrap();
    assert_eq!(simple["name"], name.as_str());
    let b64 = base64::engine::general_purpose::STANDARD;
    let meta = format!("filename {},filetype dmlkZW8vbXA0", b64.encode(&tus_name));
    let mut locations = Vec::new();
    for _ in 0..2 {
        let r = s
            .req(Method::POST, "/v1/uploads", &s.key)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "1000")
            .header("upload-metadata", &meta)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        locations.push(r.headers()["location"].to_str().unwrap().to_string());
    }
    let r = s
        .req(Method::PATCH, &locations[0], &s.key)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", "0")
        .header("content-type", "application/offset+octet-stream")
        .body(vec![9u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = s
        .req(Method::PUT, "/v1/webhook", &s.key)
        .json(&serde_json::json!({ "url": url }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    // The API shows every value as given.
    let list: Value = s.json(Method::GET, "/v1/videos", &s.key).await;
    let mut names: Vec<&str> = list["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let mut want = vec![name.as_str(), tus_name.as_str()];
    want.sort_unstable();
    assert_eq!(names, want);
    let head = s
        .req(Method::HEAD, &locations[1], &s.key)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["upload-metadata"].to_str().unwrap(), meta);
    let hook: Value = s.json(Method::GET, "/v1/webhook", &s.key).await;
    assert_eq!(hook["url"], url.as_str());
    let id = simple["id"].as_str().unwrap();
    let r = s
        .req(Method::GET, &format!("/v1/videos/{id}/content"), &s.key)
        .send()
        .await
        .unwrap();
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(disposition.contains(MARKER), "{disposition}");

    // A catalog an older version wrote held names in plain text: the
    // server seals them when it starts.
    let legacy = format!("old {LEGACY}.mp4");
    let mut db = s.raw_db().await;
    sqlx::query("UPDATE videos SET name = $1 WHERE id = $2")
        .bind(&legacy)
        .bind(id)
        .execute(&mut db)
        .await
        .unwrap();
    drop(db);
    let mut s = s;
    s.restart();
    let v: Value = s
        .json(Method::GET, &format!("/v1/videos/{id}"), &s.key)
        .await;
    assert_eq!(v["name"], legacy.as_str());

    // The catalog, row by row, holds none of it.
    let needles = [
        MARKER.to_string(),
        MARKER.to_lowercase(),
        b64.encode(&tus_name),
        b64.encode(&name),
        b64.encode(&url),
        bv_crypto::secret::hex(MARKER.as_bytes()),
    ];
    let text = dump(&s).await;
    assert!(text.contains("videos: "), "the dump saw the videos");
    for n in needles
        .iter()
        .chain(&[LEGACY.to_string(), b64.encode(&legacy)])
    {
        let hits: Vec<&str> = text.lines().filter(|l| l.contains(n.as_str())).collect();
        assert!(hits.is_empty(), "{n:?} in the catalog: {hits:#?}");
    }
    // On SQLite, the database files themselves (free pages and WAL included).
    if s.catalog_url.starts_with("sqlite") {
        let file = s
            .catalog_url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap()
            .to_string();
        let dir = std::path::Path::new(&file).parent().unwrap();
        assert!(dir.exists(), "{file}");
        for n in &needles {
            let hits = files_containing(dir, n.as_bytes());
            assert!(hits.is_empty(), "{n:?} in {hits:?}");
        }
    }
}
