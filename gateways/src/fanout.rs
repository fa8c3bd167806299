//! The fan-out: a few shard tasks per gateway that own the write halves of the players' sockets
//! (a connection belongs to one shard) and the session hubs. A dispatcher decodes each tick once
//! and encodes it once as a complete WebSocket frame; each shard writes those bytes to its
//! members' sockets with non-blocking writes: no task wake-up, lock or channel per player per
//! tick. Connections send their shard their own frames (answers, closes) as bytes, so
//! everything written to one socket goes through one queue, in order. The shard also pings its
//! joined players on one timer of its own ([`PingSchedule`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tickcast_schemas::load::ProcessLoad;
use tickcast_schemas::protocol::ServerMessage;
use tickcast_schemas::sessions::SessionInfo;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_util::sync::CancellationToken;

use crate::conn_map::ConnMap;
use crate::dispatch::Outgoing;
use crate::hub::{HeldTick, SessionHub};
use crate::lag::GatewayLag;
use crate::ping::{PingSchedule, PingsInFlight, ping_frame};
use crate::player_socket::{PlayerSocket, drain, write_to};
use crate::stream::SocketWriter;
use crate::{metrics, now_ms, now_us};

/// Requests to a fan-out shard.
#[derive(Debug)]
pub(crate) enum Command {
    /// Frames from the tick topic, for the members this shard holds, and when they were queued
    /// (the shard's queue age is part of the gateway's lag).
    Forward(Arc<Vec<Outgoing>>, Instant),
    /// A new connection: from now on the fan-out owns its write half.
    Attach {
        connection: u64,
        write: SocketWriter,
        signals: mpsc::UnboundedSender<Signal>,
        pings: Arc<PingsInFlight>,
    },
    /// Bytes the connection's WebSocket wants written (complete frames, in order).
    Write { connection: u64, bytes: Bytes },
    /// Join (or resume) a session; the fan-out writes `session_joined`, the countdown and the
    /// backlog before any live frame.
    Join {
        connection: u64,
        /// Boxed: the directory's record of a session is large beside the other commands.
        session: Box<SessionInfo>,
        user_id: String,
        resume_after: Option<i64>,
        /// Steps of a moved session from the regions it left, before what this gateway holds.
        earlier: Vec<HeldTick>,
        reply: oneshot::Sender<Result<(), JoinRefused>>,
    },
    /// The connection is closing: flush what can be flushed and let the socket go.
    Detach { connection: u64 },
    /// A socket with queued bytes became writable.
    Writable { connection: u64 },
}

/// Why the fan-out refused a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinRefused {
    /// The session ended and its frames are no longer held.
    Ended,
}

/// What the fan-out tells a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// The session ended: its last frame is written; close the connection.
    Ended,
    /// The socket did not take frames as fast as they came; the player was dropped from its
    /// session and its queued frames discarded.
    TooSlow,
    /// A newer connection of the same player joined the same session (here or through another
    /// gateway): this one closes with 4002.
    Replaced,
    /// The session moved to another region: its `session_migrated` frame is written; close
    /// with 1012 so the player rejoins there.
    Migrated,
    /// A ping written at `sent_us` went unanswered for `age_us`, past the latency limit: a
    /// sample of its age for the latency policy.
    Unanswered { sent_us: i64, age_us: i64 },
}

/// How the fan-out behaves.
#[derive(Debug, Clone)]
pub(crate) struct FanoutConfig {
    pub(crate) resume_ticks: usize,
    /// Bytes queued for one socket before its player is dropped as too slow.
    pub(crate) max_pending_bytes: usize,
    /// How long ended sessions stay for resumes.
    pub(crate) keep_ended: Duration,
    /// How often each joined player is pinged.
    pub(crate) ping_interval: Duration,
    /// How long a ping may go unanswered before it counts as a sample of its age (µs): the
    /// latency policy's limit.
    pub(crate) unanswered_after_us: i64,
    /// Test-only (feature `test-hooks`): how long a shard blocks before each batch of
    /// forwarded frames.
    #[cfg(feature = "test-hooks")]
    pub(crate) debug_write_delay: Duration,
    pub(crate) series: metrics::GatewaySeries,
    /// The process's load (`tickcast up`), told how many ticks were delivered: admission
    /// learns the process's capacity from its CPU per delivered tick.
    pub(crate) load: Option<Arc<ProcessLoad>>,
}

/// The fan-out task's state.
#[derive(Debug)]
pub(crate) struct Fanout {
    config: FanoutConfig,
    hubs: HashMap<String, SessionHub>,
    sockets: ConnMap<PlayerSocket>,
    /// Its own command queue, handed to writability waiters.
    commands: mpsc::UnboundedSender<Command>,
    /// Ended sessions, oldest first, to forget after `keep_ended`.
    ended: VecDeque<(Instant, String)>,
    /// Connections whose queue overflowed since the last `drop_too_slow`.
    overflowed: Vec<u64>,
    /// Where the shard reports how old its commands are when it gets to them.
    lag: Arc<GatewayLag>,
    /// When its send queues were last summed, and the sum then (its share of the region's gauge).
    send_queue_sampled: Instant,
    send_queue_bytes: usize,
    /// When each joined player of this shard is next pinged.
    pings: PingSchedule,
    /// Scratch space for the pings found unanswered as the next ones go out.
    unanswered: Vec<(i64, i64)>,
}

/// How often a shard sums its sockets' send queues for the gauge.
const SEND_QUEUE_SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// A server-to-client text frame: unmasked, so the same bytes serve every player.
pub(crate) fn text_frame(json: String) -> Bytes {
    let frame = Frame::message(json.into_bytes(), OpCode::Data(Data::Text), true);
    let mut out = Vec::with_capacity(frame.len());
    frame.format(&mut out).expect("writing to a Vec cannot fail");
    Bytes::from(out)
}

impl Fanout {
    pub(crate) fn new(
        config: FanoutConfig,
        commands: mpsc::UnboundedSender<Command>,
        lag: Arc<GatewayLag>,
    ) -> Self {
        Self {
            pings: PingSchedule::new(config.ping_interval),
            unanswered: Vec::new(),
            config,
            hubs: HashMap::new(),
            sockets: ConnMap::default(),
            commands,
            ended: VecDeque::new(),
            overflowed: Vec::new(),
            lag,
            send_queue_sampled: Instant::now(),
            send_queue_bytes: 0,
        }
    }

    /// Runs until `stop` (cancelled once every connection has closed).
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        stop: CancellationToken,
    ) {
        let mut batch = Vec::new();
        // One timer for the shard's pings, moved to the soonest one due whenever that changes.
        let ping_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(ping_timer);
        let mut armed_for = None;
        loop {
            let next_ping = self.pings.next_due();
            if next_ping != armed_for {
                if let Some(due) = next_ping {
                    ping_timer.as_mut().reset(due.into());
                }
                armed_for = next_ping;
            }
            tokio::select! {
                received = commands.recv_many(&mut batch, 64) => {
                    if received == 0 {
                        return;
                    }
                    for command in batch.drain(..) {
                        self.handle(command);
                    }
                    // Tens of socket writes per command at most, then let the connections'
                    // tasks (pongs, joins) and the tick generator run on these threads too.
                    tokio::task::yield_now().await;
                }
                () = &mut ping_timer, if armed_for.is_some() => {
                    armed_for = None;
                    self.ping_due();
                }
                () = stop.cancelled() => break,
            }
        }
        // Stopped after every connection has closed: write what they queued last.
        while let Ok(command) = commands.try_recv() {
            self.handle(command);
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Forward(outgoing, queued) => {
                self.lag.report(queued.elapsed());
                #[cfg(feature = "test-hooks")]
                if !self.config.debug_write_delay.is_zero() {
                    // Test-only: a gateway made slow from inside, blocking its thread.
                    std::thread::sleep(self.config.debug_write_delay);
                }
                self.forward(&outgoing);
            }
            Command::Attach { connection, write, signals, pings } => {
                let socket = PlayerSocket {
                    write: Arc::new(write),
                    pending: VecDeque::new(),
                    pending_bytes: 0,
                    waiting: false,
                    session: None,
                    signals,
                    pings,
                };
                self.sockets.insert(connection, socket);
            }
            Command::Write { connection, bytes } => self.write(connection, &bytes),
            Command::Join { connection, session, user_id, resume_after, earlier, reply } => {
                let joined = self.join(connection, &session, user_id, resume_after, &earlier);
                if joined.is_ok() {
                    self.pings.add(connection, Instant::now());
                }
                let _ = reply.send(joined);
            }
            Command::Detach { connection } => {
                self.flush(connection);
                let Some(socket) = self.sockets.remove(&connection) else { return };
                socket.write.close();
                if let Some(session) = socket.session
                    && let Some(hub) = self.hubs.get_mut(&session)
                {
                    hub.leave(connection);
                }
            }
            Command::Writable { connection } => {
                if let Some(socket) = self.sockets.get_mut(&connection) {
                    socket.waiting = false;
                }
                self.flush(connection);
            }
        }
    }

    /// Pings the players whose ping is due. A ping older than the latency limit and still
    /// unanswered goes to its connection as a sample of its age.
    fn ping_due(&mut self) {
        let now = Instant::now();
        if let Some(due) = self.pings.next_due() {
            // A timer that fires late is the gateway's own lag (a busy or paused process).
            self.lag.report(now.saturating_duration_since(due));
        }
        let written_us = now_us();
        let limit_us = self.config.unanswered_after_us;
        let mut pings = std::mem::replace(&mut self.pings, PingSchedule::new(self.config.ping_interval));
        pings.take_due(now, |connection| {
            // Gone, or dropped from its session as too slow and closing: no more pings.
            let Some(socket) = self.sockets.get(&connection).filter(|s| s.session.is_some()) else {
                return false;
            };
            let nonce = socket.pings.issue(written_us, limit_us, &mut self.unanswered);
            for (sent_us, age_us) in self.unanswered.drain(..) {
                let _ = socket.signals.send(Signal::Unanswered { sent_us, age_us });
            }
            // Written after the stamp: a pong cannot come back before its ping is in flight.
            self.write(connection, &ping_frame(nonce));
            true
        });
        self.pings = pings;
    }

    fn join(
        &mut self,
        connection: u64,
        session: &SessionInfo,
        user_id: String,
        resume_after: Option<i64>,
        earlier: &[HeldTick],
    ) -> Result<(), JoinRefused> {
        let held_end = self.hubs.get(&session.session_id).is_some_and(SessionHub::is_ended);
        if session.ended && !held_end {
            return Err(JoinRefused::Ended);
        }
        let hub = self.hubs.entry(session.session_id.clone()).or_default();
        let backlog = hub.join(connection, user_id, resume_after);
        let paces = hub.paces(&session.paces);
        let in_force = *paces.latest();
        let joined = ServerMessage::SessionJoined {
            session_id: session.session_id.clone(),
            start_at: session.start_at,
            tick_ms: in_force.tick_ms,
            max_tick_ms: session.max_tick_ms,
            pace_from_step: in_force.from_step,
            pace_scheduled_at: in_force.scheduled_at,
            paces: paces.paces().to_vec(),
            seed_hash: session.seed_hash.clone(),
            region: session.region.clone(),
            players: {
                // Everyone the log knows of (all gateways), and whoever this shard just joined.
                let mut players = session.players();
                players.extend(hub.user_ids());
                players.sort();
                players.dedup();
                players
            },
            min_break_steps: session.min_break_steps,
            max_break_steps: session.max_break_steps,
        };
        if let Some(socket) = self.sockets.get_mut(&connection) {
            socket.session = Some(session.session_id.clone());
        }
        self.write(connection, &text_frame(joined.to_json()));
        let remaining_ms = session.start_at - now_ms();
        if remaining_ms > 0 {
            self.write(connection, &text_frame(ServerMessage::Countdown { remaining_ms }.to_json()));
        }
        let held_from = backlog.ticks.first().map_or(i64::MAX, |t| t.step);
        for tick in earlier.iter().filter(|t| t.step < held_from).chain(&backlog.ticks) {
            self.write(connection, &text_frame(tick.message().to_json()));
        }
        if let Some(ended) = backlog.ended {
            self.write(connection, &ended);
            self.signal(connection, Signal::Ended);
        }
        Ok(())
    }

    /// Writes decoded frames to the members of their sessions that this shard holds; every
    /// shard keeps every session's recent frames, so a resume works on any shard.
    fn forward(&mut self, outgoing: &[Outgoing]) {
        let mut forwarded = 0usize;
        let now = now_ms();
        for item in outgoing {
            let Self { hubs, sockets, config, commands, ended, overflowed, .. } = self;
            let mut deliver = |connection: u64, frame: &Bytes| {
                forwarded += 1;
                if write_to(sockets, commands, config.max_pending_bytes, connection, frame) {
                    overflowed.push(connection);
                }
            };
            match item {
                Outgoing::Tick { session_id, tick, frame } => {
                    let hub = match hubs.get_mut(session_id) {
                        Some(hub) => hub,
                        None => hubs.entry(session_id.clone()).or_default(),
                    };
                    let mut delivered = false;
                    hub.tick(tick, config.resume_ticks, |c| {
                        delivered = true;
                        deliver(c, frame);
                    });
                    // A tick no player of this shard gets (history read at start, an empty
                    // session) is late for no one.
                    if delivered {
                        config.series.tick_lateness.record((now - tick.scheduled_at).max(0) as f64);
                    }
                }
                Outgoing::Broadcast { session_id, frame } => {
                    if let Some(hub) = hubs.get(session_id) {
                        hub.each_member(|c| deliver(c, frame));
                    }
                }
                Outgoing::Pace { session_id, pace, frame } => {
                    let hub = hubs.entry(session_id.clone()).or_default();
                    if hub.pace(*pace) {
                        hub.each_member(|c| deliver(c, frame));
                    }
                }
                Outgoing::Migrated { session_id, frame } => {
                    let members = hubs.get_mut(session_id).map(SessionHub::move_away).unwrap_or_default();
                    for &connection in &members {
                        deliver(connection, frame);
                    }
                    for connection in members {
                        if let Some(socket) = sockets.get(&connection) {
                            let _ = socket.signals.send(Signal::Migrated);
                        }
                    }
                }
                Outgoing::Ended { session_id, frame } => {
                    let members = hubs.entry(session_id.clone()).or_default().end(frame);
                    for &connection in &members {
                        deliver(connection, frame);
                    }
                    for connection in members {
                        if let Some(socket) = sockets.get(&connection) {
                            let _ = socket.signals.send(Signal::Ended);
                        }
                    }
                    ended.push_back((Instant::now(), session_id.clone()));
                }
            }
        }
        self.config.series.frames_forwarded.increment(forwarded as u64);
        if let Some(load) = &self.config.load {
            load.ticks_delivered(forwarded as u64);
        }
        self.sample_send_queue();
        while let Some((at, id)) = self.ended.front() {
            if at.elapsed() < self.config.keep_ended {
                break;
            }
            self.hubs.remove(id);
            self.ended.pop_front();
        }
        self.drop_too_slow();
    }

    fn write(&mut self, connection: u64, bytes: &Bytes) {
        if write_to(&mut self.sockets, &self.commands, self.config.max_pending_bytes, connection, bytes) {
            self.overflowed.push(connection);
            self.drop_too_slow();
        }
    }

    fn signal(&self, connection: u64, signal: Signal) {
        if let Some(socket) = self.sockets.get(&connection) {
            let _ = socket.signals.send(signal);
        }
    }

    /// Drops from their sessions the players whose queue overflowed.
    fn drop_too_slow(&mut self) {
        if self.overflowed.is_empty() {
            return;
        }
        let dropped = self.overflowed.len();
        for connection in self.overflowed.drain(..) {
            let Some(socket) = self.sockets.get_mut(&connection) else { continue };
            self.config.series.frames_dropped.increment(socket.pending.len() as u64);
            socket.pending.clear();
            socket.pending_bytes = 0;
            if let Some(session) = socket.session.take()
                && let Some(hub) = self.hubs.get_mut(&session)
            {
                hub.leave(connection);
            }
            let _ = socket.signals.send(Signal::TooSlow);
        }
        metrics::players_too_slow(dropped);
        tracing::warn!(players = dropped, "dropped players whose socket queue overflowed");
    }

    /// At most once a second, the bytes this shard holds for sockets that did not take them
    /// (a sum over its sockets: too dear for every forward).
    fn sample_send_queue(&mut self) {
        if self.send_queue_sampled.elapsed() < SEND_QUEUE_SAMPLE_EVERY {
            return;
        }
        self.send_queue_sampled = Instant::now();
        let queued: usize = self.sockets.values().map(|s| s.pending_bytes).sum();
        // Every shard of the region adds its change to the one gauge.
        self.config.series.send_queue.increment(queued as f64 - self.send_queue_bytes as f64);
        self.send_queue_bytes = queued;
    }

    fn flush(&mut self, connection: u64) {
        if let Some(socket) = self.sockets.get_mut(&connection) {
            drain(socket, &self.commands, connection);
        }
    }
}
