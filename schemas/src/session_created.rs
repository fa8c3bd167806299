//! `session_created`: a new game — everything the engine needs, so any state is a pure function
//! of this event — and what one is made of.

use serde::{Deserialize, Serialize};

/// A new game: everything the engine needs, so any state is a pure function of this event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreated {
    pub region: String,
    #[serde(with = "crate::u64_string")]
    pub seed: u64,
    pub seed_hash: String,
    pub start_at: i64,
    pub tick_ms: i64,
    pub countdown_ms: i64,
    pub min_break_steps: u64,
    pub max_break_steps: u64,
    pub max_rounds: u64,
    pub engine: u32,
    pub created_by: String,
    /// The slowest pace an adaptive session may go to (`tickMs` is its fastest); absent in a
    /// fixed-pace session, and in every session logged before paces could change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tick_ms: Option<i64>,
}

/// What a new game is made of, besides its region, seed and creator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GameParams {
    pub tick_ms: i64,
    /// The slowest pace of an adaptive game; `tick_ms` (a fixed pace) writes none.
    pub max_tick_ms: i64,
    pub countdown_ms: i64,
    pub max_rounds: u64,
    pub min_break_steps: u64,
    pub max_break_steps: u64,
}

impl SessionCreated {
    /// A new game of engine v1 in `region`, created at `now` by `created_by`: it starts after
    /// its countdown and commits to `seed` (drawn by the caller from the operating system) with
    /// its hash.
    #[must_use]
    pub fn new_game(region: String, seed: u64, now: i64, game: GameParams, created_by: String) -> Self {
        Self {
            region,
            seed,
            seed_hash: tickcast_engine::seed_hash(seed),
            start_at: now + game.countdown_ms,
            tick_ms: game.tick_ms,
            countdown_ms: game.countdown_ms,
            min_break_steps: game.min_break_steps,
            max_break_steps: game.max_break_steps,
            max_rounds: game.max_rounds,
            engine: tickcast_engine::ENGINE_VERSION,
            created_by,
            max_tick_ms: (game.max_tick_ms != game.tick_ms).then_some(game.max_tick_ms),
        }
    }

    /// Whether this session can be played: valid break bounds and a positive step length. A
    /// `session_created` from another writer is checked before anything is computed from it.
    pub fn check(&self) -> Result<(), String> {
        self.engine_params().check().map_err(|e| e.to_string())?;
        if self.tick_ms <= 0 {
            return Err(format!("tickMs must be positive, got {}", self.tick_ms));
        }
        if self.slowest_tick_ms() < self.tick_ms {
            return Err(format!("maxTickMs {} is below tickMs {}", self.slowest_tick_ms(), self.tick_ms));
        }
        Ok(())
    }

    /// The slowest pace it may go to: `maxTickMs`, or `tickMs` for a fixed pace.
    #[must_use]
    pub fn slowest_tick_ms(&self) -> i64 {
        self.max_tick_ms.unwrap_or(self.tick_ms)
    }

    /// Whether its pace may change (`maxTickMs` above `tickMs`).
    #[must_use]
    pub fn is_adaptive(&self) -> bool {
        self.slowest_tick_ms() > self.tick_ms
    }

    /// The engine parameters of this session.
    #[must_use]
    pub const fn engine_params(&self) -> tickcast_engine::Params {
        tickcast_engine::Params {
            seed: self.seed,
            min_break_steps: self.min_break_steps,
            max_break_steps: self.max_break_steps,
        }
    }
}
