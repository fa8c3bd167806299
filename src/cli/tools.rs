//! The flags of the commands for analysts and load: `replay`, `bots` and `engine`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{ArchiveArgs, ListenArgs, LogArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum ReplayCommand {
    /// One line per session: region, start, players, rounds, kicks, end reason.
    Sessions {
        #[command(flatten)]
        source: ReplaySource,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Every event of one game, in order.
    Timeline {
        #[command(flatten)]
        source: ReplaySource,
        #[command(flatten)]
        session: SessionArg,
        /// The events as JSON lines, as logged.
        #[arg(long)]
        json: bool,
    },
    /// Export ticks (typed columns) or all events as Parquet, Arrow IPC, CSV or JSON lines.
    Export {
        #[command(flatten)]
        source: ReplaySource,
        /// ticks: one row per tick; events: one row per event of any type.
        #[arg(long, default_value = "ticks")]
        kind: tickcast_replay::export::Kind,
        /// parquet, arrow, csv or jsonl.
        #[arg(long)]
        format: tickcast_replay::export::Format,
        /// File to write.
        #[arg(long)]
        out: PathBuf,
        /// Only this session (a filter, like --from and --to; default: every session).
        #[arg(long = "session", value_name = "ID")]
        only_session: Option<String>,
        /// Only events at or after this instant (epoch ms).
        #[arg(long)]
        from: Option<i64>,
        /// Only events before this instant (epoch ms).
        #[arg(long)]
        to: Option<i64>,
    },
    /// A self-contained HTML report with SVG plots: value curves with breaks, round lengths
    /// against the engine, RTT per region, kicks and warnings over time, tick lateness.
    Report {
        #[command(flatten)]
        source: ReplaySource,
        /// File to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        which: SessionSelection,
    },
    /// Re-broadcast a recorded game over the client protocol (ws://LISTEN/ws), 0.01× to 1000×
    /// its recorded pace: each spectator that sends join gets the game from its start, and its
    /// pings answered.
    Serve {
        #[command(flatten)]
        source: ReplaySource,
        #[command(flatten)]
        session: SessionArg,
        /// How many times faster than it was played (0.01 to 1000; below 1 is slower).
        #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
        speed: f64,
        #[command(flatten)]
        listen: ListenArgs,
    },
    /// Recompute every logged tick with the engine, check each revealed seed against its
    /// seedHash and that no step is missing or doubled. Exits 1 and names the first bad event.
    Verify {
        #[command(flatten)]
        source: ReplaySource,
        #[command(flatten)]
        which: SessionSelection,
    },
}

#[derive(Debug, Args)]
pub(crate) struct BotsArgs {
    /// Base URL of the edge.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) edge: String,
    /// Games to create.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) sessions: u64,
    /// Players (WebSocket connections) per game.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) players_per_session: u64,
    /// How long each game is measured from its start, e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) duration: std::time::Duration,
    /// Round-trip time each bot adds to its own answers (pongs and messages).
    #[arg(long, default_value_t = 0)]
    pub(crate) rtt_ms: u64,
    /// Jitter (±, uniform) on the added delay.
    #[arg(long, default_value_t = 0)]
    pub(crate) jitter_ms: u64,
    /// Step length of the games (10–10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(10..=10_000))]
    pub(crate) tick_ms: i64,
    /// Play adaptive games that may slow to this many ms per step (maxTickMs, from --tick-ms
    /// to 10000): the report then says what pace they reached.
    #[arg(long, value_parser = clap::value_parser!(i64).range(10..=10_000))]
    pub(crate) max_tick_ms: Option<i64>,
    /// The games' shortest round, in steps (with --max-break-steps; default: the edge's).
    #[arg(long, requires = "max_break_steps", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) min_break_steps: Option<u64>,
    /// The games' longest round, in steps (with --min-break-steps).
    #[arg(long, requires = "min_break_steps", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) max_break_steps: Option<u64>,
    /// Connections opened per second while ramping up.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) connect_rate: u32,
    /// Region to ask for (default: the edge decides).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Games arrive one by one, each starting its countdown (3 s) when created, so the load
    /// grows while games are offered (default: all start together after the ramp).
    #[arg(long, conflicts_with = "burst")]
    pub(crate) staggered: bool,
    /// Every game is created back to back as fast as the edge answers, each starting its
    /// countdown (3 s) when created; then every player connects at once (--connect-rate is not
    /// used). Lateness counts live ticks only, as always: what a game played before its player
    /// joined is replayed history.
    #[arg(long)]
    pub(crate) burst: bool,
    /// PID of the server, to report its CPU per message and memory per player (Linux).
    #[arg(long)]
    pub(crate) server_pid: Option<u32>,
    /// Print the report as one JSON object instead of a summary.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Where replay reads games from: the live log, or (given --archive) the archiver's Parquet
/// files instead.
#[derive(Debug, Args)]
pub(crate) struct ReplaySource {
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    pub(crate) archive: ArchiveArgs,
}

fn parse_speed(text: &str) -> Result<f64, String> {
    use tickcast_replay::serve::{MAX_SPEED, MIN_SPEED};
    match text.parse::<f64>() {
        Ok(speed) if (MIN_SPEED..=MAX_SPEED).contains(&speed) => Ok(speed),
        _ => Err(format!("{text:?}: give a speed from {MIN_SPEED} to {MAX_SPEED} (1 is the recorded pace)")),
    }
}

/// `--session`: one game.
#[derive(Debug, Args)]
pub(crate) struct SessionArg {
    /// The session (its gameId).
    #[arg(long = "session", value_name = "ID")]
    pub(crate) id: String,
}

/// `--session ID` or `--all`: the games a command covers.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SessionSelection {
    /// Only this session (its gameId).
    #[arg(long = "session", value_name = "ID")]
    pub(crate) session: Option<String>,
    /// Every session in the log.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["step", "hash"]))]
pub(crate) struct EngineArgs {
    /// The session's seed (u64, decimal).
    #[arg(long)]
    pub(crate) seed: u64,
    /// Print the state at this step as one JSON line.
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) step: Option<i64>,
    /// Print the seedHash (hex SHA-256 of the seed's decimal string).
    #[arg(long, conflicts_with = "step")]
    pub(crate) hash: bool,
    /// Shortest round, in steps (the session's minBreakSteps).
    #[arg(long, default_value_t = tickcast_engine::DEFAULT_MIN_BREAK_STEPS, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) min_break_steps: u64,
    /// Longest round, in steps (the session's maxBreakSteps; at least --min-break-steps).
    #[arg(long, default_value_t = tickcast_engine::DEFAULT_MAX_BREAK_STEPS, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) max_break_steps: u64,
}
