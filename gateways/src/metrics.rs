//! Metric names of the gateway, in one place.

use metrics::{counter, gauge};

/// Players joined and connected now, by region.
pub(crate) const PLAYERS_CONNECTED: &str = "tickcast_gateway_players_connected";
/// Frames handed to player outboxes (ticks, countdowns, ends), by region.
pub(crate) const FRAMES_FORWARDED: &str = "tickcast_gateway_frames_forwarded_total";
/// Players disconnected because their outbox was full.
pub(crate) const PLAYERS_TOO_SLOW: &str = "tickcast_gateway_players_too_slow_total";
/// Players kicked by the latency policy.
pub(crate) const PLAYERS_KICKED: &str = "tickcast_gateway_players_kicked_total";
/// Error frames sent to clients, by code.
pub(crate) const CLIENT_ERRORS: &str = "tickcast_gateway_client_errors_total";
/// Player events that could not be queued for the log.
pub(crate) const EVENTS_DROPPED: &str = "tickcast_gateway_events_dropped_total";
/// The gateway's own lag (event loop, shard queues), worst per probe period, ms, by region.
pub(crate) const GATEWAY_LAG_MS: &str = "tickcast_gateway_lag_ms";
/// RTT samples measured while the gateway lagged, and so not judged.
/// Upgrades refused by the socket limits, by `reason` (address_full, process_full).
pub(crate) const SOCKETS_REFUSED: &str = "tickcast_gateway_sockets_refused_total";

pub(crate) fn socket_refused(reason: &'static str) {
    counter!(SOCKETS_REFUSED, "reason" => reason).increment(1);
}

/// Upgraded sockets closed because they did not join within the join timeout.
pub(crate) const JOIN_TIMEOUTS: &str = "tickcast_gateway_join_timeouts_total";

pub(crate) fn join_timed_out() {
    counter!(JOIN_TIMEOUTS).increment(1);
}

pub(crate) const SAMPLES_NOT_JUDGED: &str = "tickcast_gateway_latency_samples_not_judged_total";
/// Records of unknown type or version, skipped.
pub(crate) const EVENTS_UNKNOWN: &str = "tickcast_events_unknown_total";

pub(crate) fn player_joined(region: &str) {
    gauge!(PLAYERS_CONNECTED, "region" => region.to_owned()).increment(1.0);
}

pub(crate) fn player_left(region: &str) {
    gauge!(PLAYERS_CONNECTED, "region" => region.to_owned()).decrement(1.0);
}

pub(crate) fn frames_forwarded(region: &str, count: usize) {
    counter!(FRAMES_FORWARDED, "region" => region.to_owned()).increment(count as u64);
}

pub(crate) fn players_too_slow(count: usize) {
    counter!(PLAYERS_TOO_SLOW).increment(count as u64);
}

pub(crate) fn player_kicked() {
    counter!(PLAYERS_KICKED).increment(1);
}

pub(crate) fn client_error(code: tickcast_schemas::protocol::ErrorCode) {
    let code =
        serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    counter!(CLIENT_ERRORS, "code" => code).increment(1);
}

pub(crate) fn event_dropped() {
    counter!(EVENTS_DROPPED).increment(1);
}

pub(crate) fn unknown_event() {
    counter!(EVENTS_UNKNOWN, "role" => "gateway").increment(1);
}

pub(crate) fn gateway_lag(region: &str, lag_ms: f64) {
    gauge!(GATEWAY_LAG_MS, "region" => region.to_owned()).set(lag_ms);
}

pub(crate) fn sample_not_judged() {
    counter!(SAMPLES_NOT_JUDGED).increment(1);
}
