//! The fold: how each event of `game-events` changes the items, written once for every store.
//!
//! Each item is read, changed and written back only if the stored one has not already seen
//! this event (its `position` is below the event's); the write is conditional on the same, so
//! two projectors racing during a hand-over never apply an event twice nor go backwards. That
//! is enough because every projector applies one partition's events in order: when it reaches
//! an event, every earlier event of the same item has been applied, by it or by another. An
//! event of one item reads another only for what never changes after `session_created` (a
//! connection's session's start and longest end), so no item depends on another's version.
//! Each item is written once per batch, in its latest version.

use std::collections::{BTreeSet, HashMap};

use tickcast_schemas::event::{Event, EventBody, LatencyStatus};

use crate::model::{ConnectionItem, ConnectionState, LatencyItem, Pace, Phase, SessionItem, SessionMove};
use crate::{ProjectionStore, Result};

/// An event and its position in the log, as a string whose byte order is the log's order
/// within a session (`game-events` keeps a session's events in one partition).
#[derive(Debug, Clone)]
pub struct Positioned {
    pub position: String,
    pub event: Event,
}

/// What one batch did, for metrics and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Item writes that changed something.
    pub written: usize,
    /// Item changes skipped because the item had seen the event already.
    pub skipped: usize,
}

/// The latest end (epoch ms) of the sessions a projector has seen, kept across batches: a
/// latency sample lasts as long as its session's items, and looking that up in the store for
/// every batch would cost a read per session per batch. Only `session_created` fields are kept,
/// which never change.
#[derive(Debug, Default)]
pub struct SessionEnds(HashMap<String, i64>);

/// Sessions remembered at most; past it the oldest half is forgotten (read again if needed).
const MAX_SESSION_ENDS: usize = 100_000;

/// Applies events to a store. Keeps the items it has read or written during one batch, so a
/// session's many events cost one read of each item.
#[derive(Debug)]
pub struct Fold<'a> {
    store: &'a dyn ProjectionStore,
    ends: &'a mut SessionEnds,
    /// How long items outlive their session's end (seconds).
    ttl_s: i64,
    /// Items as read from the store or changed by this batch (`None`: not in the store).
    sessions: HashMap<String, Option<SessionItem>>,
    connections: HashMap<String, Option<ConnectionItem>>,
    /// Keys of the items this batch changed, written once each at the end.
    dirty_sessions: BTreeSet<String>,
    dirty_connections: BTreeSet<String>,
    latency: Vec<LatencyItem>,
    applied: Applied,
}

impl<'a> Fold<'a> {
    #[must_use]
    pub fn new(store: &'a dyn ProjectionStore, ttl_s: i64, ends: &'a mut SessionEnds) -> Self {
        Self {
            store,
            ends,
            ttl_s,
            sessions: HashMap::new(),
            connections: HashMap::new(),
            dirty_sessions: BTreeSet::new(),
            dirty_connections: BTreeSet::new(),
            latency: Vec::new(),
            applied: Applied::default(),
        }
    }

    /// Applies `events` (in log order) and writes what they change: each item once, in its
    /// latest version, conditional on the position it was read at being below that version's.
    /// Should another projector have written some of these events meanwhile, this version (the
    /// same fold over the same events) still holds them all.
    pub async fn apply(mut self, events: &[Positioned]) -> Result<Applied> {
        for positioned in events {
            self.apply_one(positioned).await?;
        }
        let mut batch = crate::Batch::default();
        for id in std::mem::take(&mut self.dirty_sessions) {
            if let Some(Some(item)) = self.sessions.remove(&id) {
                batch.sessions.push(item);
            }
        }
        for id in std::mem::take(&mut self.dirty_connections) {
            if let Some(Some(item)) = self.connections.remove(&id) {
                batch.connections.push(item);
            }
        }
        // Samples are facts keyed by when they were taken: writing one twice writes the same.
        batch.latency = std::mem::take(&mut self.latency);
        let items = batch.sessions.len() + batch.connections.len();
        let written = self.store.write(&batch).await?;
        self.applied.written += written + batch.latency.len();
        self.applied.skipped += items - written;
        Ok(self.applied)
    }

    async fn apply_one(&mut self, positioned: &Positioned) -> Result<()> {
        let Positioned { position, event } = positioned;
        let (position, at, session_id) = (position.as_str(), event.at, event.session_id.as_str());
        match &event.body {
            EventBody::SessionCreated(created) => {
                let mut item = SessionItem {
                    session_id: session_id.to_owned(),
                    region: created.region.clone(),
                    phase: Phase::Open,
                    created_at: at,
                    start_at: created.start_at,
                    tick_ms: created.tick_ms,
                    max_tick_ms: created.max_tick_ms,
                    pace: Some(Pace {
                        from_step: 0,
                        scheduled_at: created.start_at,
                        tick_ms: created.tick_ms,
                    }),
                    countdown_ms: created.countdown_ms,
                    min_break_steps: created.min_break_steps,
                    max_break_steps: created.max_break_steps,
                    max_rounds: created.max_rounds,
                    seed_hash: created.seed_hash.clone(),
                    created_by: created.created_by.clone(),
                    connected: std::collections::BTreeMap::new(),
                    ended_at: None,
                    end_reason: None,
                    last_step: None,
                    seed: None,
                    moves: Vec::new(),
                    position: position.to_owned(),
                    expires_at: 0,
                };
                item.expires_at = self.expires_at(item.latest_end_ms());
                self.remember_end(session_id, item.latest_end_ms());
                match self.session(session_id).await? {
                    Some(existing) if existing.position.as_str() >= position => self.applied.skipped += 1,
                    _ => self.write_session(item),
                }
            }
            EventBody::PlayerJoined(joined) => {
                let session = self.session(session_id).await?;
                let started = session.as_ref().is_none_or(|s| at >= s.start_at);
                let end_ms = session.as_ref().map_or(at, SessionItem::latest_end_ms);
                let item = ConnectionItem {
                    connection_id: joined.connection_id.clone(),
                    session_id: session_id.to_owned(),
                    user_id: joined.user_id.clone(),
                    gateway_id: joined.gateway_id.clone(),
                    region: joined.region.clone(),
                    state: if started { ConnectionState::Playing } else { ConnectionState::Ready },
                    joined_at: at,
                    left_at: None,
                    leave_reason: None,
                    recent_rtt_ms: Vec::new(),
                    avg_rtt_ms: None,
                    jitter_ms: None,
                    latency_status: LatencyStatus::Ok,
                    kicked: false,
                    kick_reason: None,
                    position: position.to_owned(),
                    expires_at: self.expires_at(end_ms.max(at)),
                };
                match self.connection(&joined.connection_id).await? {
                    Some(existing) if existing.position.as_str() >= position => self.applied.skipped += 1,
                    _ => self.write_connection(item),
                }
                let (connection, user) = (joined.connection_id.clone(), joined.user_id.clone());
                self.update_session(session_id, position, |s| {
                    s.connected.insert(connection, user);
                })
                .await?;
            }
            EventBody::LatencySampled(_) | EventBody::LatencySamples(_) => {
                // Each sample is a fact of its own: no rewrite of the connection (its figures
                // are computed from the samples when read). It lasts as long as its session's
                // items.
                let end_ms = match self.ends.0.get(session_id) {
                    Some(end) => *end,
                    None => {
                        let end = self.session(session_id).await?.map_or(at, |s| s.latest_end_ms());
                        self.remember_end(session_id, end);
                        end
                    }
                };
                for (connection_id, rtt_ms, sampled_at) in event.rtt_samples() {
                    self.latency.push(LatencyItem {
                        connection_id: connection_id.to_owned(),
                        at: sampled_at,
                        rtt_ms,
                        session_id: session_id.to_owned(),
                        expires_at: self.expires_at(end_ms.max(sampled_at)),
                    });
                }
            }
            EventBody::LatencyWarned(warned) => {
                let (status, avg, jitter) = (warned.status, warned.avg_rtt_ms, warned.jitter_ms);
                self.update_connection(&warned.connection_id, position, |c| {
                    c.latency_status = status;
                    (c.avg_rtt_ms, c.jitter_ms) = (Some(avg), Some(jitter));
                })
                .await?;
            }
            EventBody::PlayerKicked(kicked) => {
                let (reason, avg, jitter) = (kicked.reason.clone(), kicked.avg_rtt_ms, kicked.jitter_ms);
                self.update_connection(&kicked.connection_id, position, |c| {
                    c.kicked = true;
                    c.kick_reason = Some(reason);
                    (c.avg_rtt_ms, c.jitter_ms) = (Some(avg), Some(jitter));
                })
                .await?;
            }
            EventBody::PlayerLeft(left) => {
                let reason = left.reason;
                self.update_connection(&left.connection_id, position, |c| {
                    c.state = ConnectionState::Disconnected;
                    c.left_at = Some(at);
                    c.leave_reason = Some(reason);
                })
                .await?;
                let connection = left.connection_id.clone();
                self.update_session(session_id, position, |s| {
                    s.connected.remove(&connection);
                })
                .await?;
            }
            EventBody::SessionEnded(ended) => {
                let expires_at = self.expires_at(at);
                let (reason, last_step, seed) = (ended.reason, ended.last_step, ended.seed.to_string());
                self.update_session(session_id, position, |s| {
                    s.phase = Phase::Ended;
                    s.ended_at = Some(at);
                    s.end_reason = Some(reason);
                    s.last_step = Some(last_step);
                    s.seed = Some(seed);
                    s.expires_at = expires_at;
                })
                .await?;
            }
            EventBody::SessionMigrated(moved) => {
                let step = SessionMove {
                    from_region: moved.from_region.clone(),
                    to_region: moved.to_region.clone(),
                    from_step: moved.from_step,
                    at,
                };
                self.update_session(session_id, position, |s| {
                    s.region.clone_from(&step.to_region);
                    s.moves.push(step);
                })
                .await?;
            }
            EventBody::TickRateChanged(changed) => {
                let pace = changed.pace();
                self.update_session(session_id, position, |s| {
                    if s.pace.is_none_or(|p| p.from_step < pace.from_step) {
                        s.pace = Some(pace);
                    }
                })
                .await?;
            }
            // Ticks and countdowns are recomputed from the engine, never projected.
            EventBody::Countdown(_)
            | EventBody::Tick(_)
            | EventBody::GatewayHeartbeat(_)
            | EventBody::RegionDrained(_)
            | EventBody::RegionRestored(_)
            | EventBody::MatchRequested(_)
            | EventBody::MatchFormed(_)
            | EventBody::MatchCancelled(_)
            | EventBody::MatchExpired(_)
            | EventBody::Unknown => {}
        }
        Ok(())
    }

    fn remember_end(&mut self, session_id: &str, end_ms: i64) {
        if self.ends.0.len() >= MAX_SESSION_ENDS {
            // Sessions that ended first go first; the rest are read again when sampled.
            let mut ends: Vec<i64> = self.ends.0.values().copied().collect();
            ends.sort_unstable();
            let cut = ends[ends.len() / 2];
            self.ends.0.retain(|_, end| *end > cut);
        }
        self.ends.0.insert(session_id.to_owned(), end_ms);
    }

    /// Epoch seconds `ttl` after `at_ms`.
    const fn expires_at(&self, at_ms: i64) -> i64 {
        at_ms.div_euclid(1000).saturating_add(self.ttl_s)
    }

    async fn session(&mut self, id: &str) -> Result<Option<SessionItem>> {
        if let Some(cached) = self.sessions.get(id) {
            return Ok(cached.clone());
        }
        let item = self.store.session(id).await?;
        self.sessions.insert(id.to_owned(), item.clone());
        Ok(item)
    }

    async fn connection(&mut self, id: &str) -> Result<Option<ConnectionItem>> {
        if let Some(cached) = self.connections.get(id) {
            return Ok(cached.clone());
        }
        let item = self.store.connection(id).await?;
        self.connections.insert(id.to_owned(), item.clone());
        Ok(item)
    }

    async fn update_session(
        &mut self,
        id: &str,
        position: &str,
        change: impl FnOnce(&mut SessionItem),
    ) -> Result<()> {
        match self.session(id).await? {
            // No `session_created` projected (older than the log, or not in it): nothing to change.
            None => {}
            Some(existing) if existing.position.as_str() >= position => self.applied.skipped += 1,
            Some(mut item) => {
                change(&mut item);
                item.position = position.to_owned();
                self.write_session(item);
            }
        }
        Ok(())
    }

    async fn update_connection(
        &mut self,
        id: &str,
        position: &str,
        change: impl FnOnce(&mut ConnectionItem),
    ) -> Result<()> {
        match self.connection(id).await? {
            None => {}
            Some(existing) if existing.position.as_str() >= position => self.applied.skipped += 1,
            Some(mut item) => {
                change(&mut item);
                item.position = position.to_owned();
                self.write_connection(item);
            }
        }
        Ok(())
    }

    /// Keeps `item` as the session's latest version, to write at the end of the batch.
    fn write_session(&mut self, item: SessionItem) {
        self.dirty_sessions.insert(item.session_id.clone());
        self.sessions.insert(item.session_id.clone(), Some(item));
    }

    /// Keeps `item` as the connection's latest version, to write at the end of the batch.
    fn write_connection(&mut self, item: ConnectionItem) {
        self.dirty_connections.insert(item.connection_id.clone());
        self.connections.insert(item.connection_id.clone(), Some(item));
    }
}
