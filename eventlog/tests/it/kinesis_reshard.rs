//! What moto cannot show, on kinesalite (`TICKCAST_TEST_KINESALITE`): sequence numbers of the
//! service's width, a split shard read parent first; and an append the service throttles (through
//! a proxy that refuses records).

use std::sync::Arc;
use std::time::Duration;

use tickcast_eventlog::kinesis::streams::KinesisStreams;
use tickcast_eventlog::{Durability, EventLog, Position, StartFrom, open};

use crate::kinesis::*;
use crate::suite;

/// A log on kinesalite (`TICKCAST_TEST_KINESALITE`), which reshards as the service does, with
/// its leases in moto's DynamoDB; `topics` made with `shards` shards.
async fn fresh_on_kinesalite(
    topics: &[&str],
    shards: i32,
) -> (String, Arc<dyn EventLog>, aws_sdk_kinesis::Client) {
    let kinesalite = std::env::var("TICKCAST_TEST_KINESALITE").unwrap_or_else(|_| {
        panic!(
            "set TICKCAST_TEST_KINESALITE (kinesalite's endpoint) or run ./scripts/test.sh, which provides it"
        )
    });
    let dynamodb = std::env::var("TICKCAST_TEST_DYNAMODB").expect("TICKCAST_TEST_DYNAMODB");
    let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
    let config = crate::aws_test_config().await;
    let kinesis = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&config).endpoint_url(&kinesalite).build(),
    );
    let streams = KinesisStreams::new(kinesis.clone(), prefix.clone());
    for topic in topics {
        streams.create(topic, shards).await.unwrap();
    }
    lease_table(&config, &prefix).await;
    let url = format!(
        "kinesis://{prefix}?region=us-east-1&endpoint={kinesalite}&dynamodb_endpoint={dynamodb}&poll_ms=50&failover_ms=3000"
    );
    (url.clone(), open(&url).unwrap(), kinesis)
}

/// Sequence numbers as wide as the service's (56 digits on kinesalite) are positions and
/// checkpoints like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_of_the_service_s_width_are_positions() {
    let (url, log, _) = fresh_on_kinesalite(&["t", "w"], 1).await;
    let positions = log.append("w", vec![record("k", "wide".into())], Durability::Durable).await.unwrap();
    let Position::Sequence { number, .. } = &positions[0] else { panic!("{positions:?}") };
    assert!(number.len() > 40, "a sequence number wider than any integer: {number}");
    suite::appends_read_back_in_order(Arc::clone(&log)).await;
    let (url2, _, _) = fresh_on_kinesalite(&["t"], 1).await;
    drop(url);
    suite::group_offsets_survive_reopen(|| open(&url2).unwrap()).await;
}

/// A shard split while a member reads it: the member reads the parent to its end and commits
/// past it before it reads the children, so each key's records keep their order across the
/// split, each once; the parent's lease says `SHARD_END`. A scan and a tail read the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_shard_is_read_parent_first_and_keys_keep_their_order() {
    let wait = Duration::from_secs(60);
    let (url, log, kinesis) = fresh_on_kinesalite(&["t"], 1).await;
    let mut member = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut seen = Seen::default();
    append_numbered(&*log, 0..50).await;
    until(&mut *member, &mut seen, wait, "the records before the split", |s| s.records.len() >= 50).await;

    let prefix = url.trim_start_matches("kinesis://").split_once('?').unwrap().0;
    let stream = KinesisStreams::new(kinesis.clone(), prefix.to_owned()).stream_name("t");
    kinesis
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    // A split takes effect when the stream is active again: until then records still go to the
    // parent, as on the service.
    let deadline = std::time::Instant::now() + wait;
    loop {
        let summary = kinesis.describe_stream_summary().stream_name(&stream).send().await.unwrap();
        let status = summary.stream_description_summary().map(|s| s.stream_status().clone());
        let shards = kinesis.list_shards().stream_name(&stream).send().await.unwrap();
        let parent_closed = shards.shards().iter().any(|s| {
            s.shard_id() == "shardId-000000000000"
                && s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some()
        });
        if status == Some(aws_sdk_kinesis::types::StreamStatus::Active) && parent_closed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the split never took effect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    append_numbered(&*log, 50..100).await;
    until(&mut *member, &mut seen, wait, "every record, the children's too", |s| s.records.len() >= 100)
        .await;
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(300), member.next_event()).await {
        seen.take(&mut *member, event).await;
    }
    assert_eq!(seen.payloads(), numbered(0..100));
    assert_eq!(seen.records.len(), 100, "each record once");
    let first_child = seen.records.iter().position(|(p, _, _)| *p != 0).unwrap();
    assert!(
        seen.records[first_child..].iter().all(|(p, _, _)| *p != 0),
        "a child's record came before the parent's end"
    );
    assert_eq!(first_child, 50, "the records before the split were the parent's");
    assert_keys_in_order(seen.records.iter().map(|(_, _, p)| p.as_str()));
    assert!(
        seen.owned.len() == 2 && !seen.owned.contains(&0),
        "the children, not the parent: {:?}",
        seen.owned
    );
    let config = crate::aws_test_config().await;
    let leases = tickcast_eventlog::kinesis::leases::LeaseTable::new(
        aws_sdk_dynamodb::Client::new(&config),
        format!("{prefix}-leases"),
    );
    let parent = leases
        .list(&format!("g/{stream}"))
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.shard == "shardId-000000000000")
        .unwrap();
    assert_eq!(parent.checkpoint, "SHARD_END", "the parent is marked read to its end");
    member.close().await;

    let mut scan = log.scan("t", StartFrom::Beginning).await.unwrap();
    let mut scanned = Vec::new();
    while let Some(batch) = tokio::time::timeout(wait, scan.next_batch()).await.unwrap().unwrap() {
        scanned.extend(batch.iter().map(|r| String::from_utf8(r.payload.to_vec()).unwrap()));
    }
    assert_eq!(scanned.len(), 100);
    assert_keys_in_order(scanned.iter().map(String::as_str));
    let mut tail = log.tail("t", StartFrom::Beginning).await.unwrap();
    let mut tailed = Vec::new();
    while tailed.len() < 100 {
        let batch = tokio::time::timeout(wait, tail.next_batch()).await.expect("the tail stalled").unwrap();
        tailed.extend(batch.iter().map(|r| String::from_utf8(r.payload.to_vec()).unwrap()));
    }
    assert_keys_in_order(tailed.iter().map(String::as_str));
}

/// Each key's `r{n}` come with `n` increasing (keys are `n % 10`).
fn assert_keys_in_order<'a>(payloads: impl Iterator<Item = &'a str>) {
    let mut last: std::collections::HashMap<u32, u32> = Default::default();
    for payload in payloads {
        let n: u32 = payload.trim_start_matches('r').parse().unwrap();
        if let Some(before) = last.insert(n % 10, n) {
            assert!(before < n, "key k{}: r{n} after r{before}", n % 10);
        }
    }
}

/// Throttled records (refused by a shard over its write limit) are sent again until taken,
/// without reordering a key's records or losing one; the append returns once every record
/// landed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_append_is_retried_in_order() {
    let (url, _) = fresh(&["t"], 2).await;
    let moto = std::env::var("TICKCAST_TEST_DYNAMODB").unwrap();
    // The first of k0's records in each of the first five calls is refused, and the first of
    // every key's in the second: a retry that sent a key's later records on meanwhile would
    // land them before the refused one.
    let refuse: Arc<crate::throttle::Refuse> =
        Arc::new(|call, key, nth| nth == 0 && ((call < 5 && key == "k0") || call == 1));
    let proxy = crate::throttle::ThrottlingProxy::start(moto.clone(), refuse).await;
    let log = open(&url.replace(&moto, &proxy.endpoint)).unwrap();
    append_numbered(&*log, 0..100).await;
    assert!(proxy.refused.load(std::sync::atomic::Ordering::Relaxed) >= 14, "the proxy throttled");
    let read = log.read("t", StartFrom::Beginning, 1000).await.unwrap();
    let payloads: Vec<String> = read.iter().map(|r| String::from_utf8(r.payload.to_vec()).unwrap()).collect();
    assert_eq!(payloads.iter().cloned().collect::<std::collections::BTreeSet<_>>(), numbered(0..100));
    assert_eq!(payloads.len(), 100, "each record once");
    assert_keys_in_order(payloads.iter().map(String::as_str));
}
