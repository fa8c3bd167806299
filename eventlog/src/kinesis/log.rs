//! [`KinesisLog`]: the event log over Kinesis streams. Appends go through
//! [`KinesisStreams::put`]; reads, scans and tails read every shard with [`ShardReader`]s; groups
//! are members over shard leases ([`super::group`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{OnceCell, mpsc};

use super::group::KinesisGroupConsumer;
use super::leases::LeaseTable;
use super::shards::{ShardInfo, ShardReader, ShardStart, list_shards};
use super::streams::KinesisStreams;
use super::{KinesisAddress, envelope};
use crate::{
    Durability, Error, EventLog, GroupConsumer, NewRecord, Position, Record, Result, Scan, StartFrom, Tail,
};

/// How often a tail lists its stream's shards again, to find the children of a reshard.
const RELIST_EVERY: Duration = Duration::from_secs(10);
/// Batches a tail reads ahead of its reader.
const TAIL_BUFFER: usize = 16;
/// The longest a reader backs off after a throttled or failed read.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The clients, made on first use: making them reads the AWS configuration (environment,
/// profile), which is asynchronous, and `open` is not.
#[derive(Debug, Clone)]
pub(super) struct Clients {
    pub kinesis: aws_sdk_kinesis::Client,
    pub streams: KinesisStreams,
    pub leases: LeaseTable,
}

/// The Kinesis event log (`kinesis://PREFIX?region=R[&endpoint=URL]`).
#[derive(Debug)]
pub struct KinesisLog {
    address: KinesisAddress,
    read_only: bool,
    /// Set once, by the first call that needs the service.
    clients: OnceCell<Clients>,
}

impl KinesisLog {
    /// A log at `address`; nothing is asked of the service until it is used.
    #[must_use]
    pub fn new(address: KinesisAddress, read_only: bool) -> Self {
        Self { address, read_only, clients: OnceCell::new() }
    }

    pub(super) async fn clients(&self) -> &Clients {
        self.clients
            .get_or_init(|| async {
                let (kinesis, dynamodb) = super::connect(&self.address).await;
                Clients {
                    streams: KinesisStreams::new(kinesis.clone(), self.address.prefix.clone()),
                    leases: LeaseTable::new(dynamodb, self.address.lease_table()),
                    kinesis,
                }
            })
            .await
    }

    /// A reader of every shard of `topic` from `from`, parents before children.
    async fn readers(&self, topic: &str, from: StartFrom) -> Result<Vec<ShardReader>> {
        let clients = self.clients().await;
        let stream = clients.streams.stream_name(topic);
        let start = ShardStart::of(from)?;
        let topic: Arc<str> = topic.into();
        let shards = list_shards(&clients.kinesis, &stream, &topic).await?;
        let mut readers: Vec<ShardReader> = shards
            .into_iter()
            .map(|shard| {
                ShardReader::new(
                    clients.kinesis.clone(),
                    stream.clone(),
                    Arc::clone(&topic),
                    shard,
                    start.clone(),
                )
            })
            .collect();
        for reader in &mut readers {
            reader.start().await?;
        }
        Ok(readers)
    }
}

#[async_trait]
impl EventLog for KinesisLog {
    async fn append(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        _durability: Durability,
    ) -> Result<Vec<Position>> {
        // Every acknowledged Kinesis record is durable: there is nothing weaker to ask for.
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let data: Vec<(String, Bytes)> =
            records.into_iter().map(|r| (r.key, Bytes::from(envelope(r.timestamp_ms, &r.payload)))).collect();
        let landed = self.clients().await.streams.put(topic, &data).await?;
        Ok(landed
            .into_iter()
            .map(|l| Position::Sequence { number: l.sequence.into(), after: false })
            .collect())
    }

    async fn read(&self, topic: &str, from: StartFrom, max: usize) -> Result<Vec<Record>> {
        crate::first_of_scan(self.scan(topic, from).await?, max).await
    }

    async fn scan(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Scan>> {
        Ok(Box::new(KinesisScan { readers: self.readers(topic, from).await?.into() }))
    }

    async fn tail(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Tail>> {
        let readers = self.readers(topic, from).await?;
        let clients = self.clients().await.clone();
        let (tx, rx) = mpsc::channel(TAIL_BUFFER);
        tokio::spawn(tail_shards(clients, topic.to_owned(), readers, self.address.poll, tx));
        Ok(Box::new(KinesisTail { batches: rx }))
    }

    async fn consume(
        &self,
        group: &str,
        topics: &[&str],
        initial: StartFrom,
    ) -> Result<Box<dyn GroupConsumer>> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        ShardStart::of(initial)?;
        let clients = self.clients().await.clone();
        let member = KinesisGroupConsumer::join(clients, group, topics, initial, &self.address).await?;
        Ok(Box::new(member))
    }

    async fn sync(&self) -> Result<()> {
        // Appends are durable once acknowledged: nothing waits to be flushed.
        if self.read_only { Err(Error::ReadOnly) } else { Ok(()) }
    }

    async fn check_topics(&self, topics: &[String]) -> Result<()> {
        let clients = self.clients().await;
        for topic in topics {
            list_shards(&clients.kinesis, &clients.streams.stream_name(topic), topic).await?;
        }
        Ok(())
    }
}

/// A scan: each shard to the end it has when reached, parents before children.
#[derive(Debug)]
struct KinesisScan {
    readers: std::collections::VecDeque<ShardReader>,
}

#[async_trait]
impl Scan for KinesisScan {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        loop {
            let Some(reader) = self.readers.front_mut() else { return Ok(None) };
            let pulled = reader.pull().await?;
            if pulled.caught_up {
                self.readers.pop_front();
            }
            if !pulled.records.is_empty() {
                return Ok(Some(pulled.records));
            }
        }
    }
}

/// A live reader: a task polls every shard and hands batches over.
#[derive(Debug)]
struct KinesisTail {
    /// From the polling task, which stops once this is dropped.
    batches: mpsc::Receiver<Result<Vec<Record>>>,
}

#[async_trait]
impl Tail for KinesisTail {
    async fn next_batch(&mut self) -> Result<Vec<Record>> {
        self.batches.recv().await.unwrap_or(Err(Error::Closed))
    }
}

/// Polls `readers` until the tail is dropped: each shard once a round, a pause when a round
/// found nothing; a child of a reshard once its parents are read to their end; the shard list
/// again every [`RELIST_EVERY`].
async fn tail_shards(
    clients: Clients,
    topic: String,
    mut readers: Vec<ShardReader>,
    poll: Duration,
    batches: mpsc::Sender<Result<Vec<Record>>>,
) {
    let stream = clients.streams.stream_name(&topic);
    let topic_name: Arc<str> = topic.as_str().into();
    let mut listed = tokio::time::Instant::now();
    let mut backoff = poll;
    while !batches.is_closed() {
        let mut found = false;
        let mut failed = None;
        // A parent still being read holds its keys' earlier records: its children wait.
        let unfinished: Vec<String> =
            readers.iter().filter(|r| !r.ended()).map(|r| r.shard.id.clone()).collect();
        for reader in &mut readers {
            if reader.ended() || reader.shard.parents.iter().any(|p| unfinished.contains(p)) {
                continue;
            }
            match reader.pull().await {
                Ok(pulled) if !pulled.records.is_empty() => {
                    found = true;
                    if batches.send(Ok(pulled.records)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => failed = Some(error),
            }
        }
        if listed.elapsed() >= RELIST_EVERY {
            listed = tokio::time::Instant::now();
            match list_shards(&clients.kinesis, &stream, &topic).await {
                Ok(shards) => adopt_new_shards(&clients, &stream, &topic_name, &mut readers, shards),
                Err(error) => failed = Some(error),
            }
        }
        match failed {
            Some(error) if error.retry_hint() == crate::RetryHint::DoNotRetry => {
                let _ = batches.send(Err(error)).await;
                return;
            }
            Some(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "reading a Kinesis stream failed; retrying");
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            None => backoff = poll,
        }
        if !found || backoff > poll {
            tokio::time::sleep(backoff).await;
        }
    }
}

/// Adds readers for shards made since the tail started (a reshard's children), from their start.
fn adopt_new_shards(
    clients: &Clients,
    stream: &str,
    topic: &Arc<str>,
    readers: &mut Vec<ShardReader>,
    shards: Vec<ShardInfo>,
) {
    for shard in shards {
        match readers.iter_mut().find(|r| r.shard.id == shard.id) {
            Some(reader) => reader.shard.closed = shard.closed,
            None => readers.push(ShardReader::new(
                clients.kinesis.clone(),
                stream.to_owned(),
                Arc::clone(topic),
                shard,
                ShardStart::TrimHorizon,
            )),
        }
    }
}
