//! Load bots: the instrument that measures the tick path.
//!
//! This crate owns `tickcast bots`: it creates games through the edge, connects one WebSocket
//! per player (as real players do), and records for every player every tick it receives —
//! missing, duplicate and out-of-order steps, and lateness (receive time − `scheduledAt`). A bot
//! can add round-trip time and jitter to its own answers, to exercise the latency policy. It
//! talks to tickcast only through its public interfaces (HTTP and the client protocol) and must
//! not reach into any role's internals.
//!
//! # Layout
//! - [`BotsConfig`], [`run`]: one load run (the ramp-up, the measured window, the sums).
//! - `edge`: game start and join through the edge's HTTP API.
//! - `player`: one player's socket and what it saw.
//! - [`stats`]: the lateness histogram and each player's step record.
//! - [`delay`]: a socket whose writes are delayed (simulated RTT).
//! - `proc_usage`: a process's CPU and memory from `/proc`.
//! - `lag`: the bots' own event-loop lag and the server's reported lag.
//! - [`Report`]: what a run measured, for humans and as JSON.

pub mod delay;
mod edge;
mod lag;
mod player;
mod proc_usage;
mod report;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::edge::create_game;
use crate::player::{PlayerOutcome, play};
pub use crate::report::{Lateness, PaceReached, Report, ServerUsage};
use crate::stats::LatenessHistogram;

/// One load run.
#[derive(Debug, Clone)]
pub struct BotsConfig {
    /// Base URL of the edge, e.g. `http://127.0.0.1:8080`.
    pub edge: String,
    pub sessions: usize,
    pub players_per_session: usize,
    /// How long every session is measured, from its start.
    pub duration: Duration,
    /// Round-trip time each bot adds to its own answers (its writes leave this late).
    pub rtt: Duration,
    /// Uniform jitter (±) on that delay.
    pub jitter: Duration,
    pub tick_ms: i64,
    /// Adaptive games: their slowest pace (`maxTickMs`); `None` plays fixed-pace games.
    pub max_tick_ms: Option<i64>,
    /// The games' round lengths in steps (`minBreakSteps`, `maxBreakSteps`); the edge's
    /// defaults when `None`. Short rounds let adaptive games change pace often.
    pub break_steps: Option<(u64, u64)>,
    /// Connections opened per second during the ramp-up.
    pub connect_rate: u32,
    /// The server's process id, to report its CPU and memory (Linux `/proc`).
    pub server_pid: Option<u32>,
    /// Region to ask the edge for (otherwise the edge decides).
    pub region: Option<String>,
    /// How games and players arrive.
    pub arrival: Arrival,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// How games and players arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Every game is created first, to start together once all players are connected (after a
    /// ramp at the connect rate): the steady load, for capacity.
    #[default]
    Together,
    /// Games arrive one by one at the connect rate: each starts its countdown when it is
    /// created, so the server's load grows while games are still being offered.
    Staggered,
    /// Every game is created back to back as fast as the edge answers, each starting its
    /// countdown when created; then every player connects at once (at most
    /// `BURST_CONNECTS_IN_FLIGHT` handshakes in flight). What admission control must refuse at
    /// the door: nothing plays yet while the games are offered.
    Burst,
}

/// The countdown of a staggered or burst game: from its creation to its first tick.
const ARRIVAL_COUNTDOWN_MS: i64 = 3_000;

/// Connections a burst opens at once: enough to keep the server's accept loop busy, few enough
/// that the listen backlog does not overflow (a dropped SYN costs a player a second).
const BURST_CONNECTS_IN_FLIGHT: usize = 256;

/// Why a run could not be made (a player's own failures are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("edge at {url} refused to create a game: {status} {body}")]
    Edge { url: String, status: u16, body: String },
    #[error("edge at {url} is at capacity (503 at_capacity)")]
    AtCapacity { url: String },
    #[error("cannot reach the edge at {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("invalid configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Counters shared by all players, for the progress bar. Players update them in batches, so
/// the cores they share are not spent bouncing one cache line.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) connected: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Places among the connections opened at once (a burst): held from the connect to the join.
    pub(crate) connects: Option<tokio::sync::Semaphore>,
}

pub(crate) fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// The schedule of a run, fixed before it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// When the ramp-up begins (monotonic).
    pub(crate) ramp_start: Instant,
    pub(crate) ramp: Duration,
    /// Epoch ms from which CPU and messages are counted: every session has started.
    pub(crate) window_start_ms: i64,
    /// Epoch ms at which that window ends: every session is still running until then.
    pub(crate) window_end_ms: i64,
    /// Epoch ms at which this player's measuring ends: its session's start plus the duration
    /// (all sessions start together unless staggered).
    pub(crate) measure_end_ms: i64,
}

/// Runs the bots; returns what they measured. `shutdown` ends the run early (the report covers
/// what was measured).
pub async fn run(config: BotsConfig, shutdown: CancellationToken) -> Result<Report, Error> {
    if config.sessions == 0 || config.players_per_session == 0 {
        return Err(Error::Config("--sessions and --players-per-session must be at least 1".into()));
    }
    let players = config.sessions * config.players_per_session;
    let ramp = Duration::from_secs_f64(players as f64 / f64::from(config.connect_rate.max(1)));
    let lead = Duration::from_secs(2);
    let now_ms = now_us() / 1000;
    let first_start_ms = now_ms + (ramp + lead).as_millis() as i64;
    if config.arrival == Arrival::Staggered && config.duration <= ramp {
        return Err(Error::Config(format!(
            "staggered games arrive over {:.1} s: --duration must be longer, so that all of them are measured together for a while",
            ramp.as_secs_f64()
        )));
    }
    if config.arrival == Arrival::Together && first_start_ms - now_ms > 60_000 {
        return Err(Error::Config(format!(
            "ramping up {players} players at {} per second takes longer than the 60 s countdown a game allows; raise --connect-rate",
            config.connect_rate
        )));
    }
    let duration_ms = config.duration.as_millis() as i64;
    let shared = Arc::new(Shared {
        connects: (config.arrival == Arrival::Burst)
            .then(|| tokio::sync::Semaphore::new(BURST_CONNECTS_IN_FLIGHT)),
        ..Shared::default()
    });
    let http = reqwest::Client::new();
    let server_pid = config.server_pid;
    let baseline_rss = server_pid.and_then(proc_usage::rss_kib);

    let progress = progress_bar(&config, players);
    let ticker = {
        let (shared, progress) = (Arc::clone(&shared), progress.clone());
        let total = players as u64;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let connected = shared.connected.load(Ordering::Relaxed);
                progress.set_position(connected.min(total));
                progress.set_message(format!("{} frames", shared.received.load(Ordering::Relaxed)));
            }
        })
    };

    let mut games = Games { tasks: JoinSet::new(), connect_failures: 0, refused: 0 };
    // The window over which CPU and messages are counted is when every game runs: from the
    // last game's start to the first one's end.
    let plan = match config.arrival {
        Arrival::Together => Plan {
            ramp_start: Instant::now(),
            ramp,
            window_start_ms: first_start_ms + config.tick_ms,
            window_end_ms: first_start_ms + config.tick_ms + duration_ms,
            measure_end_ms: first_start_ms + config.tick_ms + duration_ms,
        },
        Arrival::Staggered => Plan {
            ramp_start: Instant::now(),
            ramp,
            window_start_ms: now_ms + ramp.as_millis() as i64 + ARRIVAL_COUNTDOWN_MS + config.tick_ms,
            window_end_ms: now_ms + ARRIVAL_COUNTDOWN_MS + config.tick_ms + duration_ms,
            measure_end_ms: now_ms + ARRIVAL_COUNTDOWN_MS + config.tick_ms + duration_ms,
        },
        Arrival::Burst => {
            // Every game first, back to back; the window is known once they all exist.
            let created = create_burst(&http, &config, &shutdown, &mut games).await;
            let created = match created {
                Ok(created) => created,
                Err(error) => {
                    ticker.abort();
                    progress.finish_and_clear();
                    return Err(error);
                }
            };
            let first = created.iter().map(|(_, t)| t[0].start_at).min().unwrap_or(now_ms);
            let last = created.iter().map(|(_, t)| t[0].start_at).max().unwrap_or(now_ms);
            let plan = Plan {
                ramp_start: Instant::now(),
                ramp: Duration::ZERO,
                window_start_ms: last + config.tick_ms,
                window_end_ms: (first + config.tick_ms + duration_ms).max(last + config.tick_ms),
                measure_end_ms: first + config.tick_ms + duration_ms,
            };
            for (session, tickets) in created {
                for (player, ticket) in tickets.into_iter().enumerate() {
                    games.spawn_player(session, player, ticket, &config, plan, &shared, &shutdown);
                }
            }
            plan
        }
    };

    // Sample the server and the bots at the window's start and end, from a task of its own.
    let window_start_ms = plan.window_start_ms;
    let sampler = tokio::spawn(async move {
        sleep_until_epoch_ms(window_start_ms).await;
        let start = (proc_usage::cpu_us(None), server_pid.and_then(|p| proc_usage::cpu_us(Some(p))));
        sleep_until_epoch_ms(plan.window_end_ms).await;
        let end = (proc_usage::cpu_us(None), server_pid.and_then(|p| proc_usage::cpu_us(Some(p))));
        let rss = server_pid.and_then(proc_usage::rss_kib);
        (start, end, rss)
    });

    // Whose delay is it: the bots' and the server's own lag over the window.
    let lag_watch = {
        let (http, edge) = (http.clone(), config.edge.clone());
        let from = plan.window_start_ms;
        let until =
            Instant::now() + Duration::from_millis((plan.window_end_ms - now_us() / 1000).max(0) as u64);
        tokio::spawn(async move {
            sleep_until_epoch_ms(from).await;
            lag::watch(http, edge, until).await
        })
    };

    if config.arrival != Arrival::Burst {
        let mut index = 0usize;
        for session in 0..config.sessions {
            if shutdown.is_cancelled() {
                break;
            }
            // Starts spread evenly over one tick, so sessions do not all tick at the same instant.
            let start_at = if config.arrival == Arrival::Staggered {
                let due = plan.ramp_start + plan.ramp.mul_f64(index as f64 / players as f64);
                tokio::time::sleep_until(due).await;
                now_us() / 1000 + ARRIVAL_COUNTDOWN_MS
            } else {
                first_start_ms + (session as i64 * config.tick_ms) / config.sessions as i64
            };
            let tickets = match games.create(&http, &config, session, start_at).await {
                Ok(Some(tickets)) => tickets,
                Ok(None) => {
                    index += config.players_per_session;
                    continue;
                }
                Err(error) => {
                    ticker.abort();
                    progress.finish_and_clear();
                    return Err(error);
                }
            };
            index += config.players_per_session - tickets.len();
            for (player, ticket) in tickets.into_iter().enumerate() {
                let due = plan.ramp_start + plan.ramp.mul_f64(index as f64 / players as f64);
                tokio::time::sleep_until(due).await;
                index += 1;
                games.spawn_player(session, player, ticket, &config, plan, &shared, &shutdown);
            }
        }
    }
    let Games { mut tasks, connect_failures, refused } = games;
    let mut outcomes = Vec::with_capacity(players);
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.unwrap_or_default());
    }
    ticker.abort();
    progress.finish_and_clear();
    let lag = if shutdown.is_cancelled() {
        lag_watch.abort();
        None
    } else {
        lag_watch.await.ok()
    };
    let (start, end, rss) = if shutdown.is_cancelled() {
        sampler.abort();
        ((None, None), (None, None), None)
    } else {
        sampler.await.unwrap_or(((None, None), (None, None), None))
    };
    let window_messages: u64 = outcomes.iter().map(|o| o.window_messages).sum();
    let lateness = LatenessHistogram::default();
    for sample in outcomes.iter().flat_map(|o| o.lateness_us.iter()) {
        lateness.record(i64::from(*sample));
    }
    let server_lateness = LatenessHistogram::default();
    for sample in outcomes.iter().flat_map(|o| o.server_lateness_ms.iter()) {
        server_lateness.record(i64::from(*sample) * 1000);
    }
    let window_s = (plan.window_end_ms - window_start_ms) as f64 / 1000.0;
    let per_message = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if window_messages > 0 => (b - a) as f64 / window_messages as f64,
        _ => 0.0,
    };
    let server = server_pid.map(|_| {
        let rss_kib = rss.unwrap_or(0);
        let rss_baseline_kib = baseline_rss.unwrap_or(0);
        ServerUsage {
            cpu_us_per_message: per_message(start.1, end.1),
            cpu_percent: match (start.1, end.1) {
                (Some(a), Some(b)) => (b - a) as f64 / (window_s * 1e6) * 100.0,
                _ => 0.0,
            },
            rss_kib,
            rss_baseline_kib,
            rss_per_player_kib: rss_kib.saturating_sub(rss_baseline_kib) as f64 / players as f64,
        }
    });

    let sum = |f: fn(&PlayerOutcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    // A kicked player misses the rest of its game by design: delivery is judged on the others.
    let expected = sum(|o| if o.kicked { 0 } else { o.expected });
    let delivered = sum(|o| if o.kicked { 0 } else { o.delivered });
    let h = &lateness;
    Ok(Report {
        sessions: config.sessions,
        players,
        arrival: config.arrival,
        tick_ms: config.tick_ms,
        max_tick_ms: config.max_tick_ms,
        duration_s: config.duration.as_secs_f64(),
        rtt_ms: config.rtt.as_millis() as u64,
        jitter_ms: config.jitter.as_millis() as u64,
        connected: sum(|o| u64::from(o.connected)),
        connect_failures: connect_failures + sum(|o| u64::from(!o.connected)),
        refused,
        expected_steps: expected,
        delivered_steps: delivered,
        missing_steps: expected - delivered,
        duplicate_steps: sum(|o| o.duplicates),
        out_of_order_steps: sum(|o| o.out_of_order),
        complete_players: sum(|o| u64::from(o.complete)),
        kicks: sum(|o| u64::from(o.kicked)),
        errors: sum(|o| o.errors),
        lateness_ms: Lateness::of(h),
        backlog_ticks: sum(|o| o.backlog),
        pace: config.max_tick_ms.map(|_| PaceReached::of(&outcomes, config.tick_ms)),
        server_lateness_ms: Lateness::of(&server_lateness),
        window_messages,
        window_s,
        bots_cpu_us_per_message: per_message(start.0, end.0),
        bots_lag_ms: lag.as_ref().map(|l| Lateness::of(&l.bots)),
        server_lag_ms: lag.as_ref().filter(|l| l.server_scrapes > 0).map(|l| Lateness::of(&l.server)),
        samples_not_judged: lag.as_ref().map_or(0, |l| l.samples_not_judged),
        server,
    })
}

/// The players' tasks, and what was refused or failed before a player could play.
struct Games {
    tasks: JoinSet<PlayerOutcome>,
    connect_failures: u64,
    /// Players the edge refused up front (503 `at_capacity`, on the start or a join).
    refused: u64,
}

impl Games {
    /// One game's tickets; `None` when its start was refused as at capacity. A failure of the
    /// first game is the run's error (the edge is not there, or refuses the bots' games);
    /// later failures count as connect failures of the game's players.
    async fn create(
        &mut self,
        http: &reqwest::Client,
        config: &BotsConfig,
        session: usize,
        start_at: i64,
    ) -> Result<Option<Vec<edge::Ticket>>, Error> {
        match create_game(http, config, session, start_at).await {
            Ok(game) => {
                self.refused += game.refused as u64;
                Ok(Some(game.tickets))
            }
            Err(Error::AtCapacity { .. }) => {
                self.refused += config.players_per_session as u64;
                Ok(None)
            }
            Err(error) if session == 0 => Err(error),
            Err(error) => {
                tracing::warn!(%error, "could not create a game");
                self.connect_failures += config.players_per_session as u64;
                Ok(None)
            }
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one player's whole setting, passed through once")]
    fn spawn_player(
        &mut self,
        session: usize,
        player: usize,
        ticket: edge::Ticket,
        config: &BotsConfig,
        plan: Plan,
        shared: &Arc<Shared>,
        shutdown: &CancellationToken,
    ) {
        let user_id = format!("bot-{session}-{player}");
        // A game that started on its own (staggered, burst) is measured over its own
        // `duration` from its own start.
        let plan = if config.arrival == Arrival::Together {
            plan
        } else {
            Plan {
                measure_end_ms: ticket.start_at + config.tick_ms + config.duration.as_millis() as i64,
                ..plan
            }
        };
        let (shared, config, shutdown) = (Arc::clone(shared), config.clone(), shutdown.clone());
        let seed = (session * config.players_per_session + player + 1) as u64;
        self.tasks.spawn(async move { play(ticket, user_id, &config, plan, &shared, shutdown, seed).await });
    }
}

/// A burst's games, created back to back as fast as the edge answers, each starting its
/// countdown when created; with their tickets.
async fn create_burst(
    http: &reqwest::Client,
    config: &BotsConfig,
    shutdown: &CancellationToken,
    games: &mut Games,
) -> Result<Vec<(usize, Vec<edge::Ticket>)>, Error> {
    let mut created = Vec::with_capacity(config.sessions);
    for session in 0..config.sessions {
        if shutdown.is_cancelled() {
            break;
        }
        let start_at = now_us() / 1000 + ARRIVAL_COUNTDOWN_MS;
        if let Some(tickets) = games.create(http, config, session, start_at).await? {
            created.push((session, tickets));
        }
    }
    Ok(created)
}

async fn sleep_until_epoch_ms(at_ms: i64) {
    let wait = (at_ms * 1000 - now_us()).max(0) as u64;
    tokio::time::sleep(Duration::from_micros(wait)).await;
}

fn progress_bar(config: &BotsConfig, players: usize) -> indicatif::ProgressBar {
    if !config.progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(players as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} players connected, {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
