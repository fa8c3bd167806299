//! The WebSocket upgrade: checks the handshake, takes the TCP socket back from the HTTP server,
//! hands its write half to a fan-out shard and serves its read half as a connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::fanout::Command;
use crate::ping::PingsInFlight;
use crate::socket_limits::SocketRefused;
use crate::stream::{PlayerStream, SocketWriter};
use crate::{Gateway, connection, json_error, metrics};

impl Gateway {
    /// Upgrades an HTTP request to a WebSocket connection served by this gateway.
    pub fn accept(self: &Arc<Self>, mut request: Request) -> Response {
        if self.shutdown.is_cancelled() {
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the gateway is shutting down; reconnect",
            );
        }
        let Some(key) = websocket_key(request.headers()) else {
            return json_error(
                StatusCode::UPGRADE_REQUIRED,
                "websocket_required",
                "this endpoint speaks WebSocket (version 13): send GET with Connection: Upgrade and Upgrade: websocket",
            );
        };
        // Browsers say which page opened the socket; other clients send no Origin at all.
        if let Some(origin) = request.headers().get(header::ORIGIN)
            && !self.config.allowed_origins.is_empty()
            && !origin
                .to_str()
                .is_ok_and(|o| self.config.allowed_origins.iter().any(|a| a.eq_ignore_ascii_case(o)))
        {
            return json_error(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "pages from this origin may not open game sockets here (TICKCAST_ALLOWED_ORIGINS)",
            );
        }
        // The HTTP server puts the client's address on every request; a request that did not
        // come through it (a test calling the router) counts as one address.
        let address = request
            .extensions()
            .get::<ConnectInfo<IpAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(ip)| *ip);
        let permit = match self.config.socket_limits.acquire(address) {
            Ok(permit) => permit,
            Err(SocketRefused::AddressFull(max)) => {
                metrics::socket_refused("address_full");
                return json_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_connections",
                    &format!(
                        "this address already holds {max} game sockets here (TICKCAST_MAX_CONNECTIONS_PER_IP)"
                    ),
                );
            }
            Err(SocketRefused::ProcessFull(max)) => {
                metrics::socket_refused("process_full");
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too_many_connections",
                    &format!(
                        "this server holds its {max} game sockets (TICKCAST_MAX_CONNECTIONS); try another or later"
                    ),
                );
            }
        };
        let Some(on_upgrade) = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_upgrade",
                "this server cannot upgrade connections",
            );
        };
        let gateway = Arc::clone(self);
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        // A frame or message above max_frame_bytes is refused by the parser as soon as its
        // header says so (an error frame and close 1009): never buffered whole.
        // Client messages are small (a join with its token, pongs): a 512-byte read buffer,
        // grown only for a larger message, costs each socket 1.5 KiB less than 2 KiB.
        let config = WebSocketConfig::default()
            .read_buffer_size(512)
            .max_message_size(Some(self.config.max_frame_bytes))
            .max_frame_size(Some(self.config.max_frame_bytes));
        self.connections.spawn(async move {
            // Held for as long as the connection lives.
            let _permit = permit;
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => return tracing::debug!(%error, "upgrade failed"),
            };
            // Served by our own TCP listener: take the socket (and its TLS session) back from
            // the HTTP server, so the fan-out can write to it directly.
            let (tcp, tls, read_buf) = match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => (parts.io.into_inner(), None, parts.read_buf),
                Err(upgraded) => match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
                    Ok(parts) => {
                        let (tcp, session) = parts.io.into_inner().into_inner();
                        (tcp, Some(Arc::new(Mutex::new(session))), parts.read_buf)
                    }
                    Err(_) => return tracing::error!("upgraded connection is not a TCP stream; closing it"),
                },
            };
            let _ = tcp.set_nodelay(true);
            let (read, write) = tcp.into_split();
            let (signals, signals_rx) = mpsc::unbounded_channel();
            let own_signals = signals.clone();
            let write = SocketWriter::new(write, tls.clone());
            let pings = Arc::new(PingsInFlight::default());
            let attach = Command::Attach { connection: id, write, signals, pings: Arc::clone(&pings) };
            if gateway.shard(id).send(attach).is_err() {
                return;
            }
            let stream = PlayerStream::new(read_buf, read, id, gateway.shard(id).clone(), tls);
            let socket = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
            connection::serve(gateway, socket, id, pings, own_signals, signals_rx).await;
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()))
            .body(Body::empty())
            .expect("static response parts are valid")
    }
}

fn websocket_key(headers: &HeaderMap) -> Option<String> {
    let has_token = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    let version_13 = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    if !(has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket") && version_13) {
        return None;
    }
    headers.get(header::SEC_WEBSOCKET_KEY).and_then(|k| k.to_str().ok()).map(str::to_owned)
}

/// Routes `/ws/{region}` to the gateway of that region.
pub fn routes(gateways: &[Arc<Gateway>]) -> Router {
    let by_region: Arc<HashMap<String, Arc<Gateway>>> =
        Arc::new(gateways.iter().map(|g| (g.config.region.clone(), Arc::clone(g))).collect());
    Router::new()
        .route("/ws/{region}", get(upgrade))
        .route("/ws/{region}/ping", get(ping))
        .with_state(by_region)
}

/// `GET /ws/{region}/ping`: 204 from a region's gateway, at once — what a client times to
/// measure its round trip to the region before asking for a match (`POST /edge/match`).
async fn ping(
    State(gateways): State<Arc<HashMap<String, Arc<Gateway>>>>,
    Path(region): Path<String>,
) -> Response {
    if gateways.contains_key(&region) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        json_error(StatusCode::NOT_FOUND, "unknown_region", &format!("no gateway for region {region:?} here"))
    }
}

async fn upgrade(
    State(gateways): State<Arc<HashMap<String, Arc<Gateway>>>>,
    Path(region): Path<String>,
    request: Request,
) -> Response {
    match gateways.get(&region) {
        Some(gateway) => gateway.accept(request),
        None => json_error(
            StatusCode::NOT_FOUND,
            "unknown_region",
            &format!("no gateway for region {region:?} here"),
        ),
    }
}
