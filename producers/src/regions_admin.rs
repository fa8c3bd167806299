//! The operator's endpoints (docs/operations.md, "Draining a region"): `POST
//! /admin/regions/{region}/drain` and `/restore`, with `Authorization: Bearer
//! <TICKCAST_ADMIN_TOKEN>`. Without an admin token configured, every `/admin/*` path answers
//! 404, as if there were none. A drain or a restore is an event in `game-events`
//! (`region_drained`, `region_restored`), written durably before the answer: every edge folds
//! it into its router, and the tick generators move the drained region's running games.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use tickcast_eventlog::{Durability, EventLog, NewRecord, StartFrom};
use tickcast_schemas::event::{DrainReason, Event, EventBody, RegionDrained, RegionRestored};
use tickcast_schemas::region_events::{RegionStates, region_key};
use tickcast_schemas::topics::GAME_EVENTS;

use crate::handlers::{header, log_refused};
use crate::{ApiError, Edge, now_ms};

/// Every `/admin/*` path the edge does not serve: 404, whether or not an admin token is set.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint")
}

pub(crate) async fn drain(
    State(edge): State<Arc<Edge>>,
    Path(region): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&edge, &headers)?;
    edge.drain_region(&region, DrainReason::Operator).await.map(Json)
}

pub(crate) async fn restore(
    State(edge): State<Arc<Edge>>,
    Path(region): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&edge, &headers)?;
    edge.restore_region(&region).await.map(Json)
}

/// The request carries the admin token. Both sides are hashed before they are compared, so
/// the time the comparison takes says nothing about the token.
fn authorize(edge: &Edge, headers: &HeaderMap) -> Result<(), ApiError> {
    use sha2::{Digest, Sha256};
    let expected = edge.config.admin_token.as_deref().unwrap_or_default();
    let given = header(headers, "authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
    if expected.is_empty() || Sha256::digest(given.as_bytes()) != Sha256::digest(expected.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <TICKCAST_ADMIN_TOKEN>",
        ));
    }
    Ok(())
}

impl Edge {
    /// Drains `region` (new games avoid it, its running games move): the answer of the drain
    /// endpoint. Draining a drained region writes nothing more and answers the same.
    pub async fn drain_region(
        &self,
        region: &str,
        reason: DrainReason,
    ) -> Result<serde_json::Value, ApiError> {
        {
            let router = self.router.read().unwrap();
            known(&router, region)?;
            let others_active =
                router.regions().iter().any(|r| r.id != region && router.drained(&r.id).is_none());
            if router.drained(region).is_none() && !others_active {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "last_region",
                    format!("{region} is the last active region: restore another before draining it"),
                ));
            }
        }
        if self.router.read().unwrap().drained(region).is_none() {
            let body = EventBody::RegionDrained(RegionDrained { region: region.to_owned(), reason });
            self.write_region_event(region, body).await?;
        }
        let moving = self.directory.lock().unwrap().running_in(region);
        Ok(serde_json::json!({ "region": region, "state": "drained", "sessionsMoving": moving }))
    }

    /// Restores `region` (new games may go there again; games that moved stay where they are).
    pub async fn restore_region(&self, region: &str) -> Result<serde_json::Value, ApiError> {
        let drained = {
            let router = self.router.read().unwrap();
            known(&router, region)?;
            router.drained(region).is_some()
        };
        if drained {
            let body = EventBody::RegionRestored(RegionRestored { region: region.to_owned() });
            self.write_region_event(region, body).await?;
        }
        Ok(serde_json::json!({ "region": region, "state": "active", "sessionsMoving": 0 }))
    }

    /// Writes a region event durably, and folds it into this edge's router at once (the log
    /// brings it to every other edge).
    async fn write_region_event(&self, region: &str, body: EventBody) -> Result<(), ApiError> {
        let now = now_ms();
        let event = Event::new("", now, format!("edge@{}", self.config.instance), body);
        let record =
            NewRecord { key: region_key(region), timestamp_ms: now, payload: event.to_bytes().into() };
        self.log.append(GAME_EVENTS, vec![record], Durability::Durable).await.map_err(|error| {
            tracing::error!(%error, region, "could not log a region's new state");
            log_refused(&error, "the region's new state")
        })?;
        self.router.write().unwrap().apply(&event.body);
        tracing::info!(region, kind = event.kind(), "region state changed");
        Ok(())
    }
}

/// The regions' states, folded from every region event `game-events` holds (a drain is kept
/// for as long as the log keeps its event).
pub async fn region_states(log: &dyn EventLog) -> Result<RegionStates, tickcast_eventlog::Error> {
    let mut states = RegionStates::default();
    let mut scan = log.scan(GAME_EVENTS, StartFrom::Beginning).await?;
    while let Some(records) = scan.next_batch().await? {
        for record in records {
            if matches!(Event::peek_type(&record.payload), Some("region_drained" | "region_restored"))
                && let Ok(event) = Event::from_bytes(&record.payload)
            {
                states.apply(&event.body);
            }
        }
    }
    Ok(states)
}

fn known(router: &crate::routing::RegionRouter, region: &str) -> Result<(), ApiError> {
    if router.get(region).is_none() {
        let ids: Vec<&str> = router.regions().iter().map(|r| r.id.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unknown_region",
            format!("no region {region:?}; the regions are {}", ids.join(", ")),
        ));
    }
    Ok(())
}
