//! The event log contract on Kinesis (moto's server, `TICKCAST_TEST_DYNAMODB`), and what only
//! Kinesis has: shards as partitions, leases taken over, stolen and handed on, reshards.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tickcast_eventlog::kinesis::streams::KinesisStreams;
use tickcast_eventlog::{
    CommitPosition, Durability, EventLog, GroupConsumer, GroupEvent, NewRecord, Position, Record, StartFrom,
    open,
};

use crate::suite;

/// The tests' Kinesis URL for `prefix`: quick polls, a 3 s failover.
pub(crate) fn url(prefix: &str) -> String {
    let endpoint = std::env::var("TICKCAST_TEST_DYNAMODB").unwrap_or_else(|_| {
        panic!("set TICKCAST_TEST_DYNAMODB (an AWS endpoint, e.g. moto's server) or run ./scripts/test.sh, which provides it")
    });
    format!("kinesis://{prefix}?region=us-east-1&endpoint={endpoint}&poll_ms=50&failover_ms=3000")
}

/// A log under a fresh prefix with `topics` made, each with `shards` shards.
pub(crate) async fn fresh(topics: &[&str], shards: i32) -> (String, Arc<dyn EventLog>) {
    let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    let config = crate::aws_test_config().await;
    let streams = KinesisStreams::new(aws_sdk_kinesis::Client::new(&config), prefix.clone());
    for topic in topics {
        streams.create(topic, shards).await.unwrap();
    }
    lease_table(&config, &prefix).await;
    let url = url(&prefix);
    (url.clone(), open(&url).unwrap())
}

/// Makes `PREFIX-leases` in moto's DynamoDB, as `tickcast streams create` does.
pub(crate) async fn lease_table(config: &aws_config::SdkConfig, prefix: &str) {
    tickcast_eventlog::kinesis::leases::LeaseTable::new(
        aws_sdk_dynamodb::Client::new(config),
        format!("{prefix}-leases"),
    )
    .create()
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_read_back_in_order() {
    let (_, log) = fresh(&["t"], 1).await;
    suite::appends_read_back_in_order(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_a_timestamp_and_from_the_end() {
    let (_, log) = fresh(&["t"], 1).await;
    suite::reads_from_a_timestamp_and_from_the_end(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tails_see_live_appends() {
    let (_, log) = fresh(&["t"], 1).await;
    suite::tails_see_live_appends(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_distinct_positions() {
    let (_, log) = fresh(&["t"], 2).await;
    suite::concurrent_appends_get_distinct_positions(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_survive_reopen() {
    let (url, _) = fresh(&["t"], 1).await;
    suite::group_offsets_survive_reopen(|| open(&url).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_from_the_end_misses_nothing_appended_after_catching_up() {
    let (_, log) = fresh(&["t"], 1).await;
    suite::a_member_from_the_end_misses_nothing_appended_after_catching_up(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_consumes_several_topics() {
    let (_, log) = fresh(&["a", "b"], 1).await;
    suite::a_group_consumes_several_topics(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_told_when_it_has_caught_up() {
    let (_, log) = fresh(&["t"], 1).await;
    suite::a_member_is_told_when_it_has_caught_up(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_says_how_to_create_it() {
    let (_, log) = fresh(&["t"], 1).await;
    let error = log.tail("nope", StartFrom::Beginning).await.unwrap_err().to_string();
    assert!(
        error.contains("\"nope\" does not exist") && error.contains("tickcast streams create"),
        "{error}"
    );
    let error = log.check_topics(&["t".into(), "nope".into()]).await.unwrap_err().to_string();
    assert!(error.contains("nope"), "{error}");
    log.check_topics(&["t".into()]).await.unwrap();
    let error = log.read("t", StartFrom::Offset(3), 1).await.unwrap_err().to_string();
    assert!(error.contains("not a position"), "Kinesis has no offsets: {error}");
    // Streams without their lease table: a group cannot start, and says what to run.
    let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    let config = crate::aws_test_config().await;
    KinesisStreams::new(aws_sdk_kinesis::Client::new(&config), prefix.clone()).create("t", 1).await.unwrap();
    let error = open(&url(&prefix)).unwrap().consume("g", &["t"], StartFrom::Beginning).await.unwrap_err();
    assert!(error.to_string().contains("tickcast streams create"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_log_reads_and_refuses_appends() {
    let (url, log) = fresh(&["t"], 1).await;
    let record = NewRecord { key: "k".into(), timestamp_ms: 1, payload: Bytes::from_static(b"fact") };
    log.append("t", vec![record.clone()], Durability::Durable).await.unwrap();
    let reader = tickcast_eventlog::open_read_only(&url).unwrap();
    assert_eq!(reader.read("t", StartFrom::Beginning, 10).await.unwrap().len(), 1);
    let refused = reader.append("t", vec![record], Durability::Durable).await.unwrap_err();
    assert!(matches!(refused, tickcast_eventlog::Error::ReadOnly), "{refused}");
}

/// Records keyed alike share a shard and keep their order; a scan covers every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_keep_order_across_shards() {
    let (_, log) = fresh(&["t"], 4).await;
    let records: Vec<NewRecord> = (0..200)
        .map(|i| NewRecord {
            key: format!("k{}", i % 10),
            timestamp_ms: 1000 + i,
            payload: Bytes::from(format!("{}:{i}", i % 10)),
        })
        .collect();
    log.append("t", records, Durability::Durable).await.unwrap();
    let mut scan = log.scan("t", StartFrom::Beginning).await.unwrap();
    let mut seen: std::collections::HashMap<String, (u32, Vec<i64>)> = Default::default();
    let mut total = 0;
    while let Some(batch) =
        tokio::time::timeout(Duration::from_secs(30), scan.next_batch()).await.unwrap().unwrap()
    {
        for record in batch {
            total += 1;
            let text = String::from_utf8(record.payload.to_vec()).unwrap();
            let (key, i) = text.split_once(':').unwrap();
            let entry = seen.entry(key.to_owned()).or_insert((record.partition, Vec::new()));
            assert_eq!(entry.0, record.partition, "key {key} moved shards");
            assert_eq!(record.timestamp_ms, 1000 + i.parse::<i64>().unwrap(), "the writer's timestamp");
            entry.1.push(i.parse().unwrap());
        }
    }
    assert_eq!(total, 200);
    for (key, (_, steps)) in &seen {
        assert!(steps.is_sorted(), "key {key} out of order: {steps:?}");
    }
    let shards: std::collections::HashSet<u32> = seen.values().map(|(p, _)| *p).collect();
    assert!(shards.len() > 1, "10 keys all landed in one of 4 shards");
}

pub(crate) fn record(key: &str, payload: String) -> NewRecord {
    NewRecord { key: key.to_owned(), timestamp_ms: 1000, payload: Bytes::from(payload) }
}

/// Appends `range` as records `r{n}` over ten keys.
pub(crate) async fn append_numbered(log: &dyn EventLog, range: std::ops::Range<u32>) {
    let records = range.map(|n| record(&format!("k{}", n % 10), format!("r{n}"))).collect();
    log.append("t", records, Durability::Durable).await.unwrap();
}

/// What a member holds and has processed, kept from the events it saw.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) owned: std::collections::BTreeSet<u32>,
    /// (partition, position, payload) in the order processed.
    pub(crate) records: Vec<(u32, Position, String)>,
}

impl Seen {
    /// Takes in one event: records are processed and committed past, revocations let go at once.
    pub(crate) async fn take(&mut self, consumer: &mut dyn GroupConsumer, event: GroupEvent) {
        match event {
            GroupEvent::Assigned(partitions) => self.owned.extend(partitions.iter().map(|p| p.partition)),
            GroupEvent::Revoked(revocation) => {
                for p in &revocation.partitions {
                    self.owned.remove(&p.partition);
                }
            }
            GroupEvent::CaughtUp(_) => {}
            GroupEvent::Records(records) => {
                for r in &records {
                    let payload = String::from_utf8(r.payload.to_vec()).unwrap();
                    self.records.push((r.partition, r.position.clone(), payload));
                }
                commit_past(consumer, &records).await;
            }
        }
    }

    pub(crate) fn payloads(&self) -> std::collections::BTreeSet<String> {
        self.records.iter().map(|(_, _, p)| p.clone()).collect()
    }
}

/// Commits, per partition, past the last of `records`.
pub(crate) async fn commit_past(consumer: &mut dyn GroupConsumer, records: &[Record]) {
    let mut last = std::collections::BTreeMap::new();
    for r in records {
        last.insert(r.partition, r);
    }
    for (partition, r) in last {
        let position = CommitPosition { next: r.position.next(), not_after_ms: r.timestamp_ms };
        consumer.commit("t", partition, position).await.unwrap();
    }
}

/// Feeds `consumer`'s events to `seen` until `done` holds; panics after `within`.
pub(crate) async fn until(
    consumer: &mut dyn GroupConsumer,
    seen: &mut Seen,
    within: Duration,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    while !done(seen) {
        let event = tokio::time::timeout_at(deadline, consumer.next_event())
            .await
            .unwrap_or_else(|_| panic!("{what}: not in time; {:?} owned", seen.owned))
            .unwrap();
        seen.take(consumer, event).await;
    }
}

pub(crate) fn numbered(range: std::ops::Range<u32>) -> std::collections::BTreeSet<String> {
    range.map(|n| format!("r{n}")).collect()
}
