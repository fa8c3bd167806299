//! How far behind the gateway's own work runs: its event loop (how late its timers fire) and
//! its shards' queues (how old a command is when a shard gets to it). While the gateway itself
//! lags, the round trips it measures may hold its own delay, so the latency policy judges no
//! one (`lagged_since`); overload is for admission control, not for kicks.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{metrics, now_us};

/// How often the event-loop probe wakes.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// The gateway's lag, shared by its probe, its shards and its connections.
#[derive(Debug)]
pub(crate) struct GatewayLag {
    /// Lag above this means the gateway's own delay could be mistaken for a player's.
    threshold_us: i64,
    /// The last instant (epoch µs) a lag above the threshold was seen; `i64::MIN` for never.
    lagging_at_us: AtomicI64,
    /// The largest lag (µs) reported since the probe last published it.
    worst_us: AtomicI64,
}

impl GatewayLag {
    pub(crate) const fn new(threshold: Duration) -> Self {
        Self {
            threshold_us: threshold.as_micros() as i64,
            lagging_at_us: AtomicI64::new(i64::MIN),
            worst_us: AtomicI64::new(0),
        }
    }

    /// Some part of the gateway ran `lag` late.
    pub(crate) fn report(&self, lag: Duration) {
        let lag_us = lag.as_micros() as i64;
        self.worst_us.fetch_max(lag_us, Ordering::Relaxed);
        if lag_us > self.threshold_us {
            self.lagging_at_us.fetch_max(now_us(), Ordering::Relaxed);
        }
    }

    /// Whether the gateway lagged at any time from `since_us` (epoch µs) on, or within a probe
    /// period before it (a stall is seen only when it ends).
    pub(crate) fn lagged_since(&self, since_us: i64) -> bool {
        let margin = PROBE_EVERY.as_micros() as i64 * 2;
        self.lagging_at_us.load(Ordering::Relaxed) >= since_us.saturating_sub(margin)
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
            let now_lagging = self.lagged_since(now_us());
            if now_lagging && !lagging {
                tracing::warn!(
                    region,
                    lag_ms = worst_us / 1000,
                    threshold_ms = self.threshold_us / 1000,
                    "the gateway is lagging: latency samples are not judged (nobody is warned or kicked) until it catches up"
                );
            } else if lagging && !now_lagging {
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
        let lag = GatewayLag::new(Duration::from_millis(50));
        let before = now_us();
        lag.report(Duration::from_millis(10));
        assert!(!lag.lagged_since(before), "under the threshold");
        lag.report(Duration::from_millis(600));
        assert!(lag.lagged_since(before));
        assert!(!lag.lagged_since(now_us() + 10_000_000), "not in the future");
    }
}
