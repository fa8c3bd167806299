//! The embedded backend: one SQLite database in WAL mode under a directory.
//!
//! One writer thread owns the write connection and commits whatever appends are waiting as one
//! transaction (group commit), so many appends share one fsync. An append is acknowledged after
//! its transaction commits; with [`Durability::Durable`] the commit runs with
//! `synchronous=FULL`, which fsyncs the WAL (and with it every earlier relaxed write) before it
//! returns. Committed records are also kept in a bounded in-memory window per topic, so live
//! tailers near the head are served from memory and only readers further back hit SQLite.
//!
//! Each topic has one partition (0). A group's committed offsets live in the same database.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};

use crate::{Durability, Error, EventLog, GroupConsumer, NewRecord, Record, Result, StartFrom, Tail};

/// Records kept in memory per topic for live tailers.
const RECENT_RECORDS: usize = 32 * 1024;
/// Most records one read or tail batch returns.
const MAX_BATCH: usize = 4096;
/// Most records one group commit takes before it commits.
const MAX_GROUP_COMMIT_RECORDS: usize = 50_000;

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
    /// Requests to the writer thread; closing it (on drop) stops the thread.
    writer: mpsc::Sender<WriteRequest>,
}

#[derive(Debug)]
struct Shared {
    db_path: PathBuf,
    /// Per-topic head state. Held only for short, non-blocking sections; never across an await.
    topics: Mutex<HashMap<String, TopicState>>,
    /// Idle read connections, reused so a read does not reopen the database.
    readers: Mutex<Vec<Connection>>,
}

#[derive(Debug)]
struct TopicState {
    name: Arc<str>,
    /// The offset the next committed record gets.
    end: u64,
    /// The newest committed records, oldest first.
    recent: VecDeque<Record>,
    /// Publishes `end` to tailers after each commit.
    end_tx: watch::Sender<u64>,
}

impl TopicState {
    fn new(name: &str, end: u64) -> Self {
        Self { name: name.into(), end, recent: VecDeque::new(), end_tx: watch::channel(end).0 }
    }
}

#[derive(Debug)]
enum WriteRequest {
    Append {
        topic: String,
        records: Vec<NewRecord>,
        durability: Durability,
        reply: oneshot::Sender<Result<Vec<u64>>>,
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
            Self::Append { reply, .. } => drop(reply.send(Err(error()))),
            Self::Commit { reply, .. } | Self::Sync { reply } => drop(reply.send(Err(error()))),
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
        conn.execute_batch(SCHEMA)?;
        let mut topics = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT topic, MAX(offset) + 1 FROM records GROUP BY topic")?;
            let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
            for row in rows {
                let (topic, end) = row?;
                topics.insert(topic.clone(), TopicState::new(&topic, end as u64));
            }
        }
        let shared =
            Arc::new(Shared { db_path, topics: Mutex::new(topics), readers: Mutex::new(Vec::new()) });
        let (writer, requests) = mpsc::channel(16 * 1024);
        let writer_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || Writer::new(conn, writer_shared).run(requests))
            .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        Ok(Self { shared, writer })
    }

    async fn request<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> WriteRequest) -> Result<T> {
        let (reply, response) = oneshot::channel();
        self.writer.send(make(reply)).await.map_err(|_| Error::Closed)?;
        response.await.map_err(|_| Error::Closed)?
    }

    fn tail_at(&self, topic: &str, position: u64) -> EmbeddedTail {
        let (name, end_rx) = self.shared.watch(topic);
        EmbeddedTail { shared: Arc::clone(&self.shared), topic: name, position, end_rx }
    }
}

impl Shared {
    fn watch(&self, topic: &str) -> (Arc<str>, watch::Receiver<u64>) {
        let mut topics = self.topics.lock().unwrap();
        let state = topics.entry(topic.to_owned()).or_insert_with(|| TopicState::new(topic, 0));
        (Arc::clone(&state.name), state.end_tx.subscribe())
    }

    /// Each topic's committed end: where the writer's next offsets start.
    fn committed_ends(&self) -> HashMap<String, u64> {
        self.topics.lock().unwrap().iter().map(|(k, v)| (k.clone(), v.end)).collect()
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
        self.request(|reply| WriteRequest::Append { topic: topic.to_owned(), records, durability, reply })
            .await
    }

    async fn read(&self, topic: &str, from: StartFrom, max: usize) -> Result<Vec<Record>> {
        let position = self.shared.resolve(topic, from).await?;
        let (name, _) = self.shared.watch(topic);
        self.shared.fetch(&name, position, max).await
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
        Ok(Box::new(EmbeddedConsumer { group: group.to_owned(), tails, writer: self.writer.clone() }))
    }

    async fn sync(&self) -> Result<()> {
        self.request(|reply| WriteRequest::Sync { reply }).await
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
    writer: mpsc::Sender<WriteRequest>,
}

#[async_trait]
impl GroupConsumer for EmbeddedConsumer {
    async fn poll(&mut self) -> Result<Vec<Record>> {
        loop {
            for tail in &mut self.tails {
                if tail.has_records() {
                    let records = tail.take_available().await?;
                    if !records.is_empty() {
                        return Ok(records);
                    }
                }
            }
            let changes = self.tails.iter_mut().map(|t| Box::pin(t.end_rx.changed()));
            let (changed, _, _) = futures_util::future::select_all(changes).await;
            changed.map_err(|_| Error::Closed)?;
        }
    }

    async fn commit(&mut self, topic: &str, partition: u32, next_offset: u64) -> Result<()> {
        let (reply, response) = oneshot::channel();
        let request = WriteRequest::Commit {
            group: self.group.clone(),
            topic: topic.to_owned(),
            partition,
            next_offset,
            reply,
        };
        self.writer.send(request).await.map_err(|_| Error::Closed)?;
        response.await.map_err(|_| Error::Closed)?
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// The next offset per topic, including records of the transaction in progress.
    next_offsets: HashMap<String, u64>,
    /// The connection's current `synchronous` setting, to change it only when needed.
    synchronous_full: Option<bool>,
}

impl Writer {
    fn new(conn: Connection, shared: Arc<Shared>) -> Self {
        let next_offsets = shared.committed_ends();
        Self { conn, shared, next_offsets, synchronous_full: None }
    }

    fn run(mut self, mut requests: mpsc::Receiver<WriteRequest>) {
        let mut batch = Vec::new();
        while let Some(first) = requests.blocking_recv() {
            let mut records = first.record_count();
            batch.push(first);
            while records < MAX_GROUP_COMMIT_RECORDS {
                match requests.try_recv() {
                    Ok(next) => {
                        records += next.record_count();
                        batch.push(next);
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
        let mut appended: Vec<(String, Vec<Record>)> = Vec::new();
        let result = self.write(batch, durable, &mut appended);
        match result {
            Ok(offsets) => {
                self.publish(appended);
                for (request, offsets) in batch.drain(..).zip(offsets) {
                    match request {
                        WriteRequest::Append { reply, .. } => drop(reply.send(Ok(offsets))),
                        WriteRequest::Commit { reply, .. } | WriteRequest::Sync { reply } => {
                            drop(reply.send(Ok(())))
                        }
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "embedded log commit failed; the batch is refused");
                // The offsets handed out in the failed transaction are not used.
                self.next_offsets = self.shared.committed_ends();
                let message = error.to_string();
                for request in batch.drain(..) {
                    request.fail(&message);
                }
            }
        }
    }

    /// Writes the batch in one transaction; returns the offsets of each request's records.
    fn write(
        &mut self,
        batch: &[WriteRequest],
        durable: bool,
        appended: &mut Vec<(String, Vec<Record>)>,
    ) -> Result<Vec<Vec<u64>>> {
        self.set_synchronous(durable)?;
        let tx = self.conn.transaction()?;
        let mut all_offsets = Vec::with_capacity(batch.len());
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
                        let name: Arc<str> = topic.as_str().into();
                        let next = self.next_offsets.entry(topic.clone()).or_insert(0);
                        let mut offsets = Vec::with_capacity(records.len());
                        let mut stored = Vec::with_capacity(records.len());
                        for record in records {
                            insert.execute(params![
                                topic,
                                *next as i64,
                                record.key,
                                record.timestamp_ms,
                                &record.payload[..]
                            ])?;
                            offsets.push(*next);
                            stored.push(Record {
                                topic: Arc::clone(&name),
                                partition: 0,
                                offset: *next,
                                key: record.key.clone(),
                                timestamp_ms: record.timestamp_ms,
                                payload: record.payload.clone(),
                            });
                            *next += 1;
                        }
                        appended.push((topic.clone(), stored));
                        all_offsets.push(offsets);
                    }
                    WriteRequest::Commit { group, topic, partition, next_offset, .. } => {
                        commit.execute(params![group, topic, partition, *next_offset as i64])?;
                        all_offsets.push(Vec::new());
                    }
                    WriteRequest::Sync { .. } => all_offsets.push(Vec::new()),
                }
            }
        }
        tx.commit()?;
        Ok(all_offsets)
    }

    /// Makes committed records visible to readers and wakes tailers.
    fn publish(&self, appended: Vec<(String, Vec<Record>)>) {
        let mut topics = self.shared.topics.lock().unwrap();
        for (topic, records) in appended {
            let state = topics.entry(topic.clone()).or_insert_with(|| TopicState::new(&topic, 0));
            // Records already in the window use the state's name, so all share one Arc.
            for mut record in records {
                record.topic = Arc::clone(&state.name);
                state.end = record.offset + 1;
                state.recent.push_back(record);
            }
            while state.recent.len() > RECENT_RECORDS {
                state.recent.pop_front();
            }
            state.end_tx.send_replace(state.end);
        }
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
