//! The tickcast engine, version 1: a session's state as a pure function of its parameters and
//! a step.
//!
//! This crate owns the normative arithmetic of the game (docs/engine.md): `splitmix64`, the break
//! interval of each round, the step at a wall-clock instant, and the state at a step — both by
//! random access (`state_at`, O(rounds)) and incrementally (`Stepper`, O(1) per step). It also
//! owns the seed's commitment hash, so players can check a revealed seed.
//!
//! It must not touch I/O, clocks, floats or randomness: everything here is integer-only and
//! deterministic, and any change to its output is a new engine version, never an edit of v1.
//!
//! # Layout
//! - `splitmix64`, `break_interval`, `step_at`: the primitives of the spec.
//! - [`Params`], [`State`], [`state_at`]: random access to any step.
//! - [`Stepper`]: advances one step at a time, for tick generators.
//! - [`reference`]: the original design's O(step) loop, kept as the definition to test against.
//! - [`seed_hash`]: the commitment a player gets before the seed is revealed.

use sha2::{Digest, Sha256};

/// The engine version this crate implements; recorded in every `session_created`.
pub const ENGINE_VERSION: u32 = 1;

/// The 64-bit golden ratio constant of splitmix64.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Default lower bound of a round's length in steps.
pub const DEFAULT_MIN_BREAK_STEPS: u64 = 10;
/// Default upper bound of a round's length in steps.
pub const DEFAULT_MAX_BREAK_STEPS: u64 = 100;

/// splitmix64 finaliser, with wrapping arithmetic.
#[must_use]
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The parameters that, with a step, determine a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub seed: u64,
    pub min_break_steps: u64,
    pub max_break_steps: u64,
}

impl Params {
    /// Parameters with the default break bounds (10 / 100).
    #[must_use]
    pub const fn with_seed(seed: u64) -> Self {
        Self { seed, min_break_steps: DEFAULT_MIN_BREAK_STEPS, max_break_steps: DEFAULT_MAX_BREAK_STEPS }
    }

    /// Whether these parameters define a game: `1 <= minBreakSteps <= maxBreakSteps`. Everything
    /// that takes break bounds from outside (the edge, the tick generator reading
    /// `session_created`, the CLI) checks this before computing a tick.
    pub const fn check(&self) -> Result<(), ParamsError> {
        if self.min_break_steps == 0 {
            return Err(ParamsError::ZeroMinBreakSteps);
        }
        if self.min_break_steps > self.max_break_steps {
            return Err(ParamsError::MinAboveMax { min: self.min_break_steps, max: self.max_break_steps });
        }
        Ok(())
    }

    /// The length in steps of round `round`: `min + splitmix64(seed ^ round·GOLDEN) % (max − min + 1)`.
    ///
    /// Callers guarantee `1 <= min <= max` ([`Params::check`]).
    #[must_use]
    pub const fn break_interval(&self, round: u64) -> u64 {
        break_interval(self.seed, round, self.min_break_steps, self.max_break_steps)
    }
}

/// Break bounds that define no game.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamsError {
    ZeroMinBreakSteps,
    MinAboveMax { min: u64, max: u64 },
}

impl std::fmt::Display for ParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ZeroMinBreakSteps => write!(f, "minBreakSteps must be at least 1"),
            Self::MinAboveMax { min, max } => {
                write!(f, "minBreakSteps ({min}) must not exceed maxBreakSteps ({max})")
            }
        }
    }
}

impl std::error::Error for ParamsError {}

/// The length in steps of round `round` (docs/engine.md).
///
/// The span `max − min + 1` wraps to 0 only for `min = 0, max = u64::MAX`, which no valid
/// session has; that case is treated as the full u64 range instead of dividing by zero.
#[must_use]
pub const fn break_interval(seed: u64, round: u64, min_break_steps: u64, max_break_steps: u64) -> u64 {
    let span = max_break_steps.wrapping_sub(min_break_steps).wrapping_add(1);
    let r = splitmix64(seed ^ round.wrapping_mul(GOLDEN));
    let offset = if span == 0 { r } else { r % span };
    min_break_steps.wrapping_add(offset)
}

/// The step at instant `now` for a session starting at `start_at` with `tick_ms` per step:
/// `floor((now − start_at) / tick_ms)`, negative before the start.
///
/// # Panics
/// Never for `tick_ms > 0`; `tick_ms` must be positive (the edge allows 10–10000).
#[must_use]
pub const fn step_at(start_at: i64, tick_ms: i64, now: i64) -> i64 {
    (now - start_at).div_euclid(tick_ms)
}

/// The instant a step is scheduled for: `start_at + step·tick_ms`.
#[must_use]
pub const fn scheduled_at(start_at: i64, tick_ms: i64, step: i64) -> i64 {
    start_at + step * tick_ms
}

/// The state of a session at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct State {
    pub value: u64,
    pub round: u64,
    pub broken: bool,
}

/// The state at `step`, in O(rounds up to `step`): walk the rounds' lengths to the round that
/// contains the step. Negative steps (before the start) are the initial state.
#[must_use]
pub fn state_at(params: &Params, step: i64) -> State {
    let Ok(step) = u64::try_from(step) else {
        return State::default();
    };
    let mut round = 0u64;
    let mut round_start = 0u64;
    loop {
        let interval = params.break_interval(round);
        let off = step - round_start;
        if off < interval {
            return if off == interval - 1 {
                State { value: 0, round: round + 1, broken: true }
            } else {
                State { value: off + 1, round, broken: false }
            };
        }
        round_start += interval;
        round += 1;
    }
}

/// Advances a session one step at a time in O(1), producing exactly what [`state_at`] gives for
/// each step. Tick generators hold one per session instead of recomputing from step 0.
#[derive(Debug, Clone)]
pub struct Stepper {
    params: Params,
    /// The next step `advance` will return.
    next_step: i64,
    /// Round containing `next_step`.
    round: u64,
    /// Offset of `next_step` within its round.
    offset: u64,
    /// Length of `round`.
    interval: u64,
}

impl Stepper {
    /// A stepper whose first `advance` returns step 0.
    #[must_use]
    pub fn new(params: Params) -> Self {
        Self { params, next_step: 0, round: 0, offset: 0, interval: params.break_interval(0) }
    }

    /// A stepper whose first `advance` returns `step` (clamped to 0), positioned in O(rounds).
    #[must_use]
    pub fn starting_at(params: Params, step: i64) -> Self {
        let mut stepper = Self::new(params);
        let target = u64::try_from(step).unwrap_or(0);
        let mut round_start = 0u64;
        while target - round_start >= stepper.interval {
            round_start += stepper.interval;
            stepper.round += 1;
            stepper.interval = params.break_interval(stepper.round);
        }
        stepper.offset = target - round_start;
        stepper.next_step = i64::try_from(target).unwrap_or(i64::MAX);
        stepper
    }

    /// The step the next call to [`Stepper::advance`] returns.
    #[must_use]
    pub const fn next_step(&self) -> i64 {
        self.next_step
    }

    /// The state at the next step, then moves past it.
    pub fn advance(&mut self) -> (i64, State) {
        let step = self.next_step;
        let state = if self.offset == self.interval - 1 {
            State { value: 0, round: self.round + 1, broken: true }
        } else {
            State { value: self.offset + 1, round: self.round, broken: false }
        };
        self.next_step += 1;
        self.offset += 1;
        if self.offset == self.interval {
            self.round += 1;
            self.offset = 0;
            self.interval = self.params.break_interval(self.round);
        }
        (step, state)
    }
}

/// The original design's loop, which simulates from step 0 on every call: O(step).
///
/// Kept only as the definition the fast forms are tested against; never call it on a hot path.
pub mod reference {
    use super::{Params, State};

    /// `stateAt(step)` exactly as docs/engine.md writes it.
    #[must_use]
    pub fn state_at_by_loop(params: &Params, step: i64) -> State {
        let (mut value, mut round, mut broken, mut since) = (0u64, 0u64, false, 0u64);
        let mut until = params.break_interval(0);
        let mut i = 0i64;
        while i <= step {
            broken = false;
            since += 1;
            if since >= until {
                broken = true;
                round += 1;
                value = 0;
                until = params.break_interval(round);
                since = 0;
            } else {
                value += 1;
            }
            i += 1;
        }
        State { value, round, broken }
    }
}

/// The commitment to a seed: lowercase hex SHA-256 of the seed's decimal string.
#[must_use]
pub fn seed_hash(seed: u64) -> String {
    hex::encode(Sha256::digest(seed.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepper_starting_mid_round_matches_random_access() {
        let params = Params::with_seed(7);
        for start in [0, 1, 5, 57, 1000] {
            let mut stepper = Stepper::starting_at(params, start);
            for _ in 0..300 {
                let (step, state) = stepper.advance();
                assert_eq!(state, state_at(&params, step), "step {step} from {start}");
            }
        }
    }

    #[test]
    fn before_the_start_is_the_initial_state() {
        assert_eq!(state_at(&Params::with_seed(1), -5), State::default());
        assert_eq!(Stepper::starting_at(Params::with_seed(1), -5).next_step(), 0);
    }

    #[test]
    fn seed_hash_is_sha256_of_the_decimal_string() {
        // sha256("0")
        assert_eq!(seed_hash(0), "5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9");
    }
}
