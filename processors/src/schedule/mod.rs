//! The schedule of one session, sans I/O: given the time, which countdowns, ticks and end are
//! due. Ticks are due at absolute deadlines, `startAt + step·tickMs` at a fixed pace (the paced
//! schedule's, [`PaceSchedule`], when the pace changes); a late call emits every missed step at
//! once, in order, so a session never drifts, skips or repeats a step.

use tickcast_engine::{State, Stepper};
use tickcast_schemas::event::{EndReason, SessionCreated};
use tickcast_schemas::pace::{Pace, PaceSchedule};

/// Something a session emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emission {
    Countdown {
        remaining_ms: i64,
    },
    Tick {
        step: i64,
        state: State,
        scheduled_at: i64,
    },
    Ended {
        reason: EndReason,
        last_step: i64,
    },
    /// An adaptive session's next step starts a round: its pace must be decided
    /// ([`SessionSchedule::decide_pace`]) before anything more is emitted.
    RoundStarts {
        from_step: i64,
    },
}

/// When a session next needs its generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deadline {
    /// Its end is decided already (a resumed session whose last round had broken): end it at
    /// once. Sorts before every instant.
    EndNow,
    /// At this instant (epoch ms).
    At(i64),
}

impl Deadline {
    /// How long from `now` until this deadline; zero when it is due.
    #[must_use]
    pub fn wait_from(self, now: i64) -> std::time::Duration {
        match self {
            Self::EndNow => std::time::Duration::ZERO,
            Self::At(at) => std::time::Duration::from_millis(at.saturating_sub(now).max(0).unsigned_abs()),
        }
    }

    /// Whether this deadline has come at `now`.
    #[must_use]
    pub const fn is_due(self, now: i64) -> bool {
        match self {
            Self::EndNow => true,
            Self::At(at) => at <= now,
        }
    }
}

/// One active session's clock, engine state and idle tracking.
#[derive(Debug, Clone)]
pub struct SessionSchedule {
    created: SessionCreated,
    stepper: Stepper,
    /// When each step is due: its start's pace, then each logged change.
    paces: PaceSchedule,
    /// Whether the pace may change (decided at each round's start).
    adaptive: bool,
    /// The latest round start whose pace is decided: the first round's is its start's.
    decided_through: i64,
    /// Whether the last step emitted was a break: the next one starts a round.
    last_broken: bool,
    /// Next whole-second countdown instant (`startAt − k·1000`), while before the start.
    next_countdown_at: Option<i64>,
    /// Players connected now, from player_joined / player_left.
    connected: u32,
    /// Since when no player has been connected (None while someone is).
    empty_since: Option<i64>,
    idle_ms: i64,
    /// Set when a resumed session had already emitted its last tick: end at the next call.
    end_due: bool,
    ended: bool,
}

impl SessionSchedule {
    /// The schedule of a new session; `created_at` is the session_created time.
    #[must_use]
    pub fn new(created: SessionCreated, created_at: i64, idle_ms: i64) -> Self {
        let stepper = Stepper::new(created.engine_params());
        let seconds_before = (created.start_at - created_at).max(0) / 1000;
        let next_countdown_at = (seconds_before >= 1).then(|| created.start_at - seconds_before * 1000);
        Self {
            stepper,
            paces: PaceSchedule::new(created.start_at, created.tick_ms),
            adaptive: created.is_adaptive(),
            decided_through: 0,
            last_broken: false,
            next_countdown_at,
            connected: 0,
            empty_since: Some(created.start_at.max(created_at)),
            idle_ms,
            end_due: false,
            ended: false,
            created,
        }
    }

    #[must_use]
    pub const fn created(&self) -> &SessionCreated {
        &self.created
    }

    #[must_use]
    pub const fn is_ended(&self) -> bool {
        self.ended
    }

    /// When each step is due.
    #[must_use]
    pub const fn paces(&self) -> &PaceSchedule {
        &self.paces
    }

    /// A pace change read from the log: known from now on (ignored when known already).
    pub fn record_pace(&mut self, pace: Pace) {
        if self.paces.record(pace) {
            self.decided_through = self.decided_through.max(pace.from_step);
        }
    }

    /// The pace of the round starting at `from_step`: `Some(tick_ms)` to change it (returned:
    /// the change to log), `None` to keep the one in force.
    pub fn decide_pace(&mut self, from_step: i64, tick_ms: Option<i64>) -> Option<Pace> {
        self.decided_through = self.decided_through.max(from_step);
        let tick_ms = tick_ms.filter(|ms| *ms > 0 && *ms != self.paces.in_force_at(from_step).tick_ms)?;
        let pace = self.paces.pace_from(from_step, tick_ms);
        self.paces.record(pace).then_some(pace)
    }

    /// Whether the next step starts a round whose pace is not decided yet.
    fn round_pending(&self) -> bool {
        let next = self.stepper.next_step();
        self.adaptive && self.last_broken && self.decided_through < next
    }

    /// The last step emitted, -1 before the first.
    #[must_use]
    pub const fn last_step(&self) -> i64 {
        self.stepper.next_step() - 1
    }

    /// Continues at `first_step`, for a session taken over from another generator: no
    /// countdown any more, the engine positioned in O(rounds).
    /// When the step before `first_step` was the last round's break, the session ends at the
    /// next call instead of running past its end.
    pub fn resume_at(&mut self, first_step: i64) {
        self.stepper = Stepper::starting_at(self.created.engine_params(), first_step);
        self.next_countdown_at = None;
        let last = tickcast_engine::state_at(&self.created.engine_params(), first_step - 1);
        self.end_due = first_step > 0 && last.broken && last.round >= self.created.max_rounds;
        self.last_broken = first_step > 0 && last.broken;
    }

    pub fn player_joined(&mut self) {
        self.connected += 1;
        self.empty_since = None;
    }

    pub fn player_left(&mut self, at: i64) {
        self.connected = self.connected.saturating_sub(1);
        if self.connected == 0 {
            self.empty_since = Some(at.max(self.created.start_at));
        }
    }

    /// When something is next due; `None` once ended.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Deadline> {
        if self.ended {
            return None;
        }
        if self.end_due {
            return Some(Deadline::EndNow);
        }
        if self.round_pending() {
            return Some(Deadline::At(i64::MIN));
        }
        let tick = self.paces.scheduled_at(self.stepper.next_step());
        let at =
            [Some(tick), self.next_countdown_at, self.idle_at()].into_iter().flatten().min().unwrap_or(tick);
        Some(Deadline::At(at))
    }

    /// When the session ends as idle, if nobody connects before.
    fn idle_at(&self) -> Option<i64> {
        self.empty_since.map(|since| since.saturating_add(self.idle_ms))
    }

    /// Appends to `out` everything due at `now`, in order; ends the session when its last
    /// round breaks or it has been idle too long.
    pub fn emit_due(&mut self, now: i64, out: &mut Vec<Emission>) {
        self.emit_due_at_most(now, usize::MAX, out);
    }

    /// [`Self::emit_due`], with at most `max_ticks` ticks: the rest stays due (the next
    /// deadline is then in the past) for a later call.
    pub fn emit_due_at_most(&mut self, now: i64, max_ticks: usize, out: &mut Vec<Emission>) {
        if self.ended {
            return;
        }
        if self.end_due {
            self.ended = true;
            out.push(Emission::Ended { reason: EndReason::MaxRounds, last_step: self.last_step() });
            return;
        }
        let start_at = self.created.start_at;
        if let Some(at) = self.next_countdown_at
            && at <= now
        {
            // Only the newest due countdown: an older one is stale by the time it could be sent.
            let remaining_ms = ((start_at - now + 999) / 1000) * 1000;
            if remaining_ms > 0 {
                out.push(Emission::Countdown { remaining_ms });
            }
            let next = start_at - remaining_ms + 1000;
            self.next_countdown_at = (next < start_at).then_some(next);
        }
        // Ticks run up to now, or to the idle end if that comes first: a late call (a resumed
        // session) must not tick past the instant the session ended.
        let ticks_until = self.idle_at().map_or(now, |idle| idle.min(now));
        let mut ticked = 0;
        loop {
            // Decided before anything of the round is due, even its first step: a faster pace
            // makes it due sooner than the one in force says.
            if self.round_pending() {
                out.push(Emission::RoundStarts { from_step: self.stepper.next_step() });
                return;
            }
            if self.paces.scheduled_at(self.stepper.next_step()) > ticks_until {
                break;
            }
            if ticked == max_ticks {
                return;
            }
            ticked += 1;
            let (step, state) = self.stepper.advance();
            self.last_broken = state.broken;
            out.push(Emission::Tick { step, state, scheduled_at: self.paces.scheduled_at(step) });
            if state.broken && state.round >= self.created.max_rounds {
                self.ended = true;
                out.push(Emission::Ended { reason: EndReason::MaxRounds, last_step: step });
                return;
            }
        }
        if self.idle_at().is_some_and(|idle| idle <= now) {
            self.ended = true;
            out.push(Emission::Ended { reason: EndReason::Idle, last_step: self.last_step() });
        }
    }
}

#[cfg(test)]
mod tests;
