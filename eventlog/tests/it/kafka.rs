//! The same contract against a real Kafka-API broker (`TICKCAST_TEST_KAFKA=HOST:PORT`, started
//! by `scripts/test.sh`). Each test works under its own topic prefix.

use super::*;
use std::collections::HashMap;
use tickcast_eventlog::kafka::{KafkaLog, KafkaOptions};

use tickcast_eventlog::{CommitPosition, GroupConsumer, GroupEvent, LogOptions, TopicPartition, open_with};

pub(crate) fn broker() -> String {
    std::env::var("TICKCAST_TEST_KAFKA")
    .unwrap_or_else(|_| panic!("set TICKCAST_TEST_KAFKA (a Kafka-API broker, HOST:PORT) or run ./scripts/test.sh, which provides it"))
}

fn options() -> LogOptions {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    // tansu completes a group join after about half the session timeout; below 6 s a
    // second member's join does not complete there.
    let mut client = vec![("session.timeout.ms".to_owned(), "6000".to_owned())];
    if let Ok(debug) = std::env::var("TICKCAST_TEST_KAFKA_DEBUG") {
        client.push(("debug".to_owned(), debug));
    }
    LogOptions { kafka: KafkaOptions { client, group_instance_id: None } }
}

fn url(prefix: &str) -> String {
    format!("kafka://{}?prefix={prefix}", broker())
}

/// A log under a fresh prefix with `topics` created, each with `partitions` partitions.
async fn fresh(topics: &[&str], partitions: u32) -> (String, Arc<dyn EventLog>) {
    let prefix = format!("t{}-", uuid_like());
    let url = url(&prefix);
    let admin = KafkaLog::open(&url, url.trim_start_matches("kafka://"), options().kafka).unwrap();
    let names: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    admin.create_topics(&names, partitions, 1, -1).await.unwrap();
    (url.clone(), open_with(&url, &options()).unwrap())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{}-{}", std::process::id(), nanos % 1_000_000_000, N.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_read_back_in_order() {
    let (_, log) = fresh(&["t"], 1).await;
    suite::appends_read_back_in_order(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_count_from_zero() {
    let (_, log) = fresh(&["t"], 1).await;
    suite::offsets_count_from_zero(log).await;
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
    let (_, log) = fresh(&["t"], 1).await;
    suite::concurrent_appends_get_distinct_positions(log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_survive_reopen() {
    let (url, _) = fresh(&["t"], 1).await;
    suite::group_offsets_survive_reopen(|| open_with(&url, &options()).unwrap()).await;
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
async fn a_missing_topic_says_how_to_create_it() {
    let (_, log) = fresh(&["t"], 1).await;
    let error = log.tail("nope", StartFrom::Beginning).await.unwrap_err().to_string();
    assert!(error.contains("\"nope\" does not exist") && error.contains("tickcast topics create"), "{error}");
    let error = log.check_topics(&["t".into(), "nope".into()]).await.unwrap_err().to_string();
    assert!(error.contains("nope"), "{error}");
    log.check_topics(&["t".into()]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_told_when_it_has_caught_up() {
    let (_, log) = fresh(&["t"], 1).await;
    suite::a_member_is_told_when_it_has_caught_up(log).await;
}

/// Read-only means read-only here too: no producer, appends refused, reads as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_log_reads_and_refuses_appends() {
    let (url, log) = fresh(&["t"], 1).await;
    let record = NewRecord { key: "k".into(), timestamp_ms: 1, payload: Bytes::from_static(b"fact") };
    log.append("t", vec![record.clone()], Durability::Durable).await.unwrap();
    let reader = tickcast_eventlog::open_read_only(&url).unwrap();
    assert_eq!(reader.read("t", StartFrom::Beginning, 10).await.unwrap().len(), 1);
    let refused = reader.append("t", vec![record], Durability::Durable).await.unwrap_err();
    assert!(matches!(refused, tickcast_eventlog::Error::ReadOnly), "{refused}");
    assert!(matches!(reader.sync().await, Err(tickcast_eventlog::Error::ReadOnly)));
}

/// Records keyed alike share a partition and keep their order; a scan and a tail cover all
/// partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_keep_order_across_partitions() {
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
    while let Some(batch) = scan.next_batch().await.unwrap() {
        for record in batch {
            total += 1;
            let text = String::from_utf8(record.payload.to_vec()).unwrap();
            let (key, i) = text.split_once(':').unwrap();
            let entry = seen.entry(key.to_owned()).or_insert((record.partition, Vec::new()));
            assert_eq!(entry.0, record.partition, "key {key} moved partitions");
            entry.1.push(i.parse().unwrap());
        }
    }
    assert_eq!(total, 200);
    for (key, (_, steps)) in &seen {
        assert!(steps.is_sorted(), "key {key} out of order: {steps:?}");
    }
    let partitions: std::collections::HashSet<u32> = seen.values().map(|(p, _)| *p).collect();
    assert!(partitions.len() > 1, "10 keys all landed in one of 4 partitions");
}

/// Two members split the partitions, and a revocation holds the rebalance until the member lets
/// go of it: the newcomer is given nothing meanwhile. When the newcomer leaves, the first member
/// takes its partitions back and resumes each at the offset the newcomer committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_split_partitions_and_take_over_on_leave() {
    let (_, log) = fresh(&["t"], 4).await;
    // Forty keys: records in every partition.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let records = (0..40).map(|i| NewRecord {
        key: format!("k{i}"),
        timestamp_ms: now,
        payload: Bytes::from(format!("{i}")),
    });
    log.append("t", records.collect(), Durability::Durable).await.unwrap();

    // The first member owns every partition and reads every record (none committed).
    let mut first = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let (mut first_owns, mut read) = (Vec::new(), 0);
    while first_owns.len() < 4 || read < 40 {
        match next(&mut first).await {
            GroupEvent::Assigned(p) => first_owns.extend(p),
            GroupEvent::Records(records) => read += records.len(),
            GroupEvent::Revoked(_) | GroupEvent::CaughtUp(_) => {}
        }
    }

    // A newcomer: the first member is asked to let go of partitions, and holds the revocation.
    let mut second = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let held = loop {
        match next(&mut first).await {
            GroupEvent::Revoked(revocation) => break revocation,
            GroupEvent::Assigned(p) => panic!("assigned {p:?} before any revocation"),
            GroupEvent::Records(_) | GroupEvent::CaughtUp(_) => {}
        }
    };
    let given = tokio::time::timeout(HOLD, async {
        loop {
            // An empty assignment is the first round of a cooperative rebalance: nothing given.
            if let GroupEvent::Assigned(p) = second.next_event().await.unwrap()
                && !p.is_empty()
            {
                return p;
            }
        }
    })
    .await;
    assert!(given.is_err(), "the newcomer was given {:?} while the revocation was held", given.unwrap());
    first_owns.retain(|p| !held.partitions.contains(p));
    held.release();

    // Both members poll until the partitions are split between them.
    let mut second_owns = Vec::new();
    let owned = |owns: &mut Vec<TopicPartition>, event: GroupEvent| match event {
        GroupEvent::Assigned(p) => owns.extend(p),
        GroupEvent::Revoked(r) => {
            owns.retain(|p| !r.partitions.contains(p));
            r.release();
        }
        GroupEvent::Records(_) | GroupEvent::CaughtUp(_) => {}
    };
    while second_owns.is_empty() || first_owns.len() + second_owns.len() != 4 {
        tokio::select! {
            event = first.next_event() => owned(&mut first_owns, event.unwrap()),
            event = second.next_event() => owned(&mut second_owns, event.unwrap()),
            () = tokio::time::sleep(WAIT_GROUP) => panic!("no split: {first_owns:?} / {second_owns:?}"),
        }
    }
    assert!(!first_owns.is_empty(), "the first member kept nothing");

    // The newcomer commits after the first record of each of its partitions, then leaves.
    let mut committed: HashMap<u32, Position> = HashMap::new();
    while committed.len() < second_owns.len() {
        if let GroupEvent::Records(records) = next(&mut second).await {
            for record in records {
                if committed.contains_key(&record.partition) {
                    continue;
                }
                let position =
                    CommitPosition { next: record.position.next(), not_after_ms: record.timestamp_ms };
                second.commit("t", record.partition, position).await.unwrap();
                committed.insert(record.partition, record.position.next());
            }
        }
    }
    second.close().await;

    // The first member takes them back, each from its committed offset.
    let mut resumed: HashMap<u32, Position> = HashMap::new();
    while resumed.len() < committed.len() {
        match next(&mut first).await {
            GroupEvent::Records(records) => {
                for record in records.into_iter().filter(|r| committed.contains_key(&r.partition)) {
                    resumed.entry(record.partition).or_insert(record.position);
                }
            }
            GroupEvent::Revoked(revocation) => revocation.release(),
            GroupEvent::Assigned(_) | GroupEvent::CaughtUp(_) => {}
        }
    }
    assert_eq!(resumed, committed, "each partition resumed at the offset committed for it");
}

/// Static membership: a member with a `group.instance.id` joins and owns the partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_joins_with_its_instance_id() {
    let (url, _) = fresh(&["t"], 2).await;
    let mut static_options = options();
    static_options.kafka.group_instance_id = Some("gen-static".to_owned());
    let log = open_with(&url, &static_options).unwrap();
    log.append(
        "t",
        vec![NewRecord { key: "k".into(), timestamp_ms: 1, payload: Bytes::from_static(b"x") }],
        Durability::Durable,
    )
    .await
    .unwrap();
    let mut member = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut owned = Vec::new();
    let mut records = Vec::new();
    while owned.len() < 2 || records.is_empty() {
        match tokio::time::timeout(WAIT_GROUP, member.next_event()).await.unwrap().unwrap() {
            GroupEvent::Assigned(partitions) => owned.extend(partitions),
            GroupEvent::Records(batch) => records.extend(batch),
            GroupEvent::CaughtUp(_) => {}
            GroupEvent::Revoked(revocation) => revocation.release(),
        }
    }
    assert_eq!(&records[0].payload[..], b"x");
    member.close().await;
}

/// The member's next group event, which must come within [`WAIT_GROUP`].
async fn next(member: &mut Box<dyn GroupConsumer>) -> GroupEvent {
    tokio::time::timeout(WAIT_GROUP, member.next_event()).await.expect("no group event in time").unwrap()
}

const WAIT_GROUP: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a held revocation is watched for an assignment it should prevent.
const HOLD: std::time::Duration = std::time::Duration::from_secs(3);
