//! Admission control: while the process is saturated, new players are refused up front
//! (503 `at_capacity` with `Retry-After`) so the players already playing keep their ticks on
//! time. Degrading everyone is the failure this prevents.
//!
//! Saturation is read from a [`LagGauge`] the process's working parts report to — in
//! `tickcast up`, every gateway (how late its event loop's timers fire, how old its fan-out
//! queues are) and the tick generator (how late it emits each session's newest step). The
//! process counts as saturated once lags over the gauge's threshold have lasted its `sustain`
//! in a row (a lone spike — a page fault, a log checkpoint — is not saturation), and stays so
//! until `hold` has passed without that: a load that just crossed the line is not re-admitted at
//! the first quiet millisecond, and `Retry-After` says when to ask again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use tickcast_schemas::load::LagGauge;

use crate::{ApiError, metrics};

/// The edge's view of the process's load.
#[derive(Debug)]
pub struct Admission {
    gauge: Arc<LagGauge>,
    hold: Duration,
    /// Whether the last check refused, so the log says when refusing starts and stops, once.
    refusing: AtomicBool,
}

impl Admission {
    #[must_use]
    pub const fn new(gauge: Arc<LagGauge>, hold: Duration) -> Self {
        Self { gauge, hold, refusing: AtomicBool::new(false) }
    }

    /// The refusal for a new game or player at `now_us` (epoch µs), if the process is saturated.
    pub(crate) fn check(&self, now_us: i64) -> Result<(), ApiError> {
        let saturated = self.gauge.sustained_since(now_us - self.hold.as_micros() as i64);
        if self.refusing.swap(saturated, Ordering::Relaxed) != saturated {
            metrics::saturated(saturated);
            if saturated {
                tracing::warn!(
                    threshold_ms = self.gauge.threshold().as_millis() as u64,
                    sustain_ms = self.gauge.sustain().as_millis() as u64,
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
                self.gauge.threshold().as_millis(),
                self.gauge.sustain().as_millis(),
                self.hold.as_secs()
            ),
        )
        .retry_after(retry_after_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saturated_process_refuses_until_the_hold_has_passed() {
        let gauge = Arc::new(LagGauge::sustained(Duration::from_millis(25), Duration::from_millis(100)));
        let admission = Admission::new(Arc::clone(&gauge), Duration::from_secs(3));
        let t0 = 1_000_000_000_000;
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
    }
}
