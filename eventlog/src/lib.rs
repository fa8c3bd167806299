//! The durable event log: append keyed records to topics, read them back from an offset or an
//! instant, tail them live, and consume them as named consumer groups with committed offsets.
//!
//! This crate owns the [`EventLog`] trait and its backends, chosen by URL ([`open`]):
//! `embedded://DIR` (SQLite in WAL mode, one file, group commit). It is the only crate that
//! talks to a storage engine or broker; it knows records (key, timestamp, bytes), not events,
//! and must not interpret payloads.
//!
//! # Layout
//! - [`EventLog`], [`Tail`], [`GroupConsumer`]: the trait every backend implements.
//! - [`embedded`]: the SQLite backend.
//! - [`Error`]: what can go wrong, with whether a retry can help.

pub mod embedded;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

/// A record to append.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Records with one key keep their order (the key is a sessionId).
    pub key: String,
    /// Epoch milliseconds: when the event happened, as its writer saw it.
    pub timestamp_ms: i64,
    pub payload: Bytes,
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: Arc<str>,
    pub partition: u32,
    /// Position in its partition, from 0, without gaps.
    pub offset: u64,
    pub key: String,
    pub timestamp_ms: i64,
    pub payload: Bytes,
}

/// How long an append may wait before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledged once on stable storage: it survives `kill -9` and power loss.
    /// For facts (`game-events`).
    Durable,
    /// Acknowledged once visible to readers; made durable with the next durable write or
    /// checkpoint. For derived records (ticks), which can be recomputed.
    Relaxed,
}

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    Beginning,
    /// After the last record present when the reader starts.
    End,
    Offset(u64),
    /// The first record with a timestamp at or after this instant (epoch ms).
    Timestamp(i64),
}

/// Errors of the event log. Messages are written for the operator who reads them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported event log URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("embedded log storage failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("embedded log directory {path:?}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("embedded log write failed, nothing of it was stored: {0}")]
    WriteFailed(String),
    #[error("the event log was opened read-only")]
    ReadOnly,
    #[error("the event log is shut down")]
    Closed,
}

impl Error {
    /// Whether trying the same call again can succeed.
    #[must_use]
    pub const fn is_retriable(&self) -> bool {
        matches!(self, Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A log of topics of keyed records. Implementations are shared (`Arc<dyn EventLog>`) between
/// all the tasks of a process.
#[async_trait]
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Appends `records` to `topic` in order and returns their offsets, once as durable as asked.
    async fn append(&self, topic: &str, records: Vec<NewRecord>, durability: Durability) -> Result<Vec<u64>>;

    /// Up to `max` records of `topic` from `from`, without waiting for new ones.
    async fn read(&self, topic: &str, from: StartFrom, max: usize) -> Result<Vec<Record>>;

    /// A live reader of `topic` from `from`: returns what is there, then waits for more.
    async fn tail(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Tail>>;

    /// Joins consumer group `group` on `topics`. A topic the group has committed on starts after
    /// its committed offset; otherwise at `initial`.
    async fn consume(
        &self,
        group: &str,
        topics: &[&str],
        initial: StartFrom,
    ) -> Result<Box<dyn GroupConsumer>>;

    /// Flushes relaxed appends to stable storage.
    async fn sync(&self) -> Result<()>;
}

/// A live reader of one topic.
#[async_trait]
pub trait Tail: Send + fmt::Debug {
    /// The next records, waiting until there is at least one. Cancel-safe: a dropped call
    /// consumes nothing.
    async fn next_batch(&mut self) -> Result<Vec<Record>>;
}

/// A member of a consumer group: reads its topics and commits how far it has processed.
#[async_trait]
pub trait GroupConsumer: Send + fmt::Debug {
    /// The next records of any of the group's topics, waiting until there is at least one.
    /// Cancel-safe.
    async fn poll(&mut self) -> Result<Vec<Record>>;

    /// Records that the group has processed `topic`/`partition` up to, not including,
    /// `next_offset`: a restarted member resumes there. Durable when it returns.
    async fn commit(&mut self, topic: &str, partition: u32, next_offset: u64) -> Result<()>;
}

/// Opens an existing log named by `url` for reading only (replay, export): it never writes,
/// so it can run beside the process that owns the log.
pub fn open_read_only(url: &str) -> Result<Arc<dyn EventLog>> {
    match url.split_once("://") {
        Some(("embedded", dir)) if !dir.is_empty() => {
            Ok(Arc::new(embedded::EmbeddedLog::open_read_only(dir)?))
        }
        _ => open(url),
    }
}

/// Opens the backend named by `url`: `embedded://DIR`.
pub fn open(url: &str) -> Result<Arc<dyn EventLog>> {
    let bad = |reason: &str| Error::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("expected SCHEME://…, e.g. embedded://./data"));
    };
    match scheme {
        "embedded" if rest.is_empty() => Err(bad("embedded:// needs a directory, e.g. embedded://./data")),
        "embedded" => Ok(Arc::new(embedded::EmbeddedLog::open(rest)?)),
        "kafka" | "kinesis" => {
            Err(bad(&format!("the {scheme} backend is not part of this build yet; use embedded://DIR")))
        }
        other => Err(bad(&format!("unknown scheme {other:?}; supported: embedded://DIR"))),
    }
}
