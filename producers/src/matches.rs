//! Matchmaking at the edge (docs/protocol.md, "Matchmaking"): a player asks for a match with
//! its round trips to the regions (`POST /edge/match`), polls its ticket (`GET
//! /edge/match/{ticketId}`) until it is matched, expired or cancelled, or cancels it (`DELETE`).
//! Every request is an event in `game-events` and every answer comes from the tickets' states
//! folded from them ([`TicketDirectory`]), so any edge answers for any ticket. The matching
//! itself is the matchmaker's (a processor), never the edge's.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::uri::Scheme;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tickcast_eventlog::{Durability, NewRecord};
use tickcast_schemas::event::{Event, EventBody};
use tickcast_schemas::match_events::{MATCH_KEY, MatchCancelled, MatchRequested, TicketState};
use tickcast_schemas::topics::GAME_EVENTS;

use crate::handlers::{header, log_refused, parse_body};
use crate::routing::{RegionHints, RoutingError};
use crate::rules::check_user_id;
use crate::{ApiError, Edge, now_ms};

/// The longest round trip a ticket may say it has to a region, ms.
const MAX_LATENCY_MS: u64 = 10_000;

/// The body of `POST /edge/match`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MatchRequest {
    user_id: String,
    /// Round trips to regions, ms; without any, the hints choose one region, as for a start.
    #[serde(default)]
    latencies: BTreeMap<String, u64>,
    preferred_region: Option<String>,
}

fn bad(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// `POST /edge/match`: 202 `{ticketId, status: "searching"}`.
pub(crate) async fn request_match(
    State(edge): State<Arc<Edge>>,
    client: Option<Extension<ConnectInfo<IpAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    edge.admit()?;
    let request: MatchRequest = parse_body(&headers, body)?;
    check_user_id(&request.user_id).map_err(|m| bad("invalid_parameter", m))?;
    {
        let router = edge.router.read().unwrap();
        for region in request.latencies.keys().chain(&request.preferred_region) {
            if router.get(region).is_none() {
                return Err(bad("unknown_region", format!("no region {region:?} in this deployment")));
            }
        }
    }
    if let Some((region, ms)) = request.latencies.iter().find(|(_, ms)| **ms > MAX_LATENCY_MS) {
        return Err(bad(
            "invalid_parameter",
            format!("latencies.{region} must be between 0 and {MAX_LATENCY_MS} ms, got {ms}"),
        ));
    }
    if let (Some(limit), Some(Extension(ConnectInfo(ip)))) = (&edge.game_rate, client) {
        limit.check(ip)?;
    }
    if let Some(ticket) = edge.tickets.lock().unwrap().searching_of(&request.user_id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_searching",
            format!("{:?} already has ticket {ticket} searching; cancel it or wait for it", request.user_id),
        ));
    }
    let mut latencies = request.latencies;
    if latencies.is_empty() {
        // No measurement: the region a start with these hints would get, as if at 0 ms.
        let hints = RegionHints {
            preferred: request.preferred_region.as_deref(),
            user_region: header(&headers, "x-user-region"),
            country: header(&headers, "cf-ipcountry"),
        };
        let routed = edge.router.read().unwrap().pick(&hints).map_err(|e| match e {
            RoutingError::UnknownRegion(_) => bad("unknown_region", e.to_string()),
            RoutingError::NoHealthyRegion => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_region", e.to_string())
            }
        })?;
        latencies.insert(routed.region.id.clone(), 0);
    }
    let ticket_id = uuid::Uuid::now_v7().to_string();
    let requested = MatchRequested {
        ticket_id: ticket_id.clone(),
        user_id: request.user_id,
        latencies,
        preferred_region: request.preferred_region,
    };
    write(&edge, EventBody::MatchRequested(requested), "the match request").await?;
    crate::metrics::match_requested();
    Ok((StatusCode::ACCEPTED, Json(json!({ "ticketId": ticket_id, "status": "searching" }))))
}

/// Writes a matchmaking event durably, then folds it into this edge's tickets at once (the
/// tail brings it again; applying twice changes nothing).
async fn write(edge: &Edge, body: EventBody, what: &str) -> Result<(), ApiError> {
    let now = now_ms();
    let event = Event::new("", now, format!("edge@{}", edge.config.instance), body);
    let record = NewRecord { key: MATCH_KEY.to_owned(), timestamp_ms: now, payload: event.to_bytes().into() };
    edge.log.append(GAME_EVENTS, vec![record], Durability::Durable).await.map_err(|e| {
        tracing::error!(error = %e, "could not log {what}");
        log_refused(&e, what)
    })?;
    edge.tickets.lock().unwrap().apply(&event);
    Ok(())
}

/// A ticket this edge does not know: 404, or 503 while its directory is still reading the log's
/// history (just started: the ticket may be ahead).
fn unknown_ticket(edge: &Edge, id: &str) -> ApiError {
    if !edge.history_read.load(std::sync::atomic::Ordering::Relaxed) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("this edge is still reading the log; ticket {id:?} may be ahead in it"),
        )
        .retry_after(1);
    }
    ApiError::new(StatusCode::NOT_FOUND, "unknown_ticket", format!("no ticket with id {id:?}"))
}

/// `GET /edge/match/{ticketId}`: `searching` (with `waitedMs`), `matched` (a game ticket for
/// the player, the players and its latency to the region), `expired` or `cancelled`.
pub(crate) async fn poll_match(
    State(edge): State<Arc<Edge>>,
    Path(ticket_id): Path<String>,
    scheme: Option<Extension<Scheme>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let Some(ticket) = edge.tickets.lock().unwrap().get(&ticket_id).cloned() else {
        return Err(unknown_ticket(&edge, &ticket_id));
    };
    let searching = |since: i64| json!({ "status": "searching", "waitedMs": (now_ms() - since).max(0) });
    Ok(Json(match ticket.state {
        TicketState::Searching { since } => searching(since),
        TicketState::Cancelled => json!({ "status": "cancelled" }),
        TicketState::Expired => json!({ "status": "expired" }),
        TicketState::Matched { session_id, region, players } => {
            let session = edge.directory.lock().unwrap().get(&session_id).cloned();
            let region_entry = edge.router.read().unwrap().get(&region).cloned();
            let (Some(session), Some(region_entry)) = (session, region_entry) else {
                // Its game is in the log, not yet read here: a moment more.
                return Ok(Json(searching(ticket.changed_at)));
            };
            edge.admit_player(&session_id, &ticket.user_id, session.tick_ms)?;
            let game = edge.ticket(
                &session,
                &region_entry,
                ticket.user_id.clone(),
                &headers,
                scheme.as_ref().map(|Extension(s)| s),
            );
            let mut answer = serde_json::to_value(game).expect("a ticket serializes");
            answer["status"] = "matched".into();
            answer["players"] = json!(players);
            answer["latencyMs"] = json!(ticket.latencies.get(&region));
            answer
        }
    }))
}

/// `DELETE /edge/match/{ticketId}`: cancels a ticket still searching; a settled one answers
/// its state (409 `ticket_settled`).
pub(crate) async fn cancel_match(
    State(edge): State<Arc<Edge>>,
    Path(ticket_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = edge.tickets.lock().unwrap().get(&ticket_id).map(|t| t.state.clone());
    match state {
        None => Err(unknown_ticket(&edge, &ticket_id)),
        Some(TicketState::Searching { .. }) => {
            let cancelled = MatchCancelled { ticket_id: ticket_id.clone() };
            write(&edge, EventBody::MatchCancelled(cancelled), "the cancellation").await?;
            Ok(Json(json!({ "ticketId": ticket_id, "status": "cancelled" })))
        }
        Some(settled) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "ticket_settled",
            format!(
                "ticket {ticket_id} is {} already",
                match settled {
                    TicketState::Matched { .. } => "matched",
                    TicketState::Cancelled => "cancelled",
                    _ => "expired",
                }
            ),
        )),
    }
}

/// `GET /edge/match`: how many players are searching, per region they could be matched in.
pub(crate) async fn searching(State(edge): State<Arc<Edge>>) -> Json<Value> {
    let counts = edge.tickets.lock().unwrap().searching_by_region(edge.config.match_max_latency_ms);
    Json(json!({ "searching": counts }))
}
