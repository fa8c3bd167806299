//! The tick generator: consumes `game-events` as a consumer group, keeps a [`SessionSchedule`]
//! per active session, and at each deadline appends the due countdowns and ticks to
//! `ticks.<region>` (and `session_ended` to both topics).
//!
//! Generators scale out as members of one consumer group: each owns the sessions of its
//! `game-events` partitions (a session's events share its partition, keyed by sessionId).
//!
//! Committed offset, per partition: the offset of the oldest still-active session's
//! `session_created` (or the consumed position when none is active), so a generator that gets
//! the partition (after a restart, a peer's crash or a rebalance) re-reads exactly the events of
//! the sessions it must continue. A session it finds already running resumes after the last step
//! found in its tick topic, recomputed from the engine; steps missed during the hand-over are
//! emitted late, never skipped, and a step emitted twice is dropped by gateways.
//!
//! On revocation and on shutdown alike ([`TickGenerator::drain`]) it stops emitting for the
//! partitions' sessions after its last write is acknowledged, and only then lets them go.
//!
//! An adaptive session's pace ([`crate::pace`]) is decided at each round's start and logged
//! (`tick_rate_changed`, durably, then its copy before the round's first tick); `pacing` reads
//! the changes and the policy's inputs (RTT samples, kicks) back, so a new owner plays on at
//! the logged pace.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use tickcast_eventlog::{
    CommitPosition, EventLog, GroupConsumer, GroupEvent, NewRecord, Record, RetryHint, StartFrom,
    TopicPartition,
};
use tickcast_schemas::event::{EVENT_TYPES, Event, EventBody, SessionCreated};
use tickcast_schemas::health::Readiness;
use tickcast_schemas::load::ProcessLoad;
use tickcast_schemas::topics::{self, GAME_EVENTS};
use tokio_util::sync::CancellationToken;

mod emission;
mod gateway_loss;
mod migration;
mod pacing;
mod resume;

use self::gateway_loss::SessionGateways;
use crate::pace::{PaceConfig, PacePolicy};
use crate::schedule::{Deadline, SessionSchedule};
use crate::{Error, metrics, now_ms};

/// A last step that says "ended": `session_ended` was found in the tick topic.
const ENDED: i64 = i64::MAX;

/// How a tick generator runs.
#[derive(Debug, Clone)]
pub struct TickGeneratorConfig {
    /// Consumer group name shared by all generators.
    pub group: String,
    /// `tick-generator@<instance>` is the `source` of what it writes.
    pub instance: String,
    /// A session with no player connected for this long after its start ends as `idle`.
    pub idle_ms: i64,
    /// The process's saturation gauge, told how late each tick is emitted (`tickcast up`
    /// shares it with the edge, which refuses new games while it is over its threshold).
    pub saturation: Option<Arc<ProcessLoad>>,
    /// Ready once the generator joined its group (`/readyz`).
    pub readiness: Readiness,
    /// A gateway that has not said it serves a session (`gateway_heartbeat`, or a join) for
    /// this long is lost: its players there leave with reason `gateway_lost`.
    pub gateway_timeout_ms: i64,
    /// Regions whose series are exposed from the start, at zero (the region table): a
    /// dashboard shows 0 before the first game, not "no data". A session of another region
    /// gets its series when it starts.
    pub regions: Vec<String>,
    /// How adaptive sessions choose their pace.
    pub pace: PaceConfig,
}

impl Default for TickGeneratorConfig {
    fn default() -> Self {
        Self {
            group: "tick-generator".into(),
            instance: "0".into(),
            idle_ms: 30_000,
            saturation: None,
            readiness: Readiness::new("the tick generator to join its consumer group"),
            gateway_timeout_ms: 15_000,
            regions: Vec::new(),
            pace: PaceConfig::default(),
        }
    }
}

#[derive(Debug)]
struct ActiveSession {
    schedule: SessionSchedule,
    /// The game-events partition of its events, and the offset of its session_created there:
    /// the commit point while it is active.
    partition: u32,
    created: CommitPosition,
    /// The region its ticks go to now (its own, or where it moved), and their topic.
    region: String,
    ticks_topic: String,
    /// The last step written before it moved here (`fromStep − 1`), -1 if it never moved: a
    /// resume continues after it at the least, since those steps are in the old topic.
    resume_floor: i64,
    /// Its region's tick counter and lateness histogram.
    series: metrics::RegionSeries,
    /// Its players' gateways, to find those of a gateway that fell silent.
    gateways: SessionGateways,
    /// Running when found: not scheduled until its tick topic says where it got to.
    awaiting_resume: bool,
    /// An adaptive session's pace policy (None: a fixed pace).
    pace: Option<PacePolicy>,
}

/// The tick generator role.
#[derive(Debug)]
pub struct TickGenerator {
    log: Arc<dyn EventLog>,
    config: TickGeneratorConfig,
    source: String,
    sessions: HashMap<String, ActiveSession>,
    /// (deadline, session) entries; stale ones (deadline no longer the session's) are skipped.
    deadlines: BinaryHeap<Reverse<(Deadline, String)>>,
    /// Owned game-events partitions read up to where they ended when assigned: their sessions'
    /// histories are complete, so a running session can be resumed.
    caught_up: HashSet<u32>,
    /// Per partition still catching up, the running sessions found there: resumed only once
    /// the partition is caught up, since their `session_ended` may still be ahead.
    waiting: HashMap<u32, Vec<String>>,
    /// Per owned game-events partition: the offset after the last processed record.
    consumed: HashMap<u32, CommitPosition>,
    committed: HashMap<u32, CommitPosition>,
    /// When the positions to commit last moved plus `COMMIT_EVERY`; `None` while the committed
    /// positions are current. Commits follow moves at most this often: finding the oldest
    /// active session scans them all, and a position committed a little late only makes the
    /// next owner re-read a little more.
    commit_due: Option<tokio::time::Instant>,
    /// Since when (epoch ms) this generator has kept up: emitting on time and reading what was
    /// read for it. A generator behind may not have read a gateway's latest heartbeats, so it
    /// judges no gateway lost until it has kept up for the gateway timeout.
    steady_since: i64,
    /// Which regions are drained, from the region events of all of `game-events`: its sessions
    /// there move to the nearest active region.
    regions: tickcast_schemas::region_events::RegionStates,
}

/// `body` as a record of session `session_id`'s key, written by `source` at `now`.
fn event_record(source: &str, session_id: &str, now: i64, body: EventBody) -> NewRecord {
    let event = Event::new(session_id, now, source, body);
    NewRecord { key: session_id.to_owned(), timestamp_ms: now, payload: event.to_bytes().into() }
}

/// How long moved positions wait before they are committed, at most.
const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// How often sessions are checked for players of lost gateways.
const GATEWAY_CHECK_EVERY: Duration = Duration::from_secs(1);
/// Ready group events taken in after each round of emissions, at most.
const READY_PER_ROUND: usize = 4;
/// Ready group events taken in before judging lost gateways, at most.
const READY_BEFORE_JUDGING: usize = 64;

impl TickGenerator {
    #[must_use]
    pub fn new(log: Arc<dyn EventLog>, config: TickGeneratorConfig) -> Self {
        let source = format!("tick-generator@{}", config.instance);
        Self {
            log,
            config,
            source,
            sessions: HashMap::new(),
            deadlines: BinaryHeap::new(),
            caught_up: HashSet::new(),
            waiting: HashMap::new(),
            consumed: HashMap::new(),
            committed: HashMap::new(),
            commit_due: None,
            steady_since: now_ms(),
            regions: tickcast_schemas::region_events::RegionStates::default(),
        }
    }

    /// Runs until `shutdown`; returns after the last due emissions are written.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        let mut consumer = self.log.consume(&self.config.group, &[GAME_EVENTS], StartFrom::Beginning).await?;
        metrics::expose_generator(&self.config.regions);
        // The regions' states come from every partition of game-events, not only those owned.
        let mut regions = self.log.tail(GAME_EVENTS, StartFrom::Beginning).await?;
        let mut gateway_check = tokio::time::interval(GATEWAY_CHECK_EVERY);
        gateway_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut sleep = match self.deadlines.peek() {
                Some(Reverse((deadline, _))) => deadline.wait_from(now_ms()),
                None => Duration::from_secs(3600),
            };
            if let Some(due) = self.commit_due {
                sleep = sleep.min(due.saturating_duration_since(tokio::time::Instant::now()));
            }
            tokio::select! {
                // Due ticks first: a steady stream of game events (a latency sample per player
                // per second) must not delay them.
                biased;
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(sleep) => {
                    self.emit_due(now_ms()).await?;
                    self.commit_if_due(&mut *consumer).await?;
                    // Ticks always due (appends slower than the tick rate) must not starve
                    // reading either: some of what was read is taken in after each round.
                    self.take_ready(&mut *consumer, READY_PER_ROUND).await?;
                }
                _ = gateway_check.tick() => {
                    // Silence is judged on everything read so far: a heartbeat that waits in
                    // the consumer is not silence. More waiting than this: the generator is behind.
                    if !self.take_ready(&mut *consumer, READY_BEFORE_JUDGING).await? {
                        self.steady_since = now_ms();
                    }
                    self.leave_for_lost_gateways(now_ms()).await?;
                }
                event = consumer.next_event() => self.handle(event?, &mut *consumer).await?,
                records = regions.next_batch() => self.regions_read(records?).await?,
            }
        }
        if self.commit_due.is_some() {
            self.commit(&mut *consumer).await?;
        }
        self.drain(|_| true);
        consumer.close().await;
        tracing::info!("tick generator stopped");
        Ok(())
    }

    /// Stops emitting for the sessions of the partitions `drained` selects. Every write made
    /// so far is acknowledged (emissions are awaited), so what the next owner reads from the
    /// tick topics is all there is.
    fn drain(&mut self, drained: impl Fn(u32) -> bool) {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| !drained(s.partition));
        self.caught_up.retain(|p| !drained(*p));
        self.waiting.retain(|p, _| !drained(*p));
        self.consumed.retain(|p, _| !drained(*p));
        self.committed.retain(|p, _| !drained(*p));
        metrics::sessions_active(self.sessions.len());
        tracing::info!(
            handed_over = before - self.sessions.len(),
            kept = self.sessions.len(),
            "drained sessions"
        );
    }

    /// Acts on one event of the group: records applied, partitions taken, caught up or given up.
    async fn handle(&mut self, event: GroupEvent, consumer: &mut dyn GroupConsumer) -> Result<(), Error> {
        match event {
            GroupEvent::Records(records) => {
                self.apply(records).await?;
                self.positions_moved();
                self.commit_if_due(consumer).await?;
            }
            GroupEvent::Assigned(partitions) => {
                self.config.readiness.set_ready();
                tracing::info!(partitions = %TopicPartition::joined(&partitions), "game-events partitions assigned");
            }
            GroupEvent::CaughtUp(partitions) => {
                self.config.readiness.set_ready();
                let caught_up: Vec<u32> =
                    partitions.iter().filter(|p| p.topic == GAME_EVENTS).map(|p| p.partition).collect();
                self.caught_up_with(&caught_up).await?;
            }
            GroupEvent::Revoked(revocation) => {
                let partitions: Vec<u32> = revocation
                    .partitions
                    .iter()
                    .filter(|p| p.topic == GAME_EVENTS)
                    .map(|p| p.partition)
                    .collect();
                self.drain(|p| partitions.contains(&p));
                revocation.release();
            }
        }
        Ok(())
    }

    /// Handles up to `most` events the consumer has ready, without waiting for more; whether
    /// it ran out of them (everything read so far is taken in).
    async fn take_ready(&mut self, consumer: &mut dyn GroupConsumer, most: usize) -> Result<bool, Error> {
        for _ in 0..most {
            let Some(event) = consumer.next_event().now_or_never() else { return Ok(true) };
            self.handle(event?, consumer).await?;
        }
        // More may be waiting: the caller comes back to them.
        Ok(false)
    }

    async fn apply(&mut self, records: Vec<Record>) -> Result<(), Error> {
        let mut resumed = Vec::new();
        for record in records {
            let position = CommitPosition { next: record.position.next(), not_after_ms: record.timestamp_ms };
            self.consumed.insert(record.partition, position);
            match Event::peek_type(&record.payload) {
                Some(
                    "session_created" | "player_joined" | "player_left" | "session_ended"
                    | "gateway_heartbeat" | "session_migrated" | "tick_rate_changed",
                )
                | None => {}
                // What an adaptive session's pace policy weighs; decoded for those alone.
                Some("latency_samples" | "latency_sampled" | "player_kicked")
                    if self.sessions.get(&*record.key).is_some_and(|s| s.pace.is_some()) => {}
                Some(kind) if EVENT_TYPES.contains(&kind) => continue,
                Some(kind) => {
                    tracing::warn!(position = %record.position, kind, "skipping an event of unknown type");
                    metrics::unknown_event();
                    continue;
                }
            }
            let event = match Event::from_bytes(&record.payload) {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(position = %record.position, %error, "skipping undecodable game event");
                    continue;
                }
            };
            match event.body {
                EventBody::SessionCreated(created) => {
                    if created.engine != tickcast_engine::ENGINE_VERSION {
                        tracing::warn!(session = %event.session_id, engine = created.engine, "unsupported engine version, skipped");
                        continue;
                    }
                    if let Err(problem) = created.check() {
                        tracing::warn!(session = %event.session_id, %problem, "unplayable session_created, skipped");
                        metrics::unknown_event();
                        continue;
                    }
                    // A session that should already have ticked was being run by someone else
                    // (an earlier run of this generator): find where it got to, once the
                    // partition's history is complete (it may have ended since).
                    let running = now_ms() >= created.start_at;
                    let position =
                        CommitPosition { next: record.position.clone(), not_after_ms: record.timestamp_ms };
                    let id = event.session_id;
                    self.start_session(id.clone(), event.at, record.partition, position, created, !running);
                    if running {
                        if self.caught_up.contains(&record.partition) {
                            resumed.push(id);
                        } else {
                            self.waiting.entry(record.partition).or_default().push(id);
                        }
                    }
                }
                EventBody::PlayerJoined(joined) => {
                    if let Some(s) = self.sessions.get_mut(&event.session_id) {
                        s.schedule.player_joined();
                        if let Some(pace) = &mut s.pace {
                            pace.joined(&joined.connection_id);
                        }
                        s.gateways.joined(
                            &joined.connection_id,
                            &joined.user_id,
                            &joined.gateway_id,
                            event.at,
                        );
                    }
                }
                EventBody::PlayerLeft(left) => {
                    if let Some(s) = self.sessions.get_mut(&event.session_id) {
                        s.schedule.player_left(event.at);
                        s.gateways.left(&left.connection_id);
                        if let Some(pace) = &mut s.pace {
                            pace.left(&left.connection_id, event.at);
                        }
                        self.push_deadline(&event.session_id);
                    }
                }
                EventBody::GatewayHeartbeat(heartbeat) => {
                    if let Some(s) = self.sessions.get_mut(&event.session_id) {
                        s.gateways.heartbeat(&heartbeat.gateway_id, event.at, heartbeat.started_at);
                    }
                }
                EventBody::SessionEnded(_) => {
                    self.sessions.remove(&event.session_id);
                    self.positions_moved();
                }
                EventBody::SessionMigrated(moved) => self.migrated(&event.session_id, &moved),
                body @ (EventBody::TickRateChanged(_)
                | EventBody::LatencySamples(_)
                | EventBody::LatencySampled(_)
                | EventBody::PlayerKicked(_)) => self.pace_input(&event.session_id, event.at, body),
                EventBody::Unknown => {
                    tracing::warn!(position = %record.position, "skipping an event of unknown type or version");
                    metrics::unknown_event();
                }
                _ => {}
            }
        }
        if !resumed.is_empty() {
            self.resume_from_tick_topics(resumed).await?;
        }
        Ok(())
    }

    /// Tracks a new session; `schedule_now` puts it on the deadline heap (otherwise its resume
    /// does, once its tick topic says where it got to).
    fn start_session(
        &mut self,
        id: String,
        created_at: i64,
        partition: u32,
        position: CommitPosition,
        created: SessionCreated,
        schedule_now: bool,
    ) {
        let region = created.region.clone();
        let ticks_topic = topics::ticks(&region);
        let series = metrics::RegionSeries::new(&region, &ticks_topic);
        let pace = created
            .is_adaptive()
            .then(|| PacePolicy::new(self.config.pace, created.tick_ms, created.slowest_tick_ms()));
        let schedule = SessionSchedule::new(created, created_at, self.config.idle_ms);
        let awaiting_resume = !schedule_now;
        let session = ActiveSession {
            schedule,
            partition,
            created: position,
            region,
            ticks_topic,
            resume_floor: -1,
            series,
            gateways: SessionGateways::default(),
            awaiting_resume,
            pace,
        };
        self.sessions.insert(id.clone(), session);
        self.push_deadline(&id);
    }

    fn push_deadline(&mut self, id: &str) {
        let session = self.sessions.get(id).filter(|s| !s.awaiting_resume);
        if let Some(deadline) = session.and_then(|s| s.schedule.next_deadline()) {
            self.deadlines.push(Reverse((deadline, id.to_owned())));
        }
    }

    /// The positions to commit may have moved: commit them within `COMMIT_EVERY`.
    fn positions_moved(&mut self) {
        self.commit_due.get_or_insert_with(|| tokio::time::Instant::now() + COMMIT_EVERY);
    }

    async fn commit_if_due(&mut self, consumer: &mut dyn GroupConsumer) -> Result<(), Error> {
        match self.commit_due {
            Some(due) if due <= tokio::time::Instant::now() => self.commit(consumer).await,
            _ => Ok(()),
        }
    }

    async fn commit(&mut self, consumer: &mut dyn GroupConsumer) -> Result<(), Error> {
        self.commit_due = None;
        let mut targets = self.consumed.clone();
        for session in self.sessions.values() {
            targets.entry(session.partition).and_modify(|t| {
                if session.created.next < t.next {
                    *t = session.created.clone();
                }
            });
        }
        for (partition, target) in targets {
            if self.committed.get(&partition) != Some(&target) {
                match consumer.commit(GAME_EVENTS, partition, target.clone()).await {
                    Ok(()) => {
                        self.committed.insert(partition, target);
                    }
                    // A commit that did not land only means the next owner re-reads more; the
                    // next round of commits tries again.
                    Err(error) if error.retry_hint() == RetryHint::Retry => {
                        tracing::warn!(%error, partition, "commit failed; trying again with the next one");
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(())
    }
}
