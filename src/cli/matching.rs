//! The matchmaking rules' flags (docs/protocol.md, "Matchmaking"), shared by `tickcast up` and
//! `tickcast matchmaker`, and the matchmaker's own command.

use std::time::Duration;

use clap::Args;

use super::{AdminListenArgs, CommonArgs, LogArgs};

#[derive(Debug, Args)]
pub(crate) struct MatchArgs {
    /// Fewest players in a match.
    #[arg(long, env = "TICKCAST_MATCH_MIN_PLAYERS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub(crate) match_min_players: u64,
    /// Most players in a match: a group this big forms at once.
    #[arg(long, env = "TICKCAST_MATCH_MAX_PLAYERS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub(crate) match_max_players: u64,
    /// Every member's round trip to its match's region is at most this, ms [default: `up`'s
    /// --warning-latency-ms; 100 for a matchmaker alone].
    #[arg(long, env = "TICKCAST_MATCH_MAX_LATENCY_MS", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) match_max_latency_ms: Option<u64>,
    /// The highest minus the lowest member latency to the region, at most, ms; doubled every
    /// --match-expand-after the oldest member has waited, never past the latency limit.
    #[arg(long, env = "TICKCAST_MATCH_MAX_SPREAD_MS", default_value_t = 25, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub(crate) match_max_spread_ms: u64,
    #[arg(long, env = "TICKCAST_MATCH_EXPAND_AFTER", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) match_expand_after: Duration,
    /// Once its oldest member has waited this long, a group need not be full to form.
    #[arg(long, env = "TICKCAST_MATCH_FILL_AFTER", default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) match_fill_after: Duration,
    /// A ticket not matched by then expires.
    #[arg(long, env = "TICKCAST_MATCH_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) match_timeout: Duration,
}

/// `tickcast matchmaker`: one member of the matchmakers' consumer group.
#[derive(Debug, Args)]
pub(crate) struct MatchmakerArgs {
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    pub(crate) admin: AdminListenArgs,
    #[command(flatten)]
    pub(crate) matching: MatchArgs,
    /// The matched games' step length, ms.
    #[arg(long, env = "DEFAULT_TICK_MS", default_value_t = 100, value_parser = clap::value_parser!(i64).range(10..=10_000))]
    pub(crate) default_tick_ms: i64,
    /// The matched games' countdown, ms: the time their players have to connect.
    #[arg(long, env = "COUNTDOWN_MS", default_value_t = 3000, value_parser = clap::value_parser!(i64).range(0..=60_000))]
    pub(crate) countdown_ms: i64,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}
