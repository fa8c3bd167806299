//! The durable event log: append keyed records to topics, read them back from an offset or an
//! instant, tail them live, and consume them as named consumer groups with committed offsets.
//!
//! This crate owns the [`EventLog`] trait and its backends, chosen by URL ([`open`]):
//! `embedded://DIR` (SQLite in WAL mode, one file, group commit),
//! `kafka://HOST:PORT[,HOST:PORT]` (a Kafka cluster through librdkafka) and
//! `kinesis://PREFIX?region=R` (Kinesis streams, with shard leases in DynamoDB). It is the only crate that
//! talks to a storage engine or broker; it knows records (key, timestamp, bytes), not events,
//! and must not interpret payloads.
//!
//! # Layout
//! - [`EventLog`], [`Tail`], [`GroupConsumer`]: the trait every backend implements.
//! - [`embedded`]: the SQLite backend.
//! - [`kafka`]: the Kafka backend.
//! - [`kinesis`]: the Kinesis backend (feature `kinesis`).
//! - [`metrics`]: the log's series (append latency, consumer lag, partitions owned,
//!   rebalances), the same on every backend.
//! - [`Error`], [`RetryHint`]: what can go wrong, and whether a retry can help.

pub mod embedded;
mod error;
pub mod kafka;
#[cfg(feature = "kinesis")]
pub mod kinesis;
pub mod metrics;
mod position;

pub use error::{Error, Result, RetryHint};
pub use position::Position;

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
    /// Its place in its partition (an offset, from 0 without gaps, except on Kinesis).
    pub position: Position,
    /// Shared, not copied, by every reader a record is handed to (a live record reaches
    /// every tail of its topic).
    pub key: Arc<str>,
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
    /// Every partition from this offset (not on Kinesis, which has none).
    Offset(u64),
    /// The first record with a timestamp at or after this instant (epoch ms).
    Timestamp(i64),
}

/// A log of topics of keyed records. Implementations are shared (`Arc<dyn EventLog>`) between
/// all the tasks of a process.
#[async_trait]
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Appends `records` to `topic` in order and returns their positions, once as durable as
    /// asked.
    async fn append(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        durability: Durability,
    ) -> Result<Vec<Position>>;

    /// Up to `max` records of `topic` from `from`, without waiting for new ones.
    async fn read(&self, topic: &str, from: StartFrom, max: usize) -> Result<Vec<Record>>;

    /// Reads `topic` from `from` to its end as it is when called, in batches, across all its
    /// partitions.
    async fn scan(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Scan>>;

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

    /// Fails with [`Error::MissingTopic`] for the first of `topics` that does not exist. Backends
    /// that create topics on first use have nothing to check.
    async fn check_topics(&self, _topics: &[String]) -> Result<()> {
        Ok(())
    }
}

/// A bounded reader of one topic: what was there when it started, then `None`.
#[async_trait]
pub trait Scan: Send + fmt::Debug {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>>;
}

/// A live reader of one topic.
#[async_trait]
pub trait Tail: Send + fmt::Debug {
    /// The next records, waiting until there is at least one. Cancel-safe: a dropped call
    /// consumes nothing.
    async fn next_batch(&mut self) -> Result<Vec<Record>>;
}

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    /// `partitions` as `topic/partition` separated by commas: one log field, not a struct dump.
    #[must_use]
    pub fn joined(partitions: &[Self]) -> String {
        partitions.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// What a group member learns when it polls.
#[derive(Debug)]
pub enum GroupEvent {
    /// Records of partitions it owns, in order within each partition.
    Records(Vec<Record>),
    /// Partitions it now owns, in addition to any it had. Their records follow, from the
    /// group's committed offsets.
    Assigned(Vec<TopicPartition>),
    /// Every record these assigned partitions held when they were assigned has been delivered
    /// (once per assignment): what the member reads from now on was written after it took them.
    /// A member that rebuilds state from a partition knows here that the state is complete.
    CaughtUp(Vec<TopicPartition>),
    /// Partitions taken from it. The rebalance waits until this is dropped: stop acting on
    /// them (stop emitting for their sessions, finish in-flight writes) before dropping it.
    Revoked(Revocation),
}

/// Where a group resumes a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPosition {
    /// Where the next record to process is: a record's position (the tick generator resumes at
    /// a session's creation) or just after one ([`Position::next`]).
    pub next: Position,
    /// At or before the timestamp of the record at `next` (or of any later record):
    /// lets a backend that cannot start inside a batch of records start earlier, by time, and
    /// skip what is before `next`.
    pub not_after_ms: i64,
}

/// Partitions being taken from a group member; dropping it lets them go.
#[derive(Debug)]
pub struct Revocation {
    pub partitions: Vec<TopicPartition>,
    /// Dropped with the revocation, which wakes the rebalance waiting on the other end.
    release: Option<std::sync::mpsc::Sender<()>>,
}

impl Revocation {
    /// Lets the partitions go (the same as dropping it; says so where it happens).
    pub fn release(mut self) {
        self.release.take();
    }
}

/// A member of a consumer group: reads its topics and commits how far it has processed.
#[async_trait]
pub trait GroupConsumer: Send + fmt::Debug {
    /// The next event: records of its partitions or a change of which partitions it owns,
    /// waiting until there is one. Cancel-safe.
    async fn next_event(&mut self) -> Result<GroupEvent>;

    /// Records that the group has processed `topic`/`partition` up to, not including,
    /// `position.next`: the member that gets the partition next resumes there. A backend
    /// may make it durable after it returns; a lost commit only means reading more again.
    async fn commit(&mut self, topic: &str, partition: u32, position: CommitPosition) -> Result<()>;

    /// Leaves the group and returns once the group knows, so the partitions move to the other
    /// members at once rather than after a timeout.
    async fn close(self: Box<Self>) {}
}

/// The first `max` records of `scan`: a read, on the backends whose reads are scans.
pub(crate) async fn first_of_scan(mut scan: Box<dyn Scan>, max: usize) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    while records.len() < max {
        let Some(batch) = scan.next_batch().await? else { break };
        records.extend(batch);
    }
    records.truncate(max);
    Ok(records)
}

/// Settings of a log beyond its URL, used by the backends they concern.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub kafka: kafka::KafkaOptions,
}

/// Opens an existing log named by `url` for reading only (replay, export): on every backend it
/// never writes (appends fail with [`Error::ReadOnly`]), so it can run beside the processes that
/// own the log.
pub fn open_read_only(url: &str) -> Result<Arc<dyn EventLog>> {
    match url.split_once("://") {
        Some(("embedded", dir)) if !dir.is_empty() => {
            Ok(Arc::new(embedded::EmbeddedLog::open_read_only(dir)?))
        }
        Some(("kafka", rest)) => {
            Ok(Arc::new(kafka::KafkaLog::open_read_only(url, rest, LogOptions::default().kafka)?))
        }
        #[cfg(feature = "kinesis")]
        Some(("kinesis", rest)) => {
            Ok(Arc::new(kinesis::KinesisLog::new(kinesis::KinesisAddress::parse(url, rest)?, true)))
        }
        _ => open(url),
    }
}

/// Opens the backend named by `url` with default settings.
pub fn open(url: &str) -> Result<Arc<dyn EventLog>> {
    open_with(url, &LogOptions::default())
}

/// Opens the backend named by `url`: `embedded://DIR`, `kafka://HOST:PORT[,HOST:PORT][?prefix=P]`
/// or `kinesis://PREFIX?region=R[&endpoint=URL]`.
pub fn open_with(url: &str, options: &LogOptions) -> Result<Arc<dyn EventLog>> {
    open_backend(url, options).map(metered)
}

/// `log` with the log's metrics (what [`open`] returns), for a backend opened by its own type.
pub fn metered(log: Arc<dyn EventLog>) -> Arc<dyn EventLog> {
    metrics::MeteredLog::wrap(log)
}

fn open_backend(url: &str, options: &LogOptions) -> Result<Arc<dyn EventLog>> {
    let bad = |reason: &str| Error::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("expected SCHEME://…, e.g. embedded://./data or kafka://127.0.0.1:9092"));
    };
    match scheme {
        "embedded" if rest.is_empty() => Err(bad("embedded:// needs a directory, e.g. embedded://./data")),
        "embedded" => Ok(Arc::new(embedded::EmbeddedLog::open(rest)?)),
        "kafka" => Ok(Arc::new(kafka::KafkaLog::open(url, rest, options.kafka.clone())?)),
        #[cfg(feature = "kinesis")]
        "kinesis" => {
            Ok(Arc::new(kinesis::KinesisLog::new(kinesis::KinesisAddress::parse(url, rest)?, false)))
        }
        #[cfg(not(feature = "kinesis"))]
        "kinesis" => Err(bad(
            "this build has no Kinesis backend (the `kinesis` feature); use embedded://DIR or kafka://HOST:PORT",
        )),
        other => Err(bad(&format!(
            "unknown scheme {other:?}; supported: embedded://DIR, kafka://HOST:PORT, kinesis://PREFIX?region=R"
        ))),
    }
}
