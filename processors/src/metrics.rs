//! Metric names of the processors, in one place.

use metrics::{counter, gauge, histogram};

/// Ticks written, by topic.
pub(crate) const TICKS_EMITTED: &str = "tickcast_ticks_emitted_total";
/// emittedAt − scheduledAt of each tick, in ms: how late the generator woke up.
pub(crate) const TICK_LATENESS_MS: &str = "tickcast_tick_generator_lateness_ms";
/// Sessions the generator is running.
pub(crate) const SESSIONS_ACTIVE: &str = "tickcast_sessions_active";
/// Sessions ended, by reason.
pub(crate) const SESSIONS_ENDED: &str = "tickcast_sessions_ended_total";
/// Events of unknown type or version, skipped.
pub(crate) const EVENTS_UNKNOWN: &str = "tickcast_events_unknown_total";

pub(crate) fn ticks_emitted(topic: &str, count: u64) {
    counter!(TICKS_EMITTED, "topic" => topic.to_owned()).increment(count);
}

pub(crate) fn tick_lateness(lateness_ms: i64) {
    histogram!(TICK_LATENESS_MS).record(lateness_ms as f64);
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
