//! The edge's HTTP handlers: a game started, a game joined, the region table; and how a
//! request's body and headers are read. What they decide is the `Edge`'s (routing, admission,
//! tickets); they only turn requests into calls and answers.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::uri::Scheme;
use axum::http::{HeaderMap, StatusCode};
use tickcast_eventlog::{Durability, NewRecord, RetryHint};
use tickcast_schemas::event::{Event, EventBody, SessionCreated};
use tickcast_schemas::topics::GAME_EVENTS;

use crate::routing::{RegionHints, Routed, RoutingError};
use crate::rules::{JoinRequest, StartRequest, check_user_id};
use crate::{ApiError, Edge, GameTicket, LOG_RETRY_AFTER_S, Routing, USER_RETRY_AFTER_S, metrics, now_ms};

pub(crate) async fn start_game(
    State(edge): State<Arc<Edge>>,
    client: Option<Extension<ConnectInfo<IpAddr>>>,
    scheme: Option<Extension<Scheme>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<GameTicket>, ApiError> {
    edge.admit()?;
    let request: StartRequest = parse_body(&headers, body)?;
    let max_games = edge.config.max_games_per_user;
    if max_games > 0 && edge.directory.lock().unwrap().running_games_of(&request.user_id) >= max_games {
        metrics::game_rate_limited("user");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "{:?} already has {max_games} games running (TICKCAST_MAX_GAMES_PER_USER); retry once one has ended",
                request.user_id
            ),
        )
        .retry_after(USER_RETRY_AFTER_S));
    }
    if let (Some(limit), Some(Extension(ConnectInfo(ip)))) = (&edge.game_rate, client) {
        limit.check(ip)?;
    }
    let rules = request
        .rules(&edge.config.defaults)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", m))?;
    if edge.config.reveal_seed_at_start && rules.max_tick_ms != rules.tick_ms {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!(
                "maxTickMs must equal tickMs ({}) in client-side tick mode: clients compute the ticks from the clock alone, so the pace cannot change",
                rules.tick_ms
            ),
        ));
    }
    let hints = RegionHints {
        preferred: request.preferred_region.as_deref(),
        user_region: header(&headers, "x-user-region"),
        country: header(&headers, "cf-ipcountry"),
    };
    let Routed { region, by, skipped } = edge.router.read().unwrap().pick(&hints).map_err(|e| match e {
        RoutingError::UnknownRegion(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "unknown_region", e.to_string())
        }
        RoutingError::NoHealthyRegion => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_region", e.to_string())
        }
    })?;
    let seed = getrandom::u64()
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_entropy", e.to_string()))?;
    let now = now_ms();
    let game_id = uuid::Uuid::now_v7().to_string();
    let created = SessionCreated::new_game(region.id.clone(), seed, now, rules, request.user_id.clone());
    let event = Event::new(
        game_id.clone(),
        now,
        format!("edge@{}", edge.config.instance),
        EventBody::SessionCreated(created),
    );
    let record = NewRecord { key: game_id.clone(), timestamp_ms: now, payload: event.to_bytes().into() };
    // Counted before it exists, so a burst of starts is refused at the door.
    edge.admit_player(&game_id, &request.user_id, rules.tick_ms)?;
    edge.log.append(GAME_EVENTS, vec![record], Durability::Durable).await.map_err(|e| {
        edge.release(&game_id);
        tracing::error!(error = %e, "could not log session_created");
        log_refused(&e, "the new session")
    })?;
    let info = {
        let mut directory = edge.directory.lock().unwrap();
        directory.apply(&event);
        directory.get(&game_id).cloned().expect("just applied")
    };
    metrics::session_created(&region.id);
    tracing::info!(game_id, region = %region.id, "session created");
    let mut ticket =
        edge.ticket(&info, &region, request.user_id, &headers, scheme.as_ref().map(|Extension(s)| s));
    ticket.routing = Some(Routing { by, skipped });
    Ok(Json(ticket))
}

pub(crate) async fn join_game(
    State(edge): State<Arc<Edge>>,
    Path(game_id): Path<String>,
    scheme: Option<Extension<Scheme>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<GameTicket>, ApiError> {
    edge.admit()?;
    let request: JoinRequest = parse_body(&headers, body)?;
    check_user_id(&request.user_id)
        .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", m))?;
    let known = edge.directory.lock().unwrap().get(&game_id).cloned();
    let info = match known {
        Some(info) => Some(info),
        None => edge.session_from_store(&game_id).await?,
    };
    let Some(info) = info else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_game",
            format!("no game with id {game_id:?}"),
        ));
    };
    if info.ended {
        return Err(ApiError::new(StatusCode::CONFLICT, "game_ended", format!("game {game_id} has ended")));
    }
    let region = edge.router.read().unwrap().get(&info.region).cloned();
    let Some(region) = region else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_region",
            format!("region {} is not configured here", info.region),
        ));
    };
    edge.admit_player(&game_id, &request.user_id, info.tick_ms)?;
    Ok(Json(edge.ticket(&info, &region, request.user_id, &headers, scheme.as_ref().map(|Extension(s)| s))))
}

pub(crate) async fn list_regions(State(edge): State<Arc<Edge>>) -> Json<serde_json::Value> {
    let router = edge.router.read().unwrap();
    let ids: Vec<&str> = router.regions().iter().map(|r| r.id.as_str()).collect();
    let states: serde_json::Map<String, serde_json::Value> =
        ids.iter().map(|id| ((*id).to_owned(), router.state(id).into())).collect();
    Json(serde_json::json!({ "regions": ids, "states": states }))
}

/// A write the log refused, as the client is told: 503 with `Retry-After` when a retry can
/// help, 500 when an operator must look.
pub(crate) fn log_refused(error: &tickcast_eventlog::Error, what: &str) -> ApiError {
    match error.retry_hint() {
        RetryHint::Retry => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "log_unavailable",
            format!("the event log refused {what} for now; retry in a few seconds"),
        )
        .retry_after(LOG_RETRY_AFTER_S),
        RetryHint::DoNotRetry => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "log_failed",
            format!("the event log cannot take {what}; an operator must look at it"),
        ),
    }
}

/// The request's JSON body. Only `Content-Type: application/json` is read: a browser sends that
/// cross-origin only after a CORS preflight, which the edge does not grant, so no other web
/// page can make a visitor's browser start games (a form's `text/plain` would be sent).
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let media_type = header(headers, "content-type").and_then(|v| v.split(';').next()).map(str::trim);
    if !media_type.is_some_and(|m| m.eq_ignore_ascii_case("application/json")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the body as JSON with Content-Type: application/json (got {})",
                media_type.map_or_else(|| "no Content-Type".to_owned(), |m| format!("{m:?}"))
            ),
        ));
    }
    let body = body.map_err(|e| ApiError::new(e.status(), "invalid_body", e.body_text()))?;
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&body)).map_err(|e| {
        let message = match e.path().to_string() {
            // The whole body is wrong (not an object, bad JSON): no field to name.
            path if path == "." => format!("request body: {}", e.inner()),
            path => format!("request body: {path}: {}", e.inner()),
        };
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    })
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}
