//! The contract every backend meets, as functions over `Arc<dyn EventLog>`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tickcast_eventlog::{
    CommitPosition, Durability, EventLog, GroupConsumer, GroupEvent, NewRecord, Position, Record, StartFrom,
};

/// A deadline, not a pace: group joins on a busy test broker can take several seconds.
const WAIT: Duration = Duration::from_secs(60);

fn record(key: &str, ts: i64, payload: &str) -> NewRecord {
    NewRecord { key: key.to_owned(), timestamp_ms: ts, payload: Bytes::from(payload.to_owned()) }
}

fn payloads(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8(r.payload.to_vec()).unwrap()).collect()
}

/// The next records a group member gets, past any assignment news.
pub(crate) async fn next_records(consumer: &mut dyn GroupConsumer) -> Vec<Record> {
    loop {
        match tokio::time::timeout(WAIT, consumer.next_event()).await.expect("no records in time").unwrap() {
            GroupEvent::Records(records) => return records,
            GroupEvent::Assigned(_) | GroupEvent::CaughtUp(_) | GroupEvent::Revoked(_) => {}
        }
    }
}

/// Waits until a member has every record its partitions held when it got them.
async fn until_caught_up(consumer: &mut dyn GroupConsumer) {
    loop {
        match tokio::time::timeout(WAIT, consumer.next_event()).await.expect("not caught up in time").unwrap()
        {
            GroupEvent::CaughtUp(_) => return,
            GroupEvent::Records(records) => panic!("a member from the end read {:?}", payloads(&records)),
            GroupEvent::Assigned(_) => {}
            GroupEvent::Revoked(revocation) => revocation.release(),
        }
    }
}

/// Appends to one key, read back in order with the positions the appends returned.
pub(crate) async fn appends_read_back_in_order(log: Arc<dyn EventLog>) {
    let mut positions = log
        .append("t", vec![record("a", 1, "one"), record("a", 2, "two")], Durability::Durable)
        .await
        .unwrap();
    positions.extend(log.append("t", vec![record("a", 3, "three")], Durability::Relaxed).await.unwrap());
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions follow the order: {positions:?}");
    let all = log.read("t", StartFrom::Beginning, 100).await.unwrap();
    assert_eq!(payloads(&all), ["one", "two", "three"]);
    assert_eq!(all.iter().map(|r| r.position.clone()).collect::<Vec<_>>(), positions);
    assert_eq!((&*all[1].key, all[1].timestamp_ms, &*all[1].topic), ("a", 2, "t"));
    let mut scan = log.scan("t", StartFrom::Beginning).await.unwrap();
    let mut scanned = Vec::new();
    while let Some(batch) = tokio::time::timeout(WAIT, scan.next_batch()).await.unwrap().unwrap() {
        scanned.extend(payloads(&batch));
    }
    assert_eq!(scanned, ["one", "two", "three"], "a scan ends at the end the topic had when it started");
}

/// On the logs with offsets: they count from 0, and a read can start at one.
pub(crate) async fn offsets_count_from_zero(log: Arc<dyn EventLog>) {
    let offsets = log
        .append("t", vec![record("a", 1, "one"), record("b", 2, "two")], Durability::Durable)
        .await
        .unwrap();
    assert_eq!(offsets, [Position::Offset(0), Position::Offset(1)]);
    let offsets = log.append("t", vec![record("a", 3, "three")], Durability::Relaxed).await.unwrap();
    assert_eq!(offsets, [Position::Offset(2)]);
    // Offset 2 starts an append: tansu serves whole batches only, from the first batch that
    // starts at or after the offset asked for.
    assert_eq!(payloads(&log.read("t", StartFrom::Offset(2), 1).await.unwrap()), ["three"]);
    let mut scan = log.scan("t", StartFrom::Offset(0)).await.unwrap();
    let mut scanned = Vec::new();
    while let Some(batch) = tokio::time::timeout(WAIT, scan.next_batch()).await.unwrap().unwrap() {
        scanned.extend(payloads(&batch));
    }
    assert_eq!(scanned, ["one", "two", "three"]);
}

pub(crate) async fn reads_from_a_timestamp_and_from_the_end(log: Arc<dyn EventLog>) {
    let records = (0..10).map(|i| record("k", 1000 + i * 100, &format!("r{i}"))).collect();
    log.append("t", records, Durability::Durable).await.unwrap();
    assert_eq!(payloads(&log.read("t", StartFrom::Timestamp(1450), 2).await.unwrap()), ["r5", "r6"]);
    assert!(log.read("t", StartFrom::Timestamp(99_999), 10).await.unwrap().is_empty());
    assert!(log.read("t", StartFrom::End, 10).await.unwrap().is_empty());
}

pub(crate) async fn tails_see_live_appends(log: Arc<dyn EventLog>) {
    log.append("t", vec![record("k", 0, "old")], Durability::Durable).await.unwrap();
    let mut from_end = log.tail("t", StartFrom::End).await.unwrap();
    let mut from_start = log.tail("t", StartFrom::Beginning).await.unwrap();
    assert_eq!(
        payloads(&tokio::time::timeout(WAIT, from_start.next_batch()).await.unwrap().unwrap()),
        ["old"]
    );
    let writer = Arc::clone(&log);
    tokio::spawn(async move {
        for i in 0..50 {
            writer.append("t", vec![record("k", 0, &format!("live{i}"))], Durability::Relaxed).await.unwrap();
        }
    });
    for tail in [&mut from_end, &mut from_start] {
        let mut seen = Vec::new();
        while seen.len() < 50 {
            let batch = tokio::time::timeout(WAIT, tail.next_batch()).await.expect("tail stalled").unwrap();
            seen.extend(payloads(&batch));
        }
        assert_eq!(seen, (0..50).map(|i| format!("live{i}")).collect::<Vec<_>>());
    }
}

/// Concurrent appends each get a position of their own; on the logs with offsets, without gaps.
pub(crate) async fn concurrent_appends_get_distinct_positions(log: Arc<dyn EventLog>) {
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..16 {
        let log = Arc::clone(&log);
        tasks.spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..50 {
                offsets.extend(
                    log.append("t", vec![record("k", 0, &format!("{w}-{i}"))], Durability::Durable)
                        .await
                        .unwrap(),
                );
            }
            offsets
        });
    }
    let mut all: Vec<Position> = tasks.join_all().await.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 800, "one position per record");
    if all[0].offset().is_some() {
        assert_eq!(all, (0..800).map(Position::Offset).collect::<Vec<_>>());
    }
}

pub(crate) async fn group_offsets_survive_reopen(open: impl Fn() -> Arc<dyn EventLog>) {
    {
        let log = open();
        log.append("t", (0..5).map(|i| record("k", 0, &format!("r{i}"))).collect(), Durability::Durable)
            .await
            .unwrap();
        let mut consumer = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
        let batch = next_records(&mut *consumer).await;
        assert_eq!(payloads(&batch), ["r0", "r1", "r2", "r3", "r4"]);
        let r3 = &batch[3];
        let resume = CommitPosition { next: r3.position.clone(), not_after_ms: r3.timestamp_ms };
        consumer.commit("t", r3.partition, resume).await.unwrap();
        consumer.close().await;
    }
    let log = open();
    let mut consumer = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let batch = next_records(&mut *consumer).await;
    assert_eq!(payloads(&batch), ["r3", "r4"], "a restarted member resumes at the committed offset");
    let mut other = log.consume("other-group", &["t"], StartFrom::End).await.unwrap();
    // A member that starts at the end starts where the end is when it is assigned: append after.
    until_caught_up(&mut *other).await;
    log.append("t", vec![record("k", 0, "new")], Durability::Durable).await.unwrap();
    assert_eq!(payloads(&next_records(&mut *other).await), ["new"]);
}

/// A member from the end gets a record appended the moment it has caught up: its start is the
/// end it was told about, not one looked up later. Several groups, as the gap is a race.
pub(crate) async fn a_member_from_the_end_misses_nothing_appended_after_catching_up(log: Arc<dyn EventLog>) {
    log.append("t", vec![record("k", 0, "old")], Durability::Durable).await.unwrap();
    for round in 0..5 {
        let mut consumer = log.consume(&format!("from-end-{round}"), &["t"], StartFrom::End).await.unwrap();
        until_caught_up(&mut *consumer).await;
        let payload = format!("new{round}");
        log.append("t", vec![record("k", 0, &payload)], Durability::Durable).await.unwrap();
        assert_eq!(payloads(&next_records(&mut *consumer).await), [payload]);
        consumer.close().await;
    }
}

pub(crate) async fn a_group_consumes_several_topics(log: Arc<dyn EventLog>) {
    let mut consumer = log.consume("g", &["a", "b"], StartFrom::Beginning).await.unwrap();
    log.append("b", vec![record("k", 0, "from-b")], Durability::Durable).await.unwrap();
    log.append("a", vec![record("k", 0, "from-a")], Durability::Durable).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(payloads(&next_records(&mut *consumer).await));
    }
    seen.sort();
    assert_eq!(seen, ["from-a", "from-b"]);
}

/// A member is told once when it has every record its partitions held when it joined, before
/// any record written after.
pub(crate) async fn a_member_is_told_when_it_has_caught_up(log: Arc<dyn EventLog>) {
    let before: Vec<NewRecord> = (0..5).map(|i| record("k", 1000 + i, &format!("old{i}"))).collect();
    log.append("t", before, Durability::Durable).await.unwrap();
    let mut consumer = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, consumer.next_event()).await.expect("no catch-up in time").unwrap() {
            GroupEvent::Records(records) => seen.extend(payloads(&records)),
            GroupEvent::CaughtUp(partitions) => {
                assert_eq!(partitions.len(), 1);
                assert_eq!(partitions[0].topic, "t");
                break;
            }
            GroupEvent::Assigned(_) => {}
            GroupEvent::Revoked(revocation) => revocation.release(),
        }
    }
    assert_eq!(seen, ["old0", "old1", "old2", "old3", "old4"], "caught up means everything before is in");
    log.append("t", vec![record("k", 2000, "new")], Durability::Durable).await.unwrap();
    let mut later = Vec::new();
    while later.is_empty() {
        match tokio::time::timeout(WAIT, consumer.next_event()).await.expect("no new record in time").unwrap()
        {
            GroupEvent::Records(records) => later.extend(payloads(&records)),
            GroupEvent::CaughtUp(_) => panic!("caught up is said once per assignment"),
            GroupEvent::Assigned(_) => {}
            GroupEvent::Revoked(revocation) => revocation.release(),
        }
    }
    assert_eq!(later, ["new"]);
    consumer.close().await;
    // A member that joins where nothing is left to read is caught up at once.
    let mut again = log.consume("g2", &["t"], StartFrom::End).await.unwrap();
    until_caught_up(&mut *again).await;
    again.close().await;
}
