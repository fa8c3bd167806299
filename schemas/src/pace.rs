//! A session's pace: which step is due when. The engine maps steps to states; the pace maps
//! steps to time, and only at a round's start can it change (`tick_rate_changed`). So a
//! session's whole schedule is its `session_created` (`startAt`, `tickMs`) and its logged
//! changes: anyone holding them computes every tick's `scheduledAt` again.

use serde::{Deserialize, Serialize};

/// A pace in force from `from_step` on: step `s ≥ from_step` is due at
/// `scheduled_at + (s − from_step) · tick_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pace {
    pub from_step: i64,
    pub scheduled_at: i64,
    pub tick_ms: i64,
}

impl Pace {
    /// When `step` is due at this pace.
    #[must_use]
    pub const fn scheduled_at(&self, step: i64) -> i64 {
        self.scheduled_at.saturating_add((step - self.from_step).saturating_mul(self.tick_ms))
    }
}

/// A session's paces, oldest first: the first from step 0 at its `startAt`, each later one from
/// a round's first step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaceSchedule {
    paces: Vec<Pace>,
}

impl PaceSchedule {
    /// The fixed pace a session starts with.
    #[must_use]
    pub fn new(start_at: i64, tick_ms: i64) -> Self {
        Self { paces: vec![Pace { from_step: 0, scheduled_at: start_at, tick_ms }] }
    }

    /// When `step` is due: by the latest pace in force at it (the first one before the start).
    #[must_use]
    pub fn scheduled_at(&self, step: i64) -> i64 {
        self.in_force_at(step).scheduled_at(step)
    }

    /// The pace `step` is played at.
    #[must_use]
    pub fn in_force_at(&self, step: i64) -> &Pace {
        let after = self.paces.partition_point(|p| p.from_step <= step);
        &self.paces[after.saturating_sub(1)]
    }

    /// The latest pace.
    #[must_use]
    pub fn latest(&self) -> &Pace {
        self.paces.last().expect("a schedule always has its first pace")
    }

    /// Every pace, oldest first.
    #[must_use]
    pub fn paces(&self) -> &[Pace] {
        &self.paces
    }

    /// The pace from `from_step` on at `tick_ms`, starting one step of that pace after the step
    /// before it: the change that [`Self::change`] would record.
    #[must_use]
    pub fn pace_from(&self, from_step: i64, tick_ms: i64) -> Pace {
        let scheduled_at = self.scheduled_at(from_step - 1).saturating_add(tick_ms);
        Pace { from_step, scheduled_at, tick_ms }
    }

    /// Records a logged change, in its place by step. One whose step is known already (read
    /// back from the log, or from two sources) is ignored, and so is one that cannot be a
    /// change (at or before the start, or not a positive pace). Returns whether it was new.
    pub fn record(&mut self, pace: Pace) -> bool {
        if pace.from_step <= 0 || pace.tick_ms <= 0 {
            return false;
        }
        match self.paces.binary_search_by_key(&pace.from_step, |p| p.from_step) {
            Ok(_) => false,
            Err(at) => {
                self.paces.insert(at, pace);
                true
            }
        }
    }
}

/// Why a session's pace changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaceReason {
    /// Its players' round trips (the slowest player's mean over its last samples).
    Latency,
    /// Its tick generator ran late on it (time dilation instead of late ticks), or recovered.
    Load,
}

impl PaceReason {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Load => "load",
        }
    }
}

/// `tick_rate_changed`: from `from_step` (a round's first step) the session plays at `tick_ms`,
/// step `from_step` due at `scheduled_at`. Written durably to `game-events` by the session's tick
/// generator, and copied to its tick topic before the tick of `from_step`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TickRateChanged {
    pub from_step: i64,
    pub scheduled_at: i64,
    pub tick_ms: i64,
    pub reason: PaceReason,
    /// The slowest player's mean round trip when it was decided, ms (0 with no samples).
    pub worst_rtt_ms: u64,
}

impl TickRateChanged {
    /// The pace it sets.
    #[must_use]
    pub const fn pace(&self) -> Pace {
        Pace { from_step: self.from_step, scheduled_at: self.scheduled_at, tick_ms: self.tick_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_latest_pace_at_or_before_them() {
        let mut paces = PaceSchedule::new(1_000, 100);
        assert_eq!(paces.scheduled_at(-3), 700, "the countdown keeps the first pace");
        assert_eq!(paces.scheduled_at(10), 2_000);
        let slower = paces.pace_from(11, 250);
        assert_eq!(slower, Pace { from_step: 11, scheduled_at: 2_250, tick_ms: 250 });
        assert!(paces.record(slower));
        assert!(!paces.record(slower), "read back from the log: known");
        assert_eq!(paces.scheduled_at(10), 2_000);
        assert_eq!(paces.scheduled_at(13), 2_750);
        assert!(paces.record(paces.pace_from(20, 100)));
        assert_eq!(paces.scheduled_at(19), 4_250);
        assert_eq!(paces.scheduled_at(21), 4_450);
        assert_eq!(paces.in_force_at(15).tick_ms, 250);
        assert_eq!(paces.latest().from_step, 20);
        assert!(!paces.record(Pace { from_step: 0, scheduled_at: 0, tick_ms: 10 }), "the start's is fixed");
        let mut merged = PaceSchedule::new(1_000, 100);
        assert!(merged.record(paces.paces()[2]) && merged.record(paces.paces()[1]), "out of order");
        assert_eq!(merged, paces);
    }
}
