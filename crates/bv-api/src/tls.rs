//! TLS: rustls with TLS 1.2 and 1.3 only and AEAD, forward-secret suites only;
//! certificates reloaded from disk when they change; a development CA
//! made on first start, whose short-lived certificate is renewed while serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// TLS setup failures.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or used.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(path: &Path, msg: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

/// The crypto provider: aws-lc-rs, restricted to AEAD suites with ephemeral
/// key exchange. (rustls offers nothing else for TLS 1.2 either — no CBC, no
/// RSA key exchange — but the list is spelled out so a future default cannot
/// widen it silently.)
pub fn provider() -> CryptoProvider {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites = vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    p
}

/// Reads a PEM chain and key into a key rustls can serve.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(cert, e))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no certificate in the file"));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e))?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| file_err(key, e))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| file_err(key, e))?;
    Ok(ck)
}

/// The certificate being served, swapped in place when its files change.
#[derive(Debug)]
pub struct CertStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: RwLock<(Option<SystemTime>, Option<SystemTime>)>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl CertStore {
    /// Loads the pair once (failing loudly if it is unusable).
    pub fn open(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let ck = load_certified_key(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.into(),
            key: key.into(),
            current: RwLock::new(Arc::new(ck)),
            stamp: RwLock::new((mtime(cert), mtime(key))),
        }))
    }

    /// Reloads when either file changed. A pair that does not load (e.g. the
    /// key written before the certificate) leaves the old one in service.
    /// Returns whether a new certificate is now served.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (mtime(&self.cert), mtime(&self.key));
        if *self.stamp.read().expect("not poisoned") == now {
            return Ok(false);
        }
        let ck = load_certified_key(&self.cert, &self.key)?;
        *self.current.write().expect("not poisoned") = Arc::new(ck);
        *self.stamp.write().expect("not poisoned") = now;
        Ok(true)
    }

    /// Checks the files every `every` for as long as the runtime lives.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
            loop {
                tick.tick().await;
                match me.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!(cert = %me.cert.display(), "TLS certificate reloaded")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate not reloaded; the previous one stays in service")
                    }
                }
            }
        });
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().expect("not poisoned")))
    }
}

/// The suites of [`provider`] a client can negotiate with a certificate of
/// this key kind (TLS 1.2 suites name the certificate's signature algorithm;
/// TLS 1.3 suites do not), by their IANA names.
pub fn suites_for(key: rustls::SignatureAlgorithm) -> Vec<String> {
    provider()
        .cipher_suites
        .iter()
        .filter(|s| match s {
            rustls::SupportedCipherSuite::Tls13(_) => true,
            rustls::SupportedCipherSuite::Tls12(t) => t.sign.iter().any(|sig| {
                matches!(
                    (key, sig),
                    (
                        rustls::SignatureAlgorithm::ECDSA | rustls::SignatureAlgorithm::ED25519,
                        rustls::SignatureScheme::ECDSA_NISTP256_SHA256
                    ) | (
                        rustls::SignatureAlgorithm::RSA,
                        rustls::SignatureScheme::RSA_PSS_SHA256
                            | rustls::SignatureScheme::RSA_PKCS1_SHA256
                    )
                )
            }),
        })
        .map(|s| format!("{:?}", s.suite()))
        .collect()
}

/// A server configuration: TLS 1.3 and 1.2 only, the suites of [`provider`],
/// ALPN for HTTP/2 and HTTP/1.1.
pub fn server_config(certs: Arc<CertStore>) -> Result<ServerConfig, TlsError> {
    let mut c = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(c)
}

/// The development CA and the certificate it issues, in one directory.
#[derive(Debug, Clone)]
pub struct DevCa {
    /// `ca.pem`: what clients trust (ten years; its key `ca-key.pem`, 0600,
    /// never leaves the data directory).
    pub ca: PathBuf,
    /// `cert.pem`: the served certificate (30 days, renewed while serving).
    pub cert: PathBuf,
    /// `key.pem`: its key (0600).
    pub key: PathBuf,
    /// A new CA replaced an earlier development certificate: clients that
    /// trusted the old one must trust `ca` instead.
    pub new: bool,
}

/// A leaf lives this long, and is renewed when this little is left.
const LEAF_DAYS: i64 = 30;
const RENEW_DAYS: i64 = 10;
const CA_DAYS: i64 = 3650;

/// The civil date of `secs` after the epoch.
fn ymd(secs: i64) -> (i32, u8, u8) {
    let (y, m, d, _) = bv_service::time::civil(secs.div_euclid(86_400));
    (y as i32, m as u8, d as u8)
}

/// Sets `p`'s validity to the days of `from` through `until` (seconds).
fn validity(p: &mut rcgen::CertificateParams, from: i64, until: i64) {
    let (y, m, d) = ymd(from);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(until);
    p.not_after = rcgen::date_time_ymd(y, m, d);
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The CA's name and powers, the same every time from its key (a renewal
/// signs with an issuer rebuilt from these, so the leaf's issuer name and
/// authority key identifier match the CA certificate clients hold).
fn ca_params(key: &rcgen::KeyPair) -> rcgen::CertificateParams {
    use rcgen::{BasicConstraints, DistinguishedName, DnType, IsCa, KeyUsagePurpose};
    let mut p = rcgen::CertificateParams::default();
    let id = &bv_crypto::secret::token_hash(key.public_key_pem().as_bytes())[..8];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "BetterVideo development");
    dn.push(
        DnType::CommonName,
        format!("BetterVideo development CA {id}"),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// Writes `bytes` to `path` through a temporary file and a rename (mode
/// 0600 when `private`), so a reader never sees half a file.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(|e| file_err(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| file_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
}

fn config_err(e: impl std::fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}

/// Issues a new served certificate from the CA (key first, then the
/// certificate: the reloader serves a pair only once both match).
fn issue_leaf(dir: &Path, ca_key: &rcgen::KeyPair, names: &[String]) -> Result<(), TlsError> {
    use rcgen::{DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
    let mut p = rcgen::CertificateParams::new(names.to_vec()).map_err(config_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost (BetterVideo development)");
    p.distinguished_name = dn;
    let now = now_secs();
    validity(&mut p, now - 86_400, now + LEAF_DAYS * 86_400);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let leaf_key = rcgen::KeyPair::generate().map_err(config_err)?;
    let issuer = rcgen::Issuer::new(ca_params(ca_key), ca_key);
    let leaf = p.signed_by(&leaf_key, &issuer).map_err(config_err)?;
    write_file(
        &dir.join("key.pem"),
        leaf_key.serialize_pem().as_bytes(),
        true,
    )?;
    write_file(&dir.join("cert.pem"), leaf.pem().as_bytes(), false)?;
    let until = serde_json::json!({ "not_after": now + LEAF_DAYS * 86_400 }).to_string();
    write_file(&dir.join("cert.json"), until.as_bytes(), false)
}

/// Whether the served certificate is missing or has [`RENEW_DAYS`] left.
fn leaf_due(dir: &Path) -> bool {
    let until = std::fs::read(dir.join("cert.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["not_after"].as_i64());
    !dir.join("cert.pem").exists()
        || !dir.join("key.pem").exists()
        || until.is_none_or(|t| t - now_secs() < RENEW_DAYS * 86_400)
}

/// The development CA in `dir`, made when missing (an older self-signed
/// development certificate is replaced), and a served certificate it issued
/// for `localhost`, `127.0.0.1`, `::1` and `extra_names`, issued again when
/// due. Like mkcert's or Caddy's local CA: clients trust `ca.pem` once; the
/// short-lived certificate under it carries key identifiers and the
/// serverAuth purpose, so strict validators accept it.
pub fn ensure_dev_ca(dir: &Path, extra_names: &[String]) -> Result<DevCa, TlsError> {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let new = !(ca.exists() && ca_key.exists());
    let had_leaf = dir.join("cert.pem").exists();
    let key = if new {
        let key = rcgen::KeyPair::generate().map_err(config_err)?;
        let mut p = ca_params(&key);
        let now = now_secs();
        validity(&mut p, now - 86_400, now + CA_DAYS * 86_400);
        let cert = p.self_signed(&key).map_err(config_err)?;
        write_file(&ca_key, key.serialize_pem().as_bytes(), true)?;
        write_file(&ca, cert.pem().as_bytes(), false)?;
        key
    } else {
        let pem = std::fs::read_to_string(&ca_key).map_err(|e| file_err(&ca_key, e))?;
        rcgen::KeyPair::from_pem(&pem).map_err(|e| file_err(&ca_key, e))?
    };
    if new || leaf_due(dir) {
        issue_leaf(dir, &key, &dev_names(extra_names))?;
    }
    Ok(DevCa {
        ca,
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        new: new && had_leaf,
    })
}

fn dev_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    names.extend(extra.iter().cloned());
    names
}

/// Renews the served development certificate when due, for as long as the
/// runtime lives (checked hourly; the [`CertStore`] watcher serves it).
pub fn renew_dev_cert(dir: PathBuf, extra_names: Vec<String>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if !leaf_due(&dir) {
                continue;
            }
            let (d, names) = (dir.clone(), extra_names.clone());
            let r = tokio::task::spawn_blocking(move || ensure_dev_ca(&d, &names)).await;
            match r {
                Ok(Ok(_)) => tracing::info!("development certificate renewed for 30 days"),
                Ok(Err(e)) => tracing::warn!(error = %e, "development certificate not renewed"),
                Err(e) => tracing::warn!(error = %e, "development certificate renewal panicked"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    /// What a strict client does with `ca.pem` as its only root: webpki's
    /// full path validation of the served certificate for each name.
    fn verify(dir: &Path) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(provider()),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_file(dir.join("cert.pem")).unwrap();
        for name in ["localhost", "127.0.0.1", "::1"] {
            let name = ServerName::try_from(name).unwrap();
            v.verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())?;
        }
        Ok(())
    }

    #[test]
    fn ymd_matches_known_dates() {
        assert_eq!(ymd(0), (1970, 1, 1));
        assert_eq!(ymd(951_782_400), (2000, 2, 29));
        assert_eq!(ymd(1_772_366_400), (2026, 3, 1));
    }

    #[test]
    fn the_development_ca_issues_a_short_lived_certificate_that_strict_clients_accept() {
        let d = tempfile::tempdir().unwrap();
        // An older data directory: a self-signed leaf and nothing else.
        let old = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(d.path().join("cert.pem"), old.cert.pem()).unwrap();
        std::fs::write(d.path().join("key.pem"), old.signing_key.serialize_pem()).unwrap();
        let made = ensure_dev_ca(d.path(), &[]).unwrap();
        assert!(made.new, "the old self-signed certificate was replaced");
        verify(d.path()).unwrap();
        // The CA key is private; the leaf lasts 30 days.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let until: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join("cert.json")).unwrap()).unwrap();
        let left = until["not_after"].as_i64().unwrap() - now_secs();
        assert!((29 * 86_400..=30 * 86_400).contains(&left), "{left}");
        // Not due: a second start changes nothing.
        let (ca, leaf) = (
            std::fs::read(d.path().join("ca.pem")).unwrap(),
            std::fs::read(d.path().join("cert.pem")).unwrap(),
        );
        assert!(!ensure_dev_ca(d.path(), &[]).unwrap().new);
        assert_eq!(std::fs::read(d.path().join("cert.pem")).unwrap(), leaf);
        // Due (a day left): renewed under the same CA, still accepted.
        let soon = serde_json::json!({ "not_after": now_secs() + 86_400 }).to_string();
        std::fs::write(d.path().join("cert.json"), soon).unwrap();
        ensure_dev_ca(d.path(), &[]).unwrap();
        assert_ne!(std::fs::read(d.path().join("cert.pem")).unwrap(), leaf);
        assert_eq!(std::fs::read(d.path().join("ca.pem")).unwrap(), ca);
        verify(d.path()).unwrap();
        // Another CA's certificate is refused: the check can fail.
        let other = tempfile::tempdir().unwrap();
        ensure_dev_ca(other.path(), &[]).unwrap();
        std::fs::copy(other.path().join("cert.pem"), d.path().join("cert.pem")).unwrap();
        assert!(verify(d.path()).is_err());
    }
}
