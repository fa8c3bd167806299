//! The log's metrics, the same on every backend: [`MeteredLog`] wraps whatever [`open`](crate::open)
//! opened, times its appends and watches its group members' events. Metric names are here, in
//! one place.
//!
//! Consumer lag is measured as time, not records: the age of the newest record of a partition
//! when it is handed to the member (its writer's timestamp to now). At the tip that is the
//! delivery delay (milliseconds); behind, how far behind. It means the same on the embedded log,
//! Kafka and Kinesis (whose own measure, `MillisBehindLatest`, is time too); Kafka's lag in
//! records is the broker's to tell (KEDA reads it there).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use crate::{
    CommitPosition, Durability, EventLog, GroupConsumer, GroupEvent, NewRecord, Position, Record, Result,
    Scan, StartFrom, Tail,
};

/// Time an append took until acknowledged (as durable as asked), ms, by topic.
pub const APPEND_MS: &str = "tickcast_log_append_ms";
/// Records appended, by topic.
pub const RECORDS_APPENDED: &str = "tickcast_log_records_appended_total";
/// Appends that failed, by topic.
pub const APPEND_ERRORS: &str = "tickcast_log_append_errors_total";
/// Age of the newest record of a partition when handed to its group member, ms, by group,
/// topic and partition (0 once the partition is taken from this member).
pub const CONSUMER_LAG_MS: &str = "tickcast_log_consumer_lag_ms";
/// Partitions (shards on Kinesis) this process's member of a group owns, by group and topic.
pub const PARTITIONS_OWNED: &str = "tickcast_log_partitions_owned";
/// Changes of ownership this process's members saw (partitions assigned or revoked), by group.
pub const REBALANCES: &str = "tickcast_log_rebalances_total";

/// Puts the append series of `topics` on /metrics at zero, before the first append: a role
/// calls it at start for the topics it writes, so a dashboard shows 0, not "no data".
pub fn expose_appends(topics: &[String]) {
    for topic in topics {
        let _registered = histogram!(APPEND_MS, "topic" => topic.clone());
        counter!(RECORDS_APPENDED, "topic" => topic.clone()).increment(0);
        counter!(APPEND_ERRORS, "topic" => topic.clone()).increment(0);
    }
}

/// An [`EventLog`] that reports its appends and its group members' progress.
#[derive(Debug)]
pub(crate) struct MeteredLog {
    inner: Arc<dyn EventLog>,
    /// Handles per topic, made once: an append (every tick batch) looks its series up without
    /// building a label. Locked for the lookup only.
    appends: Mutex<HashMap<Box<str>, AppendSeries>>,
}

#[derive(Debug, Clone)]
struct AppendSeries {
    latency: Histogram,
    records: Counter,
    errors: Counter,
}

impl MeteredLog {
    pub(crate) fn wrap(inner: Arc<dyn EventLog>) -> Arc<dyn EventLog> {
        Arc::new(Self { inner, appends: Mutex::new(HashMap::new()) })
    }

    fn append_series(&self, topic: &str) -> AppendSeries {
        let mut appends = self.appends.lock().unwrap();
        if let Some(series) = appends.get(topic) {
            return series.clone();
        }
        let series = AppendSeries {
            latency: histogram!(APPEND_MS, "topic" => topic.to_owned()),
            records: counter!(RECORDS_APPENDED, "topic" => topic.to_owned()),
            errors: counter!(APPEND_ERRORS, "topic" => topic.to_owned()),
        };
        appends.insert(topic.into(), series.clone());
        series
    }
}

#[async_trait]
impl EventLog for MeteredLog {
    async fn append(
        &self,
        topic: &str,
        records: Vec<NewRecord>,
        durability: Durability,
    ) -> Result<Vec<Position>> {
        let series = self.append_series(topic);
        let count = records.len() as u64;
        let started = Instant::now();
        let result = self.inner.append(topic, records, durability).await;
        series.latency.record(started.elapsed().as_secs_f64() * 1000.0);
        match &result {
            Ok(_) => series.records.increment(count),
            Err(_) => series.errors.increment(1),
        }
        result
    }

    async fn read(&self, topic: &str, from: StartFrom, max: usize) -> Result<Vec<Record>> {
        self.inner.read(topic, from, max).await
    }

    async fn scan(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Scan>> {
        self.inner.scan(topic, from).await
    }

    async fn tail(&self, topic: &str, from: StartFrom) -> Result<Box<dyn Tail>> {
        self.inner.tail(topic, from).await
    }

    async fn consume(
        &self,
        group: &str,
        topics: &[&str],
        initial: StartFrom,
    ) -> Result<Box<dyn GroupConsumer>> {
        let inner = self.inner.consume(group, topics, initial).await?;
        Ok(Box::new(MeteredMember {
            inner,
            group: group.to_owned(),
            lag: HashMap::new(),
            owned: HashMap::new(),
            rebalances: counter!(REBALANCES, "group" => group.to_owned()),
        }))
    }

    async fn sync(&self) -> Result<()> {
        self.inner.sync().await
    }

    async fn check_topics(&self, topics: &[String]) -> Result<()> {
        self.inner.check_topics(topics).await
    }
}

/// A group member that reports how far behind it reads, what it owns and when that changes.
#[derive(Debug)]
struct MeteredMember {
    inner: Box<dyn GroupConsumer>,
    group: String,
    /// The lag gauge of each partition it has owned, made once.
    lag: HashMap<(Arc<str>, u32), Gauge>,
    /// Partitions owned per topic, and that topic's gauge.
    owned: HashMap<String, (i64, Gauge)>,
    rebalances: Counter,
}

impl MeteredMember {
    fn lag_gauge(&mut self, topic: &Arc<str>, partition: u32) -> &Gauge {
        let group = &self.group;
        self.lag.entry((Arc::clone(topic), partition)).or_insert_with(|| {
            gauge!(CONSUMER_LAG_MS, "group" => group.clone(), "topic" => topic.to_string(),
                "partition" => partition.to_string())
        })
    }

    fn owned_changed(&mut self, partitions: &[crate::TopicPartition], by: i64) {
        self.rebalances.increment(1);
        for tp in partitions {
            let group = &self.group;
            let (count, gauge) = self.owned.entry(tp.topic.clone()).or_insert_with(|| {
                (0, gauge!(PARTITIONS_OWNED, "group" => group.clone(), "topic" => tp.topic.clone()))
            });
            *count += by;
            gauge.set(*count as f64);
        }
    }

    /// The newest record of each partition in `records` (in order within a partition, so the
    /// last one seen) sets that partition's lag.
    fn observe(&mut self, records: &[Record]) {
        let now = now_ms();
        let mut newest: Vec<(&Arc<str>, u32, i64)> = Vec::new();
        for record in records {
            match newest.iter_mut().find(|(t, p, _)| *p == record.partition && **t == record.topic) {
                Some(entry) => entry.2 = record.timestamp_ms,
                None => newest.push((&record.topic, record.partition, record.timestamp_ms)),
            }
        }
        for (topic, partition, timestamp_ms) in newest {
            self.lag_gauge(topic, partition).set((now - timestamp_ms).max(0) as f64);
        }
    }
}

#[async_trait]
impl GroupConsumer for MeteredMember {
    async fn next_event(&mut self) -> Result<GroupEvent> {
        let event = self.inner.next_event().await?;
        match &event {
            GroupEvent::Records(records) => self.observe(records),
            GroupEvent::Assigned(partitions) => {
                self.owned_changed(partitions, 1);
                // Each partition's lag is on /metrics from its assignment on, at 0 until a
                // record says otherwise: a dashboard shows an idle partition, not "no data".
                for tp in partitions {
                    let topic: Arc<str> = Arc::from(tp.topic.as_str());
                    self.lag_gauge(&topic, tp.partition);
                }
            }
            GroupEvent::Revoked(revocation) => {
                self.owned_changed(&revocation.partitions, -1);
                for tp in &revocation.partitions {
                    let topic: Arc<str> = Arc::from(tp.topic.as_str());
                    self.lag_gauge(&topic, tp.partition).set(0.0);
                }
            }
            GroupEvent::CaughtUp(_) => {}
        }
        Ok(event)
    }

    async fn commit(&mut self, topic: &str, partition: u32, position: CommitPosition) -> Result<()> {
        self.inner.commit(topic, partition, position).await
    }

    async fn close(self: Box<Self>) {
        let this = *self;
        for (_, gauge) in this.owned.values() {
            gauge.set(0.0);
        }
        this.inner.close().await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
