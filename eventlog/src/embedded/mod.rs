//! The embedded backend: one SQLite database in WAL mode under a directory.
//!
//! Offsets are assigned when a record is appended. One writer thread owns the write connection
//! and commits whatever appends are waiting as one transaction (group commit), so many appends
//! share one fsync. A [`Durability::Durable`] append is acknowledged, and becomes visible to
//! readers, after its transaction commits with `synchronous=FULL` (which fsyncs the WAL, and with
//! it every earlier relaxed write). A [`Durability::Relaxed`] append (derived records such as
//! ticks) becomes visible at once and is written behind: live readers never wait for the disk,
//! and a crash can lose only relaxed records not yet committed. Visible records are also kept in
//! a bounded in-memory window per topic, so live tailers are served from memory and only readers
//! further back hit SQLite.
//!
//! Each topic has one partition (0). A group's committed offsets live in the same database.
//!
//! # Layout
//! - [`EmbeddedLog`]: the log and its [`EventLog`] implementation (appends assign offsets).
//! - `state`: what handles, readers and the writer share: each topic's visible end and recent
//!   records, pooled read connections.
//! - `writer`: the writer thread and its group commit.
//! - `readers`: scans, tails and the group member.

mod readers;
mod state;
mod writer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tokio::sync::{Semaphore, mpsc, oneshot};

use self::readers::{EmbeddedConsumer, EmbeddedScan, EmbeddedTail};
use self::state::{SCHEMA, Shared, TopicState, open_connection};
use self::writer::{WriteRequest, Writer};
use crate::{
    Durability, Error, EventLog, GroupConsumer, NewRecord, Position, Record, Result, Scan, StartFrom, Tail,
    TopicPartition,
};

/// Records kept in memory per topic for live tailers: 1.6 s of `tickcast up` at 10,000 players
/// (a record and a latency sample a second each); a tail further behind reads from SQLite.
pub(super) const RECENT_RECORDS: usize = 16 * 1024;

/// Most records one read or tail batch returns.
pub(super) const MAX_BATCH: usize = 4096;

/// Most records one group commit takes before it commits.
pub(super) const MAX_GROUP_COMMIT_RECORDS: usize = 50_000;

/// Batches smaller than this wait (once) for more appends before they commit.
pub(super) const LINGER_BELOW_RECORDS: usize = 1_000;

/// How long a small batch with durable records waits; it adds to their acknowledgement time.
pub(super) const DURABLE_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// How long a small batch of relaxed records (visible already) waits.
pub(super) const RELAXED_LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// Records appended but not yet committed, at most: appenders wait beyond this (backpressure).
/// No larger than the memory window, so a visible record not yet in SQLite is always in memory.
pub(super) const MAX_IN_FLIGHT_RECORDS: usize = RECENT_RECORDS;

/// The embedded event log (`embedded://DIR`).
#[derive(Debug)]
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    /// Requests to the writer thread, sent while `topics` is locked so their order is the
    /// offsets' order; closing it (on drop) stops the thread.
    writer: mpsc::UnboundedSender<WriteRequest>,
    /// Bounds the records in flight to the writer.
    in_flight: Arc<Semaphore>,
    /// Opened with `open_read_only`: appends are refused.
    read_only: bool,
    /// The directory's writer lock (`DIR/lock`), held while this log is open: two writers
    /// would hand out the same offsets. `None` when read-only.
    _lock: Option<std::fs::File>,
}

/// Takes the exclusive lock on `dir/lock` (released when the file closes, a `kill -9`
/// included) and writes this process's id into it; fails at once, naming the holder, if
/// another process has it.
fn lock_directory(dir: &Path) -> Result<std::fs::File> {
    use std::io::Write as _;
    let path = dir.join("lock");
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0).map_err(io)?;
            writeln!(file, "{}", std::process::id()).map_err(io)?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
                .map_or_else(|| "another process".to_owned(), |pid| format!("process {pid}"));
            Err(Error::Locked { dir: dir.display().to_string(), lock: path.display().to_string(), holder })
        }
        Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
    }
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log in directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        let lock = lock_directory(dir)?;
        let db_path = dir.join("log.sqlite3");
        let conn = open_connection(&db_path)?;
        // The writer's connection: a page cache that holds the B-trees' hot pages (appends touch
        // only their right edges), and rarer automatic checkpoints that move WAL pages into the
        // database in bigger runs. Not larger: SQLite walks the cache's hash table at the end
        // of every transaction, so a big cache costs time per commit (and resident memory).
        conn.pragma_update(None, "cache_size", -8 * 1024)?;
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
        conn.execute_batch(SCHEMA)?;
        let shared = Shared::load(db_path, &conn)?;
        let (writer, requests) = mpsc::unbounded_channel();
        let writer_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || Writer::new(conn, writer_shared).run(requests))
            .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        Ok(Self {
            shared,
            writer,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT_RECORDS)),
            read_only: false,
            _lock: Some(lock),
        })
    }

    /// Opens an existing log for reading only, beside a process that writes it: no writer,
    /// no checkpoint, a snapshot of each topic's end at opening.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self> {
        let db_path = dir.as_ref().join("log.sqlite3");
        if !db_path.exists() {
            return Err(Error::BadUrl {
                url: format!("embedded://{}", dir.as_ref().display()),
                reason: "no event log in that directory".into(),
            });
        }
        let conn = open_connection(&db_path)?;
        let shared = Shared::load(db_path, &conn)?;
        // Nothing receives: appends are refused before they get here.
        let (writer, _) = mpsc::unbounded_channel();
        Ok(Self {
            shared,
            writer,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT_RECORDS)),
            read_only: true,
            _lock: None,
        })
    }

    async fn request(&self, make: impl FnOnce(oneshot::Sender<Result<()>>) -> WriteRequest) -> Result<()> {
        let (reply, response) = oneshot::channel();
        self.writer.send(make(reply)).map_err(|_| Error::Closed)?;
        response.await.map_err(|_| Error::Closed)?
    }

    fn check_failed(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        match &*self.shared.failed.lock().unwrap() {
            Some(message) => Err(Error::WriteFailed(message.clone())),
            None => Ok(()),
        }
    }

    /// Where `group` resumes `topic` (the offset after what it has processed), if it committed.
    pub async fn committed(&self, group: &str, topic: &str) -> Result<Option<u64>> {
        let (group, topic) = (group.to_owned(), topic.to_owned());
        let committed: Option<i64> = self
            .shared
            .with_reader(move |conn| {
                conn.query_row(
                    "SELECT next_offset FROM group_offsets WHERE grp = ?1 AND topic = ?2 AND partition = 0",
                    params![group, topic],
                    |row| row.get(0),
                )
                .optional()
                .map_err(Error::from)
            })
            .await?;
        Ok(committed.map(|offset| offset as u64))
    }

    /// Deletes up to `limit` of `topic`'s oldest records below offset `before`; returns how
    /// many. What goes is always a prefix of the topic: readers starting below it start at the
    /// first record left, offsets do not change. The file keeps its size and reuses the freed
    /// pages.
    pub async fn prune(&self, topic: &str, before: u64, limit: u32) -> Result<u64> {
        self.check_failed()?;
        let (reply, response) = oneshot::channel();
        let request = WriteRequest::Prune { topic: topic.to_owned(), before, limit, reply };
        self.writer.send(request).map_err(|_| Error::Closed)?;
        response.await.map_err(|_| Error::Closed)?
    }

    fn tail_at(&self, topic: &str, position: u64) -> EmbeddedTail {
        let (name, end_rx) = self.shared.watch(topic);
        EmbeddedTail { shared: Arc::clone(&self.shared), topic: name, position, end_rx }
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        durability: Durability,
    ) -> Result<Vec<Position>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.check_failed()?;
        let wanted = records.len().min(MAX_IN_FLIGHT_RECORDS) as u32;
        let permit =
            Arc::clone(&self.in_flight).acquire_many_owned(wanted).await.map_err(|_| Error::Closed)?;
        let (reply, response) = oneshot::channel();
        let (offsets, visible) = {
            let mut topics = self.shared.topics.lock().unwrap();
            let state = topics.entry(topic.to_owned()).or_insert_with(|| TopicState::new(topic, 0));
            let first = state.next_offset;
            state.next_offset += records.len() as u64;
            let stored: Vec<Record> = records
                .into_iter()
                .zip(first..)
                .map(|(r, offset)| Record {
                    topic: Arc::clone(&state.name),
                    partition: 0,
                    position: Position::Offset(offset),
                    key: r.key.into(),
                    timestamp_ms: r.timestamp_ms,
                    payload: r.payload,
                })
                .collect();
            // Relaxed records are visible at once when nothing before them is still invisible.
            let visible = durability == Durability::Relaxed && state.end == first;
            if visible {
                state.publish(&stored);
            }
            let offsets = stored.iter().map(|r| r.position.clone()).collect();
            let request = WriteRequest::Append {
                topic: topic.to_owned(),
                records: stored,
                durability,
                visible,
                reply,
                _permit: permit,
            };
            self.writer.send(request).map_err(|_| Error::Closed)?;
            (offsets, visible)
        };
        if !visible {
            response.await.map_err(|_| Error::Closed)??;
        }
        Ok(offsets)
    }

    async fn read(&self, topic: &str, from: StartFrom, max: usize) -> Result<Vec<Record>> {
        let position = self.shared.resolve(topic, from).await?;
        let (name, _) = self.shared.watch(topic);
        self.shared.fetch(&name, position, max).await
    }

    async fn scan(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Scan>> {
        let position = self.shared.resolve(topic, from).await?;
        let (name, _) = self.shared.watch(topic);
        let end = self.shared.end_of(topic);
        Ok(Box::new(EmbeddedScan { shared: Arc::clone(&self.shared), topic: name, position, end }))
    }

    async fn tail(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Tail>> {
        let position = self.shared.resolve(topic, from).await?;
        Ok(Box::new(self.tail_at(topic, position)))
    }

    async fn consume(
        &self,
        group: &str,
        topics: &[&str],
        initial: StartFrom,
    ) -> Result<Box<dyn GroupConsumer>> {
        let mut tails = Vec::with_capacity(topics.len());
        let mut catching_up = Vec::with_capacity(topics.len());
        for topic in topics {
            catching_up.push(Some(self.shared.end_of(topic)));
            let position = match self.committed(group, topic).await? {
                Some(offset) => offset,
                None => self.shared.resolve(topic, initial).await?,
            };
            tails.push(self.tail_at(topic, position));
        }
        let assigned =
            topics.iter().map(|t| TopicPartition { topic: (*t).to_owned(), partition: 0 }).collect();
        Ok(Box::new(EmbeddedConsumer {
            group: group.to_owned(),
            tails,
            writer: self.writer.clone(),
            unannounced: Some(assigned),
            catching_up,
        }))
    }

    async fn sync(&self) -> Result<()> {
        self.check_failed()?;
        self.request(|reply| WriteRequest::Sync { reply }).await
    }
}

/// The offset of a record of this log, which numbers every record it stores.
fn offset_of(record: &Record) -> u64 {
    match &record.position {
        Position::Offset(offset) => *offset,
        Position::Sequence { .. } => unreachable!("the embedded log makes offsets only"),
    }
}
