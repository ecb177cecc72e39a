//! Log hygiene against hostile clients: a file name with CR/LF, ESC or C1
//! controls is refused (400) and nothing is stored; a name with a fake log
//! line is stored but never logged (names are private); a login name and a
//! user agent carrying controls come out as visible `\u{…}` escapes, so no
//! line can be forged or coloured. (Secrets are checked in every server's log
//! by the harness when each test ends.)

use bv_catalog::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Server;
use bv_testkit::on_both;

on_both!(backend; hostile_names_and_user_agents_cannot_forge_log_lines);

const FORGED: &str = "{\"level\":\"ERROR\",\"fields\":{\"message\":\"FORGED\"}}";

async fn hostile_names_and_user_agents_cannot_forge_log_lines(b: Backend) {
    let s = Server::start(b).await;
    // A file name with CR/LF, a whole fake log line and ANSI colour.
    let name = format!("clip\r\n{FORGED}\u{1b}[31mred\u{9b}2J.mp4");
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let r = s
        .req(Method::POST, &format!("/v1/videos?name={encoded}"), &s.key)
        .body(vec![1u8; 100])
        .send()
        .await
        .unwrap();
    // Refused at the door (names never hold control characters), and nothing stored.
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_request", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("control characters")
    );
    let listed: Value = s
        .req(Method::GET, "/v1/videos", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["videos"].as_array().unwrap().len(), 0);
    // A name without controls but with a whole fake log line is stored, and not logged.
    let r = s
        .req(
            Method::POST,
            "/v1/videos?name=clip%22%7D%7B%22level%22%3A%22ERROR%22.mp4",
            &s.key,
        )
        .body(vec![1u8; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A login name with the same, through the JSON body.
    let r = s
        .http
        .post(format!("{}/v1/session", s.url))
        .json(&json!({"login": format!("eve\n{FORGED}\u{1b}[2J\u{9b}31m"), "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A user agent carrying C1 controls and a line separator (obs-text bytes
    // reach the server; CR, LF and ESC cannot be sent in a header at all).
    let mut req = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: evil\xc2\x9b31mbot\xe2\x80\xa8next\r\n\r\n".to_vec();
    let resp = s.raw_https(&req).await;
    assert!(
        resp.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    // ESC in a header is refused before any handler sees it.
    req = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: a\x1b[31mb\r\n\r\n".to_vec();
    let resp = s.raw_https(&req).await;
    assert!(
        !resp.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&resp)
    );

    let log = std::fs::read_to_string(s.log_path()).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not one JSON object: {l:?}")))
        .collect();
    assert!(
        lines.iter().all(|l| l["fields"]["message"] != "FORGED"),
        "a client forged a log line"
    );
    assert!(
        !log.contains("FORGED") || !log.contains("\nFORGED"),
        "forged text starts a line"
    );
    assert!(!log.contains('\u{1b}') && !log.contains('\u{9b}') && !log.contains('\u{2028}'));
    assert!(!log.contains("clip"), "file names are private: not logged");
    let ua = lines
        .iter()
        .filter_map(|l| l["fields"]["user_agent"].as_str())
        .find(|u| u.starts_with("evil"))
        .expect("the user agent is logged");
    assert_eq!(ua, "evil\\u{9b}31mbot\\u{2028}next", "escaped, visibly");
    let login = lines
        .iter()
        .filter(|l| l["fields"]["action"] == "session.login")
        .find_map(|l| l["fields"]["object"].as_str())
        .expect("the refused sign-in is logged");
    assert!(
        login.contains("\\u{a}") && login.contains("\\u{1b}") && login.contains("\\u{9b}"),
        "{login}"
    );
}
