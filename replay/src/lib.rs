//! Replay and analytics: the stored log read back as games.
//!
//! This crate owns what analysts ask of the log: the list of sessions ([`catalog`]), a game's
//! events in order ([`History`]), and verification of every logged tick against the engine
//! ([`verify`]): each tick recomputed from its `session_created`, the revealed seed checked
//! against its `seedHash`, no step missing or doubled. It reads through the `EventLog` trait and
//! must not write to the log.
//!
//! # Layout
//! - [`History`]: the events of the log, loaded per session, in log order.
//! - [`archive`]: the same, loaded from the archiver's Parquet files.
//! - [`catalog`]: one summary line per session.
//! - [`verify`]: the checks, as plain functions over a session's events.
//! - [`export`]: ticks or events as Parquet, Arrow IPC, CSV or JSON lines.
//! - [`report`]: a self-contained HTML report with SVG plots.
//! - [`serve`]: a recorded game re-broadcast over the client protocol, 0.01× to 1000× its pace.

pub mod archive;
pub mod catalog;
pub mod export;
pub mod report;
pub mod serve;
pub mod verify;

use std::collections::BTreeMap;

use tickcast_eventlog::{EventLog, StartFrom};
use tickcast_schemas::event::{Event, EventBody, SessionCreated};
use tickcast_schemas::topics::{self, GAME_EVENTS};

/// Errors of the replay tools.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] tickcast_eventlog::Error),
    #[error("no session {0} in the log")]
    UnknownSession(String),
    #[error("cannot write {0}: {1}")]
    Output(String, std::io::Error),
    #[error("export failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("export failed: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("archive: {0}")]
    Archive(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where an event is in the log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Shared by every event read from one topic.
    pub topic: std::sync::Arc<str>,
    /// Its place in the topic's partition (an archive's row number, for archived events).
    pub at: tickcast_eventlog::Position,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.topic, self.at)
    }
}

/// One logged event with its position.
#[derive(Debug, Clone)]
pub struct Logged {
    pub position: Position,
    pub event: Event,
}

/// The `session_created` among a session's events.
#[must_use]
pub fn session_created(events: &[Logged]) -> Option<&SessionCreated> {
    events.iter().find_map(|l| match &l.event.body {
        EventBody::SessionCreated(c) => Some(c),
        _ => None,
    })
}

/// Records decoded: each position with its event, or `None` when it is not an event.
type Decoded = Vec<(tickcast_eventlog::Position, Option<Event>)>;

/// Decodes `records`, split over the machine's cores.
fn decode(records: Vec<tickcast_eventlog::Record>) -> Decoded {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let per_thread = records.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|r| (r.position.clone(), Event::from_bytes(&r.payload).ok()))
                        .collect::<Decoded>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// The log's events grouped by session: each session's `game-events`, then its tick-topic
/// events, merged in time order (`at`, then topic and offset).
#[derive(Debug, Default)]
pub struct History {
    pub sessions: BTreeMap<String, Vec<Logged>>,
    /// Records that are not events (not JSON, or not an envelope).
    pub undecodable: Vec<Position>,
    /// Sessions whose seed the source does not hold: the archive keeps a game's seed out of
    /// its `session_created` and gets it with `session_ended`, so a game still running there
    /// cannot have its ticks recomputed.
    pub seed_withheld: std::collections::BTreeSet<String>,
}

impl History {
    /// Reads every event of `game-events` and of the tick topics of the regions it names.
    pub async fn load(log: &dyn EventLog) -> Result<Self, Error> {
        Self::load_with_progress(log, &mut |_| {}).await
    }

    /// As [`History::load`], calling `progress` with the number of records read so far.
    pub async fn load_with_progress(
        log: &dyn EventLog,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Self, Error> {
        let mut history = Self::default();
        let mut read = 0;
        history.read_topic(log, GAME_EVENTS, &mut read, progress).await?;
        // Every region a session ticked in: where it was created, and where it moved.
        let mut regions: Vec<String> = history
            .sessions
            .values()
            .flat_map(|events| {
                events.iter().filter_map(|l| match &l.event.body {
                    EventBody::SessionCreated(c) => Some(c.region.clone()),
                    EventBody::SessionMigrated(m) => Some(m.to_region.clone()),
                    _ => None,
                })
            })
            .collect();
        regions.sort();
        regions.dedup();
        for region in regions {
            history.read_topic(log, &topics::ticks(&region), &mut read, progress).await?;
        }
        for events in history.sessions.values_mut() {
            // A stable sort keeps each topic's own order where times are equal.
            events.sort_by_key(|l| l.event.at);
            // session_ended is in both topics (the fact and the players' copy, written after the
            // last tick in the same topic): keep the last one, which is after the last tick.
            // session_migrated is in both too (the fact, and its copy after the old region's
            // last tick): keep the later, which is where the move happened among the ticks; and
            // so is tick_rate_changed (the fact, and its copy before its first step's tick).
            let last_end = events.iter().rposition(|l| matches!(l.event.body, EventBody::SessionEnded(_)));
            let mut moves = std::collections::HashSet::new();
            let mut keep = vec![true; events.len()];
            for i in (0..events.len()).rev() {
                match &events[i].event.body {
                    EventBody::SessionEnded(_) => keep[i] = Some(i) == last_end,
                    EventBody::SessionMigrated(_) | EventBody::TickRateChanged(_) => {
                        keep[i] = moves.insert(events[i].event.id);
                    }
                    _ => {}
                }
            }
            let mut kept = keep.into_iter();
            events.retain(|_| kept.next().unwrap_or(true));
            // Times tie at the millisecond: a move or a pace change goes right before its first
            // step, wherever the clock put it.
            place_before_their_first_step(events);
        }
        Ok(history)
    }

    async fn read_topic(
        &mut self,
        log: &dyn EventLog,
        topic: &str,
        read: &mut u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Error> {
        // Decoding costs more than reading: each chunk is decoded on the other cores while the
        // next one is read.
        const CHUNK: usize = 32 * 1024;
        let mut scan = log.scan(topic, StartFrom::Beginning).await?;
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut decoding: Option<tokio::task::JoinHandle<Decoded>> = None;
        loop {
            let batch = scan.next_batch().await?;
            let done = batch.is_none();
            if let Some(batch) = batch {
                *read += batch.len() as u64;
                progress(*read);
                chunk.extend(batch);
            }
            if chunk.len() >= CHUNK || (done && !chunk.is_empty()) {
                let records = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                let next = tokio::task::spawn_blocking(move || decode(records));
                if let Some(previous) = decoding.replace(next) {
                    self.add(topic, previous.await.map_err(|e| Error::Archive(e.to_string()))?);
                }
            }
            if done {
                break;
            }
        }
        if let Some(last) = decoding {
            self.add(topic, last.await.map_err(|e| Error::Archive(e.to_string()))?);
        }
        Ok(())
    }

    fn add(&mut self, topic: &str, decoded: Decoded) {
        let topic: std::sync::Arc<str> = topic.into();
        for (at, event) in decoded {
            let position = Position { topic: std::sync::Arc::clone(&topic), at };
            match event {
                Some(event) => match self.sessions.get_mut(&event.session_id) {
                    Some(events) => events.push(Logged { position, event }),
                    None => {
                        self.sessions.insert(event.session_id.clone(), vec![Logged { position, event }]);
                    }
                },
                None => self.undecodable.push(position),
            }
        }
    }

    /// The events of one session.
    pub fn session(&self, id: &str) -> Result<&[Logged], Error> {
        self.sessions.get(id).map(Vec::as_slice).ok_or_else(|| Error::UnknownSession(id.to_owned()))
    }
}

/// The first step a `session_migrated` or `tick_rate_changed` applies to.
const fn applies_from(body: &EventBody) -> Option<i64> {
    match body {
        EventBody::SessionMigrated(m) => Some(m.from_step),
        EventBody::TickRateChanged(c) => Some(c.from_step),
        _ => None,
    }
}

/// Puts each `session_migrated` and `tick_rate_changed` of a session's events right before its
/// first tick at or after `fromStep` (the last place when none is).
pub(crate) fn place_before_their_first_step(events: &mut Vec<Logged>) {
    let placed: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, l)| applies_from(&l.event.body).is_some())
        .map(|(i, _)| i)
        .collect();
    for index in placed.into_iter().rev() {
        let Some(from_step) = applies_from(&events[index].event.body) else { continue };
        let moved = events.remove(index);
        let at = events
            .iter()
            .position(|l| matches!(&l.event.body, EventBody::Tick(t) if t.step >= from_step))
            .unwrap_or(events.len());
        events.insert(at, moved);
    }
}
