//! The game a player asks for: optional parameters, their ranges and defaults.

use serde::Deserialize;
use tickcast_engine::{DEFAULT_MAX_BREAK_STEPS, DEFAULT_MIN_BREAK_STEPS};

/// Defaults the edge applies to fields a request leaves out.
#[derive(Debug, Clone, Copy)]
pub struct GameDefaults {
    /// `DEFAULT_TICK_MS`.
    pub tick_ms: i64,
    /// `COUNTDOWN_MS`.
    pub countdown_ms: i64,
    pub max_rounds: u64,
    /// The longest game accepted, in ms (`maxRounds × maxBreakSteps × tickMs`, the most its
    /// rounds can take); 0 for no limit. A game is a session that ticks, and is logged, until
    /// it ends: without a bound one request could hold a generator for decades.
    pub max_game_ms: i64,
}

impl Default for GameDefaults {
    fn default() -> Self {
        Self { tick_ms: 100, countdown_ms: 3000, max_rounds: 1000, max_game_ms: 6 * 3600 * 1000 }
    }
}

/// The body of `POST /edge/game/start`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartRequest {
    pub user_id: String,
    pub preferred_region: Option<String>,
    pub tick_ms: Option<i64>,
    /// The slowest pace an adaptive game may go to; `tickMs` (a fixed pace) when left out.
    pub max_tick_ms: Option<i64>,
    pub countdown_ms: Option<i64>,
    pub max_rounds: Option<u64>,
    pub min_break_steps: Option<u64>,
    pub max_break_steps: Option<u64>,
}

/// The body of `POST /edge/game/{gameId}/join`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinRequest {
    pub user_id: String,
}

/// A validated game: what `session_created` is made of.
pub use tickcast_schemas::event::GameParams as GameRules;

/// Longest accepted userId, in bytes.
pub const MAX_USER_ID_LEN: usize = 128;

/// Checks a userId: 1–128 bytes, no control characters.
pub fn check_user_id(user_id: &str) -> Result<(), String> {
    if user_id.is_empty() || user_id.len() > MAX_USER_ID_LEN || user_id.chars().any(char::is_control) {
        return Err(format!("userId must be 1 to {MAX_USER_ID_LEN} bytes without control characters"));
    }
    Ok(())
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: T,
    lo: T,
    hi: T,
) -> Result<T, String> {
    if value < lo || value > hi {
        return Err(format!("{name} must be between {lo} and {hi}, got {value}"));
    }
    Ok(value)
}

impl StartRequest {
    /// The game this request asks for, or a message saying which field is out of range.
    pub fn rules(&self, defaults: &GameDefaults) -> Result<GameRules, String> {
        check_user_id(&self.user_id)?;
        let min =
            in_range("minBreakSteps", self.min_break_steps.unwrap_or(DEFAULT_MIN_BREAK_STEPS), 1, 1_000_000)?;
        let max = in_range(
            "maxBreakSteps",
            self.max_break_steps.unwrap_or(DEFAULT_MAX_BREAK_STEPS.max(min)),
            1,
            1_000_000,
        )?;
        tickcast_engine::Params { seed: 0, min_break_steps: min, max_break_steps: max }
            .check()
            .map_err(|e| e.to_string())?;
        let tick_ms = in_range("tickMs", self.tick_ms.unwrap_or(defaults.tick_ms), 10, 10_000)?;
        let rules = GameRules {
            tick_ms,
            max_tick_ms: in_range("maxTickMs", self.max_tick_ms.unwrap_or(tick_ms), tick_ms, 10_000)?,
            countdown_ms: in_range(
                "countdownMs",
                self.countdown_ms.unwrap_or(defaults.countdown_ms),
                0,
                60_000,
            )?,
            max_rounds: in_range("maxRounds", self.max_rounds.unwrap_or(defaults.max_rounds), 1, 100_000)?,
            min_break_steps: min,
            max_break_steps: max,
        };
        // At its slowest pace: an adaptive game may play every round at `maxTickMs`.
        let longest_ms = u128::from(rules.max_rounds) * u128::from(max) * rules.max_tick_ms as u128;
        if defaults.max_game_ms > 0 && longest_ms > defaults.max_game_ms as u128 {
            return Err(format!(
                "a game may last at most {} s (TICKCAST_MAX_GAME_DURATION); maxRounds × maxBreakSteps × maxTickMs = {} × {max} × {} ms = {} s: lower one of them",
                defaults.max_game_ms / 1000,
                rules.max_rounds,
                rules.max_tick_ms,
                longest_ms / 1000
            ));
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> StartRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let rules = request(r#"{"userId":"a"}"#).rules(&GameDefaults::default()).unwrap();
        assert_eq!(
            rules,
            GameRules {
                tick_ms: 100,
                max_tick_ms: 100,
                countdown_ms: 3000,
                max_rounds: 1000,
                min_break_steps: 10,
                max_break_steps: 100
            }
        );
        // A min above the default max raises the default max instead of failing.
        assert_eq!(
            request(r#"{"userId":"a","minBreakSteps":500,"maxRounds":10}"#)
                .rules(&GameDefaults::default())
                .unwrap()
                .max_break_steps,
            500
        );
    }

    #[test]
    fn the_longest_game_is_bounded_unless_the_bound_is_off() {
        let body = r#"{"userId":"a","tickMs":10,"maxRounds":100000,"minBreakSteps":1000000,"maxBreakSteps":1000000}"#;
        let message = request(body).rules(&GameDefaults::default()).unwrap_err();
        assert!(message.contains("maxRounds × maxBreakSteps × maxTickMs"), "{message}");
        let unbounded = GameDefaults { max_game_ms: 0, ..GameDefaults::default() };
        assert!(request(body).rules(&unbounded).is_ok());
        // 1000 rounds of 10 steps: 16.7 min at 100 ms, 11.1 h at the slowest pace of 4 s.
        let adaptive = r#"{"userId":"a","minBreakSteps":10,"maxBreakSteps":10}"#;
        assert!(request(adaptive).rules(&GameDefaults::default()).is_ok());
        let slowest = r#"{"userId":"a","minBreakSteps":10,"maxBreakSteps":10,"maxTickMs":4000}"#;
        assert!(request(slowest).rules(&GameDefaults::default()).unwrap_err().contains("maxTickMs"));
    }

    #[test]
    fn out_of_range_fields_are_named() {
        for (body, field) in [
            (r#"{"userId":"a","tickMs":9}"#, "tickMs"),
            (r#"{"userId":"a","tickMs":10001}"#, "tickMs"),
            (r#"{"userId":"a","tickMs":100,"maxTickMs":99}"#, "maxTickMs"),
            (r#"{"userId":"a","maxTickMs":10001}"#, "maxTickMs"),
            (r#"{"userId":"a","tickMs":200,"maxTickMs":-1}"#, "maxTickMs"),
            (r#"{"userId":"a","countdownMs":-1}"#, "countdownMs"),
            (r#"{"userId":"a","countdownMs":60001}"#, "countdownMs"),
            (r#"{"userId":"a","maxRounds":0}"#, "maxRounds"),
            (r#"{"userId":"a","maxRounds":100001}"#, "maxRounds"),
            (r#"{"userId":"a","minBreakSteps":0}"#, "minBreakSteps"),
            (r#"{"userId":"a","maxBreakSteps":1000001}"#, "maxBreakSteps"),
            (r#"{"userId":"a","minBreakSteps":5,"maxBreakSteps":4}"#, "minBreakSteps"),
            (r#"{"userId":""}"#, "userId"),
            // 1000 rounds of up to 1,000 steps of 100 ms: 27.8 h, over the 6 h default.
            (r#"{"userId":"a","maxBreakSteps":1000}"#, "TICKCAST_MAX_GAME_DURATION"),
        ] {
            let message = request(body).rules(&GameDefaults::default()).unwrap_err();
            assert!(message.contains(field), "{body}: {message}");
        }
    }
}
