//! How late a process runs, as its parts observe it. A [`LagGauge`] remembers when some part
//! last reported a lag over a threshold, and when such lags last lasted (one streak of them,
//! counting each lag's own length) at least a given time. The gateway keeps one to know when it
//! must not judge latency (any lag counts); `tickcast up` keeps one shared by its gateways and
//! its tick generator (with the number of players it serves: [`ProcessLoad`]), which the edge
//! reads to refuse new games while the process is saturated (admission control: a lone spike is
//! not saturation, a sustained lag is).
//!
//! Sans I/O: callers pass the time (epoch µs), so the gauge is the same in tests and in use.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Reports over the threshold further apart than this start a new streak.
const STREAK_GAP_US: i64 = 200_000;

/// When lags over a threshold were seen. Lock-free: reported from every shard and read on
/// every request; concurrent reports may blur a streak's start by one report, no more.
#[derive(Debug)]
pub struct LagGauge {
    threshold_us: i64,
    /// How long a streak of lags over the threshold must last to count as sustained.
    sustain_us: i64,
    /// Epoch µs of the last lag over the threshold; `i64::MIN` for never.
    over_at_us: AtomicI64,
    /// Epoch µs at which the current streak of lags over the threshold began (the start of
    /// its first lag, not its report).
    streak_from_us: AtomicI64,
    /// Epoch µs of the last report that found its streak sustained; `i64::MIN` for never.
    sustained_at_us: AtomicI64,
}

impl LagGauge {
    /// A gauge for which any lag over `threshold` is also sustained.
    #[must_use]
    pub const fn new(threshold: Duration) -> Self {
        Self::sustained(threshold, Duration::ZERO)
    }

    /// A gauge that also says when lags over `threshold` lasted `sustain` in a row.
    #[must_use]
    pub const fn sustained(threshold: Duration, sustain: Duration) -> Self {
        Self {
            threshold_us: threshold.as_micros() as i64,
            sustain_us: sustain.as_micros() as i64,
            over_at_us: AtomicI64::new(i64::MIN),
            streak_from_us: AtomicI64::new(i64::MIN),
            sustained_at_us: AtomicI64::new(i64::MIN),
        }
    }

    #[must_use]
    pub const fn threshold(&self) -> Duration {
        Duration::from_micros(self.threshold_us as u64)
    }

    #[must_use]
    pub const fn sustain(&self) -> Duration {
        Duration::from_micros(self.sustain_us as u64)
    }

    /// Some part ran `lag` late, as seen at `now_us`; returns whether that is over the threshold.
    pub fn report(&self, lag: Duration, now_us: i64) -> bool {
        let lag_us = lag.as_micros() as i64;
        if lag_us <= self.threshold_us {
            return false;
        }
        let previous = self.over_at_us.fetch_max(now_us, Ordering::Relaxed);
        let began = now_us - lag_us;
        if previous < began - STREAK_GAP_US {
            self.streak_from_us.store(began, Ordering::Relaxed);
        } else {
            self.streak_from_us.fetch_min(began, Ordering::Relaxed);
        }
        if now_us - self.streak_from_us.load(Ordering::Relaxed) >= self.sustain_us {
            self.sustained_at_us.fetch_max(now_us, Ordering::Relaxed);
        }
        true
    }

    /// Whether a lag over the threshold was reported at `since_us` or later.
    #[must_use]
    pub fn over_since(&self, since_us: i64) -> bool {
        self.over_at_us.load(Ordering::Relaxed) >= since_us
    }

    /// Whether, at `since_us` or later, lags over the threshold had lasted `sustain` in a row.
    #[must_use]
    pub fn sustained_since(&self, since_us: i64) -> bool {
        self.sustained_at_us.load(Ordering::Relaxed) >= since_us
    }
}

/// A process's load as admission control sees it: how late its parts run, how many players it
/// serves (a process with a handful of players that lags is slow for some other reason — a
/// debug build, a busy neighbour — and refusing games would not help it), how many ticks it has
/// delivered, and how many a second it can deliver (learned from its CPU per delivered tick).
#[derive(Debug)]
pub struct ProcessLoad {
    pub lag: LagGauge,
    /// Players connected and joined, in every gateway of the process.
    players: AtomicI64,
    /// Ticks written to players' sockets since the process started, by every gateway: what the
    /// capacity is learned from (its CPU per delivered tick).
    delivered: AtomicU64,
    /// Ticks a second the process can deliver on time, as last learned; 0 while unknown.
    capacity_per_s: AtomicU64,
}

impl ProcessLoad {
    #[must_use]
    pub const fn new(lag: LagGauge) -> Self {
        Self {
            lag,
            players: AtomicI64::new(0),
            delivered: AtomicU64::new(0),
            capacity_per_s: AtomicU64::new(0),
        }
    }

    /// `n` more ticks were written to players' sockets. Called once per batch of deliveries,
    /// not per socket: the shards share this counter.
    pub fn ticks_delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
    }

    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Sets what the process can deliver, in ticks a second (0: unknown).
    pub fn set_capacity_per_s(&self, ticks: u64) {
        self.capacity_per_s.store(ticks, Ordering::Relaxed);
    }

    /// Ticks a second the process can deliver on time, if known.
    #[must_use]
    pub fn capacity_per_s(&self) -> Option<u64> {
        Some(self.capacity_per_s.load(Ordering::Relaxed)).filter(|&c| c > 0)
    }

    pub fn player_joined(&self) {
        self.players.fetch_add(1, Ordering::Relaxed);
    }

    pub fn player_left(&self) {
        self.players.fetch_sub(1, Ordering::Relaxed);
    }

    #[must_use]
    pub fn players(&self) -> u64 {
        self.players.load(Ordering::Relaxed).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1000;

    #[test]
    fn a_lag_over_the_threshold_is_remembered_from_when_it_was_seen() {
        let gauge = LagGauge::new(Duration::from_millis(20));
        assert!(!gauge.over_since(i64::MIN + 1), "never reported");
        assert!(!gauge.report(Duration::from_millis(20), 1_000 * MS), "at the threshold is not over it");
        assert!(!gauge.over_since(0));
        assert!(gauge.report(Duration::from_millis(21), 5_000 * MS));
        assert!(gauge.over_since(5_000 * MS) && gauge.sustained_since(5_000 * MS), "any lag is sustained");
        assert!(!gauge.over_since(5_000 * MS + 1), "not after it was seen");
        gauge.report(Duration::from_millis(30), 4_000 * MS);
        assert!(gauge.over_since(5_000 * MS), "a late report does not move the instant back");
    }

    #[test]
    fn only_lags_that_last_are_sustained() {
        let gauge = LagGauge::sustained(Duration::from_millis(25), Duration::from_millis(500));
        let t0 = 1_000_000 * MS;
        gauge.report(Duration::from_millis(40), t0);
        assert!(gauge.over_since(t0) && !gauge.sustained_since(t0), "a lone spike");
        // Lags over the threshold every 100 ms: a streak, sustained once it spans 500 ms.
        for i in 1..=4 {
            gauge.report(Duration::from_millis(40), t0 + i * 100 * MS);
        }
        assert!(!gauge.sustained_since(t0), "440 ms in a row");
        gauge.report(Duration::from_millis(40), t0 + 500 * MS);
        assert!(gauge.sustained_since(t0 + 500 * MS), "540 ms in a row");
        // A gap breaks the streak: a new spike alone is not sustained again.
        gauge.report(Duration::from_millis(40), t0 + 2_000 * MS);
        assert!(!gauge.sustained_since(t0 + 2_000 * MS));
        // One long stall is a streak by itself.
        gauge.report(Duration::from_millis(800), t0 + 5_000 * MS);
        assert!(gauge.sustained_since(t0 + 5_000 * MS));
    }
}
