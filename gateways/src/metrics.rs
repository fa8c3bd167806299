//! Metric names of the gateway, in one place.

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use tickcast_schemas::event::LatencyStatus;

/// Players joined and connected now, by region and latency state (`ok`, `warning`).
pub(crate) const PLAYERS_CONNECTED: &str = "tickcast_gateway_players_connected";
/// Frames handed to player outboxes (ticks, countdowns, ends), by region.
pub(crate) const FRAMES_FORWARDED: &str = "tickcast_gateway_frames_forwarded_total";
/// Frames discarded unsent: queued for a player dropped as too slow, by region.
pub(crate) const FRAMES_DROPPED: &str = "tickcast_gateway_frames_dropped_total";
/// When the gateway handed a tick to its players' sockets − the tick's scheduledAt, ms, by
/// region: the lateness players see, less the network.
pub(crate) const TICK_LATENESS_MS: &str = "tickcast_gateway_tick_lateness_ms";
/// Each RTT sample, ms, by region.
pub(crate) const RTT_MS: &str = "tickcast_gateway_rtt_ms";
/// Bytes queued for sockets that did not take them at once, by region (sampled each second).
pub(crate) const SEND_QUEUE_BYTES: &str = "tickcast_gateway_send_queue_bytes";
/// Latency warnings sent (`status=warning`) and lifted (`status=ok`), by region.
pub(crate) const LATENCY_WARNINGS: &str = "tickcast_gateway_latency_warnings_total";
/// Players disconnected because their outbox was full.
pub(crate) const PLAYERS_TOO_SLOW: &str = "tickcast_gateway_players_too_slow_total";
/// Players kicked, by region and reason (`latency`).
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

/// One gateway's series, made once (labelled by its region): the fan-out and every connection
/// record into them without building labels per tick or sample.
#[derive(Debug, Clone)]
pub(crate) struct GatewaySeries {
    players_ok: Gauge,
    players_warned: Gauge,
    pub(crate) frames_forwarded: Counter,
    pub(crate) frames_dropped: Counter,
    pub(crate) tick_lateness: Histogram,
    pub(crate) rtt: Histogram,
    pub(crate) send_queue: Gauge,
    warned: Counter,
    recovered: Counter,
    kicked_latency: Counter,
}

impl GatewaySeries {
    pub(crate) fn new(region: &str) -> Self {
        let r = || region.to_owned();
        Self {
            players_ok: gauge!(PLAYERS_CONNECTED, "region" => r(), "state" => "ok"),
            players_warned: gauge!(PLAYERS_CONNECTED, "region" => r(), "state" => "warning"),
            frames_forwarded: counter!(FRAMES_FORWARDED, "region" => r()),
            frames_dropped: counter!(FRAMES_DROPPED, "region" => r()),
            tick_lateness: histogram!(TICK_LATENESS_MS, "region" => r()),
            rtt: histogram!(RTT_MS, "region" => r()),
            send_queue: gauge!(SEND_QUEUE_BYTES, "region" => r()),
            warned: counter!(LATENCY_WARNINGS, "region" => r(), "status" => "warning"),
            recovered: counter!(LATENCY_WARNINGS, "region" => r(), "status" => "ok"),
            kicked_latency: counter!(PLAYERS_KICKED, "region" => r(), "reason" => "latency"),
        }
    }

    const fn players(&self, status: LatencyStatus) -> &Gauge {
        match status {
            LatencyStatus::Ok => &self.players_ok,
            LatencyStatus::Warning => &self.players_warned,
        }
    }

    pub(crate) fn player_joined(&self) {
        self.players_ok.increment(1.0);
    }

    pub(crate) fn player_left(&self, status: LatencyStatus) {
        self.players(status).decrement(1.0);
    }

    /// A player's latency status went from `from` to `to` (a warning sent or lifted).
    pub(crate) fn status_changed(&self, from: LatencyStatus, to: LatencyStatus) {
        self.players(from).decrement(1.0);
        self.players(to).increment(1.0);
        match to {
            LatencyStatus::Warning => self.warned.increment(1),
            LatencyStatus::Ok => self.recovered.increment(1),
        }
    }

    pub(crate) fn kicked_for_latency(&self) {
        self.kicked_latency.increment(1);
    }
}

pub(crate) fn players_too_slow(count: usize) {
    counter!(PLAYERS_TOO_SLOW).increment(count as u64);
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
