//! Command-line flags, with the environment fallbacks named in README.md (the original design's names where it had them).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod listen;
mod log;
mod matching;
mod tools;
pub(crate) use listen::*;
pub(crate) use log::*;
pub(crate) use matching::*;
pub(crate) use tools::*;

#[derive(Debug, Parser)]
#[command(
    name = "tickcast",
    version,
    about = "Event-sourced backend for synchronized, server-authoritative tick games"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// How log lines on stderr are written: text (coloured only on a terminal) or json (one
    /// object a line, for log collectors).
    #[arg(long, global = true, env = "TICKCAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run every role in one process on the embedded log: edge, a gateway per region, tick
    /// generator, archiver and projector (the read API's store), and the player page.
    Up(Box<UpArgs>),
    /// Run the edge (HTTP game start/join) alone.
    Edge(EdgeArgs),
    /// Run the WebSocket gateway of one region alone.
    Gateway(GatewayArgs),
    /// Run a tick generator alone.
    TickGenerator(TickGeneratorArgs),
    /// Evaluate the engine: the state at a step, or the seedHash of a seed.
    Engine(EngineArgs),
    /// Read games back from the log: list sessions, show a timeline, verify every tick.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Run the archiver alone: the log as Parquet files under an archive directory.
    Archiver(ArchiverArgs),
    /// Manage the log's topics (Kafka).
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Run the projector alone: `game-events` as the sessions, connections and latency tables
    /// of a projection store.
    Projector(ProjectorArgs),
    /// Run a matchmaker alone: tickets searching, matched into games by latency (one active
    /// member of its group; others stand by and take over from the log).
    Matchmaker(MatchmakerArgs),
    /// Manage the projection store's tables (DynamoDB).
    #[command(subcommand)]
    Tables(TablesCommand),
    /// Manage a Kinesis log's streams and lease table.
    #[command(subcommand)]
    Streams(StreamsCommand),
    /// Drain a region for maintenance, or restore it (split deployments; `up` and the edge
    /// serve the same as `POST /admin/regions/{region}/drain|restore`).
    #[command(subcommand)]
    Regions(RegionsCommand),
    /// Load bots: create games through an edge, connect one WebSocket per player and measure
    /// every tick they receive. Exits 2 when a step was missing, doubled or out of order.
    Bots(BotsArgs),
}

/// `--store`, `--store-ttl`: where the projections live and how long they outlive a game.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Projection store: embedded://DIR (SQLite) or dynamodb://PREFIX?region=R[&endpoint=URL];
    /// for up, `none` runs no projector (no read API, no lobby) [default for up:
    /// embedded://DATA_DIR].
    #[arg(long = "store", env = "TICKCAST_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,
    /// How long the items of a game are kept after it ends (TTL), e.g. 7d.
    #[arg(long, env = "TICKCAST_STORE_TTL", default_value = "7d", value_parser = parse_store_ttl)]
    pub(crate) store_ttl: std::time::Duration,
}

fn parse_store_ttl(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text).map_err(|e| e.to_string())? {
        ttl if ttl.as_secs() == 0 => Err("items must be kept at least 1 s (e.g. 7d)".into()),
        ttl => Ok(ttl),
    }
}

#[derive(Debug, Args)]
pub(crate) struct ProjectorArgs {
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    pub(crate) admin: AdminListenArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Project every event the log holds now into new tables, switch the store to them, and
    /// exit (stop the running projectors first). The old tables serve until the new ones are
    /// complete (on DynamoDB: the other set of tables, switched to in PREFIX-tables).
    #[arg(long)]
    pub(crate) rebuild: bool,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    pub(crate) listen: ListenArgs,
    /// Directory of the embedded log (and, unless --archive says otherwise, of the archive, the
    /// projections and the token secret).
    #[arg(long, env = "TICKCAST_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,
    /// Another event log than the data directory's, shared with other processes:
    /// kafka://HOST:PORT[?prefix=P] or kinesis://PREFIX?region=R (its topics or streams made
    /// first: `tickcast topics create` / `tickcast streams create`) [default: embedded://DATA_DIR].
    #[arg(long = "log", env = "TICKCAST_LOG", value_name = "URL")]
    pub(crate) log: Option<String>,
    #[command(flatten)]
    pub(crate) kafka: KafkaClientArgs,
    /// How long the embedded log keeps records: older ones are deleted once archived, never a
    /// running session's (`forever` keeps all). Kafka and Kinesis keep by their own settings
    /// (`topics create --retention`, the streams' retention period).
    #[arg(long, env = "TICKCAST_RETENTION", default_value = "7d", value_parser = parse_retention)]
    pub(crate) retention: RecordRetention,
    #[command(flatten)]
    pub(crate) archive: ArchiveArgs,
    #[command(flatten)]
    pub(crate) roll: RollArgs,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    pub(crate) game: GameArgs,
    #[command(flatten)]
    pub(crate) latency: LatencyArgs,
    #[command(flatten)]
    pub(crate) matching: MatchArgs,
    #[command(flatten)]
    pub(crate) sockets: SocketLimitArgs,
    #[command(flatten)]
    pub(crate) admission: AdmissionArgs,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) regions_control: RegionControlArgs,
}

/// When `tickcast up` refuses new games because it is saturated (docs/operations.md).
#[derive(Debug, Args)]
pub(crate) struct AdmissionArgs {
    /// A gateway lag (late timers, old fan-out queues) or tick lateness over this many ms,
    /// lasting --saturation-sustain, saturates the process: new games and joins get 503
    /// at_capacity. 0 admits every game. Also the lateness past which adaptive games slow down
    /// (--pace-load-limit-ms).
    #[arg(long, env = "TICKCAST_SATURATION_LAG_MS", default_value_t = 5)]
    pub(crate) saturation_lag_ms: u64,
    /// How long the lag must stay over --saturation-lag-ms to count as saturation.
    #[arg(long, env = "TICKCAST_SATURATION_SUSTAIN", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub(crate) saturation_sustain: std::time::Duration,
    /// How long the process stays saturated after its last lag over the limit (also the
    /// Retry-After it answers).
    #[arg(long, env = "TICKCAST_SATURATION_HOLD", default_value = "3s", value_parser = humantime::parse_duration)]
    pub(crate) saturation_hold: std::time::Duration,
    /// Players the process must serve before its lag counts as saturation (fewer lag for
    /// another reason: a debug build, a busy neighbour).
    #[arg(long, env = "TICKCAST_SATURATION_MIN_PLAYERS", default_value_t = 100)]
    pub(crate) saturation_min_players: u64,
    /// Players admitted at most, over every game that has not ended (counting down included):
    /// past it, starts and joins get 503 at_capacity before their game plays. `auto` learns
    /// what the process can carry from its CPU per delivered tick and the cores it has; 0
    /// admits any number.
    #[arg(long, env = "TICKCAST_MAX_PLAYERS", default_value = "auto", value_parser = parse_max_players)]
    pub(crate) max_players: MaxPlayers,
}

/// `--max-players`: a fixed number, or learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaxPlayers {
    Auto,
    /// 0: no limit.
    Fixed(u64),
}

fn parse_max_players(value: &str) -> Result<MaxPlayers, String> {
    if value == "auto" {
        return Ok(MaxPlayers::Auto);
    }
    value
        .parse()
        .map(MaxPlayers::Fixed)
        .map_err(|_| format!("{value:?} is neither `auto` nor a number of players (0 admits any number)"))
}

#[derive(Debug, Args)]
pub(crate) struct ArchiverArgs {
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    pub(crate) admin: AdminListenArgs,
    #[command(flatten)]
    pub(crate) archive: ArchiveArgs,
    #[command(flatten)]
    pub(crate) roll: RollArgs,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RollArgs {
    /// Close an archive file once it holds this many rows…
    #[arg(long, default_value_t = 500_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) archive_roll_rows: u64,
    /// …or once it has been open this long (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub(crate) archive_roll_age: std::time::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct EdgeArgs {
    #[command(flatten)]
    pub(crate) listen: ListenArgs,
    /// A gateway players of a region connect to, as REGION=ws://HOST:PORT/ws/REGION
    /// (repeatable, also for one region: its games are spread over its ready gateways by
    /// rendezvous hashing of the gameId). Given any, the edge starts games only in these regions.
    #[arg(long = "gateway", value_name = "REGION=URL")]
    pub(crate) gateways: Vec<String>,
    /// PEM file of CA certificates to trust, beside the system's, when polling `wss://` gateways'
    /// `/readyz` (a private CA, or a gateway's self-signed certificate).
    #[arg(long, env = "TICKCAST_GATEWAY_CA", value_name = "FILE")]
    pub(crate) gateway_ca: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    pub(crate) game: GameArgs,
    /// The read API (`/edge/sessions`) and joins of any game the log knows come from this
    /// projection store (a projector must feed it).
    #[arg(long = "store", env = "TICKCAST_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,
    #[command(flatten)]
    pub(crate) regions_control: RegionControlArgs,
}

/// Draining regions: the operator's endpoints and automatic failover (edge, up).
#[derive(Debug, Args)]
pub(crate) struct RegionControlArgs {
    /// Bearer token of the operator's endpoints (`POST /admin/regions/{region}/drain` and
    /// `/restore`); without it every `/admin/*` path answers 404.
    #[arg(long, env = "TICKCAST_ADMIN_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// A region with no ready gateway for this long is drained (reason `unhealthy`): new games
    /// avoid it and its running games move; it is restored when a gateway is ready again.
    #[arg(long, env = "TICKCAST_REGION_FAILOVER_AFTER", default_value = "10s", value_parser = humantime::parse_duration)]
    pub(crate) region_failover_after: std::time::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
    /// Region served (must be in the region table).
    #[arg(long, env = "TICKCAST_REGION")]
    pub(crate) region: String,
    #[command(flatten)]
    pub(crate) listen: ListenArgs,
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    pub(crate) latency: LatencyArgs,
    #[command(flatten)]
    pub(crate) sockets: SocketLimitArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TickGeneratorArgs {
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(flatten)]
    pub(crate) admin: AdminListenArgs,
    /// Static group membership (Kafka): the instance id becomes `group.instance.id`, so a
    /// restart within the session timeout gets its partitions back without a rebalance (and a
    /// stop hands them over only after the session timeout).
    #[arg(long, env = "TICKCAST_STATIC_MEMBERSHIP")]
    pub(crate) static_membership: bool,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    pub(crate) game: GameArgs,
}

fn parse_ticket_ttl(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text).map_err(|e| e.to_string())? {
        ttl if ttl.is_zero() => Err("a ticket must live longer than 0 s (e.g. 6h)".into()),
        ttl => Ok(ttl),
    }
}

/// `--archive`: the Parquet archive's directory.
#[derive(Debug, Args)]
pub(crate) struct ArchiveArgs {
    /// Directory of the Parquet archive (kind=…/date=…/region=…/part-….parquet): where `up`
    /// (default: DATA_DIR/archive) and `archiver` write it; `replay` reads it instead of the log.
    #[arg(long = "archive", env = "TICKCAST_ARCHIVE", value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// `--regions`: the region table.
#[derive(Debug, Args)]
pub(crate) struct RegionArgs {
    /// Region table: comma-separated `id` or `id=ws://host:port/ws/id` (default: the eight
    /// regions of the original design).
    #[arg(long = "regions", env = "TICKCAST_REGIONS", value_name = "TABLE")]
    pub(crate) table: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CommonArgs {
    /// Secret for join tokens (at least 16 bytes); every edge and gateway of a deployment must
    /// share it. When unset: on an embedded log, one created once in its directory
    /// (`token-secret`, owner-only); on Kafka, an edge or gateway refuses to start unless
    /// --allow-log-stored-secret.
    #[arg(long, env = "TICKCAST_TOKEN_SECRET", hide_env_values = true)]
    pub(crate) token_secret: Option<String>,
    /// Secrets that signed tickets before the current one (comma-separated): their tickets
    /// still verify until --previous-token-secrets-until, so a rotation refuses no ticket
    /// already out.
    #[arg(long, env = "TICKCAST_PREVIOUS_TOKEN_SECRETS", hide_env_values = true, value_delimiter = ',')]
    pub(crate) previous_token_secrets: Vec<String>,
    /// When tickets signed with the previous secrets stop verifying (RFC 3339, e.g.
    /// 2026-12-01T18:00:00Z; at least the ticket lifetime after the rotation).
    #[arg(long, env = "TICKCAST_PREVIOUS_TOKEN_SECRETS_UNTIL", value_parser = humantime::parse_rfc3339)]
    pub(crate) previous_token_secrets_until: Option<std::time::SystemTime>,
    /// On Kafka without TICKCAST_TOKEN_SECRET: keep the deployment's secret in the
    /// `tickcast-deployment` topic (the first one written wins). Whoever can read that topic
    /// can forge tickets: protect it, or configure the secret.
    #[arg(long, env = "TICKCAST_ALLOW_LOG_STORED_SECRET")]
    pub(crate) allow_log_stored_secret: bool,
    #[command(flatten)]
    pub(crate) regions: RegionArgs,
    /// The built web client served at `/` (`npm run build` in web/ writes web/dist).
    #[arg(long, env = "TICKCAST_WEB_DIR", default_value = "web/dist")]
    pub(crate) web_dir: PathBuf,
    /// Instance name, used in the `source` of written events (and as the static group member
    /// id of a tick generator).
    #[arg(long, visible_alias = "instance-id", env = "TICKCAST_INSTANCE", default_value = "0")]
    pub(crate) instance: String,
    /// How far back the edge reads `game-events` into its session directory at start; joins
    /// of older games are answered from the projection store (--store), when it has one.
    #[arg(long, env = "TICKCAST_DIRECTORY_HISTORY", default_value = "6h", value_parser = humantime::parse_duration)]
    pub(crate) directory_history: std::time::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct GameArgs {
    /// Step length of games that do not ask for one (10–10000).
    #[arg(long, env = "DEFAULT_TICK_MS", default_value_t = 100, value_parser = clap::value_parser!(i64).range(10..=10_000))]
    pub(crate) default_tick_ms: i64,
    /// Countdown of games that do not ask for one (0–60000).
    #[arg(long, env = "COUNTDOWN_MS", default_value_t = 3000, value_parser = clap::value_parser!(i64).range(0..=60_000))]
    pub(crate) countdown_ms: i64,
    /// false: client-side tick mode — the edge returns the seed at start and clients compute the
    /// ticks themselves (the original design's older mode; games have no secret then).
    #[arg(long, env = "USE_TICK_BROADCASTER", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) use_tick_broadcaster: bool,
    /// How long a ticket (join token) stays valid, e.g. 6h, 90m; `resume` presents the same one.
    #[arg(long, env = "TICKCAST_TICKET_TTL", default_value = "6h", value_parser = parse_ticket_ttl)]
    pub(crate) ticket_ttl: std::time::Duration,
    /// Games one client address may start per minute (a burst of as many); 0 for no limit.
    #[arg(long, env = "TICKCAST_GAME_RATE_PER_IP", default_value_t = 30)]
    pub(crate) game_rate_per_ip: u32,
    /// Games one userId may have running at once; 0 for no limit.
    #[arg(long, env = "TICKCAST_MAX_GAMES_PER_USER", default_value_t = 5)]
    pub(crate) max_games_per_user: usize,
    /// The longest game accepted (maxRounds × maxBreakSteps × tickMs); 0 for no limit.
    #[arg(long, env = "TICKCAST_MAX_GAME_DURATION", default_value = "6h", value_parser = humantime::parse_duration)]
    pub(crate) max_game_duration: std::time::Duration,
    /// A session with no player connected for this long after its start ends as `idle`.
    #[arg(long, env = "TICKCAST_IDLE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) idle_ms: i64,
    /// A gateway that has not said it serves a session for this long (it writes a heartbeat
    /// every 5 s) is lost: its players there leave (`player_left`, reason `gateway_lost`) and
    /// stop counting for idle ends, the players list and the projections. At least 10s.
    #[arg(long, env = "TICKCAST_GATEWAY_TIMEOUT", default_value = "15s", value_parser = parse_gateway_timeout)]
    pub(crate) gateway_timeout: std::time::Duration,
    /// An adaptive game's target pace per ms of its slowest player's mean RTT (over its last 5
    /// samples): 2 plays a player with 120 ms round trips at 240 ms per step. Above 0, at most 100.
    #[arg(long, env = "TICKCAST_PACE_RTT_FACTOR", default_value_t = 2.0, value_parser = parse_pace_rtt_factor)]
    pub(crate) pace_rtt_factor: f64,
    /// An adaptive game whose ticks of a round were mostly emitted later than this many ms
    /// slows its next round by ×1.5 (time dilation); rounds on time bring it back. 0 turns the
    /// load policy off. Default: `up`'s --saturation-lag-ms, 5 for a tick generator alone.
    #[arg(long, env = "TICKCAST_PACE_LOAD_LIMIT_MS")]
    pub(crate) pace_load_limit_ms: Option<u64>,
}

fn parse_pace_rtt_factor(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(factor) if factor > 0.0 && factor <= 100.0 => Ok(factor),
        _ => Err(format!("{text:?} is not a number above 0 and at most 100 (e.g. 2 or 1.5)")),
    }
}

fn parse_gateway_timeout(text: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 15s)"))? {
        timeout if timeout < std::time::Duration::from_secs(10) => {
            Err("at least 10s: gateways write a heartbeat every 5 s, and one late one must not count as lost"
                .into())
        }
        timeout => Ok(timeout),
    }
}

/// What a gateway allows one client socket (SECURITY.md).
#[derive(Debug, Args)]
pub(crate) struct SocketLimitArgs {
    /// How long an upgraded WebSocket may go without a `join` (or `resume`) before it is
    /// closed with 1008; 0 for no limit.
    #[arg(long, env = "JOIN_TIMEOUT_MS", default_value_t = 10_000)]
    pub(crate) join_timeout_ms: u64,
    /// Messages a connection may send per second on average (bursts of twice that); more
    /// closes it with 1008 rate_limited. 0 for no limit.
    #[arg(long, env = "TICKCAST_MAX_MESSAGES_PER_S", default_value_t = 20)]
    pub(crate) max_messages_per_s: u32,
    /// Players (distinct userIds) a session may have; a join past it gets session_full and
    /// close 4003. 0 for no limit.
    #[arg(long, env = "TICKCAST_MAX_PLAYERS_PER_SESSION", default_value_t = 100)]
    pub(crate) max_players_per_session: usize,
    /// Game sockets this process may hold; one more is refused with 503 before the upgrade.
    /// Keep it under the process's open-file limit. 0 for no limit.
    #[arg(long, env = "TICKCAST_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub(crate) max_connections: usize,
    /// Game sockets one client address may hold; one more is refused with 429. 0 for no limit.
    #[arg(long, env = "TICKCAST_MAX_CONNECTIONS_PER_IP", default_value_t = 100)]
    pub(crate) max_connections_per_ip: usize,
    /// Origins whose pages may open game sockets, comma-separated (e.g.
    /// https://play.example.com); a browser from another gets 403. Default: any.
    #[arg(long, env = "TICKCAST_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub(crate) allowed_origins: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LatencyArgs {
    /// Average RTT above which a player is kicked.
    #[arg(long, env = "MAX_LATENCY_MS", default_value_t = 150)]
    pub(crate) max_latency_ms: u64,
    /// RTT jitter (population std-dev) above which a player is kicked.
    #[arg(long, env = "MAX_JITTER_MS", default_value_t = 50)]
    pub(crate) max_jitter_ms: u64,
    /// Average RTT above which a player is warned.
    #[arg(long, env = "WARNING_LATENCY_MS", default_value_t = 100)]
    pub(crate) warning_latency_ms: u64,
    /// RTT jitter above which a player is warned.
    #[arg(long, env = "WARNING_JITTER_MS", default_value_t = 30)]
    pub(crate) warning_jitter_ms: u64,
    /// RTT samples (one per second) before the policy judges a player.
    #[arg(long, env = "LATENCY_SAMPLES", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub(crate) latency_samples: u64,
    /// The gateway's own lag (how late its timers fire, how old its fan-out queue is) above
    /// which it judges nobody's latency: its delay must not be charged to players.
    #[arg(long, env = "TICKCAST_GATEWAY_LAG_LIMIT_MS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) gateway_lag_limit_ms: u64,
    /// Test-only: a delay each fan-out shard blocks for before forwarding frames. Built only
    /// with the `test-hooks` feature, which only the tests enable.
    #[cfg(feature = "test-hooks")]
    #[arg(long, env = "TICKCAST_DEBUG_WRITE_DELAY_MS", default_value_t = 0, hide = true)]
    pub(crate) debug_write_delay_ms: u64,
}
