//! Metric names of the processors, in one place.

use metrics::{Counter, Histogram, counter, gauge, histogram};

/// Ticks written, by region and topic.
pub(crate) const TICKS_EMITTED: &str = "tickcast_ticks_emitted_total";
/// emittedAt − scheduledAt of each tick, in ms, by region: how late the generator woke up.
pub(crate) const TICK_LATENESS_MS: &str = "tickcast_tick_generator_lateness_ms";
/// Rows the archiver wrote into Parquet files, by kind (ticks, sessions, players, latency…).
pub(crate) const ARCHIVER_ROWS: &str = "tickcast_archiver_rows_total";
/// Parquet files the archiver closed (durably, in place), by kind.
pub(crate) const ARCHIVER_FILES: &str = "tickcast_archiver_files_total";
/// Age of the newest event the projector has written to its store, ms: how far the
/// projections (and the read API) are behind the log.
pub(crate) const PROJECTOR_LAG_MS: &str = "tickcast_projector_lag_ms";
/// Players counted as gone because their gateway fell silent (`player_left` `gateway_lost`).
pub(crate) const PLAYERS_LOST: &str = "tickcast_players_gateway_lost_total";
/// Records the embedded log's retention deleted, by topic.
pub(crate) const RECORDS_DELETED: &str = "tickcast_log_records_deleted_total";
/// Events the projector folded into its store.
pub(crate) const PROJECTOR_EVENTS: &str = "tickcast_projector_events_total";
/// Sessions the generator is running.
pub(crate) const SESSIONS_ACTIVE: &str = "tickcast_sessions_active";
/// Sessions ended, by reason.
pub(crate) const SESSIONS_ENDED: &str = "tickcast_sessions_ended_total";
/// Pace changes of adaptive sessions, by region and reason (`latency`, `load`).
pub(crate) const PACE_CHANGES: &str = "tickcast_pace_changes_total";
/// Match tickets searching (read by the active matchmaker, not yet matched or settled).
pub(crate) const MATCH_SEARCHING: &str = "tickcast_match_tickets_searching";
/// Matches formed, by region.
pub(crate) const MATCHES_FORMED: &str = "tickcast_matches_formed_total";
/// How long a matched ticket waited, ms.
pub(crate) const MATCH_WAIT_MS: &str = "tickcast_match_wait_ms";
/// Tickets that waited out the timeout.
pub(crate) const MATCH_EXPIRED: &str = "tickcast_match_tickets_expired_total";
/// Events of unknown type or version, skipped.
pub(crate) const EVENTS_UNKNOWN: &str = "tickcast_events_unknown_total";

/// The series of one region's sessions, made once per session (a tick records without building
/// labels).
#[derive(Debug, Clone)]
pub(crate) struct RegionSeries {
    ticks: Counter,
    lateness: Histogram,
}

impl RegionSeries {
    pub(crate) fn new(region: &str, topic: &str) -> Self {
        Self {
            ticks: counter!(TICKS_EMITTED, "region" => region.to_owned(), "topic" => topic.to_owned()),
            lateness: histogram!(TICK_LATENESS_MS, "region" => region.to_owned()),
        }
    }

    pub(crate) fn tick(&self, lateness_ms: i64) {
        self.ticks.increment(1);
        self.lateness.record(lateness_ms as f64);
    }
}

/// The tick generator's series at zero, before anything happens: `regions`' ticks and
/// lateness, the sessions running and ended, the players lost, the records it appends.
pub(crate) fn expose_generator(regions: &[String]) {
    let mut topics = vec![tickcast_schemas::topics::GAME_EVENTS.to_owned()];
    for region in regions {
        let topic = tickcast_schemas::topics::ticks(region);
        RegionSeries::new(region, &topic);
        topics.push(topic);
    }
    tickcast_eventlog::metrics::expose_appends(&topics);
    sessions_active(0);
    for reason in ["max_rounds", "idle", "ended_by_api"] {
        counter!(SESSIONS_ENDED, "reason" => reason).increment(0);
    }
    players_lost(0);
    for region in regions {
        for reason in ["latency", "load"] {
            counter!(PACE_CHANGES, "region" => region.clone(), "reason" => reason).increment(0);
        }
    }
}

pub(crate) fn pace_changed(region: &str, reason: tickcast_schemas::event::PaceReason) {
    counter!(PACE_CHANGES, "region" => region.to_owned(), "reason" => reason.as_str()).increment(1);
}

/// The matchmaker's series at zero, before its first ticket.
pub(crate) fn expose_matchmaker() {
    tickets_searching(0);
    tickets_expired(0);
    counter!(MATCHES_FORMED).increment(0);
    // Registered: rendered with no observation yet.
    let _ = histogram!(MATCH_WAIT_MS);
}

pub(crate) fn tickets_searching(count: usize) {
    gauge!(MATCH_SEARCHING).set(count as f64);
}

pub(crate) fn tickets_expired(count: usize) {
    counter!(MATCH_EXPIRED).increment(count as u64);
}

pub(crate) fn match_formed(region: &str) {
    counter!(MATCHES_FORMED, "region" => region.to_owned()).increment(1);
}

pub(crate) fn match_waited(ms: i64) {
    histogram!(MATCH_WAIT_MS).record(ms.max(0) as f64);
}

/// The projector's series at zero, before its first batch.
pub(crate) fn expose_projector() {
    counter!(PROJECTOR_EVENTS).increment(0);
    gauge!(PROJECTOR_LAG_MS).set(0.0);
}

pub(crate) fn archived_rows(kind: &'static str, rows: usize) {
    counter!(ARCHIVER_ROWS, "kind" => kind).increment(rows as u64);
}

pub(crate) fn archive_files_closed(kind: &'static str, files: u64) {
    counter!(ARCHIVER_FILES, "kind" => kind).increment(files);
}

pub(crate) fn projected(events: usize, newest_timestamp_ms: i64, now_ms: i64) {
    counter!(PROJECTOR_EVENTS).increment(events as u64);
    gauge!(PROJECTOR_LAG_MS).set((now_ms - newest_timestamp_ms).max(0) as f64);
}

pub(crate) fn sessions_active(count: usize) {
    gauge!(SESSIONS_ACTIVE).set(count as f64);
}

pub(crate) fn session_ended(reason: tickcast_schemas::event::EndReason) {
    let reason = match reason {
        tickcast_schemas::event::EndReason::MaxRounds => "max_rounds",
        tickcast_schemas::event::EndReason::Idle => "idle",
        tickcast_schemas::event::EndReason::EndedByApi => "ended_by_api",
    };
    counter!(SESSIONS_ENDED, "reason" => reason).increment(1);
}

pub(crate) fn unknown_event() {
    counter!(EVENTS_UNKNOWN, "role" => "tick-generator").increment(1);
}

pub(crate) fn records_deleted(topic: &str, records: u64) {
    counter!(RECORDS_DELETED, "topic" => topic.to_owned()).increment(records);
}

pub(crate) fn players_lost(players: usize) {
    counter!(PLAYERS_LOST).increment(players as u64);
}
