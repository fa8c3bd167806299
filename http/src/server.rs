//! The HTTP/1.1 server every tickcast process uses, in plain text or TLS. Unlike a generic
//! server, it hands upgraded connections over as the `TcpStream` they are (with their TLS
//! session), so the gateway's fan-out can write to player sockets directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::uri::Scheme;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::client_addr::TrustedProxies;

/// How long in-flight HTTP requests get to finish after shutdown.
const HTTP_GRACE: Duration = Duration::from_secs(5);

/// How the server treats the clients it cannot trust.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// How long a client has to send a request's headers, counted from the connection (or the
    /// end of the previous response, for a kept-alive connection): a half-sent request
    /// (slowloris) or an idle keep-alive connection is closed after it. `None`: no limit.
    pub header_read_timeout: Option<Duration>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// TLS for every connection (`https`, `wss`), or plain text.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// How long a TLS handshake may take when no header read timeout is set: a client that opens a
/// connection and never says hello must not hold it forever.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(10)),
            trusted_proxies: TrustedProxies::default(),
            tls: None,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets in-flight requests finish (bounded).
/// Upgraded (WebSocket) connections are not waited for here: their gateway closes them.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: HttpConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let tls = config.tls.clone().map(TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: not fatal. Back
                // off briefly so an exhausted process does not spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (app, config, shutdown, tls) = (app.clone(), config.clone(), shutdown.clone(), tls.clone());
        connections.spawn(async move {
            let Some(acceptor) = tls else {
                return serve_connection(tcp, peer, false, app, &config, shutdown).await;
            };
            // The handshake counts against the header read timeout: a silent client is closed.
            let deadline = config.header_read_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
            match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve_connection(stream, peer, true, app, &config, shutdown).await,
                Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(HTTP_GRACE, connections.wait()).await;
    Ok(())
}

/// Serves the requests of one connection (plain TCP or TLS over it) until it closes.
async fn serve_connection<S>(
    stream: S,
    peer: SocketAddr,
    tls: bool,
    app: Router,
    config: &HttpConfig,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Every request carries its client's address (`ConnectInfo<IpAddr>`), for the limits per
    // client address, and the scheme the client used (our TLS, or a trusted proxy's), for the
    // URLs handed back to it.
    let trusted = config.trusted_proxies.clone();
    let service = TowerToHyperService::new(app.map_request(move |mut request: Request<Incoming>| {
        let client = trusted.client(peer.ip(), request.headers());
        let https = tls || trusted.forwarded_https(peer.ip(), request.headers());
        request.extensions_mut().insert(ConnectInfo(client));
        request.extensions_mut().insert(if https { Scheme::HTTPS } else { Scheme::HTTP });
        request
    }));
    let mut connection = hyper::server::conn::http1::Builder::new()
        // hyper measures the header read timeout with this timer, from the accept and again
        // whenever a kept-alive connection waits for its next request.
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let result = tokio::select! {
        result = &mut connection => result,
        () = shutdown.cancelled() => {
            // Finish the request in flight, then close; idle keep-alive connections close now.
            std::pin::Pin::new(&mut connection).graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}
