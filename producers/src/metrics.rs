//! Metric names of the edge, in one place.

use metrics::{counter, gauge};

/// Sessions created, by region.
pub(crate) const SESSIONS_CREATED: &str = "tickcast_edge_sessions_created_total";
/// Requests refused, by error code.
pub(crate) const REQUESTS_REFUSED: &str = "tickcast_edge_requests_refused_total";

/// 1 while the edge refuses new games because the process is saturated, else 0.
pub(crate) const SATURATED: &str = "tickcast_edge_saturated";

/// The edge's series at zero, before the first request: a dashboard shows 0, not "no data".
pub(crate) fn expose(regions: &[String]) {
    for region in regions {
        counter!(SESSIONS_CREATED, "region" => region.clone()).increment(0);
    }
    saturated(false);
    counter!(MATCHES_REQUESTED).increment(0);
    tickcast_eventlog::metrics::expose_appends(&[tickcast_schemas::topics::GAME_EVENTS.to_owned()]);
}

pub(crate) fn saturated(saturated: bool) {
    gauge!(SATURATED).set(f64::from(u8::from(saturated)));
}

/// Games refused because their client address started too many in a minute (`by=address`) or
/// their userId has too many running (`by=user`).
pub(crate) const GAMES_RATE_LIMITED: &str = "tickcast_edge_games_rate_limited_total";

pub(crate) fn game_rate_limited(by: &'static str) {
    counter!(GAMES_RATE_LIMITED, "by" => by).increment(1);
}

/// Match tickets requested at this edge.
pub(crate) const MATCHES_REQUESTED: &str = "tickcast_edge_match_requests_total";

pub(crate) fn match_requested() {
    counter!(MATCHES_REQUESTED).increment(1);
}

pub(crate) fn session_created(region: &str) {
    counter!(SESSIONS_CREATED, "region" => region.to_owned()).increment(1);
}

pub(crate) fn request_refused(code: &'static str) {
    counter!(REQUESTS_REFUSED, "code" => code).increment(1);
}

/// Players admitted to games that have not ended, and the ticks a second they take.
pub(crate) const PLAYERS_ADMITTED: &str = "tickcast_edge_players_admitted";
pub(crate) const TICKS_ADMITTED: &str = "tickcast_edge_admitted_ticks_per_second";

pub(crate) fn admitted(players: u64, ticks_per_s: f64) {
    gauge!(PLAYERS_ADMITTED).set(players as f64);
    gauge!(TICKS_ADMITTED).set(ticks_per_s);
}
