//! TLS, security headers, the redirect port, health and the API description.

use std::sync::Arc;
use std::time::Duration;

use bv_catalog::Backend;
use reqwest::Method;

use crate::harness::Server;
use bv_testkit::on_both;

on_both!(backend;
    https_only_with_strict_headers,
    openapi_lists_every_endpoint,
    a_production_certificate_is_reloaded_when_its_files_change,
);

/// A self-signed P-256 pair for `localhost` made by openssl.
fn openssl_pair(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    // A leaf certificate (openssl's default -x509 profile makes a CA, which webpki refuses as a server).
    let conf = dir.join("leaf.cnf");
    std::fs::write(
        &conf,
        "[req]\ndistinguished_name = dn\nx509_extensions = leaf\nprompt = no\n[dn]\nCN = localhost\n\
         [leaf]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost\n",
    )
    .unwrap();
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-config"])
        .arg(&conf)
        .arg("-keyout")
        .arg(&k)
        .arg("-out")
        .arg(&c)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    (c, k)
}

fn trusting(cert: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(cert).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap()
}

async fn a_production_certificate_is_reloaded_when_its_files_change(b: Backend) {
    let certs = tempfile::tempdir().unwrap();
    let (ca, ka) = openssl_pair(certs.path(), "a");
    let (cb, kb) = openssl_pair(certs.path(), "b");
    let (live_c, live_k) = (certs.path().join("live.crt"), certs.path().join("live.key"));
    std::fs::copy(&ca, &live_c).unwrap();
    std::fs::copy(&ka, &live_k).unwrap();
    let s = Server::start_with(
        b,
        &[
            ("BV_SERVE_TLS_CERT", live_c.to_str().unwrap()),
            ("BV_SERVE_TLS_KEY", live_k.to_str().unwrap()),
            ("BV_SERVE_TLS_RELOAD_SECONDS", "1"),
        ],
    )
    .await;
    assert!(
        !s.dir.path().join("tls").exists(),
        "no development certificate in production mode"
    );
    let health = format!("{}/healthz", s.url);
    assert_eq!(
        trusting(&ca).get(&health).send().await.unwrap().status(),
        200
    );
    assert!(trusting(&cb).get(&health).send().await.is_err());
    // Renewal: the key first, then the certificate (a mismatched pair in between is not served).
    std::fs::copy(&kb, &live_k).unwrap();
    std::fs::copy(&cb, &live_c).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        trusting(&cb).get(&health).send().await.unwrap().status(),
        200
    );
    assert!(trusting(&ca).get(&health).send().await.is_err());
    // A broken file keeps the last good certificate in service.
    std::fs::write(&live_c, "garbage").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        trusting(&cb).get(&health).send().await.unwrap().status(),
        200
    );
}

async fn https_only_with_strict_headers(b: Backend) {
    let redirect = crate::harness::free_port();
    let s = Server::start_with(
        b,
        &[("BV_SERVE_REDIRECT_LISTEN", &format!("127.0.0.1:{redirect}"))],
    )
    .await;
    // The plain-HTTP port only redirects, keeping path and query.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://localhost:{redirect}/v1/videos?limit=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    let port = s.url.rsplit(':').next().unwrap();
    assert_eq!(
        r.headers()["location"],
        format!("https://localhost:{port}/v1/videos?limit=2")
    );
    let r = s
        .http
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(
        h["strict-transport-security"],
        "max-age=63072000; includeSubDomains"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(h["x-request-id"].len(), 16);
    assert_eq!(
        s.http
            .get(format!("{}/readyz", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let m = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("bv_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"),
        "{m}"
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(s.url.replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // rustls clients limited to one version: 1.2 and 1.3 both work.
    let pem = std::fs::read(s.dir.path().join("tls/ca.pem")).unwrap();
    for v in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let c = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
            .tls_version_min(v)
            .tls_version_max(v)
            .build()
            .unwrap();
        assert_eq!(
            c.get(format!("{}/healthz", s.url))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{v:?}"
        );
    }

    // A TLS 1.2 client offering only CBC suites is refused.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites
        .retain(|cs| cs.suite() == rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256);
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(
        s.url
            .trim_start_matches("https://localhost:")
            .parse::<u16>()
            .map(|p| ("127.0.0.1", p))
            .unwrap(),
    )
    .await
    .unwrap();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (_, session) = conn.get_ref();
    assert_eq!(
        session.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    // The suites the server negotiates are AEAD with an ephemeral key exchange.
    let suite = session.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(
        suite,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    );
}

async fn openapi_lists_every_endpoint(b: Backend) {
    let s = Server::start(b).await;
    let doc: serde_json::Value = s
        .req(Method::GET, "/v1/openapi.json", "")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for e in bv_api::routes::ENDPOINTS {
        let op = &doc["paths"][e.path][e.method.to_ascii_lowercase()];
        assert_eq!(op["operationId"], e.operation, "{} {}", e.method, e.path);
        // The router answers it (whatever the auth outcome): never 404 "unmatched" or 405.
        let r = s
            .http
            .request(
                e.method.parse().unwrap(),
                format!(
                    "{}{}",
                    s.url,
                    e.path.replace("{id}", "0123456789abcdef0123456789abcdef")
                ),
            )
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 405, "{} {}", e.method, e.path);
        if r.status() == 404 {
            let body = r.text().await.unwrap();
            assert!(
                body.contains("not_found"),
                "{} {} is not routed: {body}",
                e.method,
                e.path
            );
        }
    }
}
