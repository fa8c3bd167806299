//! The Kafka backend (`kafka://host:port[,host:port][?prefix=P]`), on librdkafka through rdkafka.
//!
//! - Appends go through one idempotent producer (`acks=all`, keyed by the record's key so a
//!   session's records stay in one partition and in order, `linger.ms` 2 by default). Both
//!   durabilities wait for the broker's acknowledgement: with `acks=all` that is Kafka's
//!   durability, and a tick is only ever acknowledged once it is readable.
//! - Tails and scans assign every partition of their topic to a consumer without a group.
//! - Group members subscribe with the cooperative-sticky assignor and report assignment changes
//!   as [`GroupEvent`]s. A revocation blocks the rebalance until the member drops the
//!   [`Revocation`], so a member stops acting on partitions before another member gets them.
//! - Offsets are committed explicitly (never auto-committed, never auto-stored), asynchronously:
//!   a commit lost in a crash leaves an older offset, which only means reading more again.
//!
//! Each consumer runs on its own thread: librdkafka delivers rebalances on the thread that
//! polls, and a revocation must be able to wait for the async side without blocking a runtime
//! worker. `?prefix=P` puts every topic and group of this log under `P` (several deployments or
//! test runs on one cluster).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::{
    CommitPosition, Durability, Error, EventLog, GroupConsumer, GroupEvent, NewRecord, Record, Result,
    Revocation, Scan, StartFrom, Tail, TopicPartition,
};

/// How long a metadata or offset lookup may take before the call fails.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
static NEXT_MEMBER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Records handed to the async side at once.
const BATCH: usize = 4096;

/// Settings of a Kafka log beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct KafkaOptions {
    /// librdkafka settings applied to every client of the log, after tickcast's own defaults
    /// (e.g. `linger.ms=5`, `session.timeout.ms=6000`, `security.protocol=ssl`).
    pub client: Vec<(String, String)>,
    /// Static group membership: the `group.instance.id` of this process's group members.
    pub group_instance_id: Option<String>,
}

/// An event log on a Kafka cluster.
pub struct KafkaLog {
    brokers: String,
    prefix: String,
    options: KafkaOptions,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog").field("brokers", &self.brokers).field("prefix", &self.prefix).finish()
    }
}

fn kafka_error(context: &str, error: &KafkaError) -> Error {
    Error::Kafka(format!("{context}: {error}"))
}

impl KafkaLog {
    /// Connects to the cluster named by `rest` (the URL after `kafka://`).
    pub fn open(url: &str, rest: &str, options: KafkaOptions) -> Result<Self> {
        let bad = |reason: &str| Error::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
        let (brokers, query) = rest.split_once('?').unwrap_or((rest, ""));
        if brokers.is_empty() || brokers.split(',').any(|b| !b.contains(':')) {
            return Err(bad("expected kafka://HOST:PORT[,HOST:PORT…], e.g. kafka://127.0.0.1:9092"));
        }
        let mut prefix = String::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", value)) => value.clone_into(&mut prefix),
                _ => return Err(bad(&format!("unknown parameter {pair:?}; supported: prefix=P"))),
            }
        }
        let producer = client_config(
            brokers,
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
        .map_err(|e| kafka_error("creating the Kafka producer", &e))?;
        Ok(Self { brokers: brokers.to_owned(), prefix, options, producer })
    }

    /// A consumer's (or admin client's) configuration.
    fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        client_config(&self.brokers, &self.options, ClientKind::Consumer, defaults)
    }

    fn full_name(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// Creates `topics` with `partitions` partitions each; topics that exist are left alone.
    /// Returns the names it created.
    pub async fn create_topics(
        &self,
        topics: &[String],
        partitions: u32,
        replication: u32,
    ) -> Result<Vec<String>> {
        let admin: AdminClient<DefaultClientContext> =
            self.config(&[]).create().map_err(|e| kafka_error("creating the Kafka admin client", &e))?;
        let names: Vec<String> = topics.iter().map(|t| self.full_name(t)).collect();
        let new: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| NewTopic::new(name, partitions as i32, TopicReplication::Fixed(replication as i32)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(LOOKUP_TIMEOUT));
        let results =
            admin.create_topics(&new, &options).await.map_err(|e| kafka_error("creating topics", &e))?;
        let mut created = Vec::new();
        for result in results {
            match result {
                Ok(name) => created.push(name),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(Error::Kafka(format!("creating topic {name}: {code}"))),
            }
        }
        Ok(created)
    }

    /// A consumer without a group, positioned at `from` on every partition of `topic`, with
    /// the partitions' high watermarks when it started (where a scan ends).
    async fn assigned_consumer(&self, topic: &str, from: StartFrom) -> Result<AssignedConsumer> {
        // librdkafka wants a group id even for assigned partitions; this one never joins a group
        // nor commits.
        let group = format!("{}tickcast-reader", self.prefix);
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
            .map_err(|e| kafka_error("creating a Kafka consumer", &e))?;
        let name = self.full_name(topic);
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || -> Result<AssignedConsumer> {
            let partitions = partitions_of(&consumer, &name, &topic)?;
            let mut tpl = TopicPartitionList::new();
            let mut ends = HashMap::new();
            for partition in &partitions {
                let (low, high) = consumer
                    .fetch_watermarks(&name, *partition, LOOKUP_TIMEOUT)
                    .map_err(|e| kafka_error(&format!("reading the end of {name}"), &e))?;
                let offset = match from {
                    StartFrom::Beginning => Offset::Offset(low),
                    StartFrom::End => Offset::Offset(high),
                    StartFrom::Offset(n) => Offset::Offset(n as i64),
                    StartFrom::Timestamp(ts) => Offset::Offset(ts),
                };
                tpl.add_partition_offset(&name, *partition, offset).map_err(|e| kafka_error("assign", &e))?;
                ends.insert(*partition, high);
            }
            if matches!(from, StartFrom::Timestamp(_)) {
                // A partition with nothing at or after the instant resolves to its end.
                tpl = consumer
                    .offsets_for_times(tpl, LOOKUP_TIMEOUT)
                    .map_err(|e| kafka_error(&format!("finding offsets by time in {name}"), &e))?;
            }
            for element in tpl.elements() {
                if let Offset::Offset(start) = element.offset()
                    && ends.get(&element.partition()).is_some_and(|end| start >= *end)
                {
                    ends.remove(&element.partition()); // nothing to scan there
                }
            }
            consumer.assign(&tpl).map_err(|e| kafka_error(&format!("assigning {name}"), &e))?;
            Ok(AssignedConsumer { consumer, ends })
        })
        .await
        .map_err(|e| Error::Kafka(format!("lookup task failed: {e}")))?
    }
}

/// Which clients a librdkafka setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    Producer,
    Consumer,
}

/// Settings only one kind of client understands go to that kind alone (librdkafka warns about
/// the others); everything else goes to every client.
fn applies_to(key: &str, kind: ClientKind) -> bool {
    const CONSUMER_ONLY: &[&str] = &[
        "session.",
        "heartbeat.",
        "group.",
        "partition.assignment",
        "fetch.",
        "auto.",
        "enable.auto",
        "max.poll",
        "isolation.",
    ];
    const PRODUCER_ONLY: &[&str] = &[
        "linger.",
        "batch.",
        "acks",
        "enable.idempotence",
        "compression.",
        "queue.buffering",
        "message.timeout",
        "retries",
        "partitioner",
        "delivery.timeout",
    ];
    match kind {
        ClientKind::Producer => !CONSUMER_ONLY.iter().any(|p| key.starts_with(p)),
        ClientKind::Consumer => !PRODUCER_ONLY.iter().any(|p| key.starts_with(p)),
    }
}

/// tickcast's defaults for a client, then the operator's settings over them.
fn client_config(
    brokers: &str,
    options: &KafkaOptions,
    kind: ClientKind,
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", "tickcast");
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in options.client.iter().filter(|(key, _)| applies_to(key, kind)) {
        config.set(key, value);
    }
    config
}

/// The partitions of `name`, or [`Error::MissingTopic`].
fn partitions_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    name: &str,
    topic: &str,
) -> Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(name), LOOKUP_TIMEOUT)
        .map_err(|e| kafka_error(&format!("reading metadata of {name}"), &e))?;
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
    ) -> Result<Vec<u64>> {
        let name = self.full_name(topic);
        let mut deliveries = Vec::with_capacity(records.len());
        // Enqueued one by one in order (a full queue is waited out, never skipped), so records
        // of one key keep their order; then all acknowledgements are awaited together.
        for record in &records {
            let mut message = FutureRecord::to(&name)
                .key(record.key.as_bytes())
                .payload(record.payload.as_ref())
                .timestamp(record.timestamp_ms);
            loop {
                match self.producer.send_result(message) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        message = returned;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((error, _)) => return Err(kafka_error(&format!("producing to {name}"), &error)),
                }
            }
        }
        let mut offsets = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(delivered)) => offsets.push(delivered.offset as u64),
                Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition), _))) => {
                    return Err(Error::MissingTopic(topic.to_owned()));
                }
                Ok(Err((error, _))) => return Err(kafka_error(&format!("producing to {name}"), &error)),
                Err(_) => return Err(Error::Closed),
            }
        }
        Ok(offsets)
    }

    async fn read(&self, topic: &str, from: StartFrom, max: usize) -> Result<Vec<Record>> {
        let mut scan = self.scan(topic, from).await?;
        let mut records = Vec::new();
        while records.len() < max {
            let Some(batch) = scan.next_batch().await? else { break };
            records.extend(batch);
        }
        records.truncate(max);
        Ok(records)
    }

    async fn scan(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Scan>> {
        let assigned = self.assigned_consumer(topic, from).await?;
        let (tx, rx) = mpsc::channel(4);
        let reader =
            Reader { prefix: self.prefix.clone(), not_before: not_before(from), ends: Some(assigned.ends) };
        reader.spawn(assigned.consumer, tx);
        Ok(Box::new(KafkaReader { rx, topic: topic.to_owned() }))
    }

    async fn tail(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Tail>> {
        let assigned = self.assigned_consumer(topic, from).await?;
        let (tx, rx) = mpsc::channel(16);
        let reader = Reader { prefix: self.prefix.clone(), not_before: not_before(from), ends: None };
        reader.spawn(assigned.consumer, tx);
        Ok(Box::new(KafkaReader { rx, topic: topic.to_owned() }))
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
        let (tx, rx) = mpsc::channel(16);
        let mut config = self.config(&[
            ("group.id", &self.full_name(group)),
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
        let context = GroupContext {
            events: tx.clone(),
            prefix: self.prefix.clone(),
            next_offsets: Mutex::default(),
            member: NEXT_MEMBER.fetch_add(1, Ordering::Relaxed),
        };
        let consumer: BaseConsumer<GroupContext> =
            config.create_with_context(context).map_err(|e| kafka_error("creating a Kafka consumer", &e))?;
        let names: Vec<String> = topics.iter().map(|t| self.full_name(t)).collect();
        let consumer = Arc::new(consumer);
        let lookup = Arc::clone(&consumer);
        let wanted: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for (name, topic) in names.iter().zip(&wanted) {
                partitions_of(&*lookup, name, topic)?;
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            lookup.subscribe(&refs).map_err(|e| kafka_error("subscribing", &e))
        })
        .await
        .map_err(|e| Error::Kafka(format!("subscribe task failed: {e}")))??;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_consumer = Arc::clone(&consumer);
        let thread_stop = Arc::clone(&stop);
        let prefix = self.prefix.clone();
        let (closed_tx, closed) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("kafka-group".into())
            .spawn(move || {
                poll_group(thread_consumer, tx, prefix, thread_stop);
                let _ = closed_tx.send(());
            })
            .map_err(|e| Error::Kafka(format!("starting the consumer thread: {e}")))?;
        Ok(Box::new(KafkaGroupConsumer {
            consumer: Some(consumer),
            rx,
            stop,
            prefix: self.prefix.clone(),
            closed: Some(closed),
        }))
    }

    async fn sync(&self) -> Result<()> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Timeout::After(Duration::from_secs(30))))
            .await
            .map_err(|e| Error::Kafka(format!("flush task failed: {e}")))?
            .map_err(|e| kafka_error("flushing the producer", &e))
    }

    async fn check_topics(&self, topics: &[String]) -> Result<()> {
        let consumer: BaseConsumer<ReaderContext> = self
            .config(&[])
            .create_with_context(ReaderContext)
            .map_err(|e| kafka_error("metadata client", &e))?;
        let names: Vec<(String, String)> = topics.iter().map(|t| (self.full_name(t), t.clone())).collect();
        tokio::task::spawn_blocking(move || {
            for (name, topic) in &names {
                partitions_of(&consumer, name, topic)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Kafka(format!("metadata task failed: {e}")))?
    }
}

/// Context of consumers without a group: librdkafka's log goes to tracing.
struct ReaderContext;

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&error, reason);
    }
}

/// librdkafka's client-wide errors. Most are transient (it reconnects by itself); the end of a
/// partition is news for a scan, not an error.
fn client_error(error: &KafkaError, reason: &str) {
    if !matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

/// librdkafka's own log lines, as tracing events of this module.
fn log_to_tracing(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}
impl ConsumerContext for ReaderContext {}

fn to_record<M: Message>(message: &M, prefix: &str, names: &mut HashMap<String, Arc<str>>) -> Record {
    let full = message.topic();
    let topic = names
        .entry(full.to_owned())
        .or_insert_with(|| Arc::from(full.strip_prefix(prefix).unwrap_or(full)))
        .clone();
    Record {
        topic,
        partition: message.partition() as u32,
        offset: message.offset() as u64,
        key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
        timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
        payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
    }
}

/// A consumer without a group and where its partitions' scans end.
struct AssignedConsumer {
    consumer: BaseConsumer<ReaderContext>,
    /// Partition → high watermark when the reader started; only partitions with records to read.
    ends: HashMap<i32, i64>,
}

/// Records older than this are skipped: a broker may resolve an instant to an earlier offset
/// than asked (tansu resolves by the batch's write time, and to 0 when nothing is newer).
const fn not_before(from: StartFrom) -> i64 {
    match from {
        StartFrom::Timestamp(ts) => ts,
        _ => i64::MIN,
    }
}

/// What a reader thread does with what it polls.
struct Reader {
    prefix: String,
    not_before: i64,
    /// For a scan: the partitions still to finish and their ends. A partition is finished at
    /// end of partition or once a record at or past its end was seen (a broker whose "latest"
    /// is too low still hands out whole batches, so the scan passes the true end).
    ends: Option<HashMap<i32, i64>>,
}

impl Reader {
    /// Polls on its own thread until the receiver is gone or a scan is finished.
    fn spawn(mut self, consumer: BaseConsumer<ReaderContext>, tx: mpsc::Sender<Result<Vec<Record>>>) {
        let spawned = std::thread::Builder::new().name("kafka-reader".into()).spawn(move || {
            let mut names = HashMap::new();
            let mut next_offsets = NextOffsets::default();
            while !tx.is_closed() && !self.finished() {
                let mut batch = Vec::new();
                let mut wait_next = Duration::from_millis(100);
                while batch.len() < BATCH {
                    // A finished scan still takes what is already fetched: the rest of the
                    // batch whose first record reached a too-low end.
                    let wait = if self.finished() { Duration::ZERO } else { wait_next };
                    match consumer.poll(wait) {
                        None => break,
                        Some(Ok(message)) => {
                            if !next_offsets.admit(message.topic(), message.partition(), message.offset()) {
                                continue;
                            }
                            if let Some(ends) = &mut self.ends
                                && ends
                                    .get(&message.partition())
                                    .is_some_and(|end| message.offset() + 1 >= *end)
                            {
                                ends.remove(&message.partition());
                            }
                            let record = to_record(&message, &self.prefix, &mut names);
                            if record.timestamp_ms >= self.not_before {
                                batch.push(record);
                            }
                            wait_next = Duration::ZERO;
                        }
                        Some(Err(KafkaError::PartitionEOF(partition))) => {
                            if let Some(ends) = &mut self.ends {
                                ends.remove(&partition);
                            }
                        }
                        Some(Err(error)) => {
                            let _ = tx.blocking_send(Err(kafka_error("reading", &error)));
                            return;
                        }
                    }
                }
                if !batch.is_empty() && tx.blocking_send(Ok(batch)).is_err() {
                    return;
                }
            }
            // A finished scan drops `tx`, which tells the reader it is at the end.
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start a Kafka reader thread");
        }
    }

    fn finished(&self) -> bool {
        self.ends.as_ref().is_some_and(HashMap::is_empty)
    }
}

/// A tail or scan: batches from a reader thread.
#[derive(Debug)]
struct KafkaReader {
    rx: mpsc::Receiver<Result<Vec<Record>>>,
    topic: String,
}

#[async_trait]
impl Tail for KafkaReader {
    async fn next_batch(&mut self) -> Result<Vec<Record>> {
        match self.rx.recv().await {
            Some(batch) => batch,
            None => Err(Error::Kafka(format!("the reader of {} stopped", self.topic))),
        }
    }
}

#[async_trait]
impl Scan for KafkaReader {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        self.rx.recv().await.transpose()
    }
}

/// Per (topic, partition), the next offset a consumer hands out. Offsets only move forward: a
/// broker asked for an offset inside a batch may hand the next batch out once per offset it
/// skipped (tansu), and a member that starts before its committed offset skips up to it.
#[derive(Debug, Default)]
struct NextOffsets(HashMap<String, HashMap<i32, i64>>);

impl NextOffsets {
    fn set(&mut self, topic: &str, partition: i32, next: i64) {
        self.0.entry(topic.to_owned()).or_default().insert(partition, next);
    }

    fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.get(topic)?.get(&partition).copied()
    }

    fn remove(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.0.get_mut(topic) {
            partitions.remove(&partition);
        }
    }

    /// Whether the record at `offset` is new; if so, what follows it is next.
    fn admit(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        // Looked up by `&str` first: no allocation per record once a topic is known.
        let next = match self.0.get_mut(topic) {
            Some(partitions) => partitions.entry(partition).or_insert(0),
            None => self.0.entry(topic.to_owned()).or_default().entry(partition).or_insert(0),
        };
        if offset < *next {
            return false;
        }
        *next = offset + 1;
        true
    }
}

/// Context of group members: turns rebalances into [`GroupEvent`]s, and starts assigned
/// partitions where the group committed, even inside a batch (see [`CommitPosition`]).
struct GroupContext {
    events: mpsc::Sender<Result<GroupEvent>>,
    prefix: String,
    /// (full topic name, partition) → the next offset to hand out: records before it are
    /// skipped (the partition may start before its committed offset, at a batch found by time).
    next_offsets: Mutex<NextOffsets>,
    /// Tells this process's members apart in logs.
    member: u32,
}

impl GroupContext {
    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<TopicPartition> {
        tpl.elements()
            .iter()
            .map(|e| TopicPartition {
                topic: e.topic().strip_prefix(self.prefix.as_str()).unwrap_or(e.topic()).to_owned(),
                partition: e.partition() as u32,
            })
            .collect()
    }

    /// Where each newly assigned partition starts: at or before its committed offset, at a
    /// batch boundary, so a broker that serves whole batches only (tansu) misses nothing; what
    /// lies before the committed offset is skipped by [`poll_group`]. The commit's metadata
    /// holds a time that finds such a batch; without it (tansu does not return commit
    /// metadata) the partition is read from its beginning.
    fn start_positions(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) -> TopicPartitionList {
        let mut starts = tpl.clone();
        let committed = match consumer.committed_offsets(tpl.clone(), LOOKUP_TIMEOUT) {
            Ok(committed) => committed,
            Err(error) => {
                // The group's own fetch of committed offsets still applies.
                tracing::warn!(%error, "could not read committed offsets; starting where the group says");
                return starts;
            }
        };
        let mut by_time = TopicPartitionList::new();
        let mut skip = self.next_offsets.lock().unwrap();
        for element in committed.elements() {
            let Offset::Offset(offset) = element.offset() else { continue };
            let key = (element.topic().to_owned(), element.partition());
            skip.set(&key.0, key.1, offset);
            match parse_commit_metadata(element.metadata()) {
                Some(ts) => {
                    let _ = by_time.add_partition_offset(&key.0, key.1, Offset::Offset(ts));
                }
                None => {
                    let _ = starts.set_partition_offset(&key.0, key.1, Offset::Beginning);
                }
            }
        }
        if by_time.count() > 0 {
            let found = consumer.offsets_for_times(by_time.clone(), LOOKUP_TIMEOUT).unwrap_or(by_time);
            for element in found.elements() {
                let key = (element.topic().to_owned(), element.partition());
                let committed = skip.get(&key.0, key.1).unwrap_or(0);
                let start = match element.offset() {
                    Offset::Offset(start) if start <= committed => Offset::Offset(start),
                    _ => Offset::Beginning,
                };
                let _ = starts.set_partition_offset(&key.0, key.1, start);
            }
        }
        starts
    }
}

/// Commit metadata: the time [`CommitPosition::not_after_ms`], so the next owner can find the
/// position by time.
fn commit_metadata(not_after_ms: i64) -> String {
    format!("tickcast:ts={not_after_ms}")
}

fn parse_commit_metadata(metadata: &str) -> Option<i64> {
    metadata.strip_prefix("tickcast:ts=")?.parse().ok()
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let starts = self.start_positions(consumer, tpl);
                let assigned =
                    if cooperative { consumer.incremental_assign(&starts) } else { consumer.assign(&starts) };
                if let Err(error) = assigned {
                    tracing::error!(%error, "could not take the assigned partitions");
                    let _ = self.events.blocking_send(Err(kafka_error("assigning partitions", &error)));
                    return;
                }
                let partitions = self.partitions(tpl);
                tracing::info!(member = self.member, ?partitions, "partitions assigned");
                let _ = self.events.blocking_send(Ok(GroupEvent::Assigned(partitions)));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = self.partitions(tpl);
                if !partitions.is_empty() {
                    tracing::info!(
                        member = self.member,
                        ?partitions,
                        "partitions revoked; draining before letting them go"
                    );
                    let (release, released) = std_mpsc::channel();
                    let revocation = Revocation { partitions, release: Some(release) };
                    // The member drops the revocation once it has stopped acting on the
                    // partitions; a member that is gone cannot act on them either.
                    if self.events.blocking_send(Ok(GroupEvent::Revoked(revocation))).is_ok() {
                        let _ = released.recv();
                    }
                }
                let mut skip = self.next_offsets.lock().unwrap();
                for element in tpl.elements() {
                    skip.remove(element.topic(), element.partition());
                }
                drop(skip);
                let released =
                    if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(error) = released {
                    tracing::error!(%error, "could not let the revoked partitions go");
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance failed");
                let _ = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
            }
        }
    }
}

fn poll_group(
    consumer: Arc<BaseConsumer<GroupContext>>,
    tx: mpsc::Sender<Result<GroupEvent>>,
    prefix: String,
    stop: Arc<AtomicBool>,
) {
    let mut names = HashMap::new();
    while !stop.load(Ordering::Acquire) && !tx.is_closed() {
        let mut batch = Vec::new();
        let mut wait = Duration::from_millis(100);
        while batch.len() < BATCH {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    wait = Duration::ZERO;
                    let admitted = consumer.context().next_offsets.lock().unwrap().admit(
                        message.topic(),
                        message.partition(),
                        message.offset(),
                    );
                    if admitted {
                        batch.push(to_record(&message, &prefix, &mut names));
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "Kafka consumer error");
                    if matches!(
                        error,
                        KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)
                    ) {
                        let _ = tx.blocking_send(Err(kafka_error("consuming", &error)));
                        return;
                    }
                    break;
                }
            }
        }
        if !batch.is_empty() && tx.blocking_send(Ok(GroupEvent::Records(batch))).is_err() {
            break;
        }
    }
    // Leaving the group: the consumer's last reference closes it here, on the thread that
    // serves its rebalance callbacks (the final revocation included).
    let started = Instant::now();
    drop(consumer);
    tracing::debug!(took = ?started.elapsed(), "left the consumer group");
}

/// A member of a Kafka consumer group.
struct KafkaGroupConsumer {
    consumer: Option<Arc<BaseConsumer<GroupContext>>>,
    rx: mpsc::Receiver<Result<GroupEvent>>,
    stop: Arc<AtomicBool>,
    prefix: String,
    /// Fires when the thread has left the group.
    closed: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl std::fmt::Debug for KafkaGroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaGroupConsumer").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Drop for KafkaGroupConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // The thread holds the other reference and closes the consumer when it sees `stop`.
        drop(self.consumer.take());
        self.rx.close();
        while let Ok(event) = self.rx.try_recv() {
            drop(event); // releases a pending revocation
        }
    }
}

#[async_trait]
impl GroupConsumer for KafkaGroupConsumer {
    async fn next_event(&mut self) -> Result<GroupEvent> {
        match self.rx.recv().await {
            Some(event) => event,
            None => Err(Error::Closed),
        }
    }

    async fn commit(&mut self, topic: &str, partition: u32, position: CommitPosition) -> Result<()> {
        let Some(consumer) = &self.consumer else { return Err(Error::Closed) };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &format!("{}{topic}", self.prefix),
            partition as i32,
            Offset::Offset(position.next_offset as i64),
        )
        .map_err(|e| kafka_error("commit", &e))?;
        for mut element in tpl.elements() {
            element.set_metadata(commit_metadata(position.not_after_ms));
        }
        match consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => Ok(()),
            // Not ours any more (a rebalance raced the commit): the new owner commits.
            Err(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::UnknownMemberId | RDKafkaErrorCode::RebalanceInProgress,
            )) => Ok(()),
            Err(error) => Err(kafka_error("committing offsets", &error)),
        }
    }

    async fn close(mut self: Box<Self>) {
        let closed = self.closed.take();
        drop(self);
        if let Some(closed) = closed {
            let _ = closed.await;
        }
    }
}
