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

/// Serves `app` over TLS on `listener` until the process ends; a client gets
/// `header_timeout` to send a request's head (slow-header attacks).
pub async fn serve_tls(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    app: Router,
    header_timeout: Duration,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
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
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                // Failed handshakes (scanners, old protocol versions) are routine: no log line.
                _ => return,
            };
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            b.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_HEAD_BYTES);
            // HTTP/2's default 64 KiB windows cap one stream near 100 MiB/s on
            // loopback; large uploads want bigger ones.
            b.http2()
                .initial_stream_window_size(4 << 20)
                .initial_connection_window_size(8 << 20)
                .max_frame_size(1 << 20)
                .max_header_list_size(MAX_HEAD_BYTES as u32)
                .timer(TokioTimer::new())
                .keep_alive_interval(header_timeout)
                .keep_alive_timeout(header_timeout);
            let _ = b.serve_connection(TokioIo::new(tls), svc).await;
        });
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
