//! The connection loop: accepts TCP connections, speaks TLS on them when configured,
//! and serves HTTP/1.1 with the router on each.
//!
//! Slow clients cannot hold connections: a client has `header_timeout` to complete
//! the TLS handshake and then each request's headers (an idle keep-alive connection is
//! closed after the same time); a request body has its own limit (see
//! [`super::browser`]). Each connection is a task of its own, so one slow client never
//! delays another. A plain HTTP request to the TLS port gets a plain 400 saying so,
//! rather than a TLS alert no HTTP client can show.
//!
//! Shutdown: the loop stops accepting, every connection finishes the request it is
//! serving and closes; after [`GRACE`] the rest are dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::Service;

/// How long open connections may take to finish at shutdown.
pub const GRACE: Duration = Duration::from_secs(10);

/// How connections are served.
#[derive(Clone)]
pub(super) struct Connections {
    pub(super) router: Router,
    pub(super) tls: Option<TlsAcceptor>,
    pub(super) header_timeout: Duration,
}

/// Accepts and serves connections until `stop` turns true, then waits (up to
/// [`GRACE`]) for open ones to finish.
pub(super) async fn serve(listener: TcpListener, connections: Connections, mut stop: watch::Receiver<bool>) {
    // Every connection task holds a receiver; all are gone once every connection closed.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|down| *down) => break,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Subscribers get small writes often: send them at once rather than batching them (Nagle).
        let _ = tcp.set_nodelay(true);
        let (connections, stop, open) = (connections.clone(), stop.clone(), open_rx.clone());
        tokio::spawn(async move {
            connection(tcp, remote, connections, stop).await;
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    if tokio::time::timeout(GRACE, open_tx.closed()).await.is_err() {
        tracing::warn!(open = open_tx.receiver_count(), "connections still open after the grace period; dropped");
    }
}

/// Serves one connection: the TLS handshake if any, then HTTP/1.1.
async fn connection(tcp: TcpStream, remote: SocketAddr, connections: Connections, stop: watch::Receiver<bool>) {
    let Connections { router, tls, header_timeout } = connections;
    let Some(tls) = tls else {
        return http(TokioIo::new(tcp), remote, router, header_timeout, stop).await;
    };
    let handshake = async {
        if !starts_with_tls(&tcp).await {
            refuse_plain_http(tcp).await;
            return None;
        }
        tls.accept(tcp).await.ok()
    };
    match tokio::time::timeout(header_timeout, handshake).await {
        Ok(Some(stream)) => http(TokioIo::new(stream), remote, router, header_timeout, stop).await,
        Ok(None) => tracing::debug!(%remote, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
    }
}

/// Whether the client's first byte opens a TLS handshake record (waits for it).
async fn starts_with_tls(tcp: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(tcp.peek(&mut first).await, Ok(1) if first[0] == 0x16)
}

/// Answers a plain HTTP request on the TLS port with a 400 that says so, and closes.
async fn refuse_plain_http(mut tcp: TcpStream) {
    let body = r#"{"error":{"code":"tls_required","message":"this port serves HTTPS; use an https:// URL"}}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(answer.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// Serves HTTP/1.1 (with upgrades, for WebSockets) on an established stream.
async fn http<I>(
    io: TokioIo<I>,
    remote: SocketAddr,
    router: Router,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        let mut router = router.clone();
        async move { Ok::<_, Infallible>(router.call(request.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let served = builder.serve_connection(io, service).with_upgrades();
    let mut served = std::pin::pin!(served);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%remote, %error, "connection ended");
                }
                return;
            }
            _ = stop.wait_for(|down| *down), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The TLS acceptor for `certificates`.
pub(super) fn acceptor(certificates: &Arc<super::tls::Certificates>) -> Result<TlsAcceptor, super::tls::TlsError> {
    Ok(TlsAcceptor::from(Arc::new(certificates.server_config()?)))
}
