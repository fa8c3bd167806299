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

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::{
    CommitPosition, Durability, Error, EventLog, GroupConsumer, GroupEvent, NewRecord, Record, Result, Scan,
    StartFrom, Tail, TopicPartition,
};

/// Records kept in memory per topic for live tailers.
const RECENT_RECORDS: usize = 32 * 1024;
/// Most records one read or tail batch returns.
const MAX_BATCH: usize = 4096;
/// Most records one group commit takes before it commits.
const MAX_GROUP_COMMIT_RECORDS: usize = 50_000;
/// Batches smaller than this wait (once) for more appends before they commit.
const LINGER_BELOW_RECORDS: usize = 1_000;
/// How long a small batch with durable records waits; it adds to their acknowledgement time.
const DURABLE_LINGER: std::time::Duration = std::time::Duration::from_millis(2);
/// How long a small batch of relaxed records (visible already) waits.
const RELAXED_LINGER: std::time::Duration = std::time::Duration::from_millis(10);
/// Records appended but not yet committed, at most: appenders wait beyond this (backpressure).
/// No larger than the memory window, so a visible record not yet in SQLite is always in memory.
const MAX_IN_FLIGHT_RECORDS: usize = RECENT_RECORDS;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    topic   TEXT    NOT NULL,
    offset  INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    ts      INTEGER NOT NULL,
    payload BLOB    NOT NULL,
    PRIMARY KEY (topic, offset)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_time ON records (topic, ts);
CREATE TABLE IF NOT EXISTS group_offsets (
    grp         TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
";

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
}

#[derive(Debug)]
struct Shared {
    db_path: PathBuf,
    /// Per-topic head state. Held only for short, non-blocking sections; never across an await.
    topics: Mutex<HashMap<String, TopicState>>,
    /// Idle read connections, reused so a read does not reopen the database.
    readers: Mutex<Vec<Connection>>,
    /// Set when a commit failed: the log refuses further appends rather than leave a gap.
    failed: Mutex<Option<String>>,
}

#[derive(Debug)]
struct TopicState {
    name: Arc<str>,
    /// The offset the next appended record gets.
    next_offset: u64,
    /// Records below this offset are visible to readers.
    end: u64,
    /// The newest visible records, oldest first.
    recent: VecDeque<Record>,
    /// Publishes `end` to tailers when it moves.
    end_tx: watch::Sender<u64>,
}

impl TopicState {
    fn new(name: &str, end: u64) -> Self {
        Self {
            name: name.into(),
            next_offset: end,
            end,
            recent: VecDeque::new(),
            end_tx: watch::channel(end).0,
        }
    }

    /// Makes records visible, in offset order; records already visible are skipped.
    fn publish(&mut self, records: &[Record]) {
        let before = self.end;
        for record in records {
            if record.offset == self.end {
                self.end += 1;
                self.recent.push_back(record.clone());
            }
        }
        while self.recent.len() > RECENT_RECORDS {
            self.recent.pop_front();
        }
        if self.end != before {
            self.end_tx.send_replace(self.end);
        }
    }
}

#[derive(Debug)]
enum WriteRequest {
    Append {
        topic: String,
        /// With their offsets assigned.
        records: Vec<Record>,
        durability: Durability,
        /// Whether the records were made visible at append time (relaxed).
        visible: bool,
        reply: oneshot::Sender<Result<()>>,
        /// Released when the records are committed.
        _permit: OwnedSemaphorePermit,
    },
    Commit {
        group: String,
        topic: String,
        partition: u32,
        next_offset: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    Sync {
        reply: oneshot::Sender<Result<()>>,
    },
}

impl WriteRequest {
    const fn is_durable(&self) -> bool {
        !matches!(self, Self::Append { durability: Durability::Relaxed, .. })
    }

    fn fail(self, message: &str) {
        let error = || Error::WriteFailed(message.to_owned());
        match self {
            Self::Append { reply, .. } | Self::Commit { reply, .. } | Self::Sync { reply } => {
                drop(reply.send(Err(error())));
            }
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log in directory `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)
            .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        let db_path = dir.join("log.sqlite3");
        let conn = open_connection(&db_path)?;
        // The writer's connection: a larger page cache keeps the B-tree's hot pages in memory,
        // and rarer automatic checkpoints move WAL pages into the database in bigger runs.
        conn.pragma_update(None, "cache_size", -64 * 1024)?;
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

    fn tail_at(&self, topic: &str, position: u64) -> EmbeddedTail {
        let (name, end_rx) = self.shared.watch(topic);
        EmbeddedTail { shared: Arc::clone(&self.shared), topic: name, position, end_rx }
    }
}

impl Shared {
    /// The shared state of a log whose records are in `conn`'s database.
    fn load(db_path: PathBuf, conn: &Connection) -> Result<Arc<Self>> {
        let mut topics = HashMap::new();
        let mut stmt = conn.prepare("SELECT topic, MAX(offset) + 1 FROM records GROUP BY topic")?;
        let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
        for row in rows {
            let (topic, end) = row?;
            topics.insert(topic.clone(), TopicState::new(&topic, end as u64));
        }
        Ok(Arc::new(Self {
            db_path,
            topics: Mutex::new(topics),
            readers: Mutex::new(Vec::new()),
            failed: Mutex::new(None),
        }))
    }

    fn watch(&self, topic: &str) -> (Arc<str>, watch::Receiver<u64>) {
        let mut topics = self.topics.lock().unwrap();
        let state = topics.entry(topic.to_owned()).or_insert_with(|| TopicState::new(topic, 0));
        (Arc::clone(&state.name), state.end_tx.subscribe())
    }

    fn end_of(&self, topic: &str) -> u64 {
        self.topics.lock().unwrap().get(topic).map_or(0, |t| t.end)
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    async fn with_reader<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let pooled = shared.readers.lock().unwrap().pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => open_connection(&shared.db_path)?,
            };
            let result = f(&conn);
            shared.readers.lock().unwrap().push(conn);
            result
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    async fn resolve(self: &Arc<Self>, topic: &str, from: StartFrom) -> Result<u64> {
        Ok(match from {
            StartFrom::Beginning => 0,
            StartFrom::End => self.end_of(topic),
            StartFrom::Offset(offset) => offset,
            StartFrom::Timestamp(ts) => {
                let end = self.end_of(topic);
                let topic = topic.to_owned();
                self.with_reader(move |conn| {
                    let first: Option<i64> = conn
                        .query_row(
                            "SELECT MIN(offset) FROM records WHERE topic = ?1 AND ts >= ?2",
                            params![topic, ts],
                            |row| row.get(0),
                        )
                        .optional()?
                        .flatten();
                    Ok(first.map_or(end, |o| o as u64))
                })
                .await?
            }
        })
    }

    /// Committed records of `topic` in `[from, end)`, at most [`MAX_BATCH`]; from memory when
    /// the window still holds `from`.
    async fn fetch(self: &Arc<Self>, topic: &Arc<str>, from: u64, max: usize) -> Result<Vec<Record>> {
        let max = max.min(MAX_BATCH);
        let end = {
            let topics = self.topics.lock().unwrap();
            let Some(state) = topics.get(&**topic) else {
                return Ok(Vec::new());
            };
            if let Some(first) = state.recent.front()
                && from >= first.offset
            {
                let skip = (from - first.offset) as usize;
                return Ok(state.recent.iter().skip(skip).take(max).cloned().collect());
            }
            state.end
        };
        if from >= end {
            return Ok(Vec::new());
        }
        let topic = Arc::clone(topic);
        self.with_reader(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT offset, key, ts, payload FROM records
                 WHERE topic = ?1 AND offset >= ?2 AND offset < ?3 ORDER BY offset LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![&*topic, from as i64, end as i64, max as i64], |row| {
                Ok(Record {
                    topic: Arc::clone(&topic),
                    partition: 0,
                    offset: row.get::<_, i64>(0)? as u64,
                    key: row.get(1)?,
                    timestamp_ms: row.get(2)?,
                    payload: Bytes::from(row.get::<_, Vec<u8>>(3)?),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(Error::from)
        })
        .await
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, topic: &str, records: Vec<NewRecord>, durability: Durability) -> Result<Vec<u64>> {
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
                    offset,
                    key: r.key,
                    timestamp_ms: r.timestamp_ms,
                    payload: r.payload,
                })
                .collect();
            // Relaxed records are visible at once when nothing before them is still invisible.
            let visible = durability == Durability::Relaxed && state.end == first;
            if visible {
                state.publish(&stored);
            }
            let offsets = stored.iter().map(|r| r.offset).collect();
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
        for topic in topics {
            let (group_name, topic_name) = (group.to_owned(), (*topic).to_owned());
            let committed: Option<i64> = self
                .shared
                .with_reader(move |conn| {
                    conn.query_row(
                        "SELECT next_offset FROM group_offsets WHERE grp = ?1 AND topic = ?2 AND partition = 0",
                        params![group_name, topic_name],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(Error::from)
                })
                .await?;
            let position = match committed {
                Some(offset) => offset as u64,
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
        }))
    }

    async fn sync(&self) -> Result<()> {
        self.check_failed()?;
        self.request(|reply| WriteRequest::Sync { reply }).await
    }
}

/// A bounded reader of one topic of the embedded log: up to the end it had when it started.
#[derive(Debug)]
struct EmbeddedScan {
    shared: Arc<Shared>,
    topic: Arc<str>,
    position: u64,
    end: u64,
}

#[async_trait]
impl Scan for EmbeddedScan {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        if self.position >= self.end {
            return Ok(None);
        }
        let wanted = (self.end - self.position).min(MAX_BATCH as u64) as usize;
        let records = self.shared.fetch(&self.topic, self.position, wanted).await?;
        let Some(last) = records.last() else { return Ok(None) };
        self.position = last.offset + 1;
        Ok(Some(records))
    }
}

/// A live reader of one topic of the embedded log.
#[derive(Debug)]
struct EmbeddedTail {
    shared: Arc<Shared>,
    topic: Arc<str>,
    /// The next offset to return; advanced only when records are handed out (cancel safety).
    position: u64,
    /// The topic's committed end, pushed by the writer after each commit.
    end_rx: watch::Receiver<u64>,
}

impl EmbeddedTail {
    fn has_records(&mut self) -> bool {
        *self.end_rx.borrow_and_update() > self.position
    }

    async fn take_available(&mut self) -> Result<Vec<Record>> {
        let records = self.shared.fetch(&self.topic, self.position, MAX_BATCH).await?;
        if let Some(last) = records.last() {
            self.position = last.offset + 1;
        }
        Ok(records)
    }
}

#[async_trait]
impl Tail for EmbeddedTail {
    async fn next_batch(&mut self) -> Result<Vec<Record>> {
        loop {
            if self.has_records() {
                let records = self.take_available().await?;
                if !records.is_empty() {
                    return Ok(records);
                }
            }
            self.end_rx.changed().await.map_err(|_| Error::Closed)?;
        }
    }
}

/// The one member of an embedded consumer group (the embedded log serves one process).
#[derive(Debug)]
struct EmbeddedConsumer {
    group: String,
    tails: Vec<EmbeddedTail>,
    /// Commits go through the writer so they share its group commit.
    writer: mpsc::UnboundedSender<WriteRequest>,
    /// The single member owns every partition; it says so once, first.
    unannounced: Option<Vec<TopicPartition>>,
}

#[async_trait]
impl GroupConsumer for EmbeddedConsumer {
    async fn next_event(&mut self) -> Result<GroupEvent> {
        if let Some(assigned) = self.unannounced.take() {
            return Ok(GroupEvent::Assigned(assigned));
        }
        loop {
            for tail in &mut self.tails {
                if tail.has_records() {
                    let records = tail.take_available().await?;
                    if !records.is_empty() {
                        return Ok(GroupEvent::Records(records));
                    }
                }
            }
            let changes = self.tails.iter_mut().map(|t| Box::pin(t.end_rx.changed()));
            let (changed, _, _) = futures_util::future::select_all(changes).await;
            changed.map_err(|_| Error::Closed)?;
        }
    }

    async fn commit(&mut self, topic: &str, partition: u32, position: CommitPosition) -> Result<()> {
        let next_offset = position.next_offset;
        let (reply, response) = oneshot::channel();
        let request = WriteRequest::Commit {
            group: self.group.clone(),
            topic: topic.to_owned(),
            partition,
            next_offset,
            reply,
        };
        self.writer.send(request).map_err(|_| Error::Closed)?;
        response.await.map_err(|_| Error::Closed)?
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// The connection's current `synchronous` setting, to change it only when needed.
    synchronous_full: Option<bool>,
}

impl Writer {
    const fn new(conn: Connection, shared: Arc<Shared>) -> Self {
        Self { conn, shared, synchronous_full: None }
    }

    fn run(mut self, mut requests: mpsc::UnboundedReceiver<WriteRequest>) {
        let mut batch = Vec::new();
        while let Some(first) = requests.blocking_recv() {
            let mut records = first.record_count();
            batch.push(first);
            let mut lingered = false;
            loop {
                match requests.try_recv() {
                    Ok(next) if records < MAX_GROUP_COMMIT_RECORDS => {
                        records += next.record_count();
                        batch.push(next);
                    }
                    Ok(next) => {
                        self.commit_batch(&mut batch);
                        records = next.record_count();
                        batch.push(next);
                    }
                    // A small batch waits a moment for company: every commit rewrites the pages
                    // it touches, so fewer, larger commits cost far less per record. Relaxed
                    // records are visible already and can wait longer than durable ones.
                    Err(_) if !lingered && records < LINGER_BELOW_RECORDS => {
                        lingered = true;
                        let durable = batch.iter().any(WriteRequest::is_durable);
                        std::thread::sleep(if durable { DURABLE_LINGER } else { RELAXED_LINGER });
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
        // All senders are gone: make relaxed writes durable before the thread ends.
        let _ = self
            .set_synchronous(true)
            .and_then(|()| Ok(self.conn.execute_batch("PRAGMA wal_checkpoint(FULL)")?));
    }

    fn set_synchronous(&mut self, full: bool) -> Result<()> {
        if self.synchronous_full != Some(full) {
            self.conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
            self.synchronous_full = Some(full);
        }
        Ok(())
    }

    fn commit_batch(&mut self, batch: &mut Vec<WriteRequest>) {
        let durable = batch.iter().any(WriteRequest::is_durable);
        if let Err(error) = self.write(batch, durable) {
            // The batch's offsets are handed out and cannot be reused without a gap: the log
            // stops taking appends and says why.
            let message = error.to_string();
            tracing::error!(%error, "embedded log commit failed; the log refuses further appends");
            *self.shared.failed.lock().unwrap() = Some(message.clone());
            for request in batch.drain(..) {
                request.fail(&message);
            }
            return;
        }
        {
            let mut topics = self.shared.topics.lock().unwrap();
            for request in batch.iter() {
                if let WriteRequest::Append { topic, records, visible: false, .. } = request
                    && let Some(state) = topics.get_mut(topic)
                {
                    state.publish(records);
                }
            }
        }
        for request in batch.drain(..) {
            match request {
                WriteRequest::Append { reply, .. }
                | WriteRequest::Commit { reply, .. }
                | WriteRequest::Sync { reply } => {
                    drop(reply.send(Ok(())));
                }
            }
        }
    }

    /// Writes the batch in one transaction.
    fn write(&mut self, batch: &[WriteRequest], durable: bool) -> Result<()> {
        self.set_synchronous(durable)?;
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (topic, offset, key, ts, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut commit = tx.prepare_cached(
                "INSERT INTO group_offsets (grp, topic, partition, next_offset) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (grp, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            )?;
            for request in batch {
                match request {
                    WriteRequest::Append { topic, records, .. } => {
                        for r in records {
                            insert.execute(params![
                                topic,
                                r.offset as i64,
                                r.key,
                                r.timestamp_ms,
                                &r.payload[..]
                            ])?;
                        }
                    }
                    WriteRequest::Commit { group, topic, partition, next_offset, .. } => {
                        commit.execute(params![group, topic, partition, *next_offset as i64])?;
                    }
                    WriteRequest::Sync { .. } => {}
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl WriteRequest {
    fn record_count(&self) -> usize {
        match self {
            Self::Append { records, .. } => records.len(),
            _ => 1,
        }
    }
}
