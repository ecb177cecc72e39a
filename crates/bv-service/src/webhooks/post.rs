//! One HTTP/1.1 POST, and nothing more: the webhook client.
//!
//! Why our own and not a general HTTP client: a webhook URL is chosen by a
//! tenant, so the client must connect to exactly the address it checked
//! (resolve once, connect to that address), never follow a redirect, send
//! no cookies or credentials, and read no more than a status line. Each of
//! those is one line here; a general client needs each switched off. The
//! request is written by hand (a fixed set of headers we make ourselves);
//! the response head is parsed by `httparse`; TLS is rustls with the
//! system's trust store.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most response head read (status line and headers).
const MAX_HEAD: usize = 16 * 1024;

/// Why a POST did not get a status.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The URL is not an `http(s)://host[:port]/path` URL.
    #[error("not a usable URL: {0}")]
    Url(String),
    /// The host name did not resolve.
    #[error("the host name did not resolve: {0}")]
    Resolve(String),
    /// No connection (refused, unreachable).
    #[error("could not connect: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake failed (an untrusted certificate, say). The detail
    /// (which can name the host) is logged, not shown: the error text is
    /// stored beside a sealed URL.
    #[error(
        "the TLS handshake failed (certificate not trusted, expired or not for this host, or no protocol in common)"
    )]
    Tls(std::io::Error),
    /// The connection broke.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// What came back is not an HTTP response.
    #[error("the answer is not an HTTP response")]
    BadResponse,
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// TLS could not be set up on this host.
    #[error("TLS setup: {0}")]
    Setup(String),
    /// The URL names, or its host resolves to, a place webhooks may not
    /// reach (`super::guard`).
    #[error("{0}")]
    Refused(String),
}

/// Sends webhook POSTs.
#[derive(Clone)]
pub struct Poster {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
    allow_private: bool,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where a URL says to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https` (else plain `http`).
    pub tls: bool,
    /// The host as written (a name or an address).
    pub host: url::Host<String>,
    /// The port.
    pub port: u16,
    /// The `Host` header's value.
    pub authority: String,
    /// Path and query.
    pub path: String,
}

impl Target {
    /// Reads an `http(s)://` URL; userinfo and fragments are refused.
    pub fn parse(raw: &str) -> Result<Self, PostError> {
        let u = url::Url::parse(raw).map_err(|e| PostError::Url(e.to_string()))?;
        let tls = match u.scheme() {
            "https" => true,
            "http" => false,
            s => return Err(PostError::Url(format!("scheme {s} is not http(s)"))),
        };
        if !u.username().is_empty() || u.password().is_some() {
            return Err(PostError::Url("credentials in a URL are not sent".into()));
        }
        let host = u
            .host()
            .ok_or_else(|| PostError::Url("no host".into()))?
            .to_owned();
        let port = u
            .port_or_known_default()
            .ok_or_else(|| PostError::Url("no port".into()))?;
        let name = u.host_str().unwrap_or_default();
        let authority = match u.port() {
            Some(p) => format!("{name}:{p}"),
            None => name.to_string(),
        };
        let mut path = u.path().to_string();
        if let Some(q) = u.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Self {
            tls,
            host,
            port,
            authority,
            path,
        })
    }

    /// The addresses the host stands for (resolved now, once).
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, PostError> {
        Ok(match &self.host {
            url::Host::Ipv4(a) => vec![SocketAddr::new(IpAddr::V4(*a), self.port)],
            url::Host::Ipv6(a) => vec![SocketAddr::new(IpAddr::V6(*a), self.port)],
            url::Host::Domain(d) => tokio::net::lookup_host((d.as_str(), self.port))
                .await
                .map_err(|e| PostError::Resolve(e.to_string()))?
                .collect(),
        })
    }

    /// Refuses a host that names, or resolved to, a place webhooks may not
    /// reach: its name, and every one of `addrs`.
    pub fn check_public(&self, addrs: &[SocketAddr]) -> Result<(), PostError> {
        if let url::Host::Domain(d) = &self.host
            && let Some(why) = super::guard::forbidden_name(d)
        {
            return Err(PostError::Refused(format!(
                "the webhook's host is {why}; webhooks go to public addresses only"
            )));
        }
        for a in addrs {
            if let Some(why) = super::guard::forbidden(a.ip()) {
                return Err(PostError::Refused(format!(
                    "the webhook's host resolves to {why}; webhooks go to public addresses only"
                )));
            }
        }
        Ok(())
    }

    fn server_name(&self) -> Result<ServerName<'static>, PostError> {
        match &self.host {
            url::Host::Ipv4(a) => Ok(ServerName::IpAddress(IpAddr::V4(*a).into())),
            url::Host::Ipv6(a) => Ok(ServerName::IpAddress(IpAddr::V6(*a).into())),
            url::Host::Domain(d) => {
                ServerName::try_from(d.clone()).map_err(|e| PostError::Url(e.to_string()))
            }
        }
    }
}

impl Poster {
    /// A client whose every POST ends within `timeout`, trusting the system's
    /// CAs, that reaches only public addresses unless `allow_private`
    /// (development: `serve.webhook_allow_private`).
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, PostError> {
        use rustls_platform_verifier::BuilderVerifierExt;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PostError::Setup(e.to_string()))?
            .with_platform_verifier()
            .map_err(|e| PostError::Setup(e.to_string()))?
            .with_no_client_auth();
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            timeout,
            allow_private,
        })
    }

    /// POSTs `body` (JSON) with `headers` to `url`; the answer's status.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<u16, PostError> {
        let target = Target::parse(url)?;
        tokio::time::timeout(self.timeout, self.send(&target, headers, body))
            .await
            .map_err(|_| PostError::Timeout(self.timeout))?
    }

    async fn send(
        &self,
        t: &Target,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<u16, PostError> {
        let addrs = t.resolve().await?;
        if addrs.is_empty() {
            return Err(PostError::Resolve("no address".into()));
        }
        if !self.allow_private {
            t.check_public(&addrs)?;
        }
        // The addresses checked are the addresses connected to (no second
        // lookup), each in turn until one answers, as browsers do.
        let mut last = None;
        let mut tcp = None;
        for a in &addrs {
            match TcpStream::connect(a).await {
                Ok(c) => {
                    tcp = Some(c);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = match tcp {
            Some(c) => c,
            None => return Err(PostError::Connect(last.expect("one address was tried"))),
        };
        let _ = tcp.set_nodelay(true);
        if t.tls {
            let tls = self.tls.connect(t.server_name()?, tcp).await.map_err(|e| {
                tracing::debug!(error = %e, "webhook TLS handshake failed");
                PostError::Tls(e)
            })?;
            exchange(tls, t, headers, body).await
        } else {
            exchange(tcp, t, headers, body).await
        }
    }
}

/// Writes the request and reads the status of the answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    t: &Target,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<u16, PostError> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: BetterVideo-Webhooks/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        t.path,
        t.authority,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (k, v) in headers {
        // Ours, never a client's; checked anyway so nothing can split the head.
        if [k, v]
            .iter()
            .any(|s| s.bytes().any(|b| b == b'\r' || b == b'\n'))
        {
            return Err(PostError::Url("a header holds a line break".into()));
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    s.flush().await?;
    read_status(&mut s).await
}

/// Reads response heads until a final one (1xx heads are interim) and
/// returns its status; the body is never read.
async fn read_status<S: AsyncRead + Unpin>(s: &mut S) -> Result<u16, PostError> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        // Every complete head in the buffer: skip interim ones.
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let code = status_of(&buf[..end + 4])?;
            if !(100..200).contains(&code) {
                return Ok(code);
            }
            buf.drain(..end + 4);
        }
        if buf.len() >= MAX_HEAD {
            // A head too long to finish: its status line is all we need.
            let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
            return status_of(line).or(Err(PostError::BadResponse));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(PostError::BadResponse);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The status code of a response head (or of its status line alone).
fn status_of(head: &[u8]) -> Result<u16, PostError> {
    let mut hs = [httparse::EMPTY_HEADER; 128];
    let mut r = httparse::Response::new(&mut hs);
    match r.parse(head) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => r.code.ok_or(PostError::BadResponse),
        Err(_) => {
            // Just a status line (no header terminator): parse it alone.
            let mut line = head.to_vec();
            while line.last().is_some_and(|b| *b == b'\r' || *b == b'\n') {
                line.pop();
            }
            line.extend_from_slice(b"\r\n\r\n");
            let mut hs = [httparse::EMPTY_HEADER; 1];
            let mut r = httparse::Response::new(&mut hs);
            match r.parse(&line) {
                Ok(_) => r.code.ok_or(PostError::BadResponse),
                Err(_) => Err(PostError::BadResponse),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_a_browser_would() {
        let t = Target::parse("https://hooks.example.com/a/b?x=1#frag").unwrap();
        assert!(t.tls);
        assert_eq!(
            (t.port, t.authority.as_str(), t.path.as_str()),
            (443, "hooks.example.com", "/a/b?x=1")
        );
        let t = Target::parse("http://0x7f000001:8080/h").unwrap();
        assert_eq!(
            t.host,
            url::Host::<String>::Ipv4([127, 0, 0, 1].into()),
            "hex forms are addresses"
        );
        assert_eq!(t.authority, "127.0.0.1:8080");
        let t = Target::parse("https://[::1]/").unwrap();
        assert_eq!(
            t.host,
            url::Host::<String>::Ipv6(std::net::Ipv6Addr::LOCALHOST)
        );
        for bad in [
            "ftp://x/",
            "https://user:pw@example.com/",
            "not a url",
            "https://",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_post_reads_the_status_and_sends_the_headers() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut b = [0u8; 4096];
            while !got.ends_with(b"{\"a\":1}") {
                let n = s.read(&mut b).await.unwrap();
                got.extend_from_slice(&b[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let p = Poster::new(Duration::from_secs(5), true).unwrap();
        let url = format!("http://127.0.0.1:{port}/hook?q=1");
        let status = p
            .post(&url, &[("bv-event", "job.succeeded")], b"{\"a\":1}")
            .await
            .unwrap();
        assert_eq!(status, 204);
        let req = server.await.unwrap();
        assert!(req.starts_with("POST /hook?q=1 HTTP/1.1\r\n"), "{req}");
        assert!(req.contains(&format!("Host: 127.0.0.1:{port}\r\n")));
        assert!(
            req.contains("bv-event: job.succeeded\r\n") && req.contains("Content-Length: 7\r\n")
        );
    }

    #[tokio::test]
    async fn interim_and_overlong_heads_still_give_the_final_status() {
        let mut two =
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nA: b\r\n\r\nbody"[..];
        assert_eq!(read_status(&mut two).await.unwrap(), 202);
        let mut many = b"HTTP/1.1 204 No Content\r\n".to_vec();
        for i in 0..200 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(read_status(&mut &many[..]).await.unwrap(), 204);
        let mut huge = b"HTTP/1.1 500 Oops\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 40_000));
        assert_eq!(read_status(&mut &huge[..]).await.unwrap(), 500);
        assert!(
            read_status(&mut &b"SSH-2.0-OpenSSH\r\n\r\n"[..])
                .await
                .is_err()
        );
        assert!(read_status(&mut &b"HTTP/1.1 2"[..]).await.is_err());
    }

    #[tokio::test]
    async fn inside_addresses_are_never_connected_to() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let p = Poster::new(Duration::from_secs(2), false).unwrap();
        for url in [
            format!("http://127.0.0.1:{port}/hook"),
            format!("http://0x7f000001:{port}/hook"),
            format!("http://localhost:{port}/hook"),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        ] {
            let e = p.post(&url, &[], b"{}").await.unwrap_err();
            assert!(matches!(e, PostError::Refused(_)), "{url}: {e}");
        }
        // Nothing reached the listener.
        let accepted = tokio::time::timeout(Duration::from_millis(200), l.accept()).await;
        assert!(accepted.is_err(), "a refused webhook connected anyway");
    }

    #[tokio::test]
    async fn silence_times_out_and_garbage_is_refused() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (silent, _) = l.accept().await.unwrap();
            let (mut rude, _) = l.accept().await.unwrap();
            let _ = rude.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop((silent, rude));
        });
        let p = Poster::new(Duration::from_millis(300), true).unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        assert!(matches!(
            p.post(&url, &[], b"{}").await,
            Err(PostError::Timeout(_))
        ));
        assert!(matches!(
            p.post(&url, &[], b"{}").await,
            Err(PostError::BadResponse)
        ));
    }
}
