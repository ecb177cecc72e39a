//! The accept loops: TLS with HTTP/1.1 and HTTP/2 (ALPN), and the plain-HTTP
//! port that only redirects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A client gets this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers) accepted; a larger one
/// gets 431 from HTTP/1 and a refused stream from HTTP/2.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;

/// How connections are bounded (`[serve]`).
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// To send a request's head, and the first byte after the handshake.
    pub header_timeout: Duration,
    /// With no request in progress, before a connection is closed.
    pub idle_timeout: Duration,
    /// Open at once, in all.
    pub max: usize,
    /// Open at once from one address (IPv6: one /64).
    pub per_address: usize,
}

/// The key a client address is counted under: IPv4 as it is, IPv6 by its
/// /64 (one host gets a whole /64 and can use any address in it).
fn address_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.into(),
            None => {
                let s = v6.segments();
                std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0).into()
            }
        },
        v4 => v4,
    }
}

/// Open connections per address key.
type PerAddress = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One connection's place in the per-address count, given back on drop.
struct Counted(PerAddress, std::net::IpAddr);

impl Drop for Counted {
    fn drop(&mut self) {
        let mut m = self.0.lock().expect("not poisoned");
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// What a connection is doing: requests in progress and when the last one
/// ended, for the idle timeout.
#[derive(Default)]
struct Activity {
    active: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// One request in progress; its end is the connection's latest activity.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(a: &Arc<Activity>) -> Self {
        a.active.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(Arc::clone(a))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last.lock().expect("not poisoned") = Some(tokio::time::Instant::now());
        self.0
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Serves `app` over TLS on `listener` until the process ends, within
/// `limits`: a client gets `header_timeout` to finish its handshake's first
/// byte and each request's head (slow-header attacks), a connection with
/// nothing in progress is closed after `idle_timeout`, and connections are
/// capped in all and per address (at accept, before any TLS work).
pub async fn serve_tls(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    app: Router,
    limits: Connections,
    proxies: Arc<crate::proxy::TrustedProxies>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max));
    let per_address: PerAddress = Arc::default();
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        // A trusted proxy carries many clients' connections: only the
        // overall cap applies to it.
        let counted = if proxies.trusts(peer.ip()) {
            None
        } else {
            let key = address_key(peer.ip());
            let mut m = per_address.lock().expect("not poisoned");
            let n = m.entry(key).or_insert(0);
            if *n >= limits.per_address {
                continue;
            }
            *n += 1;
            Some(Counted(Arc::clone(&per_address), key))
        };
        let proxies = Arc::clone(&proxies);
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let _held = (permit, counted);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                // Failed handshakes (scanners, old protocol versions) are routine: no log line.
                _ => return,
            };
            let activity = Arc::new(Activity::default());
            let seen = Arc::clone(&activity);
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    let client = proxies.client(peer, req.headers());
                    req.extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(client));
                    let busy = InFlight::new(&seen);
                    let call = app.clone().oneshot(req.map(axum::body::Body::new));
                    async move {
                        let r = call.await;
                        drop(busy);
                        r
                    }
                },
            );
            let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEAD_BYTES);
            // HTTP/2's default 64 KiB windows cap one stream near 100 MiB/s on
            // loopback; large uploads want bigger ones.
            b.http2()
                .initial_stream_window_size(4 << 20)
                .initial_connection_window_size(8 << 20)
                .max_frame_size(1 << 20)
                .max_header_list_size(MAX_HEAD_BYTES as u32)
                .timer(TokioTimer::new())
                .keep_alive_interval(limits.header_timeout)
                .keep_alive_timeout(limits.header_timeout);
            let io = FirstByte::new(tls, limits.header_timeout);
            let conn = b.serve_connection(TokioIo::new(io), svc);
            tokio::pin!(conn);
            // Closes a connection with nothing in progress for the idle
            // timeout (gracefully: what is in flight, a download's body
            // included, still finishes).
            let opened = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(
                (limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1)),
            );
            let mut closing = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = tick.tick(), if !closing => {
                        let idle = activity.active.load(std::sync::atomic::Ordering::SeqCst) == 0;
                        let since = activity.last.lock().expect("not poisoned").unwrap_or(opened);
                        if idle && since.elapsed() >= limits.idle_timeout {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                }
            }
        });
    }
}

/// A TLS stream that fails its reads when the client has sent nothing
/// within `deadline` of the handshake: HTTP's own timers start only once a
/// request begins (after the version sniff), so a connection that never
/// speaks would otherwise be held forever.
struct FirstByte<T> {
    inner: T,
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<T> FirstByte<T> {
    fn new(inner: T, within: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(within))),
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for FirstByte<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future as _;
        use std::task::Poll;
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.deadline = None;
            return r;
        }
        if r.is_pending()
            && let Some(d) = self.deadline.as_mut()
            && d.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no request within the header timeout",
            )));
        }
        r
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FirstByte<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Answers every plain-HTTP request with a permanent redirect to HTTPS.
pub async fn redirect(listener: TcpListener, https_port: u16) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                move |req: hyper::Request<hyper::body::Incoming>| async move {
                    let host = req
                        .headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .and_then(|h| h.rsplit_once(':').map_or(Some(h), |(n, _)| Some(n)))
                        .filter(|h| {
                            !h.is_empty()
                                && h.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b))
                        })
                        .unwrap_or("localhost")
                        .to_string();
                    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                    let loc = format!("https://{host}:{https_port}{path}");
                    let resp = hyper::Response::builder()
                        .status(http::StatusCode::PERMANENT_REDIRECT)
                        .header(http::header::LOCATION, loc)
                        .header(
                            "strict-transport-security",
                            "max-age=63072000; includeSubDomains",
                        )
                        .body(axum::body::Body::empty())
                        .expect("valid response");
                    Ok::<_, std::convert::Infallible>(resp)
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::address_key;

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            address_key(mapped),
            "192.0.2.7".parse::<std::net::IpAddr>().unwrap()
        );
    }
}
