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
//! - [`BotsConfig`], [`run`]: one load run.
//! - [`stats`]: the lateness histogram and each player's step record.
//! - [`delay`]: a socket whose writes are delayed (simulated RTT).
//! - [`Report`]: what a run measured, for humans and as JSON.

pub mod delay;
pub mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame as WsFrame, FrameHeader};
use tokio_util::sync::CancellationToken;

use crate::delay::DelayedStream;
use crate::stats::{LatenessHistogram, StepRecord};

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
    /// Connections opened per second during the ramp-up.
    pub connect_rate: u32,
    /// The server's process id, to report its CPU and memory (Linux `/proc`).
    pub server_pid: Option<u32>,
    /// Region to ask the edge for (otherwise the edge decides).
    pub region: Option<String>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// Why a run could not be made (a player's own failures are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("edge at {url} refused to create a game: {status} {body}")]
    Edge { url: String, status: u16, body: String },
    #[error("cannot reach the edge at {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub sessions: usize,
    pub players: usize,
    pub tick_ms: i64,
    pub duration_s: f64,
    pub rtt_ms: u64,
    pub jitter_ms: u64,
    pub connected: u64,
    pub connect_failures: u64,
    /// Steps expected by players that were not kicked.
    pub expected_steps: u64,
    pub delivered_steps: u64,
    pub missing_steps: u64,
    pub duplicate_steps: u64,
    pub out_of_order_steps: u64,
    /// Players that received every expected step.
    pub complete_players: u64,
    pub kicks: u64,
    pub errors: u64,
    pub lateness_ms: Lateness,
    /// serverTimestamp − scheduledAt (ms resolution): lateness before the gateway wrote the tick.
    pub server_lateness_ms: Lateness,
    /// Frames received by all bots during the measured window.
    pub window_messages: u64,
    pub window_s: f64,
    pub bots_cpu_us_per_message: f64,
    pub server: Option<ServerUsage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lateness {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// Ticks received before their scheduled time (clock skew between machines).
    pub early: u64,
}

impl Lateness {
    fn of(h: &LatenessHistogram) -> Self {
        Self {
            p50: h.quantile_ms(0.5),
            p99: h.quantile_ms(0.99),
            p999: h.quantile_ms(0.999),
            max: h.max_ms(),
            early: h.early(),
        }
    }
}

/// The server process's cost, from `/proc`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerUsage {
    pub cpu_us_per_message: f64,
    pub cpu_percent: f64,
    pub rss_kib: u64,
    pub rss_baseline_kib: u64,
    pub rss_per_player_kib: f64,
}

impl Report {
    /// A summary for people.
    #[must_use]
    pub fn human(&self) -> String {
        let mut out = format!(
            "{} sessions × {} players = {} players, tick {} ms, measured {:.0} s each (added RTT {} ms ± {} ms)\n",
            self.sessions,
            self.players / self.sessions.max(1),
            self.players,
            self.tick_ms,
            self.duration_s,
            self.rtt_ms,
            self.jitter_ms
        );
        out += &format!(
            "connected {} / {} (connect failures {}), kicked {}, error frames {}\n",
            self.connected, self.players, self.connect_failures, self.kicks, self.errors
        );
        out += &format!(
            "steps: expected {}, delivered {}, missing {}, duplicate {}, out of order {}; {} of {} players got every step\n",
            self.expected_steps,
            self.delivered_steps,
            self.missing_steps,
            self.duplicate_steps,
            self.out_of_order_steps,
            self.complete_players,
            self.players
        );
        out += &format!(
            "lateness (receive − scheduledAt): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms\n",
            self.lateness_ms.p50, self.lateness_ms.p99, self.lateness_ms.p999, self.lateness_ms.max
        );
        out += &format!(
            "  of which before the gateway wrote it (serverTimestamp − scheduledAt): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n",
            self.server_lateness_ms.p50, self.server_lateness_ms.p99, self.server_lateness_ms.max
        );
        out += &format!(
            "bots: {:.2} µs CPU per message ({} messages in {:.1} s)\n",
            self.bots_cpu_us_per_message, self.window_messages, self.window_s
        );
        if let Some(server) = &self.server {
            out += &format!(
                "server: {:.2} µs CPU per message ({:.0}% of a core), RSS {} KiB ({:.1} KiB per player over a {} KiB baseline)\n",
                server.cpu_us_per_message,
                server.cpu_percent,
                server.rss_kib,
                server.rss_per_player_kib,
                server.rss_baseline_kib
            );
        }
        out
    }
}

/// Counters shared by all players, for the progress bar. Players update them in batches, so
/// the cores they share are not spent bouncing one cache line.
#[derive(Debug, Default)]
struct Shared {
    connected: AtomicU64,
    received: AtomicU64,
}

/// How many frames a player receives before it adds them to the shared count.
const PROGRESS_BATCH: u64 = 64;

/// What one player saw.
#[derive(Debug, Default)]
struct PlayerOutcome {
    connected: bool,
    expected: u64,
    delivered: u64,
    duplicates: u64,
    out_of_order: u64,
    complete: bool,
    kicked: bool,
    errors: u64,
    /// Frames received while the measured window was open.
    window_messages: u64,
    /// Lateness of each measured tick, µs; merged after the run.
    lateness_us: Vec<i32>,
    /// serverTimestamp − scheduledAt of each measured tick, ms: the part of the lateness spent
    /// before the gateway wrote the tick (generator, log, fan-out).
    server_lateness_ms: Vec<i32>,
}

/// A ticket from the edge.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ticket {
    game_id: String,
    ws_endpoint: String,
    token: String,
    start_at: i64,
    tick_ms: i64,
}

/// The fields of a server frame the bots read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    step: Option<i64>,
    scheduled_at: Option<i64>,
    server_timestamp: Option<i64>,
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// The schedule of a run, fixed before it starts.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// When the ramp-up begins (monotonic).
    ramp_start: Instant,
    ramp: Duration,
    /// Epoch ms from which CPU and messages are counted: every session has started.
    window_start_ms: i64,
    /// Epoch ms at which measuring ends: the last session start plus the duration.
    measure_end_ms: i64,
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
    if first_start_ms - now_ms > 60_000 {
        return Err(Error::Config(format!(
            "ramping up {players} players at {} per second takes longer than the 60 s countdown a game allows; raise --connect-rate",
            config.connect_rate
        )));
    }
    let plan = Plan {
        ramp_start: Instant::now(),
        ramp,
        window_start_ms: first_start_ms + config.tick_ms,
        measure_end_ms: first_start_ms + config.tick_ms + config.duration.as_millis() as i64,
    };
    let shared = Arc::new(Shared::default());
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

    // Sample the server and the bots at the window's start and end, from a task of its own.
    let window_start_ms = plan.window_start_ms;
    let sampler = tokio::spawn(async move {
        sleep_until_epoch_ms(window_start_ms).await;
        let start = (proc_usage::cpu_us(None), server_pid.and_then(|p| proc_usage::cpu_us(Some(p))));
        sleep_until_epoch_ms(plan.measure_end_ms).await;
        let end = (proc_usage::cpu_us(None), server_pid.and_then(|p| proc_usage::cpu_us(Some(p))));
        let rss = server_pid.and_then(proc_usage::rss_kib);
        (start, end, rss)
    });

    let mut tasks = JoinSet::new();
    let mut connect_failures = 0u64;
    let mut index = 0usize;
    for session in 0..config.sessions {
        if shutdown.is_cancelled() {
            break;
        }
        // Starts spread evenly over one tick, so sessions do not all tick at the same instant.
        let start_at = first_start_ms + (session as i64 * config.tick_ms) / config.sessions as i64;
        let tickets = match create_game(&http, &config, session, start_at).await {
            Ok(tickets) => tickets,
            Err(error) => {
                if session == 0 {
                    ticker.abort();
                    progress.finish_and_clear();
                    return Err(error);
                }
                tracing::warn!(%error, "could not create a game");
                connect_failures += config.players_per_session as u64;
                continue;
            }
        };
        for (player, ticket) in tickets.into_iter().enumerate() {
            let due = plan.ramp_start + plan.ramp.mul_f64(index as f64 / players as f64);
            tokio::time::sleep_until(due).await;
            index += 1;
            let user_id = format!("bot-{session}-{player}");
            let (shared, config, shutdown) = (Arc::clone(&shared), config.clone(), shutdown.clone());
            tasks.spawn(async move {
                play(ticket, user_id, &config, plan, &shared, shutdown, index as u64).await
            });
        }
    }

    let mut outcomes = Vec::with_capacity(players);
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.unwrap_or_default());
    }
    ticker.abort();
    progress.finish_and_clear();
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
    let window_s = (plan.measure_end_ms - window_start_ms) as f64 / 1000.0;
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
        tick_ms: config.tick_ms,
        duration_s: config.duration.as_secs_f64(),
        rtt_ms: config.rtt.as_millis() as u64,
        jitter_ms: config.jitter.as_millis() as u64,
        connected: sum(|o| u64::from(o.connected)),
        connect_failures: connect_failures + sum(|o| u64::from(!o.connected)),
        expected_steps: expected,
        delivered_steps: delivered,
        missing_steps: expected - delivered,
        duplicate_steps: sum(|o| o.duplicates),
        out_of_order_steps: sum(|o| o.out_of_order),
        complete_players: sum(|o| u64::from(o.complete)),
        kicks: sum(|o| u64::from(o.kicked)),
        errors: sum(|o| o.errors),
        lateness_ms: Lateness::of(h),
        server_lateness_ms: Lateness::of(&server_lateness),
        window_messages,
        window_s,
        bots_cpu_us_per_message: per_message(start.0, end.0),
        server,
    })
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

/// Creates one game starting at `start_at` (epoch ms) and tickets for all its players.
async fn create_game(
    http: &reqwest::Client,
    config: &BotsConfig,
    session: usize,
    start_at: i64,
) -> Result<Vec<Ticket>, Error> {
    let countdown_ms = (start_at - now_us() / 1000).clamp(0, 60_000);
    let mut body = json!({ "userId": format!("bot-{session}-0"), "tickMs": config.tick_ms, "countdownMs": countdown_ms });
    if let Some(region) = &config.region {
        body["preferredRegion"] = json!(region);
    }
    let first: Ticket = post(http, &format!("{}/edge/game/start", config.edge), &body).await?;
    let mut tickets = vec![first.clone()];
    for player in 1..config.players_per_session {
        let url = format!("{}/edge/game/{}/join", config.edge, first.game_id);
        tickets.push(post(http, &url, &json!({ "userId": format!("bot-{session}-{player}") })).await?);
    }
    Ok(tickets)
}

async fn post(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> Result<Ticket, Error> {
    let response = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|source| Error::Http { url: url.to_owned(), source })?;
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.text().await.unwrap_or_default();
        return Err(Error::Edge { url: url.to_owned(), status, body });
    }
    response.json().await.map_err(|source| Error::Http { url: url.to_owned(), source })
}

/// One player: connect, join, record every tick until the measured window is over.
async fn play(
    ticket: Ticket,
    user_id: String,
    config: &BotsConfig,
    plan: Plan,
    shared: &Shared,
    shutdown: CancellationToken,
    seed: u64,
) -> PlayerOutcome {
    let mut outcome = PlayerOutcome::default();
    let last_expected = (plan.measure_end_ms - ticket.start_at).div_euclid(ticket.tick_ms);
    let mut record = StepRecord::new(last_expected);
    outcome.expected = record.expected();
    outcome.lateness_us.reserve(record.expected() as usize);
    let (window_start_us, window_end_us) = (plan.window_start_ms * 1000, plan.measure_end_ms * 1000);
    let mut unreported = 0u64;
    let ws_config = WebSocketConfig::default().read_buffer_size(1024).write_buffer_size(0);
    let Ok(stream) = TcpStream::connect(host_port(&ticket.ws_endpoint)).await else { return outcome };
    let _ = stream.set_nodelay(true);
    let io: Box<dyn Io> = if config.rtt.is_zero() && config.jitter.is_zero() {
        Box::new(stream)
    } else {
        Box::new(DelayedStream::new(stream, config.rtt, config.jitter, seed))
    };
    let Ok((mut ws, _)) =
        tokio_tungstenite::client_async_with_config(&ticket.ws_endpoint, io, Some(ws_config)).await
    else {
        return outcome;
    };
    outcome.connected = true;
    shared.connected.fetch_add(1, Ordering::Relaxed);
    let join = json!({"action":"join","sessionId":ticket.game_id,"userId":user_id,"token":ticket.token});
    if ws.send(Message::text(join.to_string())).await.is_err() {
        return outcome;
    }
    // From here the bot reads frames itself with tungstenite's frame parser, skipping the
    // WebSocket state machine's wakers and buffer zeroing: the bots share the machine with the
    // server they measure, so every microsecond they spend is taken from it.
    let mut io = ws.into_inner();
    let mut buf = BytesMut::with_capacity(4096);
    let mut mask_state = seed | 1;
    // Leave once every expected step is in, or a few seconds after the window (late ticks count).
    let hard_end =
        Instant::now() + Duration::from_millis((plan.measure_end_ms - now_us() / 1000).max(0) as u64 + 5_000);
    // Created once, not per message: a timer or a cancellation waiter registered per received
    // frame costs more than the frame itself, and the waiter list is shared by every player.
    let stop = tokio::time::sleep_until(hard_end);
    let cancelled = shutdown.cancelled();
    tokio::pin!(stop, cancelled);
    'read: loop {
        let read = tokio::select! {
            biased;
            read = io.read_buf(&mut buf) => read,
            () = &mut stop => break,
            () = &mut cancelled => break,
        };
        if !matches!(read, Ok(n) if n > 0) {
            break;
        }
        let received_us = now_us();
        loop {
            let (header, payload) = match take_frame(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(()) => {
                    outcome.errors += 1;
                    break 'read;
                }
            };
            match header.opcode {
                OpCode::Data(Data::Text) => {}
                OpCode::Control(Control::Ping) => {
                    let pong = client_frame(WsFrame::pong(payload.freeze()), &mut mask_state);
                    if io.write_all(&pong).await.is_err() {
                        break 'read;
                    }
                    continue;
                }
                OpCode::Control(Control::Close) => break 'read,
                _ => continue,
            }
            unreported += 1;
            if unreported == PROGRESS_BATCH {
                shared.received.fetch_add(unreported, Ordering::Relaxed);
                unreported = 0;
            }
            if (window_start_us..window_end_us).contains(&received_us) {
                outcome.window_messages += 1;
            }
            let Ok(frame) = serde_json::from_slice::<Frame<'_>>(&payload) else {
                outcome.errors += 1;
                continue;
            };
            match frame.kind {
                "tick" => {
                    let (Some(step), Some(scheduled_at)) = (frame.step, frame.scheduled_at) else { continue };
                    if record.receive(step) {
                        let lateness = (received_us - scheduled_at * 1000)
                            .clamp(i64::from(i32::MIN), i64::from(i32::MAX));
                        outcome.lateness_us.push(lateness as i32);
                        if let Some(server_timestamp) = frame.server_timestamp {
                            outcome
                                .server_lateness_ms
                                .push((server_timestamp - scheduled_at).clamp(-1 << 30, 1 << 30) as i32);
                        }
                    }
                    if record.complete() {
                        break 'read;
                    }
                }
                "kicked" => outcome.kicked = true,
                "error" => outcome.errors += 1,
                "session_ended" => break 'read,
                _ => {}
            }
        }
    }
    shared.received.fetch_add(unreported, Ordering::Relaxed);
    let _ = io.write_all(&client_frame(WsFrame::close(None), &mut mask_state)).await;
    outcome.delivered = record.delivered;
    outcome.duplicates = record.duplicates;
    outcome.out_of_order = record.out_of_order;
    outcome.complete = record.complete();
    outcome
}

/// Splits the next complete frame off `buf`: its header and payload. `Err` on a malformed frame.
fn take_frame(buf: &mut BytesMut) -> Result<Option<(FrameHeader, BytesMut)>, ()> {
    let mut cursor = std::io::Cursor::new(&buf[..]);
    let Some((header, length)) = FrameHeader::parse(&mut cursor).map_err(|_| ())? else { return Ok(None) };
    let header_len = cursor.position() as usize;
    let total = header_len + usize::try_from(length).map_err(|_| ())?;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    Ok(Some((header, frame.split_off(header_len))))
}

/// A client frame's bytes, masked as clients must (RFC 6455 §5.3).
fn client_frame(mut frame: WsFrame, mask_state: &mut u64) -> Vec<u8> {
    *mask_state ^= *mask_state << 13;
    *mask_state ^= *mask_state >> 7;
    *mask_state ^= *mask_state << 17;
    frame.header_mut().mask = Some((*mask_state as u32).to_be_bytes());
    let mut out = Vec::with_capacity(frame.len());
    frame.format(&mut out).expect("writing to a Vec cannot fail");
    out
}

/// The socket type under a bot's WebSocket, plain or delayed.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

fn host_port(ws_url: &str) -> String {
    let rest = ws_url.split_once("://").map_or(ws_url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// CPU time and resident memory of a process, from Linux `/proc`.
mod proc_usage {
    /// User + system CPU time in µs of `pid` (this process when `None`).
    pub(crate) fn cpu_us(pid: Option<u32>) -> Option<u64> {
        let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
        let stat = std::fs::read_to_string(path).ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // Linux reports these in clock ticks of 1/100 s (USER_HZ) on every mainstream platform.
        Some(ticks * 10_000)
    }

    pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}
