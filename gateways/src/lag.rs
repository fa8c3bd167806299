//! How far behind the gateway's own work runs: its event loop (how late its timers fire) and
//! its shards' queues (how old a command is when a shard gets to it). While the gateway itself
//! lags, the round trips it measures may hold its own delay, so the latency policy judges no
//! one (`lagged_since`); overload is for admission control, not for kicks.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tickcast_schemas::load::{LagGauge, ProcessLoad};

use tokio_util::sync::CancellationToken;

use crate::{metrics, now_us};

/// How often the event-loop probe wakes.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// When a probe of this process last said in the log that it started lagging, and that it
/// caught up (epoch µs). The gateways of one process (`tickcast up` runs one per region) share
/// its event loop and see the same lag: one line per change is enough, whichever gateway sees it
/// first.
static LAST_LAGGING_SAID_US: AtomicI64 = AtomicI64::new(i64::MIN);
static LAST_CAUGHT_UP_SAID_US: AtomicI64 = AtomicI64::new(i64::MIN);

/// Whether this probe should say a change in the log: none of the process's other probes said
/// the same within the last few periods.
fn first_to_say(last_said_us: &AtomicI64, now_us: i64) -> bool {
    let quiet_us = PROBE_EVERY.as_micros() as i64 * 4;
    let last = last_said_us.load(Ordering::Relaxed);
    now_us.saturating_sub(last) > quiet_us
        && last_said_us.compare_exchange(last, now_us, Ordering::Relaxed, Ordering::Relaxed).is_ok()
}

/// The gateway's lag, shared by its probe, its shards and its connections.
#[derive(Debug)]
pub(crate) struct GatewayLag {
    /// Lag above its threshold means the gateway's own delay could be mistaken for a player's.
    judging: LagGauge,
    /// The process's saturation gauge (`tickcast up`: read by the edge to refuse new games),
    /// told every lag this gateway sees.
    saturation: Option<Arc<ProcessLoad>>,
    /// The largest lag (µs) reported since the probe last published it.
    worst_us: AtomicI64,
}

impl GatewayLag {
    pub(crate) const fn new(threshold: Duration, saturation: Option<Arc<ProcessLoad>>) -> Self {
        Self { judging: LagGauge::new(threshold), saturation, worst_us: AtomicI64::new(0) }
    }

    /// Some part of the gateway ran `lag` late.
    pub(crate) fn report(&self, lag: Duration) {
        let now = now_us();
        self.worst_us.fetch_max(lag.as_micros() as i64, Ordering::Relaxed);
        self.judging.report(lag, now);
        if let Some(saturation) = &self.saturation {
            saturation.lag.report(lag, now);
        }
    }

    /// Whether the gateway lagged at any time from `since_us` (epoch µs) on, or within a probe
    /// period before it (a stall is seen only when it ends).
    pub(crate) fn lagged_since(&self, since_us: i64) -> bool {
        let margin = PROBE_EVERY.as_micros() as i64 * 2;
        self.judging.over_since(since_us.saturating_sub(margin))
    }

    /// Measures the event loop until `stop`: how late each timer fires. Publishes the worst lag
    /// of each period as a metric, and says in the log when the gateway starts and stops
    /// lagging.
    pub(crate) async fn probe(&self, region: &str, stop: CancellationToken) {
        let mut every = tokio::time::interval(PROBE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut lagging = false;
        while let Some(scheduled) = stop.run_until_cancelled(every.tick()).await {
            self.report(scheduled.elapsed());
            let worst_us = self.worst_us.swap(0, Ordering::Relaxed);
            metrics::gateway_lag(region, worst_us as f64 / 1000.0);
            let now = now_us();
            let now_lagging = self.lagged_since(now);
            if now_lagging && !lagging && first_to_say(&LAST_LAGGING_SAID_US, now) {
                tracing::warn!(
                    region,
                    lag_ms = worst_us / 1000,
                    threshold_ms = self.judging.threshold().as_millis() as u64,
                    "the gateway is lagging: latency samples are not judged (nobody is warned or kicked) until it catches up"
                );
            } else if lagging && !now_lagging && first_to_say(&LAST_CAUGHT_UP_SAID_US, now) {
                tracing::info!(region, "the gateway caught up: latency samples are judged again");
            }
            lagging = now_lagging;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lag_over_the_threshold_marks_the_time_since() {
        let lag = GatewayLag::new(Duration::from_millis(50), None);
        let before = now_us();
        lag.report(Duration::from_millis(10));
        assert!(!lag.lagged_since(before), "under the threshold");
        lag.report(Duration::from_millis(600));
        assert!(lag.lagged_since(before));
        assert!(!lag.lagged_since(now_us() + 10_000_000), "not in the future");
    }
}
