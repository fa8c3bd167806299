//! The latency policy (docs/protocol.md, "Latency"), sans I/O: RTT samples in, a status or a kick out.

use std::collections::VecDeque;

use tickcast_schemas::event::LatencyStatus;

/// Thresholds, named as in the original design's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyPolicy {
    /// `MAX_LATENCY_MS`: average RTT above this kicks.
    pub max_latency_ms: u64,
    /// `MAX_JITTER_MS`: jitter above this kicks.
    pub max_jitter_ms: u64,
    /// `WARNING_LATENCY_MS`: average RTT above this warns.
    pub warning_latency_ms: u64,
    /// `WARNING_JITTER_MS`: jitter above this warns.
    pub warning_jitter_ms: u64,
    /// `LATENCY_SAMPLES`: samples in the window; nothing is judged before the window is full.
    pub samples: usize,
}

impl Default for LatencyPolicy {
    fn default() -> Self {
        Self {
            max_latency_ms: 150,
            max_jitter_ms: 50,
            warning_latency_ms: 100,
            warning_jitter_ms: 30,
            samples: 5,
        }
    }
}

/// What the monitor decided after a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed.
    Unchanged,
    /// The status changed (ok → warning or back).
    Status { status: LatencyStatus, avg_rtt_ms: u64, jitter_ms: u64 },
    /// Over the kick thresholds.
    Kick { avg_rtt_ms: u64, jitter_ms: u64 },
}

/// One player's sliding window of RTT samples.
#[derive(Debug, Clone)]
pub struct LatencyMonitor {
    policy: LatencyPolicy,
    window: VecDeque<u64>,
    status: LatencyStatus,
}

impl LatencyMonitor {
    #[must_use]
    pub fn new(policy: LatencyPolicy) -> Self {
        Self { policy, window: VecDeque::with_capacity(policy.samples), status: LatencyStatus::Ok }
    }

    #[must_use]
    pub const fn status(&self) -> LatencyStatus {
        self.status
    }

    /// Average and population standard deviation of the window, rounded to whole ms.
    #[must_use]
    pub fn stats(&self) -> (u64, u64) {
        if self.window.is_empty() {
            return (0, 0);
        }
        let n = self.window.len() as f64;
        let mean = self.window.iter().sum::<u64>() as f64 / n;
        let variance = self.window.iter().map(|&s| (s as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean.round() as u64, variance.sqrt().round() as u64)
    }

    /// Adds one RTT sample and judges the window.
    pub fn sample(&mut self, rtt_ms: u64) -> Verdict {
        if self.window.len() == self.policy.samples.max(1) {
            self.window.pop_front();
        }
        self.window.push_back(rtt_ms);
        if self.window.len() < self.policy.samples {
            return Verdict::Unchanged;
        }
        let (avg_rtt_ms, jitter_ms) = self.stats();
        let p = &self.policy;
        if avg_rtt_ms > p.max_latency_ms || jitter_ms > p.max_jitter_ms {
            return Verdict::Kick { avg_rtt_ms, jitter_ms };
        }
        let status = if avg_rtt_ms > p.warning_latency_ms || jitter_ms > p.warning_jitter_ms {
            LatencyStatus::Warning
        } else {
            LatencyStatus::Ok
        };
        if status == self.status {
            return Verdict::Unchanged;
        }
        self.status = status;
        Verdict::Status { status, avg_rtt_ms, jitter_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(monitor: &mut LatencyMonitor, samples: &[u64]) -> Vec<Verdict> {
        samples.iter().map(|&s| monitor.sample(s)).collect()
    }

    #[test]
    fn nothing_is_judged_before_the_window_is_full() {
        let mut m = LatencyMonitor::new(LatencyPolicy::default());
        assert!(feed(&mut m, &[900, 900, 900, 900]).iter().all(|v| *v == Verdict::Unchanged));
        assert!(matches!(m.sample(900), Verdict::Kick { avg_rtt_ms: 900, jitter_ms: 0 }));
    }

    #[test]
    fn warns_then_recovers_on_average_rtt() {
        let mut m = LatencyMonitor::new(LatencyPolicy::default());
        let verdicts = feed(&mut m, &[120, 120, 120, 120, 120]);
        assert_eq!(
            verdicts[4],
            Verdict::Status { status: LatencyStatus::Warning, avg_rtt_ms: 120, jitter_ms: 0 }
        );
        assert_eq!(m.sample(120), Verdict::Unchanged);
        let verdicts = feed(&mut m, &[10, 10, 10, 10, 10]);
        assert!(verdicts.contains(&Verdict::Status {
            status: LatencyStatus::Ok,
            avg_rtt_ms: 10,
            jitter_ms: 0
        }));
    }

    #[test]
    fn jitter_is_the_population_std_dev() {
        let mut m = LatencyMonitor::new(LatencyPolicy::default());
        // mean 50, four deviations of 40 and one of 0 → std-dev 35.8: over the warning (30), under the kick (50).
        let verdicts = feed(&mut m, &[10, 90, 10, 90, 50]);
        assert_eq!(m.stats(), (50, 36));
        assert_eq!(
            verdicts[4],
            Verdict::Status { status: LatencyStatus::Warning, avg_rtt_ms: 50, jitter_ms: 36 }
        );
        assert!(matches!(feed(&mut m, &[0, 200, 0, 200, 0])[4], Verdict::Kick { .. }));
    }
}
