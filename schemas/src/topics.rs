//! Topic names (docs/protocol.md, "Events"). Both are keyed by sessionId, so one session's events stay ordered.

/// Facts: sessions created, players joining and leaving, latency, kicks, sessions ended.
pub const GAME_EVENTS: &str = "game-events";

/// Prefix of the per-region broadcast topics.
pub const TICKS_PREFIX: &str = "ticks.";

/// The broadcast topic of a region: countdowns, ticks and a copy of `session_ended`.
#[must_use]
pub fn ticks(region: &str) -> String {
    format!("{TICKS_PREFIX}{region}")
}

/// The deployment's shared settings that every process must agree on, such as the join-token
/// secret when none is configured; one partition, the first record of a key wins.
pub const DEPLOYMENT: &str = "tickcast-deployment";
