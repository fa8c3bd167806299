//! The edge: where a player starts or joins a game over HTTP.
//!
//! This crate owns `POST /edge/game/start` and `POST /edge/game/{gameId}/join` (docs/protocol.md, "Edge"):
//! validating the requested game, choosing the player's region, drawing the seed from the OS
//! RNG, writing `session_created` durably before answering, and signing join tokens. It keeps
//! an in-memory [`SessionDirectory`] fed from `game-events` to answer joins.
//!
//! It must not touch sockets of players or ticks, and must never put a seed in a response: the
//! seed is revealed only by `session_ended` — unless the operator chose client-side tick mode
//! (`reveal_seed_at_start`), where clients compute the ticks from it.
//!
//! # Layout
//! - [`routing`]: region selection (sans-IO).
//! - [`rules`]: request bodies, ranges and defaults.
//! - [`admission`]: refusing new games while the process is saturated.
//! - `rate`: games started per client address.
//! - [`Edge`]: the role, its tickets and the directory follower; `handlers`: its HTTP handlers.
//! - `metrics`: metric names.

pub mod admission;
mod handlers;
mod health;
pub mod lobby;
mod matches;
mod metrics;
mod rate;
mod regions_admin;
pub mod routing;
pub mod rules;

pub use regions_admin::region_states;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::http::uri::Scheme;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Serialize;
use tickcast_eventlog::{EventLog, StartFrom};
use tickcast_schemas::event::{Event, EventBody};
use tickcast_schemas::match_events::TicketDirectory;
use tickcast_schemas::regions::Region;
use tickcast_schemas::sessions::{SessionDirectory, SessionInfo};
use tickcast_schemas::token::{Claims, TokenSigner};
use tickcast_schemas::topics::GAME_EVENTS;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::handlers::{header, join_game, list_regions, start_game};
use crate::rate::GameRateLimit;
use crate::routing::{RegionRouter, RoutedBy};
use crate::rules::GameDefaults;

/// How the edge behaves.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub defaults: GameDefaults,
    /// PEM certificates the edge trusts, beside the system's, when it polls `wss://` gateways.
    pub gateway_ca: Option<std::path::PathBuf>,
    /// How long a join token stays valid (it is also what `resume` presents).
    pub token_ttl_ms: i64,
    /// `edge@<instance>` is the `source` of the events this edge writes.
    pub instance: String,
    /// How far back the directory reads `game-events` when the edge starts.
    pub directory_history_ms: i64,
    /// Client-side tick mode (`USE_TICK_BROADCASTER=false`): tickets carry the seed, so clients
    /// compute the ticks themselves; nothing is secret about a game then.
    pub reveal_seed_at_start: bool,
    /// Refuses new games and players while the process is saturated; `None` admits all.
    pub admission: Option<Arc<Admission>>,
    /// Games one client address may start per minute (also the burst); 0 for no limit.
    pub game_rate_per_ip: u32,
    /// Games one userId may have running at once; 0 for no limit.
    pub max_games_per_user: usize,
    /// The projection store the read API answers from, and joins of games the directory does
    /// not hold; `None`: no read API, joins from the directory alone.
    pub store: Option<Arc<dyn tickcast_projections::ProjectionStore>>,
    /// The bearer token of the operator's endpoints (`/admin/*`); `None`: they answer 404.
    pub admin_token: Option<String>,
    /// A region none of whose gateways has been ready for this long is drained (reason
    /// `unhealthy`) by the edge that sees it, and restored when one is ready again.
    pub region_failover_after: std::time::Duration,
    /// The matchmaker's latency limit, ms: `GET /edge/match` counts a searching ticket in each
    /// region it could be matched in.
    pub match_max_latency_ms: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            defaults: GameDefaults::default(),
            gateway_ca: None,
            token_ttl_ms: 6 * 3600 * 1000,
            instance: "0".into(),
            directory_history_ms: 6 * 3600 * 1000,
            reveal_seed_at_start: false,
            admission: None,
            game_rate_per_ip: 30,
            max_games_per_user: 5,
            store: None,
            admin_token: None,
            region_failover_after: std::time::Duration::from_secs(10),
            match_max_latency_ms: 100,
        }
    }
}

/// Errors of the edge role itself (not of a request).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] tickcast_eventlog::Error),
    /// The HTTP client that asks gateways whether they are ready could not be made.
    #[error("cannot watch the gateways' health: {0}")]
    Health(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The edge role: HTTP handlers over the log, the region table and the session directory.
#[derive(Debug)]
pub struct Edge {
    log: Arc<dyn EventLog>,
    signer: TokenSigner,
    /// The regions and their health: read per request, written by the gateway health watch
    /// ([`health`]). Locked briefly, never across an await.
    router: std::sync::RwLock<RegionRouter>,
    config: EdgeConfig,
    /// Sessions seen in `game-events` (and created here), for joins. Locked briefly, never
    /// across an await.
    directory: Mutex<SessionDirectory>,
    /// Games started per client address (`game_rate_per_ip`); `None` when unlimited.
    game_rate: Option<GameRateLimit>,
    /// Match tickets seen in `game-events` (and requested here): what this edge answers about
    /// any ticket. Locked briefly, never across an await.
    tickets: Mutex<TicketDirectory>,
    /// Whether the directory has read `game-events`' history up to its start: until then a
    /// ticket it does not know may still be ahead in the log (503, not 404).
    history_read: std::sync::atomic::AtomicBool,
}

/// How long the directory's tail must have nothing to deliver to count as having read its
/// history (longer than a backend's pause between two history batches).
const HISTORY_QUIET: std::time::Duration = std::time::Duration::from_millis(1000);

/// What a player gets back from start and join: where to connect and the token to present.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GameTicket {
    pub game_id: String,
    pub region: String,
    pub ws_endpoint: String,
    pub token: String,
    pub start_at: i64,
    /// The fastest pace, the one the game starts at, and the slowest it may go to (equal for a
    /// fixed pace). The pace in force comes with `session_joined`.
    pub tick_ms: i64,
    pub max_tick_ms: i64,
    pub seed_hash: String,
    /// The engine's break bounds, so the client can recompute every tick once the seed is out.
    pub min_break_steps: u64,
    pub max_break_steps: u64,
    /// Only in client-side tick mode: the seed, as a decimal string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// How a started game's region was chosen (not on joins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
}

/// The ticket's `routing`: which hint chose the region, and the regions skipped as unhealthy.
#[derive(Debug, Serialize)]
pub struct Routing {
    pub by: RoutedBy,
    pub skipped: Vec<String>,
}

/// A request refused: a status and `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which the same request may succeed (`Retry-After`).
    pub retry_after_s: Option<u32>,
}

/// What a client is told to wait before retrying a game the log refused for a passing reason.
const LOG_RETRY_AFTER_S: u32 = 2;

/// What a user with too many games running is told to wait (a game ends when its rounds are
/// over, or 30 s after its last player left).
const USER_RETRY_AFTER_S: u32 = 10;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after_s: None }
    }

    /// The same refusal, telling the client when to try again.
    #[must_use]
    pub const fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::request_refused(self.code);
        let body = Json(serde_json::json!({ "error": self.code, "message": self.message }));
        match self.retry_after_s {
            Some(seconds) => {
                (self.status, [(axum::http::header::RETRY_AFTER, seconds.to_string())], body).into_response()
            }
            None => (self.status, body).into_response(),
        }
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

fn now_ms() -> i64 {
    now_us() / 1000
}

impl Edge {
    #[must_use]
    pub fn new(
        log: Arc<dyn EventLog>,
        signer: TokenSigner,
        regions: Vec<Region>,
        config: EdgeConfig,
    ) -> Arc<Self> {
        // 0 until the process saturates (always, on an edge without admission control).
        metrics::expose(&regions.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
        Arc::new(Self {
            log,
            signer,
            router: std::sync::RwLock::new(RegionRouter::new(regions)),
            game_rate: GameRateLimit::per_minute(config.game_rate_per_ip),
            config,
            directory: Mutex::new(SessionDirectory::default()),
            tickets: Mutex::new(TicketDirectory::default()),
            history_read: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The edge's HTTP routes, under `/edge`.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/edge/game/start", post(start_game))
            .route("/edge/game/{game_id}/join", post(join_game))
            .route("/edge/regions", get(list_regions))
            .route("/edge/sessions", get(lobby::list_sessions))
            .route("/edge/sessions/{session_id}", get(lobby::session_detail))
            .route("/edge/match", post(matches::request_match).get(matches::searching))
            .route("/edge/match/{ticket_id}", get(matches::poll_match).delete(matches::cancel_match))
            .merge(self.admin_routes())
            .with_state(Arc::clone(self))
    }

    /// The operator's endpoints when an admin token is set; every other `/admin/*` path, and
    /// every one without a token, answers 404.
    fn admin_routes(&self) -> Router<Arc<Self>> {
        let mut routes = Router::new()
            .route("/admin", any(regions_admin::not_found))
            .route("/admin/{*rest}", any(regions_admin::not_found));
        if self.config.admin_token.as_deref().is_some_and(|t| !t.is_empty()) {
            routes = routes
                .route("/admin/regions/{region}/drain", post(regions_admin::drain))
                .route("/admin/regions/{region}/restore", post(regions_admin::restore));
        }
        routes
    }

    /// Keeps the directory and the regions' states current from `game-events` until
    /// `shutdown`. The regions' states are read from the start of the log first: a region
    /// drained long ago is still drained.
    pub async fn follow_sessions(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), Error> {
        let states = region_states(self.log.as_ref()).await?;
        self.router.write().unwrap().set_states(states);
        let started = now_ms();
        let from = StartFrom::Timestamp(started - self.config.directory_history_ms);
        let mut tail = self.log.tail(GAME_EVENTS, from).await?;
        loop {
            let caught_up = self.history_read.load(std::sync::atomic::Ordering::Relaxed);
            // History comes in batches without waiting: a tail quiet for a while has read it.
            let wait = if caught_up { std::time::Duration::MAX } else { HISTORY_QUIET };
            let records = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                records = tokio::time::timeout(wait, tail.next_batch()) => match records {
                    Ok(records) => records?,
                    Err(_) => Vec::new(),
                },
            };
            if !caught_up && (records.is_empty() || records.iter().any(|r| r.timestamp_ms >= started)) {
                self.history_read.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let mut directory = self.directory.lock().unwrap();
            for record in records {
                if !matches!(
                    Event::peek_type(&record.payload),
                    Some(
                        "session_created"
                            | "session_ended"
                            | "session_migrated"
                            | "tick_rate_changed"
                            | "match_requested"
                            | "match_formed"
                            | "match_cancelled"
                            | "match_expired"
                            | "region_drained"
                            | "region_restored"
                    ) | None
                ) {
                    continue;
                }
                match Event::from_bytes(&record.payload) {
                    Ok(event)
                        if matches!(
                            event.body,
                            EventBody::RegionDrained(_) | EventBody::RegionRestored(_)
                        ) =>
                    {
                        self.router.write().unwrap().apply(&event.body);
                    }
                    Ok(event) => {
                        if matches!(event.body, EventBody::SessionEnded(_)) {
                            self.release(&event.session_id);
                        }
                        directory.apply(&event);
                        self.tickets.lock().unwrap().apply(&event);
                    }
                    Err(error) => {
                        tracing::warn!(position = %record.position, %error, "skipping undecodable game event")
                    }
                }
            }
            directory.forget_ended_before(now_ms() - self.config.directory_history_ms);
            self.tickets.lock().unwrap().forget_settled_before(now_ms() - self.config.directory_history_ms);
        }
    }

    /// Where the players of `game_id` in `region` connect: the region's gateway instance for
    /// the game (rendezvous hashing over the ready ones), or this process's own gateway.
    fn ws_endpoint(
        &self,
        region: &Region,
        game_id: &str,
        headers: &HeaderMap,
        scheme: Option<&Scheme>,
    ) -> String {
        let instance = self.router.read().unwrap().instance_for(&region.id, game_id).map(str::to_owned);
        if let Some(instance) = instance.filter(|i| !i.is_empty()) {
            return instance;
        }
        // Served from this process (`tickcast up`): the gateway is on the host the player used,
        // over TLS if the player's request was (our own TLS, or a trusted proxy in front).
        let host = header(headers, "host").unwrap_or("127.0.0.1:8080");
        let ws = if scheme == Some(&Scheme::HTTPS) { "wss" } else { "ws" };
        format!("{ws}://{host}/ws/{}", region.id)
    }

    /// Refuses a new game or player while the process is saturated.
    fn admit(&self) -> Result<(), ApiError> {
        self.config.admission.as_ref().map_or(Ok(()), |admission| admission.check(now_us()))
    }

    /// Counts `user_id` in `session_id`'s players, or refuses it when the admitted players fill
    /// the process.
    fn admit_player(&self, session_id: &str, user_id: &str, tick_ms: i64) -> Result<(), ApiError> {
        self.config
            .admission
            .as_ref()
            .map_or(Ok(()), |admission| admission.admit_player(session_id, user_id, tick_ms))
    }

    /// The session ended, or was never created: its players no longer count.
    fn release(&self, session_id: &str) {
        if let Some(admission) = &self.config.admission {
            admission.release(session_id);
        }
    }

    /// A ticket for `user_id` to play `session`, which is in `region`.
    fn ticket(
        &self,
        session: &SessionInfo,
        region: &Region,
        user_id: String,
        headers: &HeaderMap,
        scheme: Option<&Scheme>,
    ) -> GameTicket {
        let token = self.signer.sign(&Claims {
            session_id: session.session_id.clone(),
            user_id,
            region: region.id.clone(),
            expires_at: now_ms() + self.config.token_ttl_ms,
        });
        GameTicket {
            game_id: session.session_id.clone(),
            region: region.id.clone(),
            ws_endpoint: self.ws_endpoint(region, &session.session_id, headers, scheme),
            token,
            start_at: session.start_at,
            tick_ms: session.tick_ms,
            max_tick_ms: session.max_tick_ms,
            seed_hash: session.seed_hash.clone(),
            min_break_steps: session.min_break_steps,
            max_break_steps: session.max_break_steps,
            seed: self.config.reveal_seed_at_start.then(|| session.seed.to_string()),
            routing: None,
        }
    }
}
