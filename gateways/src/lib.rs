//! The regional WebSocket gateway: where players connect, join a session with an edge token,
//! and receive its countdowns, ticks and end.
//!
//! This crate owns the client protocol's server side (docs/protocol.md, "Gateway"): token checks, the per-session
//! fan-out (each frame encoded once, its bytes shared by every socket), `resume` from recent
//! frames held in memory, RTT measured with WebSocket pings and the latency policy. It writes
//! player_joined / latency_* / player_kicked / player_left to `game-events`.
//!
//! It keeps no durable state: what it holds (hubs, recent frames, the session directory) is
//! rebuilt from the log when it starts. It must not compute ticks (tick generators do).
//!
//! # Layout
//! - [`latency`]: the latency policy (sans I/O).
//! - `fanout`: the shard tasks that own the sockets' write halves, the hubs and the pings; `ping`:
//!   who is pinged when, and the pings in flight (sans I/O).
//! - `dispatch`: the tick topic read once, each frame encoded once for every shard.
//! - `hub`: per-session members and recent frames.
//! - `player_socket`: what a shard holds of a socket: its write half and the bytes it owes it.
//! - `stream`: the byte stream under a player's WebSocket; `tls_session`: its TLS session after
//!   the upgrade.
//! - `connection`: one player's socket; `budget`: its allowance of client messages;
//!   [`socket_limits`]: sockets per process and per client address.
//! - `directory`: this region's sessions and their players, from `game-events`; `caught_up`:
//!   when a tail has read the log up to now (the gateway's readiness).
//! - `event_writer`: player events to the log, in batches.
//! - `upgrade`: the WebSocket handshake; [`routes`] mounts gateways at `/ws/{region}`.
//! - `metrics`: metric names.
//! - [`Gateway`]: the role — its configuration, state and run loop.

mod budget;
mod caught_up;
mod conn_map;
mod connection;
mod directory;
mod dispatch;
mod event_writer;
mod fanout;
mod hub;
mod lag;
pub mod latency;
mod metrics;
mod moved_backlog;
mod ping;
mod player_socket;
pub mod socket_limits;
mod stream;
mod tls_session;
mod upgrade;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tickcast_eventlog::{EventLog, StartFrom};
use tickcast_schemas::health::Readiness;
use tickcast_schemas::load::ProcessLoad;
use tickcast_schemas::sessions::{SessionDirectory, SessionInfo};
use tickcast_schemas::token::TokenSigner;
use tickcast_schemas::topics::{self, GAME_EVENTS};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::caught_up::CaughtUp;
use crate::dispatch::dispatch;
use crate::fanout::{Command, Fanout, FanoutConfig, JoinRefused, Signal};
use crate::lag::GatewayLag;
use crate::latency::LatencyPolicy;
use crate::socket_limits::SocketLimits;
pub use crate::upgrade::routes;

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
    /// How long an upgraded socket may go without joining before it is closed (1008); zero
    /// for no limit.
    pub join_timeout: Duration,
    /// Client messages a connection may send per second on average (bursts of twice that);
    /// more closes it with 1008. 0 for no limit.
    pub max_messages_per_s: u32,
    /// Players (distinct userIds, across every gateway) a session may have; a join past it is
    /// refused with `session_full`. 0 for no limit.
    pub max_players_per_session: usize,
    /// Origins (`https://play.example.com`) whose pages may open sockets; a handshake with
    /// another Origin header gets 403. Empty: any (clients that send none are always let in).
    pub allowed_origins: Vec<String>,
    /// Game sockets the process may hold, in all and per client address (shared by every
    /// gateway of the process).
    pub socket_limits: Arc<SocketLimits>,
    /// Largest client message accepted; larger ones get an error frame and a close (1009).
    pub max_frame_bytes: usize,
    /// Bytes queued for a player's socket before it is disconnected as too slow.
    pub max_pending_bytes: usize,
    /// How far back the gateway reads its tick topic and game-events when it starts.
    pub history: Duration,
    /// The gateway's own lag (event loop, shard queues) above which it judges no one's latency.
    pub lag_threshold: Duration,
    /// The process's load, told every lag the gateway sees and every player it serves
    /// (`tickcast up` shares it with the edge, which refuses new games while it is saturated).
    pub saturation: Option<Arc<ProcessLoad>>,
    /// Test-only (feature `test-hooks`): how long each fan-out shard blocks before forwarding a
    /// batch of frames (a gateway made slow from inside).
    #[cfg(feature = "test-hooks")]
    pub debug_write_delay: Duration,
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
            join_timeout: Duration::from_secs(10),
            max_messages_per_s: 20,
            max_players_per_session: 100,
            allowed_origins: Vec::new(),
            socket_limits: SocketLimits::new(0, 0),
            max_frame_bytes: 64 * 1024,
            max_pending_bytes: 256 * 1024,
            history: Duration::from_secs(6 * 3600),
            lag_threshold: Duration::from_millis(50),
            saturation: None,
            #[cfg(feature = "test-hooks")]
            debug_write_delay: Duration::ZERO,
        }
    }
}

/// Errors of the gateway role.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] tickcast_eventlog::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A player's live connection in a session: its id, and the channel that tells it it was replaced.
type LiveConnection = (u64, mpsc::UnboundedSender<Signal>);

/// One region's gateway.
#[derive(Debug)]
pub struct Gateway {
    config: GatewayConfig,
    gateway_id: String,
    source: String,
    log: Arc<dyn EventLog>,
    signer: TokenSigner,
    /// Requests to the fan-out shards, which own the sockets' write halves and the hubs;
    /// connection `c` belongs to shard `c % shards.len()`.
    shards: Vec<mpsc::UnboundedSender<Command>>,
    /// The shards' ends of `shards`, taken by `run` when it starts them.
    shards_rx: Mutex<Vec<mpsc::UnboundedReceiver<Command>>>,
    /// This region's sessions, from game-events.
    directory: Mutex<SessionDirectory>,
    /// Bumped when the directory changes, so joins waiting for a new session wake up.
    directory_version: watch::Sender<u64>,
    /// Events from connections to the event writer, which batches them into the log.
    events: mpsc::Sender<event_writer::Queued>,
    /// The writer's end of `events`, taken by `run` when it starts the writer.
    events_rx: Mutex<Option<mpsc::Receiver<event_writer::Queued>>>,
    /// Connection tasks, waited for on shutdown so their player_left events are written.
    connections: TaskTracker,
    /// The id of the next connection (ids pick shards).
    next_connection: AtomicU64,
    /// How far behind the gateway's own work runs; while it lags, latency is not judged.
    lag: Arc<GatewayLag>,
    /// When this run of the gateway was made (epoch ms), before any socket: its heartbeats
    /// carry it, so connections a previous run left without `player_left` count as gone.
    started_at: i64,
    /// Its metric series, labelled with its region once.
    series: metrics::GatewaySeries,
    /// Set once its tick topic and game-events are read up to when it started (what `/readyz`
    /// waits for): before, joins could miss sessions and players get old ticks late.
    ticks_read: Readiness,
    events_read: Readiness,
    /// The one live connection of each (session, userId) on this gateway and the channel that
    /// tells it it was replaced; a newer join of the same player takes the entry.
    live: Mutex<HashMap<(String, String), LiveConnection>>,
    /// Cancelled when the process shuts down.
    shutdown: CancellationToken,
}

/// The wall clock in epoch µs: the clock of the kernel's receive timestamps.
pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
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
        let lag = GatewayLag::new(config.lag_threshold, config.saturation.clone());
        let series = metrics::GatewaySeries::new(&config.region);
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
            lag: Arc::new(lag),
            started_at: now_ms(),
            series,
            ticks_read: Readiness::new("the gateway to read its tick topic up to now"),
            events_read: Readiness::new("the gateway to read game-events up to now"),
            live: Mutex::new(HashMap::new()),
            shutdown,
        })
    }

    #[must_use]
    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// What `/readyz` waits for: its tails caught up with the log.
    #[must_use]
    pub fn readiness(&self) -> [Readiness; 2] {
        [self.ticks_read.clone(), self.events_read.clone()]
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
        let game_events = self.log.tail(GAME_EVENTS, StartFrom::Timestamp(history_start)).await?;
        tickcast_eventlog::metrics::expose_appends(&[GAME_EVENTS.to_owned()]);
        let writer = tokio::spawn(Arc::clone(&self).write_events(events_rx));
        let fanout_config = FanoutConfig {
            resume_ticks: self.config.resume_ticks,
            max_pending_bytes: self.config.max_pending_bytes,
            keep_ended: self.config.history.min(Duration::from_secs(300)),
            ping_interval: self.config.ping_interval,
            unanswered_after_us: self.config.latency.max_latency_ms as i64 * 1000,
            #[cfg(feature = "test-hooks")]
            debug_write_delay: self.config.debug_write_delay,
            series: self.series.clone(),
            load: self.config.saturation.clone(),
        };
        // Stopped only after the connections have closed, so their last frames are written.
        let fanout_stop = CancellationToken::new();
        let mut shard_tasks = tokio::task::JoinSet::new();
        for (shard, rx) in self.shards.iter().zip(shards_rx) {
            let fanout = Fanout::new(fanout_config.clone(), shard.clone(), Arc::clone(&self.lag));
            shard_tasks.spawn(fanout.run(rx, fanout_stop.clone()));
        }
        let ticks = CaughtUp::new(ticks, self.ticks_read.clone());
        let mut fanout = tokio::spawn(dispatch(ticks, self.shards.clone(), fanout_stop.clone()));
        let mut game_events = CaughtUp::new(game_events, self.events_read.clone());
        let probe = {
            let (gateway, stop) = (Arc::clone(&self), fanout_stop.clone());
            tokio::spawn(async move { gateway.lag.probe(&gateway.config.region, stop).await })
        };
        // Stopped with the fan-out, once the connections have closed (and written player_left).
        let heartbeats = tokio::spawn(Arc::clone(&self).heartbeats(fanout_stop.clone()));
        // A finished task's handle must not be awaited again.
        let mut fanout_finished = false;
        let result = loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break Ok(()),
                records = game_events.next_batch() => match records {
                    Ok(records) => self.follow_sessions(&records),
                    Err(e) => break Err(e),
                },
                finished = &mut fanout => {
                    fanout_finished = true;
                    break match finished {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(tickcast_eventlog::Error::Closed),
                    };
                }
            }
        };
        if result.is_err() {
            // A gateway that cannot read its log cannot serve anyone: stop the process's roles
            // rather than leave players connected to a silent session.
            self.shutdown.cancel();
        }
        // Stopping: the edge places no new game here, and the players told to reconnect (1012)
        // get a fresh ticket for another instance.
        self.ticks_read.set_not_ready();
        self.events_read.set_not_ready();
        self.connections.close();
        self.connections.wait().await;
        fanout_stop.cancel();
        if !fanout_finished {
            let _ = fanout.await;
        }
        shard_tasks.join_all().await;
        let _ = probe.await;
        let _ = heartbeats.await;
        let _ = writer.await;
        Ok(result?)
    }

    /// Joins a connection to a session through the fan-out.
    async fn join(
        &self,
        connection: u64,
        session: SessionInfo,
        user_id: String,
        resume_after: Option<i64>,
    ) -> Result<(), JoinRefused> {
        let earlier = match resume_after {
            Some(after) => self.steps_before_the_move(&session, after).await,
            None => Vec::new(),
        };
        let (reply, answer) = oneshot::channel();
        let command =
            Command::Join { connection, session: Box::new(session), user_id, resume_after, earlier, reply };
        if self.shard(connection).send(command).is_err() {
            return Err(JoinRefused::Ended);
        }
        answer.await.unwrap_or(Err(JoinRefused::Ended))
    }

    fn detach(&self, connection: u64) {
        let _ = self.shard(connection).send(Command::Detach { connection });
    }

    /// Makes `connection` the live one of `user_id` in `session_id`; an older one of the same
    /// player there is told it was replaced.
    pub(crate) fn claim_live(
        &self,
        session_id: &str,
        user_id: &str,
        connection: u64,
        signals: mpsc::UnboundedSender<Signal>,
    ) {
        let key = (session_id.to_owned(), user_id.to_owned());
        if let Some((older, older_signals)) = self.live.lock().unwrap().insert(key, (connection, signals))
            && older != connection
        {
            let _ = older_signals.send(Signal::Replaced);
        }
    }

    /// `connection` ended: it is no longer `user_id`'s live one in `session_id` (unless a newer
    /// one already took its place).
    pub(crate) fn release_live(&self, session_id: &str, user_id: &str, connection: u64) {
        let key = (session_id.to_owned(), user_id.to_owned());
        let mut live = self.live.lock().unwrap();
        if live.get(&key).is_some_and(|(id, _)| *id == connection) {
            live.remove(&key);
        }
    }

    /// A player joined `session_id` through another gateway: its connection here, if any, is
    /// replaced.
    pub(crate) fn joined_elsewhere(&self, session_id: &str, user_id: &str) {
        let key = (session_id.to_owned(), user_id.to_owned());
        if let Some((_, signals)) = self.live.lock().unwrap().remove(&key) {
            let _ = signals.send(Signal::Replaced);
        }
    }

    fn shard(&self, connection: u64) -> &mpsc::UnboundedSender<Command> {
        &self.shards[(connection % self.shards.len() as u64) as usize]
    }
}
