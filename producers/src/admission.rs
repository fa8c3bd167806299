//! Admission control: while the process is saturated, new players are refused up front
//! (503 `at_capacity` with `Retry-After`) so the players already playing keep their ticks on
//! time. Degrading everyone is the failure this prevents.
//!
//! Saturation is read from the [`ProcessLoad`] the process's working parts report to — in
//! `tickcast up`, every gateway (how late its event loop's timers fire, how old its fan-out
//! queues are) and the tick generator (how late it emits each session's newest step). The
//! process counts as saturated once lags over the gauge's threshold have lasted its `sustain`
//! in a row (a lone spike — a page fault, a log checkpoint — is not saturation), and stays so
//! until `hold` has passed without that: a load that just crossed the line is not re-admitted at
//! the first quiet millisecond, and `Retry-After` says when to ask again. A process serving
//! fewer than `min_players` is never saturated by its players: its lag has another cause (a
//! debug build, a busy neighbour), and refusing games would not cure it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use tickcast_schemas::load::ProcessLoad;

use crate::{ApiError, metrics};

/// How long after its start a process is not judged: starting (reading its log back, the
/// first connections, a browser opening beside it) lags without the process being full.
pub const STARTUP_GRACE: Duration = Duration::from_secs(10);

/// The edge's view of the process's load.
#[derive(Debug)]
pub struct Admission {
    load: Arc<ProcessLoad>,
    hold: Duration,
    /// Players the process must serve before its lag counts as saturation.
    min_players: u64,
    /// Epoch µs before which nothing is refused (`STARTUP_GRACE` after creation).
    judged_from_us: i64,
    /// Whether the last check refused, so the log says when refusing starts and stops, once.
    refusing: AtomicBool,
}

impl Admission {
    /// An admission judged from `STARTUP_GRACE` after `now_us` (epoch µs) on.
    #[must_use]
    pub fn new(load: Arc<ProcessLoad>, hold: Duration, min_players: u64, now_us: i64) -> Self {
        let judged_from_us = now_us + STARTUP_GRACE.as_micros() as i64;
        Self { load, hold, min_players, judged_from_us, refusing: AtomicBool::new(false) }
    }

    /// The refusal for a new game or player at `now_us` (epoch µs), if the process is saturated.
    pub(crate) fn check(&self, now_us: i64) -> Result<(), ApiError> {
        let since_us = (now_us - self.hold.as_micros() as i64).max(self.judged_from_us);
        let saturated = now_us >= self.judged_from_us
            && self.load.players() >= self.min_players
            && self.load.lag.sustained_since(since_us);
        if self.refusing.swap(saturated, Ordering::Relaxed) != saturated {
            metrics::saturated(saturated);
            if saturated {
                tracing::warn!(
                    threshold_ms = self.load.lag.threshold().as_millis() as u64,
                    sustain_ms = self.load.lag.sustain().as_millis() as u64,
                    hold_s = self.hold.as_secs(),
                    "the process is saturated: new games and players are refused (503 at_capacity)"
                );
            } else {
                tracing::info!("the process has capacity again: new games and players are admitted");
            }
        }
        if !saturated {
            return Ok(());
        }
        let retry_after_s = self.hold.as_secs().clamp(1, u64::from(u32::MAX)) as u32;
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "at_capacity",
            format!(
                "this server is at capacity (its own lag stayed over {} ms for {} ms within the last {} s); the games already running keep their players; retry in {retry_after_s} s",
                self.load.lag.threshold().as_millis(),
                self.load.lag.sustain().as_millis(),
                self.hold.as_secs()
            ),
        )
        .retry_after(retry_after_s))
    }
}

#[cfg(test)]
mod tests {
    use tickcast_schemas::load::LagGauge;

    use super::*;

    #[test]
    fn a_saturated_process_refuses_until_the_hold_has_passed() {
        let load = Arc::new(ProcessLoad::new(LagGauge::sustained(
            Duration::from_millis(25),
            Duration::from_millis(100),
        )));
        let gauge = &load.lag;
        load.player_joined();
        let start = 1_000_000_000_000;
        let admission = Admission::new(Arc::clone(&load), Duration::from_secs(3), 1, start);
        // A start's lag is not judged, now or later.
        gauge.report(Duration::from_millis(900), start + 1_000_000);
        assert!(admission.check(start + 1_000_000).is_ok(), "within the startup grace");
        assert!(
            admission.check(start + 10_000_000).is_ok(),
            "a lag from the startup grace is not held against it"
        );
        let t0 = start + 20_000_000;
        assert!(admission.check(t0).is_ok(), "never lagged");
        gauge.report(Duration::from_millis(10), t0);
        assert!(admission.check(t0).is_ok(), "under the threshold");
        gauge.report(Duration::from_millis(40), t0);
        assert!(admission.check(t0).is_ok(), "one spike is not saturation");
        gauge.report(Duration::from_millis(150), t0);
        let refused = admission.check(t0 + 1_000).unwrap_err();
        assert_eq!(
            (refused.status, refused.code, refused.retry_after_s),
            (StatusCode::SERVICE_UNAVAILABLE, "at_capacity", Some(3))
        );
        assert!(admission.check(t0 + 2_999_999).is_err(), "still within the hold");
        assert!(admission.check(t0 + 3_000_001).is_ok(), "the hold has passed without another lag");
        // With no players, a lag is not the players' load.
        gauge.report(Duration::from_millis(150), t0 + 4_000_000);
        assert!(admission.check(t0 + 4_000_001).is_err());
        load.player_left();
        assert!(admission.check(t0 + 4_000_002).is_ok(), "nobody to protect, nobody refused");
    }
}
