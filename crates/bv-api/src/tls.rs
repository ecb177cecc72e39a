//! TLS: rustls with TLS 1.2 and 1.3 only and AEAD, forward-secret suites only;
//! certificates reloaded from disk when they change; a self-signed
//! development certificate generated on first start.

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

/// The development certificate pair in `dir` (`cert.pem`, `key.pem`),
/// generated (ECDSA P-256, self-signed) when missing. Returns the paths and
/// whether they were just made.
pub fn ensure_dev_cert(
    dir: &Path,
    extra_names: &[String],
) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key, false));
    }
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    names.extend(extra_names.iter().cloned());
    let made =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&key)
        .map_err(|e| file_err(&key, e))?;
    f.write_all(made.signing_key.serialize_pem().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| file_err(&key, e))?;
    std::fs::write(&cert, made.cert.pem()).map_err(|e| file_err(&cert, e))?;
    Ok((cert, key, true))
}
