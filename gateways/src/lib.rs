//! The regional WebSocket gateway: where players connect, join a session with an edge token,
//! and receive its countdowns, ticks and end.
//!
//! This crate owns the client protocol's server side (DESIGN §5): token checks, the per-session
//! fan-out (each frame encoded once, its bytes shared by every socket), `resume` from recent
//! frames held in memory, RTT measured with WebSocket pings and the latency policy. It writes
//! player_joined / latency_* / player_kicked / player_left to `game-events`.
//!
//! It keeps no durable state: what it holds (hubs, recent frames, the session directory) is
//! rebuilt from the log when it starts. It must not compute ticks (tick generators do).
//!
//! # Layout
//! - [`latency`]: the latency policy (sans I/O).
//! - `fanout`: the dispatcher and the shard tasks that own the sockets' write halves and the hubs.
//! - [`http`]: the HTTP server whose upgraded sockets the gateway takes over.
//! - `hub`: per-session members and recent frames.
//! - `stream`: the byte stream under a player's WebSocket.
//! - `connection`: one player's socket.
//! - `metrics`: metric names.
//! - [`Gateway`]: the role — tails, event writer, WebSocket upgrade; [`routes`] mounts gateways.

mod connection;
mod fanout;
pub mod http;
mod hub;
pub mod latency;
mod metrics;
mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use tickcast_eventlog::{Durability, EventLog, NewRecord, StartFrom};
use tickcast_schemas::event::{Event, EventBody};
use tickcast_schemas::sessions::{SessionDirectory, SessionInfo};
use tickcast_schemas::token::TokenSigner;
use tickcast_schemas::topics::{self, GAME_EVENTS};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fanout::{Command, Fanout, FanoutConfig, JoinRefused, Outgoing, dispatch};
use crate::latency::LatencyPolicy;
use crate::stream::PlayerStream;
use tickcast_schemas::protocol::ServerMessage;

/// How long the event writer gathers player events before appending them.
const EVENT_LINGER: Duration = Duration::from_millis(20);

/// How a gateway runs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The region served; its tick topic is `ticks.<region>`.
    pub region: String,
    /// `gateway@<instance>` is the `source` of its events and its `gatewayId`.
    pub instance: String,
    pub latency: LatencyPolicy,
    /// How often each player is pinged (an RTT sample each time).
    pub ping_interval: Duration,
    /// Ticks kept per session for `resume`.
    pub resume_ticks: usize,
    /// How long a join waits for a just-created session to reach this gateway.
    pub join_wait: Duration,
    /// Largest client message accepted; larger ones get an error frame and a close (1009).
    pub max_frame_bytes: usize,
    /// Bytes queued for a player's socket before it is disconnected as too slow.
    pub max_pending_bytes: usize,
    /// How far back the gateway reads its tick topic and game-events when it starts.
    pub history: Duration,
}

impl GatewayConfig {
    #[must_use]
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            instance: "0".into(),
            latency: LatencyPolicy::default(),
            ping_interval: Duration::from_secs(1),
            resume_ticks: 300,
            join_wait: Duration::from_secs(3),
            max_frame_bytes: 64 * 1024,
            max_pending_bytes: 256 * 1024,
            history: Duration::from_secs(6 * 3600),
        }
    }
}

/// Errors of the gateway role.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] tickcast_eventlog::Error),
}

/// One region's gateway.
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    gateway_id: String,
    source: String,
    log: Arc<dyn EventLog>,
    signer: TokenSigner,
    /// Requests to the fan-out task, which owns every socket's write half and the hubs.
    /// Requests to the fan-out shards; connection `c` belongs to shard `c % shards.len()`.
    shards: Vec<mpsc::UnboundedSender<Command>>,
    shards_rx: Mutex<Vec<mpsc::UnboundedReceiver<Command>>>,
    /// This region's sessions, from game-events.
    directory: Mutex<SessionDirectory>,
    /// Bumped when the directory changes, so joins waiting for a new session wake up.
    directory_version: watch::Sender<u64>,
    /// Events from connections to the event writer, which batches them into the log.
    events: mpsc::Sender<Event>,
    events_rx: Mutex<Option<mpsc::Receiver<Event>>>,
    /// Connection tasks, waited for on shutdown so their player_left events are written.
    connections: TaskTracker,
    next_connection: AtomicU64,
    /// Origin of ping payloads (monotonic).
    epoch: Instant,
    /// Cancelled when the process shuts down.
    shutdown: CancellationToken,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": code, "message": message }))).into_response()
}

impl Gateway {
    #[must_use]
    pub fn new(
        log: Arc<dyn EventLog>,
        signer: TokenSigner,
        config: GatewayConfig,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let (events, events_rx) = mpsc::channel(64 * 1024);
        // One shard per core, so the socket writes of a large gateway use them all.
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let (shards, shards_rx): (Vec<_>, Vec<_>) = (0..cores).map(|_| mpsc::unbounded_channel()).unzip();
        let gateway_id = format!("{}/{}", config.region, config.instance);
        Arc::new(Self {
            source: format!("gateway@{gateway_id}"),
            gateway_id,
            config,
            log,
            signer,
            shards,
            shards_rx: Mutex::new(shards_rx),
            directory: Mutex::new(SessionDirectory::default()),
            directory_version: watch::channel(0).0,
            events,
            events_rx: Mutex::new(Some(events_rx)),
            connections: TaskTracker::new(),
            next_connection: AtomicU64::new(0),
            epoch: Instant::now(),
            shutdown,
        })
    }

    #[must_use]
    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// Runs the gateway's fan-out, session follower and event writer until shutdown; returns
    /// once every connection has closed and its events are in the log.
    pub async fn run(self: Arc<Self>) -> Result<(), Error> {
        let events_rx = self.events_rx.lock().unwrap().take().expect("Gateway::run is called once");
        let shards_rx = std::mem::take(&mut *self.shards_rx.lock().unwrap());
        assert!(!shards_rx.is_empty(), "Gateway::run is called once");
        let history_start = now_ms() - self.config.history.as_millis() as i64;
        let ticks =
            self.log.tail(&topics::ticks(&self.config.region), StartFrom::Timestamp(history_start)).await?;
        let mut game_events = self.log.tail(GAME_EVENTS, StartFrom::Timestamp(history_start)).await?;
        let writer = tokio::spawn(Arc::clone(&self).write_events(events_rx));
        let fanout_config = FanoutConfig {
            region: self.config.region.clone(),
            resume_ticks: self.config.resume_ticks,
            max_pending_bytes: self.config.max_pending_bytes,
            keep_ended: self.config.history.min(Duration::from_secs(300)),
        };
        // Stopped only after the connections have closed, so their last frames are written.
        let fanout_stop = CancellationToken::new();
        let mut shard_tasks = tokio::task::JoinSet::new();
        for (shard, rx) in self.shards.iter().zip(shards_rx) {
            shard_tasks.spawn(Fanout::new(fanout_config.clone(), shard.clone()).run(rx, fanout_stop.clone()));
        }
        let mut fanout = tokio::spawn(dispatch(ticks, self.shards.clone(), fanout_stop.clone()));
        let result = loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break Ok(()),
                records = game_events.next_batch() => match records {
                    Ok(records) => self.follow_sessions(&records),
                    Err(e) => break Err(e),
                },
                finished = &mut fanout => break match finished {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(tickcast_eventlog::Error::Closed),
                },
            }
        };
        if result.is_err() {
            // A gateway that cannot read its log cannot serve anyone: stop the process's roles
            // rather than leave players connected to a silent session.
            self.shutdown.cancel();
        }
        self.connections.close();
        self.connections.wait().await;
        fanout_stop.cancel();
        let _ = fanout.await;
        shard_tasks.join_all().await;
        let _ = writer.await;
        Ok(result?)
    }

    fn follow_sessions(&self, records: &[tickcast_eventlog::Record]) {
        let mut directory = self.directory.lock().unwrap();
        let mut changed_players = Vec::new();
        for record in records {
            if !matches!(
                Event::peek_type(&record.payload),
                Some("session_created" | "session_ended" | "player_joined" | "player_left") | None
            ) {
                continue;
            }
            match Event::from_bytes(&record.payload) {
                Ok(event) => {
                    if matches!(&event.body, EventBody::SessionCreated(c) if c.region != self.config.region) {
                        continue;
                    }
                    if directory.apply(&event) {
                        changed_players.push(event.session_id);
                    }
                }
                Err(error) => {
                    tracing::warn!(offset = record.offset, %error, "skipping undecodable game event")
                }
            }
        }
        // Tell each changed session's players who is in it now (whichever gateway they use).
        changed_players.sort();
        changed_players.dedup();
        let notices: Vec<Outgoing> = changed_players
            .into_iter()
            .filter_map(|session_id| {
                let players = directory.get(&session_id)?.players();
                let frame = fanout::text_frame(ServerMessage::Players { players }.to_json());
                Some(Outgoing::Broadcast { session_id, frame })
            })
            .collect();
        drop(directory);
        self.directory_version.send_modify(|v| *v += 1);
        if !notices.is_empty() {
            let notices = Arc::new(notices);
            for shard in &self.shards {
                let _ = shard.send(Command::Forward(Arc::clone(&notices)));
            }
        }
    }

    /// Joins a connection to a session through the fan-out.
    async fn join(
        &self,
        connection: u64,
        session: SessionInfo,
        user_id: String,
        resume_after: Option<i64>,
    ) -> Result<(), JoinRefused> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Join { connection, session, user_id, resume_after, reply };
        if self.shard(connection).send(command).is_err() {
            return Err(JoinRefused::Ended);
        }
        answer.await.unwrap_or(Err(JoinRefused::Ended))
    }

    fn detach(&self, connection: u64) {
        let _ = self.shard(connection).send(Command::Detach { connection });
    }

    fn shard(&self, connection: u64) -> &mpsc::UnboundedSender<Command> {
        &self.shards[(connection % self.shards.len() as u64) as usize]
    }

    /// The session, waiting up to `join_wait` for it to arrive from game-events.
    async fn wait_for_session(&self, session_id: &str) -> Option<SessionInfo> {
        let mut version = self.directory_version.subscribe();
        let deadline = tokio::time::Instant::now() + self.config.join_wait;
        loop {
            if let Some(info) = self.directory.lock().unwrap().get(session_id) {
                return Some(info.clone());
            }
            match tokio::time::timeout_at(deadline, version.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }

    /// Queues an event for the log. Never blocks a connection on a write.
    fn record(&self, session_id: &str, body: EventBody) {
        let event = Event::new(session_id, now_ms(), self.source.clone(), body);
        if let Err(error) = self.events.try_send(event) {
            // The writer is 64k events behind: the log is down or far too slow.
            tracing::error!(%error, "gateway event queue is full; event not logged");
            metrics::event_dropped();
        }
    }

    /// Appends queued events in batches until shutdown, then drains what is left.
    async fn write_events(self: Arc<Self>, mut events: mpsc::Receiver<Event>) {
        let connections_done = async {
            self.shutdown.cancelled().await;
            self.connections.close();
            self.connections.wait().await;
        };
        tokio::pin!(connections_done);
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                received = events.recv_many(&mut batch, 4096) => {
                    if received == 0 {
                        break;
                    }
                    // Nobody waits for these appends: let a few milliseconds of events share one
                    // durable commit (a latency sample per player per second adds up).
                    tokio::time::sleep(EVENT_LINGER).await;
                    while batch.len() < 4096 && let Ok(event) = events.try_recv() {
                        batch.push(event);
                    }
                }
                () = &mut connections_done => {
                    while let Ok(event) = events.try_recv() {
                        batch.push(event);
                    }
                    self.append(&mut batch).await;
                    break;
                }
            }
            self.append(&mut batch).await;
        }
    }

    async fn append(&self, batch: &mut Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let records = batch
            .drain(..)
            .map(|e| NewRecord {
                key: e.session_id.clone(),
                timestamp_ms: e.at,
                payload: e.to_bytes().into(),
            })
            .collect();
        if let Err(error) = self.log.append(GAME_EVENTS, records, Durability::Durable).await {
            tracing::error!(%error, "could not write gateway events");
        }
    }

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
        let Some(on_upgrade) = request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_upgrade",
                "this server cannot upgrade connections",
            );
        };
        let gateway = Arc::clone(self);
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        // Frames above max_frame_bytes are read and refused with an error frame and a clean
        // close; the transport's own cap, far above, only stops a peer from exhausting memory.
        let hard_cap = (self.config.max_frame_bytes * 16).max(1 << 20);
        let config = WebSocketConfig::default()
            .read_buffer_size(2 * 1024)
            .max_message_size(Some(hard_cap))
            .max_frame_size(Some(hard_cap));
        self.connections.spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(error) => return tracing::debug!(%error, "upgrade failed"),
            };
            // Served by our own TCP listener: take the socket back from the HTTP server, so the
            // fan-out can write to it directly.
            let parts = match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => parts,
                Err(_) => return tracing::error!("upgraded connection is not a TCP stream; closing it"),
            };
            let tcp = parts.io.into_inner();
            let _ = tcp.set_nodelay(true);
            let (read, write) = tcp.into_split();
            let (signals, signals_rx) = mpsc::unbounded_channel();
            if gateway.shard(id).send(Command::Attach { connection: id, write, signals }).is_err() {
                return;
            }
            let stream = PlayerStream::new(parts.read_buf, read, id, gateway.shard(id).clone());
            let socket = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
            connection::serve(gateway, socket, id, signals_rx).await;
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
    Router::new().route("/ws/{region}", get(upgrade)).with_state(by_region)
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
