//! What the log's handles, readers and writer thread share: the database's path, each topic's
//! visible end with its newest records in memory, pooled read connections, and whether a commit
//! failed.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

use super::{MAX_BATCH, RECENT_RECORDS};
use crate::{Error, Position, Record, Result, StartFrom};

pub(super) const SCHEMA: &str = "
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

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) db_path: PathBuf,
    /// Per-topic head state. Held only for short, non-blocking sections; never across an await.
    pub(super) topics: Mutex<HashMap<String, TopicState>>,
    /// Idle read connections, reused so a read does not reopen the database.
    pub(super) readers: Mutex<Vec<Connection>>,
    /// Set when a commit failed: the log refuses further appends rather than leave a gap.
    pub(super) failed: Mutex<Option<String>>,
}

#[derive(Debug)]
pub(super) struct TopicState {
    pub(super) name: Arc<str>,
    /// The offset the next appended record gets.
    pub(super) next_offset: u64,
    /// Records below this offset are visible to readers.
    pub(super) end: u64,
    /// The newest visible records, oldest first.
    pub(super) recent: VecDeque<Record>,
    /// Publishes `end` to tailers when it moves.
    pub(super) end_tx: watch::Sender<u64>,
}

impl TopicState {
    pub(super) fn new(name: &str, end: u64) -> Self {
        Self {
            name: name.into(),
            next_offset: end,
            end,
            recent: VecDeque::new(),
            end_tx: watch::channel(end).0,
        }
    }

    /// Makes records visible, in offset order; records already visible are skipped.
    /// Drops from the window the records below `offset` (deleted by retention).
    pub(super) fn forget_before(&mut self, offset: u64) {
        while self.recent.front().is_some_and(|r| super::offset_of(r) < offset) {
            self.recent.pop_front();
        }
    }

    pub(super) fn publish(&mut self, records: &[Record]) {
        let before = self.end;
        for record in records {
            if super::offset_of(record) == self.end {
                self.end += 1;
                // Room is made before the push: a window pushed past its length would double
                // its allocation for the few records over.
                if self.recent.len() >= RECENT_RECORDS {
                    self.recent.pop_front();
                }
                self.recent.push_back(record.clone());
            }
        }
        if self.end != before {
            self.end_tx.send_replace(self.end);
        }
    }
}

pub(super) fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

impl Shared {
    /// The shared state of a log whose records are in `conn`'s database.
    pub(super) fn load(db_path: PathBuf, conn: &Connection) -> Result<Arc<Self>> {
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

    pub(super) fn watch(&self, topic: &str) -> (Arc<str>, watch::Receiver<u64>) {
        let mut topics = self.topics.lock().unwrap();
        let state = topics.entry(topic.to_owned()).or_insert_with(|| TopicState::new(topic, 0));
        (Arc::clone(&state.name), state.end_tx.subscribe())
    }

    pub(super) fn end_of(&self, topic: &str) -> u64 {
        self.topics.lock().unwrap().get(topic).map_or(0, |t| t.end)
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    pub(super) async fn with_reader<T: Send + 'static>(
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

    pub(super) async fn resolve(self: &Arc<Self>, topic: &str, from: StartFrom) -> Result<u64> {
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
    pub(super) async fn fetch(
        self: &Arc<Self>,
        topic: &Arc<str>,
        from: u64,
        max: usize,
    ) -> Result<Vec<Record>> {
        let max = max.min(MAX_BATCH);
        let end = {
            let topics = self.topics.lock().unwrap();
            let Some(state) = topics.get(&**topic) else {
                return Ok(Vec::new());
            };
            if let Some(first) = state.recent.front()
                && from >= super::offset_of(first)
            {
                let skip = (from - super::offset_of(first)) as usize;
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
                    position: Position::Offset(row.get::<_, i64>(0)? as u64),
                    key: row.get::<_, String>(1)?.into(),
                    timestamp_ms: row.get(2)?,
                    payload: Bytes::from(row.get::<_, Vec<u8>>(3)?),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(Error::from)
        })
        .await
    }
}
