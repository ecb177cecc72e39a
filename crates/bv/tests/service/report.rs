//! The security report tells the truth about the live service: each of its
//! statements is checked here against the running server (TLS versions and
//! every suite it lists, what answers without credentials, link lifetimes,
//! operator access counts, the sandbox self-test's observed limits, the
//! security.txt it serves, the tests it names).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bv_api::routes::{Access, ENDPOINTS};
use bv_catalog::Backend;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, files_containing, payload, shared_data};
use bv_testkit::on_both;

on_both!(backend; the_security_report_is_true_of_the_live_service);

async fn report(s: &Server, key: Option<&str>) -> Value {
    let mut r = s.http.get(format!("{}/v1/security-report", s.url));
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// `openssl s_client` against the server with extra arguments: (handshake
/// completed, everything it printed).
fn s_client(s: &Server, args: &[&str]) -> (bool, String) {
    let port = s.url.rsplit(':').next().unwrap();
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let done =
        out.status.success() && text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
    (done, text)
}

/// An IANA TLS 1.2 suite name as OpenSSL spells it.
fn openssl_name(iana: &str) -> String {
    iana.trim_start_matches("TLS_")
        .replace("_WITH_", "_")
        .replace("AES_256_GCM", "AES256-GCM")
        .replace("AES_128_GCM", "AES128-GCM")
        .replace("CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305")
        .replace('_', "-")
}

async fn the_security_report_is_true_of_the_live_service(b: Backend) {
    let models = shared_data().join("models");
    let s = Server::start_with(
        b,
        &[
            ("BV_MODEL_DIR", models.to_str().unwrap()),
            ("BV_SERVE_SECURITY_CONTACT", "mailto:security@example.org"),
            ("BV_SERVE_PROCESSING_LOCATION", "test rack 7"),
            ("BV_SERVE_LINK_TTL_SECONDS", "120"),
            ("BV_SERVE_LINK_MAX_TTL_SECONDS", "600"),
            ("BV_SANDBOX_LIMITS_OPEN_FILES", "777"),
            ("BV_SANDBOX_LIMITS_SCRATCH_BYTES", "33554432"),
        ],
    )
    .await;

    // 6–7. The sandbox self-test ran at start-up and observed the configured limits.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut r = report(&s, None).await;
    while r["processing"]["self_test"]["ok"].is_null() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        r = report(&s, None).await;
    }
    let t = &r["processing"]["self_test"];
    assert_eq!(t["ok"], true, "{t:#}");
    for c in [
        "network_refused",
        "host_files_unreadable",
        "read_only_outside_scratch",
        "no_capabilities",
        "no_new_privileges",
        "seccomp_filter",
        "limits_active",
        "scratch_size_capped",
        "torn_down",
    ] {
        assert_eq!(t["checks"][c], true, "{c}: {t:#}");
    }
    assert_eq!(t["probes"]["limits"]["Max open files"], "777");
    assert!(
        t["probes"]["scratch"]
            .as_str()
            .unwrap()
            .contains("size=32768k")
    );
    assert!(
        t["probes"]["host_files"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with("root.key"))
    );
    assert_eq!(r["processing"]["location"], "test rack 7");
    assert_eq!(r["processing"]["limits"]["open_files"], 777);

    // 1. TLS: exactly the listed versions, and every listed suite negotiates.
    let tr = &r["transport"];
    assert_eq!(tr["protocols"], json!(["TLSv1.3", "TLSv1.2"]));
    for (flag, refused) in [
        ("-tls1", true),
        ("-tls1_1", true),
        ("-tls1_2", false),
        ("-tls1_3", false),
    ] {
        let (ok, text) = s_client(&s, &[flag, "-cipher", "DEFAULT@SECLEVEL=0"]);
        assert_eq!(ok, !refused, "{flag}: {text}");
        if refused {
            // Refused by the server (it answered the hello with an alert), not by our own client.
            assert!(
                text.contains("SSL alert number") && text.contains("written"),
                "{flag}: {text}"
            );
        }
    }
    let suites: Vec<&str> = tr["cipher_suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(suites.len() >= 4, "{suites:?}");
    for suite in &suites {
        let (ok, text) = if suite.starts_with("TLS13_") {
            let name = suite.replacen("TLS13_", "TLS_", 1);
            s_client(&s, &["-tls1_3", "-ciphersuites", &name])
        } else {
            s_client(&s, &["-tls1_2", "-cipher", &openssl_name(suite)])
        };
        assert!(ok, "{suite} is listed but does not negotiate: {text}");
    }
    // Suites the report does not list are refused: CBC, no forward secrecy.
    for weak in [
        "ECDHE-ECDSA-AES128-SHA",
        "AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ] {
        if suites.iter().any(|s| openssl_name(s) == weak) {
            continue;
        }
        let (ok, text) = s_client(&s, &["-tls1_2", "-cipher", &format!("{weak}@SECLEVEL=0")]);
        assert!(!ok, "{weak} is not listed but negotiated: {text}");
    }
    let h = s
        .http
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.headers()["strict-transport-security"].to_str().unwrap(),
        tr["hsts"]
    );
    assert_eq!(tr["plain_http"], "none");

    // 3. Only the listed routes answer without credentials.
    let listed: Vec<(String, String)> = r["storage"]["routes_without_credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().into(),
                e["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let anon = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(
            &std::fs::read(s.dir.path().join("tls/ca.pem")).unwrap(),
        )
        .unwrap()])
        .build()
        .unwrap();
    for e in ENDPOINTS {
        let path = e.path.replace("{id}", "0123456789abcdef0123456789abcdef");
        let m = Method::from_bytes(e.method.as_bytes()).unwrap();
        let st = anon
            .request(m, format!("{}{path}", s.url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let is_listed = listed.contains(&(e.method.to_string(), e.path.to_string()));
        assert_eq!(
            is_listed,
            e.access == Access::Public,
            "{} {}",
            e.method,
            e.path
        );
        if !is_listed {
            assert!(
                st == 401 || st == 403,
                "{} {path} without credentials: {st}",
                e.method
            );
        }
    }
    // 2. What is stored is sealed: an uploaded marker is nowhere on disk.
    let marker = b"REPORT-PLAINTEXT-MARKER";
    let up = s
        .req(Method::POST, "/v1/videos?name=r.bin", &s.key)
        .body(payload(300_000, marker))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201);
    let video = up.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(files_containing(s.dir.path(), marker).is_empty());
    let (_, other) = s.second_tenant("report-b");
    let r = report(&s, Some(&s.key)).await;
    assert_eq!(r["at_rest"]["algorithm"], "AES-256-GCM");
    assert_eq!(r["at_rest"]["tenants"]["total"], 2);
    assert_eq!(r["at_rest"]["tenants"]["keys_held_by_the_service"], 2);

    // 3. Links: the listed default lifetime is what a link gets; the cap holds.
    assert_eq!(r["links"]["default_ttl_seconds"], 120);
    assert_eq!(r["links"]["max_ttl_seconds"], 600);
    let link = |body: Value| {
        s.req(Method::POST, &format!("/v1/videos/{video}/links"), &s.key)
            .json(&body)
            .send()
    };
    let l: Value = link(json!({})).await.unwrap().json().await.unwrap();
    let exp = l["expires_at"].as_str().unwrap();
    let left = chrono_secs(exp) - now_secs();
    assert!((110..=121).contains(&left), "default link lives {left} s");
    assert_eq!(
        link(json!({"ttl_seconds": 601})).await.unwrap().status(),
        400
    );

    // 4. Staff access: the count moves with a real access; approval is counted.
    let before = r["staff_access"]["operator_accesses_last_30_days"]
        .as_i64()
        .unwrap();
    s.admin(
        &[
            "operator",
            "add",
            "dana",
            "--employer",
            "BV",
            "--location",
            "Porto, PT",
        ],
        None,
    );
    let op = |args: &[&str]| s.bv().env("SUDO_USER", "dana").args(args).output().unwrap();
    let o = op(&[
        "admin",
        "access",
        "request",
        "--tenant",
        "default",
        "--video",
        &video,
        "--reason",
        "report test",
        "--ticket",
        "T-1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = op(&[
        "admin", "access", "open", "--tenant", "default", "--video", &video,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.req(Method::PUT, "/v1/access/settings", &other)
        .json(&json!({"require_approval": true}))
        .send()
        .await
        .unwrap();
    let r = report(&s, Some(&s.key)).await;
    assert_eq!(
        r["staff_access"]["operator_accesses_last_30_days"],
        before + 1
    );
    assert_eq!(r["staff_access"]["tenants_requiring_approval"], 1);
    assert_eq!(r["your_tenant"]["operator_accesses_last_30_days"], 1);
    assert_eq!(r["your_tenant"]["require_approval"], false);
    let theirs = report(&s, Some(&other)).await;
    assert_eq!(theirs["your_tenant"]["operator_accesses_last_30_days"], 0);
    assert_eq!(theirs["your_tenant"]["require_approval"], true);
    assert!(report(&s, None).await.get("your_tenant").is_none());

    // 5. No certification claimed.
    assert_eq!(r["certifications"]["claimed"], json!([]));

    // 9. security.txt as served, and SECURITY.md in the tree.
    let txt = anon
        .get(format!("{}/.well-known/security.txt", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        txt.contains("Contact: mailto:security@example.org\n"),
        "{txt}"
    );
    let expires = txt
        .lines()
        .find_map(|l| l.strip_prefix("Expires: "))
        .unwrap();
    let ahead = chrono_secs(expires) - now_secs();
    assert!(ahead > 30 * 86400 && ahead < 365 * 86400, "{txt}");
    assert_eq!(r["disclosure"]["contact"], "mailto:security@example.org");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let policy = std::fs::read_to_string(root.join("SECURITY.md")).unwrap();
    assert!(policy.contains("security.txt") && policy.contains("days"));
    // The pin file the binary was built with, and the SBOM's date once `make sbom` ran.
    let sc = &r["disclosure"]["supply_chain"];
    let pins = std::fs::read(root.join("scripts/pins.lock")).unwrap();
    let digest: String = <sha2::Sha256 as sha2::Digest>::digest(&pins)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sc["pin_file_sha256"], digest.as_str(), "{sc}");
    let entries = String::from_utf8(pins)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(sc["pinned_artifacts"], entries, "{sc}");
    assert!(sc["sbom"]["generated_at"].is_null(), "no SBOM yet: {sc}");
    let dir = s.dir.path().join("sbom");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("bv.cdx.json"),
        json!({"bomFormat": "CycloneDX", "specVersion": "1.5",
               "metadata": {"timestamp": "2026-11-27T05:27:57Z"},
               "components": [{"type": "library", "name": "a"}, {"type": "library", "name": "b"}]})
        .to_string(),
    )
    .unwrap();
    let again = report(&s, Some(&s.key)).await;
    let sbom = &again["disclosure"]["supply_chain"]["sbom"];
    assert_eq!(
        (
            sbom["generated_at"].as_str(),
            sbom["components"].as_u64(),
            sbom["format"].as_str()
        ),
        (Some("2026-11-27T05:27:57Z"), Some(2), Some("CycloneDX 1.5")),
        "{sbom}"
    );

    // 10. Every named test exists; the record of the last passing suite is read live.
    for a in r["testing"]["attacks"].as_array().unwrap() {
        let t = a["test"].as_str().unwrap();
        let (file, func) = t.split_once("::").unwrap();
        let src = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        assert!(src.contains(&format!("fn {func}(")), "{t} does not exist");
    }
    assert!(r["testing"]["last_passed"].is_null());
    std::fs::write(
        s.dir.path().join("security-tests.json"),
        r#"{"passed_at":"2026-11-26T10:00:00Z","commit":"abc1234"}"#,
    )
    .unwrap();
    let r = report(&s, None).await;
    assert_eq!(r["testing"]["last_passed"]["commit"], "abc1234");

    // The same report as Markdown and as the /security page (no script).
    let md = anon
        .get(format!("{}/v1/security-report?format=markdown", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        "## 1. Transport",
        "## 10. Security testing",
        "abc1234",
        "test rack 7",
    ] {
        assert!(md.contains(want), "{want}: {md}");
    }
    for suite in &suites {
        assert!(md.contains(suite), "{suite}");
    }
    let page = anon
        .get(format!("{}/security", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<h2>1. Transport</h2>") && !html.contains("<script"));

    // `bv security-report`: anonymously with --url, and through a login
    // profile (whose key adds the caller's tenant).
    let home = tempfile::tempdir().unwrap();
    let cert = s.dir.path().join("tls/ca.pem");
    let out = crate::harness::client(home.path())
        .args(["security-report", "--markdown", "--url", &s.url, "--ca"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("## 1. Transport") && !text.contains("## Your tenant"));
    let mut login = crate::harness::client(home.path())
        .args(["login", &s.url, "--ca"])
        .arg(&cert)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        writeln!(login.stdin.take().unwrap(), "{}", s.key).unwrap();
    }
    assert!(login.wait().unwrap().success());
    let out = crate::harness::client(home.path())
        .arg("security-report")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["your_tenant"]["operator_accesses_last_30_days"], 1);

    // Without a configured contact there is no security.txt (rather than a fake one).
    let plain = Server::start(b).await;
    let r = plain
        .http
        .get(format!("{}/.well-known/security.txt", plain.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_configured"
    );
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-11-26T20:00:00.000Z`).
fn chrono_secs(t: &str) -> i64 {
    let out = Command::new("date")
        .args(["-u", "-d", t, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}
