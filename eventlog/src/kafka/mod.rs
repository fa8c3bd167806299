//! The Kafka backend (`kafka://host:port[,host:port][?prefix=P]`), on librdkafka through rdkafka.
//!
//! - Appends go through one idempotent producer (`acks=all`, keyed by the record's key so a
//!   session's records stay in one partition and in order, `linger.ms` 2 by default). Both
//!   durabilities wait for the broker's acknowledgement: with `acks=all` that is Kafka's
//!   durability, and a tick is only ever acknowledged once it is readable. A log opened
//!   read-only has no producer at all.
//! - Tails and scans assign every partition of their topic to a consumer without a group
//!   ([`reader`]).
//! - Group members subscribe with the cooperative-sticky assignor and report assignment changes
//!   as [`GroupEvent`](crate::GroupEvent)s ([`group`]). A revocation blocks the rebalance until
//!   the member drops the [`Revocation`](crate::Revocation), so a member stops acting on
//!   partitions before another member gets them.
//! - Offsets are committed explicitly (never auto-committed, never auto-stored), asynchronously:
//!   a commit lost in a crash leaves an older offset, which only means reading more again.
//!
//! Every consumer runs on a thread of its own. `?prefix=P` puts every topic and group of this
//! log under `P` (several deployments or test runs on one cluster).
//!
//! # Layout
//! - [`config`]: client settings, the URL, librdkafka's log.
//! - [`records`]: polled messages as records, each offset once.
//! - [`reader`]: tails and scans.
//! - [`group`]: consumer-group members.

pub(crate) mod config;
mod group;
mod reader;
mod records;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::sync::mpsc;

pub use self::config::KafkaOptions;
use self::config::{ClientKind, KafkaAddress, ReaderContext, client_config};
use self::group::{EVENTS_AHEAD, GroupContext, KafkaGroupConsumer, poll_group};
use self::reader::{AssignedConsumer, SCAN_AHEAD, TAIL_AHEAD};
use crate::{
    Durability, Error, EventLog, GroupConsumer, NewRecord, Position, Record, Result, Scan, StartFrom, Tail,
};

/// How long a metadata or offset lookup may take before the call fails.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// An event log on a Kafka cluster.
pub struct KafkaLog {
    address: KafkaAddress,
    options: KafkaOptions,
    /// `None` when opened read-only: such a log cannot write, not even by mistake.
    producer: Option<FutureProducer>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("brokers", &self.address.brokers)
            .field("prefix", &self.address.prefix)
            .field("read_only", &self.producer.is_none())
            .finish()
    }
}

impl KafkaLog {
    /// Connects to the cluster named by `rest` (the URL after `kafka://`), for reading and
    /// writing.
    pub fn open(url: &str, rest: &str, options: KafkaOptions) -> Result<Self> {
        let address = KafkaAddress::parse(url, rest)?;
        let producer = client_config(
            &address,
            &options,
            ClientKind::Producer,
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "2"),
                // The Java client's partitioner, so other clients put a session where we do.
                ("partitioner", "murmur2_random"),
                ("queue.buffering.max.messages", "1000000"),
            ],
        )
        .create()
        .map_err(|e| Error::kafka("creating the Kafka producer", e))?;
        Ok(Self { address, options, producer: Some(producer) })
    }

    /// Connects for reading only (replay, export, administration): no producer is created,
    /// and appends fail with [`Error::ReadOnly`].
    pub fn open_read_only(url: &str, rest: &str, options: KafkaOptions) -> Result<Self> {
        Ok(Self { address: KafkaAddress::parse(url, rest)?, options, producer: None })
    }

    /// A consumer's (or admin client's) configuration.
    fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        client_config(&self.address, &self.options, ClientKind::Consumer, defaults)
    }

    fn producer(&self) -> Result<&FutureProducer> {
        self.producer.as_ref().ok_or(Error::ReadOnly)
    }

    /// Creates `topics` with `partitions` partitions each, keeping records `retention_ms` (-1:
    /// forever); topics that exist are left alone.
    /// Returns the names it created.
    pub async fn create_topics(
        &self,
        topics: &[String],
        partitions: u32,
        replication: u32,
        retention_ms: i64,
    ) -> Result<Vec<String>> {
        let probe = self
            .config(&[])
            .create_with_context(ReaderContext)
            .map_err(|e| Error::kafka("creating a metadata client", e))?;
        reach_brokers(probe).await?;
        let admin: AdminClient<ReaderContext> = self
            .config(&[])
            .create_with_context(ReaderContext)
            .map_err(|e| Error::kafka("creating the Kafka admin client", e))?;
        let names: Vec<String> = topics.iter().map(|t| self.address.full_name(t)).collect();
        let retention = retention_ms.to_string();
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| {
                NewTopic::new(name, partitions as i32, TopicReplication::Fixed(replication as i32))
                    .set("retention.ms", &retention)
            })
            .collect();
        let options =
            AdminOptions::new().operation_timeout(Some(LOOKUP_TIMEOUT)).request_timeout(Some(LOOKUP_TIMEOUT));
        let results =
            admin.create_topics(&new, &options).await.map_err(|e| Error::kafka("creating topics", e))?;
        let mut created = Vec::new();
        for result in results {
            match result {
                Ok(name) => created.push(name),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Error::kafka(format!("creating topic {name}"), KafkaError::AdminOp(code)));
                }
            }
        }
        Ok(created)
    }

    /// A consumer without a group, positioned at `from` on every partition of `topic`.
    async fn assigned_consumer(&self, topic: &str, from: StartFrom) -> Result<AssignedConsumer> {
        // librdkafka wants a group id even for assigned partitions; this one never joins a group
        // nor commits.
        let group = self.address.full_name("tickcast-reader");
        let consumer: BaseConsumer<ReaderContext> = self
            .config(&[
                ("group.id", &group),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "true"),
                // Tails carry ticks to players: a broker that answers an empty fetch only after
                // the full wait (tansu) adds up to this much to every tick.
                ("fetch.wait.max.ms", "10"),
            ])
            .create_with_context(ReaderContext)
            .map_err(|e| Error::kafka("creating a Kafka consumer", e))?;
        AssignedConsumer::start(consumer, self.address.full_name(topic), topic.to_owned(), from).await
    }
}

/// Hands the client's queued errors and log lines to its context: librdkafka queues why it
/// could not reach a broker (a refused certificate, a failed login) until the client is
/// polled, and a call that failed should say it.
fn serve_client_events<C: ConsumerContext>(consumer: &BaseConsumer<C>) {
    // A poll that served a log line answers `None` as an empty queue does, so the queue is
    // served for a short while rather than until the first `None`; a client that keeps
    // failing keeps queueing, so it is bounded in time.
    let until = std::time::Instant::now() + Duration::from_millis(200);
    while std::time::Instant::now() < until {
        let _ = consumer.poll(Duration::from_millis(20));
    }
}

/// Fails with why the brokers cannot be reached, if they cannot: an admin client's own
/// failure would say only that it timed out.
async fn reach_brokers(consumer: BaseConsumer<ReaderContext>) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        consumer.fetch_metadata(None, LOOKUP_TIMEOUT).map(drop).map_err(|e| {
            serve_client_events(&consumer);
            Error::kafka("reaching the brokers", e)
        })
    })
    .await
    .map_err(|e| Error::KafkaClient(format!("metadata task failed: {e}")))?
}

/// The partitions of `name`, or [`Error::MissingTopic`].
fn partitions_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    name: &str,
    topic: &str,
) -> Result<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(name), LOOKUP_TIMEOUT).map_err(|e| {
        serve_client_events(consumer);
        Error::kafka(format!("reading metadata of {name}"), e)
    })?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == name) else {
        return Err(Error::MissingTopic(topic.to_owned()));
    };
    if found.error().is_some() || found.partitions().is_empty() {
        return Err(Error::MissingTopic(topic.to_owned()));
    }
    Ok(found.partitions().iter().map(|p| p.id()).collect())
}

#[async_trait]
impl EventLog for KafkaLog {
    async fn append(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        _durability: Durability,
    ) -> Result<Vec<Position>> {
        let producer = self.producer()?;
        let name = self.address.full_name(topic);
        let mut deliveries = Vec::with_capacity(records.len());
        // Enqueued one by one in order (a full queue is waited out, never skipped), so records
        // of one key keep their order; then all acknowledgements are awaited together.
        for record in &records {
            let mut message = FutureRecord::to(&name)
                .key(record.key.as_bytes())
                .payload(record.payload.as_ref())
                .timestamp(record.timestamp_ms);
            loop {
                match producer.send_result(message) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        message = returned;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((error, _)) => return Err(Error::kafka(format!("producing to {name}"), error)),
                }
            }
        }
        let mut offsets = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(delivered)) => offsets.push(Position::Offset(delivered.offset as u64)),
                Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition), _))) => {
                    return Err(Error::MissingTopic(topic.to_owned()));
                }
                Ok(Err((error, _))) => return Err(Error::kafka(format!("producing to {name}"), error)),
                Err(_) => return Err(Error::Closed),
            }
        }
        Ok(offsets)
    }

    async fn read(&self, topic: &str, from: StartFrom, max: usize) -> Result<Vec<Record>> {
        crate::first_of_scan(self.scan(topic, from).await?, max).await
    }

    async fn scan(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Scan>> {
        let assigned = self.assigned_consumer(topic, from).await?;
        Ok(Box::new(assigned.into_reader(topic, &self.address.prefix, from, true, SCAN_AHEAD)))
    }

    async fn tail(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Tail>> {
        let assigned = self.assigned_consumer(topic, from).await?;
        Ok(Box::new(assigned.into_reader(topic, &self.address.prefix, from, false, TAIL_AHEAD)))
    }

    async fn consume(
        &self,
        group: &str,
        topics: &[&str],
        initial: StartFrom,
    ) -> Result<Box<dyn GroupConsumer>> {
        let reset = match initial {
            StartFrom::End => "latest",
            _ => "earliest",
        };
        let (tx, rx) = mpsc::channel(EVENTS_AHEAD);
        let mut config = self.config(&[
            ("group.id", &self.address.full_name(group)),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", reset),
            // Apache Kafka's smallest by default: a crashed member's partitions move after 6 s.
            ("session.timeout.ms", "6000"),
            ("fetch.wait.max.ms", "50"),
        ]);
        // librdkafka refuses a heartbeat interval that is not below the session timeout.
        if !self.options.client.iter().any(|(k, _)| k == "heartbeat.interval.ms") {
            let session: u64 = config.get("session.timeout.ms").and_then(|v| v.parse().ok()).unwrap_or(6_000);
            config.set("heartbeat.interval.ms", (session / 3).max(100).to_string());
        }
        if let Some(instance) = &self.options.group_instance_id {
            config.set("group.instance.id", instance);
        }
        let prefix = self.address.prefix.clone();
        let consumer: BaseConsumer<GroupContext> = config
            .create_with_context(GroupContext::new(tx.clone(), prefix.clone(), initial == StartFrom::End))
            .map_err(|e| Error::kafka("creating a Kafka consumer", e))?;
        let names: Vec<String> = topics.iter().map(|t| self.address.full_name(t)).collect();
        let consumer = Arc::new(consumer);
        let lookup = Arc::clone(&consumer);
        let wanted: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for (name, topic) in names.iter().zip(&wanted) {
                partitions_of(&*lookup, name, topic)?;
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            lookup.subscribe(&refs).map_err(|e| Error::kafka("subscribing", e))
        })
        .await
        .map_err(|e| Error::KafkaClient(format!("subscribe task failed: {e}")))??;
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_consumer, thread_stop, thread_prefix) =
            (Arc::clone(&consumer), Arc::clone(&stop), prefix.clone());
        let (closed_tx, closed) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("kafka-group".into())
            .spawn(move || {
                poll_group(thread_consumer, tx, thread_prefix, thread_stop);
                let _ = closed_tx.send(());
            })
            .map_err(|e| Error::KafkaClient(format!("starting the consumer thread: {e}")))?;
        Ok(Box::new(KafkaGroupConsumer { consumer: Some(consumer), rx, stop, prefix, closed: Some(closed) }))
    }

    async fn sync(&self) -> Result<()> {
        let producer = self.producer()?.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(Duration::from_secs(30))))
            .await
            .map_err(|e| Error::KafkaClient(format!("flush task failed: {e}")))?
            .map_err(|e| Error::kafka("flushing the producer", e))
    }

    async fn check_topics(&self, topics: &[String]) -> Result<()> {
        let consumer: BaseConsumer<ReaderContext> = self
            .config(&[])
            .create_with_context(ReaderContext)
            .map_err(|e| Error::kafka("creating a metadata client", e))?;
        let names: Vec<(String, String)> =
            topics.iter().map(|t| (self.address.full_name(t), t.clone())).collect();
        tokio::task::spawn_blocking(move || {
            for (name, topic) in &names {
                partitions_of(&consumer, name, topic)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::KafkaClient(format!("metadata task failed: {e}")))?
    }
}
