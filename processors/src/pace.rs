//! The pace policy of one adaptive session, sans I/O (docs/protocol.md, "Adaptive pace"): at
//! each round's start, the pace its players' round trips and its generator's lateness call for.
//!
//! - **Latency.** The target is `factor × the highest mean RTT over the last 5 samples among the
//!   players playing`, rounded up to 10 ms and kept within `[tickMs, maxTickMs]`. A target above
//!   the pace slows the next round to it; one at or below 80 % of the pace for 5 s speeds it up to
//!   the target. Kicked and departed players do not count.
//! - **Load.** A round most of whose ticks the generator emitted later than the load limit slows
//!   the next by ×1.5 (time dilation instead of late ticks), up to `maxTickMs`; rounds on time
//!   bring it back by ÷1.5 a round, never below the latency target.
//!
//! Everything it decides is logged (`tick_rate_changed`) and read back after a restart: the
//! pace in force is never only in this memory.

use std::collections::{HashMap, VecDeque};

use tickcast_schemas::event::{PaceReason, RttSample};

/// Samples per player the latency target looks at.
pub const RTT_SAMPLES: usize = 5;
/// How long the target must stay at or below [`SPEED_UP_BELOW_PERCENT`] of the pace before the
/// pace speeds up to it.
pub const SPEED_UP_AFTER_MS: i64 = 5_000;
pub const SPEED_UP_BELOW_PERCENT: i64 = 80;

/// What the policy is told to weigh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceConfig {
    /// The target pace per ms of the slowest player's mean RTT (`TICKCAST_PACE_RTT_FACTOR`).
    pub rtt_factor: f64,
    /// A tick emitted later than this is late for the load policy (`--saturation-lag-ms`);
    /// 0 turns the load policy off.
    pub load_limit_ms: i64,
}

impl Default for PaceConfig {
    fn default() -> Self {
        Self { rtt_factor: 2.0, load_limit_ms: 5 }
    }
}

/// A change the policy decided at a round's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceDecision {
    pub tick_ms: i64,
    pub reason: PaceReason,
    /// The slowest player's mean RTT it was decided on (0 with no samples).
    pub worst_rtt_ms: u64,
}

/// One adaptive session's inputs and the pace in force.
#[derive(Debug, Clone)]
pub struct PacePolicy {
    config: PaceConfig,
    fastest_ms: i64,
    slowest_ms: i64,
    /// The pace in force (the latest logged, or the fastest).
    pace_ms: i64,
    /// Whether load raised the pace above what latency asks: rounds on time bring it back.
    load_raised: bool,
    /// The last RTT samples of each player playing (connection id → RTTs, newest last). A
    /// connection is added by its join, removed when it leaves or is kicked.
    rtts: HashMap<String, VecDeque<u64>>,
    /// Since when the target has been at or below 80 % of the pace (None while above it).
    low_since: Option<i64>,
    /// This round's ticks so far, and how many were emitted later than the load limit.
    round_ticks: u32,
    round_late: u32,
}

/// `ms` rounded up to a multiple of 10.
const fn round_up_10(ms: i64) -> i64 {
    (ms + 9).div_euclid(10) * 10
}

impl PacePolicy {
    #[must_use]
    pub fn new(config: PaceConfig, fastest_ms: i64, slowest_ms: i64) -> Self {
        Self {
            config,
            fastest_ms,
            slowest_ms,
            pace_ms: fastest_ms,
            load_raised: false,
            rtts: HashMap::new(),
            low_since: None,
            round_ticks: 0,
            round_late: 0,
        }
    }

    /// The pace in force, ms per step.
    #[must_use]
    pub const fn pace_ms(&self) -> i64 {
        self.pace_ms
    }

    pub fn joined(&mut self, connection_id: &str) {
        self.rtts.entry(connection_id.to_owned()).or_default();
    }

    /// A player left or was kicked: it no longer counts.
    pub fn left(&mut self, connection_id: &str, at: i64) {
        if self.rtts.remove(connection_id).is_some() {
            self.reassess(at);
        }
    }

    /// A round trip measured by a gateway (samples of players not playing are ignored).
    pub fn sampled(&mut self, sample: &RttSample) {
        let Some(rtts) = self.rtts.get_mut(&sample.connection_id) else { return };
        if rtts.len() == RTT_SAMPLES {
            rtts.pop_front();
        }
        rtts.push_back(sample.rtt_ms);
        self.reassess(sample.at);
    }

    /// A tick emitted `late_ms` after it was due.
    pub const fn tick_emitted(&mut self, late_ms: i64) {
        self.round_ticks += 1;
        if self.config.load_limit_ms > 0 && late_ms > self.config.load_limit_ms {
            self.round_late += 1;
        }
    }

    /// A pace read from the log (this generator's own change read back, or an earlier owner's).
    pub fn recorded(&mut self, tick_ms: i64, reason: PaceReason, at: i64) {
        self.pace_ms = tick_ms;
        self.load_raised = reason == PaceReason::Load && tick_ms > self.target_ms();
        self.low_since = None;
        self.reassess(at);
    }

    /// The highest mean of the players' last samples, ms, rounded up.
    #[must_use]
    pub fn worst_mean_rtt_ms(&self) -> Option<u64> {
        self.rtts
            .values()
            .filter(|rtts| !rtts.is_empty())
            .map(|rtts| rtts.iter().sum::<u64>().div_ceil(rtts.len() as u64))
            .max()
    }

    /// The pace the players' round trips call for.
    #[must_use]
    pub fn target_ms(&self) -> i64 {
        let Some(worst) = self.worst_mean_rtt_ms() else { return self.fastest_ms };
        let wanted = (self.config.rtt_factor * worst as f64).ceil();
        let wanted =
            if wanted.is_finite() { wanted.min(i64::MAX as f64 / 2.0) as i64 } else { self.slowest_ms };
        round_up_10(wanted).clamp(self.fastest_ms, self.slowest_ms)
    }

    /// Whether the target has dropped to at most 80 % of the pace, from when.
    fn reassess(&mut self, at: i64) {
        if self.target_ms() * 100 <= self.pace_ms * SPEED_UP_BELOW_PERCENT {
            self.low_since.get_or_insert(at);
        } else {
            self.low_since = None;
        }
    }

    /// At a round's start, `now`: the pace of the round, if it changes. The round's lateness
    /// counters start again.
    pub fn decide(&mut self, now: i64) -> Option<PaceDecision> {
        let overloaded = self.round_late * 2 > self.round_ticks;
        (self.round_ticks, self.round_late) = (0, 0);
        let target = self.target_ms();
        let pace = self.pace_ms;
        let (tick_ms, reason) = if overloaded {
            (round_up_10(pace * 3 / 2).min(self.slowest_ms), PaceReason::Load)
        } else if target > pace {
            (target, PaceReason::Latency)
        } else if self.load_raised {
            (round_up_10(pace * 2 / 3).max(target), PaceReason::Load)
        } else if self.low_since.is_some_and(|since| now - since >= SPEED_UP_AFTER_MS) {
            (target, PaceReason::Latency)
        } else {
            return None;
        };
        if tick_ms == pace {
            return None;
        }
        let decision = PaceDecision { tick_ms, reason, worst_rtt_ms: self.worst_mean_rtt_ms().unwrap_or(0) };
        self.recorded(tick_ms, reason, now);
        Some(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(connection: &str, rtt_ms: u64, at: i64) -> RttSample {
        RttSample { connection_id: connection.into(), rtt_ms, at }
    }

    fn policy() -> PacePolicy {
        PacePolicy::new(PaceConfig::default(), 100, 400)
    }

    #[test]
    fn a_slow_player_slows_the_next_round_to_twice_its_mean_rtt() {
        let mut p = policy();
        p.joined("a");
        p.joined("b");
        assert_eq!(p.decide(0), None, "no samples: the fastest pace");
        for (i, rtt) in [118, 121, 125].into_iter().enumerate() {
            p.sampled(&sample("a", rtt, i as i64 * 1000));
            p.sampled(&sample("b", 2, i as i64 * 1000));
        }
        assert_eq!(p.worst_mean_rtt_ms(), Some(122));
        let decided = p.decide(3_000).expect("slower");
        assert_eq!(decided, PaceDecision { tick_ms: 250, reason: PaceReason::Latency, worst_rtt_ms: 122 });
        assert_eq!(p.decide(3_500), None, "steady");
        p.sampled(&sample("a", 5_000, 4_000));
        assert_eq!(p.decide(4_000).map(|d| d.tick_ms), Some(400), "never past maxTickMs");
    }

    #[test]
    fn the_pace_comes_back_5_s_after_the_slow_player_left() {
        let mut p = policy();
        p.joined("a");
        p.joined("b");
        p.sampled(&sample("a", 120, 0));
        p.sampled(&sample("b", 1, 0));
        assert_eq!(p.decide(100).map(|d| d.tick_ms), Some(240));
        p.left("a", 10_000);
        assert_eq!(p.decide(14_999), None, "not yet 5 s");
        let back = p.decide(15_000).expect("faster");
        assert_eq!((back.tick_ms, back.reason), (100, PaceReason::Latency));
        p.sampled(&sample("z", 900, 16_000));
        assert_eq!(p.decide(20_000), None, "a connection that never joined does not count");
    }

    #[test]
    fn a_target_that_rises_again_restarts_the_wait() {
        let mut p = policy();
        p.joined("a");
        p.sampled(&sample("a", 150, 0));
        assert_eq!(p.decide(0).map(|d| d.tick_ms), Some(300));
        for at in [1_000, 2_000, 3_000, 4_000, 5_000] {
            p.sampled(&sample("a", 10, at));
        }
        // The mean of the last five is 10: low since the sample that brought it to 240 or below.
        p.sampled(&sample("a", 2_000, 6_000));
        assert_eq!(p.decide(11_000).map(|d| d.tick_ms), Some(400), "the target rose above the pace");
    }

    #[test]
    fn late_rounds_dilate_time_by_half_up_to_the_slowest_then_recover() {
        let mut p = policy();
        let round = |p: &mut PacePolicy, late_ms: i64| {
            for _ in 0..10 {
                p.tick_emitted(late_ms);
            }
        };
        let mut paces = Vec::new();
        for late_ms in [50, 50, 50, 50, 0, 0, 0, 0, 0] {
            round(&mut p, late_ms);
            p.decide(0);
            paces.push(p.pace_ms());
        }
        assert_eq!(paces, [150, 230, 350, 400, 270, 180, 120, 100, 100]);
        round(&mut p, 6);
        p.tick_emitted(0);
        assert!(p.decide(0).is_some_and(|d| d.reason == PaceReason::Load), "most of the round late");
        let off = PaceConfig { load_limit_ms: 0, ..PaceConfig::default() };
        let mut p = PacePolicy::new(off, 100, 400);
        round(&mut p, 5_000);
        assert_eq!(p.decide(0), None, "load policy off");
    }

    #[test]
    fn a_pace_read_back_from_the_log_is_the_one_in_force() {
        let mut p = policy();
        p.joined("a");
        p.sampled(&sample("a", 100, 0));
        p.recorded(200, PaceReason::Latency, 0);
        assert_eq!(p.decide(1_000), None);
        p.recorded(350, PaceReason::Load, 1_000);
        assert_eq!(p.decide(2_000).map(|d| (d.tick_ms, d.reason)), Some((240, PaceReason::Load)));
    }
}
