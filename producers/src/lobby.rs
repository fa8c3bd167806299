//! The edge's read API over the projection store: which games are waiting, running or ended,
//! and who is in one with what latency. Also how the edge finds a game its directory does not
//! hold (older than the directory's history, or started by another edge) for a join.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tickcast_eventlog::StartFrom;
use tickcast_projections::ProjectionStore;
use tickcast_projections::model::{
    ConnectionItem, ConnectionState, Phase, RTT_WINDOW, SessionItem, SessionState,
};
use tickcast_schemas::event::{Event, EventBody};
use tickcast_schemas::sessions::SessionInfo;
use tickcast_schemas::topics::GAME_EVENTS;

use crate::{ApiError, Edge, now_ms};

/// Sessions a list answers when asked for no `limit`, and the most it answers.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;
/// Open sessions read per list of waiting or running ones (which the clock tells apart, after
/// the read): the newest, several times the limit.
const OPEN_READ_FACTOR: usize = 4;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    state: Option<String>,
    limit: Option<String>,
}

/// A session as the API shows it: its item, its state now and its connected players.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    #[serde(flatten)]
    pub item: SessionItem,
    pub state: SessionState,
    pub players: Vec<String>,
}

impl SessionView {
    fn of(item: SessionItem, now_ms: i64) -> Self {
        Self { state: item.state(now_ms), players: item.players(), item }
    }
}

/// A session with its connections.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionView,
    pub connections: Vec<ConnectionItem>,
}

impl Edge {
    fn store(&self) -> Result<&Arc<dyn ProjectionStore>, ApiError> {
        self.config.store.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_store",
                "this edge reads no projection store: start it with --store (TICKCAST_STORE) and run a projector",
            )
        })
    }

    /// A session the directory does not hold, from the store (when there is one).
    pub(crate) async fn session_from_store(&self, id: &str) -> Result<Option<SessionInfo>, ApiError> {
        let Some(store) = &self.config.store else { return Ok(None) };
        let Some(item) = store.session(id).await.map_err(store_error)? else { return Ok(None) };
        // Only ended sessions have their seed in the store. A ticket shows the seed only in
        // client-side tick mode, where players compute the ticks from it: there a running
        // game's seed is read from its `session_created` in the log, never guessed.
        let seed = match item.seed.as_deref().and_then(|s| s.parse().ok()) {
            Some(seed) => seed,
            None if self.config.reveal_seed_at_start => self.seed_from_log(id, item.created_at).await?,
            None => 0,
        };
        Ok(Some(SessionInfo {
            session_id: item.session_id,
            region: item.region,
            start_at: item.start_at,
            tick_ms: item.tick_ms,
            max_tick_ms: item.max_tick_ms.unwrap_or(item.tick_ms),
            paces: {
                let mut paces = tickcast_schemas::pace::PaceSchedule::new(item.start_at, item.tick_ms);
                if let Some(pace) = item.pace {
                    paces.record(pace);
                }
                paces
            },
            countdown_ms: item.countdown_ms,
            seed_hash: item.seed_hash,
            seed,
            min_break_steps: item.min_break_steps,
            max_break_steps: item.max_break_steps,
            created_by: item.created_by,
            ended: item.phase == Phase::Ended,
            kicked: std::collections::BTreeSet::new(),
            connections: item.connected,
            // The store does not follow moves yet: the directory does, for recent games.
            moved_from: Vec::new(),
        }))
    }

    /// The seed of game `id`, created at `created_at` (epoch ms), from its `session_created`
    /// in the log: it was written at that instant, so the read starts there and stops a second
    /// of records later.
    async fn seed_from_log(&self, id: &str, created_at: i64) -> Result<u64, ApiError> {
        let unavailable = |why: String| {
            tracing::warn!(game_id = id, why, "cannot read a game's seed from the log");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "seed_unavailable",
                format!("this edge cannot read game {id}'s seed from the log ({why}); client-side tick mode needs it to join; try again"),
            )
            .retry_after(2)
        };
        let mut scan = self
            .log
            .scan(GAME_EVENTS, StartFrom::Timestamp(created_at))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        while let Some(records) = scan.next_batch().await.map_err(|e| unavailable(e.to_string()))? {
            for record in records {
                if record.timestamp_ms > created_at + 1_000 {
                    return Err(unavailable("its session_created is not where the store says".into()));
                }
                if &*record.key != id || Event::peek_type(&record.payload) != Some("session_created") {
                    continue;
                }
                if let Ok(Event { body: EventBody::SessionCreated(created), .. }) =
                    Event::from_bytes(&record.payload)
                {
                    return Ok(created.seed);
                }
            }
        }
        Err(unavailable("its session_created is not in the log".into()))
    }
}

fn store_error(error: tickcast_projections::Error) -> ApiError {
    tracing::warn!(%error, "the projection store failed a read");
    let error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the projection store did not answer; try again",
    );
    error.retry_after(2)
}

/// `GET /edge/sessions?state=waiting|running|ended&limit=N`: newest first.
pub(crate) async fn list_sessions(
    State(edge): State<Arc<Edge>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("{e}; use ?state=waiting|running|ended&limit=N"),
        )
    })?;
    let state = match query.state.as_deref() {
        None | Some("") => None,
        Some("waiting") => Some(SessionState::Waiting),
        Some("running") => Some(SessionState::Running),
        Some("ended") => Some(SessionState::Ended),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                format!("state must be waiting, running or ended, not {other:?}"),
            ));
        }
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!("limit must be a number from 1 to {MAX_LIMIT}, not {text:?}"),
                ));
            }
        },
    };
    let store = edge.store()?;
    let now = now_ms();
    let mut items = Vec::new();
    for phase in [Phase::Open, Phase::Ended] {
        if state.is_some_and(|s| s.phase() != phase) {
            continue;
        }
        let read = if phase == Phase::Open { limit * OPEN_READ_FACTOR } else { limit };
        items.extend(store.sessions(phase, read).await.map_err(store_error)?);
    }
    let mut sessions: Vec<SessionView> = items
        .into_iter()
        .map(|item| SessionView::of(item, now))
        .filter(|view| state.is_none_or(|s| view.state == s))
        .collect();
    sessions.sort_by(|a, b| {
        (b.item.created_at, &b.item.session_id).cmp(&(a.item.created_at, &a.item.session_id))
    });
    sessions.truncate(limit);
    Ok(Json(serde_json::json!({ "sessions": sessions })))
}

/// `GET /edge/sessions/{id}`: the session and its connections.
pub(crate) async fn session_detail(
    State(edge): State<Arc<Edge>>,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    let store = edge.store()?;
    let Some(item) = store.session(&id).await.map_err(store_error)? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_game", format!("no game with id {id:?}")));
    };
    let now = now_ms();
    let session = SessionView::of(item, now);
    let mut connections = Vec::new();
    for connection in store.connections_of(&id).await.map_err(store_error)? {
        let samples = store.latency_of(&connection.connection_id, RTT_WINDOW).await.map_err(store_error)?;
        let mut connection = connection.measured(&samples);
        // No event marks the start: a connection that joined before it is playing once it passed.
        if connection.state == ConnectionState::Ready && session.state == SessionState::Running {
            connection.state = ConnectionState::Playing;
        }
        connections.push(connection);
    }
    Ok(Json(SessionDetail { session, connections }))
}
