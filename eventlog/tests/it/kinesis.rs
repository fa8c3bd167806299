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
async fn lease_table(config: &aws_config::SdkConfig, prefix: &str) {
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

fn record(key: &str, payload: String) -> NewRecord {
    NewRecord { key: key.to_owned(), timestamp_ms: 1000, payload: Bytes::from(payload) }
}

/// Appends `range` as records `r{n}` over ten keys.
async fn append_numbered(log: &dyn EventLog, range: std::ops::Range<u32>) {
    let records = range.map(|n| record(&format!("k{}", n % 10), format!("r{n}"))).collect();
    log.append("t", records, Durability::Durable).await.unwrap();
}

/// What a member holds and has processed, kept from the events it saw.
#[derive(Debug, Default)]
struct Seen {
    owned: std::collections::BTreeSet<u32>,
    /// (partition, position, payload) in the order processed.
    records: Vec<(u32, Position, String)>,
}

impl Seen {
    /// Takes in one event: records are processed and committed past, revocations let go at once.
    async fn take(&mut self, consumer: &mut dyn GroupConsumer, event: GroupEvent) {
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

    fn payloads(&self) -> std::collections::BTreeSet<String> {
        self.records.iter().map(|(_, _, p)| p.clone()).collect()
    }
}

/// Commits, per partition, past the last of `records`.
async fn commit_past(consumer: &mut dyn GroupConsumer, records: &[Record]) {
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
async fn until(
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

fn numbered(range: std::ops::Range<u32>) -> std::collections::BTreeSet<String> {
    range.map(|n| format!("r{n}")).collect()
}

const CHILD_URL_ENV: &str = "TICKCAST_KINESIS_CHILD_URL";

/// Run as a child process by `a_killed_member_s_shards_are_taken_over_after_the_failover_time`:
/// a member of group `g` that prints what it is assigned, processes and commits, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_member() {
    use std::io::Write;
    let Ok(url) = std::env::var(CHILD_URL_ENV) else { return };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let log = open(&url).unwrap();
    let mut consumer = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut out = std::io::stdout().lock();
    loop {
        match consumer.next_event().await.unwrap() {
            GroupEvent::Assigned(partitions) => {
                for p in partitions {
                    writeln!(out, "@@ assigned {}", p.partition).unwrap();
                }
            }
            GroupEvent::Revoked(revocation) => {
                for p in &revocation.partitions {
                    writeln!(out, "@@ revoked {}", p.partition).unwrap();
                }
            }
            GroupEvent::CaughtUp(_) => {}
            GroupEvent::Records(records) => {
                for r in &records {
                    let payload = String::from_utf8(r.payload.to_vec()).unwrap();
                    writeln!(out, "@@ record {} {} {payload}", r.partition, r.position).unwrap();
                }
                out.flush().unwrap();
                commit_past(&mut *consumer, &records).await;
                let mut last = std::collections::BTreeMap::new();
                for r in &records {
                    last.insert(r.partition, r.position.to_string());
                }
                for (partition, position) in last {
                    writeln!(out, "@@ committed {partition} {position}").unwrap();
                }
            }
        }
        out.flush().unwrap();
    }
}

/// What the child member printed, read on a thread of its own.
struct Child {
    process: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    owned: std::collections::BTreeSet<u32>,
    records: Vec<(u32, Position, String)>,
    /// Per partition, the last record it committed past.
    committed: std::collections::BTreeMap<u32, Position>,
    /// Its assignments and revocations, in order, for messages.
    changes: Vec<String>,
}

impl Child {
    fn start(url: &str) -> Self {
        let mut process = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["kinesis::child_member", "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_URL_ENV, url)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            process,
            lines,
            owned: Default::default(),
            records: Vec::new(),
            committed: Default::default(),
            changes: Vec::new(),
        }
    }

    fn sequence(text: &str) -> Position {
        Position::Sequence { number: text.into(), after: false }
    }

    /// Reads what the child printed so far.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            // libtest may print the test's name on the same line before the first of them.
            let Some((_, line)) = line.split_once("@@ ") else { continue };
            let words: Vec<&str> = line.splitn(4, ' ').collect();
            if matches!(words.first(), Some(&("assigned" | "revoked"))) {
                self.changes.push(line.to_owned());
            }
            match words.as_slice() {
                ["assigned", p] => {
                    self.owned.insert(p.parse().unwrap());
                }
                ["revoked", p] => {
                    self.owned.remove(&p.parse().unwrap());
                }
                ["record", p, position, payload] => {
                    self.records.push((p.parse().unwrap(), Self::sequence(position), (*payload).to_owned()));
                }
                ["committed", p, position] => {
                    self.committed.insert(p.parse().unwrap(), Self::sequence(position));
                }
                _ => {}
            }
        }
    }

    /// Waits (reading what it prints) until `done` holds.
    async fn until(&mut self, within: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = std::time::Instant::now() + within;
        loop {
            self.drain();
            if done(self) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not in time; the child owns {:?} after {:?}, read {} records",
                self.owned,
                self.changes,
                self.records.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn payloads(&self) -> std::collections::BTreeSet<String> {
        self.records.iter().map(|(_, _, p)| p.clone()).collect()
    }
}

/// Two members balance four shards (the second asks the first for two, handed over once
/// drained); the first is killed (-9) and the second owns every shard after the failover time.
/// Only what the killed member had not committed past is processed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_s_shards_are_taken_over_after_the_failover_time() {
    let wait = Duration::from_secs(60);
    let (url, log) = fresh(&["t"], 4).await;
    append_numbered(&*log, 0..40).await;
    let mut a = Child::start(&url);
    a.until(wait, "a alone takes every shard and reads them", |a| {
        a.owned.len() == 4 && a.payloads() == numbered(0..40)
    })
    .await;

    let mut b = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut seen = Seen::default();
    until(&mut *b, &mut seen, wait, "b gets two shards", |s| s.owned.len() == 2).await;
    a.until(wait, "a lets two go", |a| a.owned.len() == 2).await;
    assert!(
        seen.records.is_empty(),
        "handed over drained and committed, nothing is read twice: {:?}",
        seen.records
    );

    append_numbered(&*log, 40..80).await;
    let both = |a: &Child, seen: &Seen| {
        a.payloads().union(&seen.payloads()).cloned().collect::<std::collections::BTreeSet<_>>()
    };
    let deadline = std::time::Instant::now() + wait;
    while both(&a, &seen) != numbered(0..80) {
        assert!(std::time::Instant::now() < deadline, "records 40..80 not all processed");
        if let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(50), b.next_event()).await {
            seen.take(&mut *b, event).await;
        }
        a.drain();
    }
    assert!(seen.payloads().is_disjoint(&a.payloads()), "each record processed by one member");

    // SIGKILL: a renews nothing more and releases nothing.
    a.process.kill().unwrap();
    a.process.wait().unwrap();
    a.drain();
    let killed = std::time::Instant::now();
    append_numbered(&*log, 80..120).await;
    until(&mut *b, &mut seen, wait, "b takes over every shard", |s| {
        s.owned.len() == 4 && numbered(80..120).is_subset(&s.payloads())
    })
    .await;
    assert!(killed.elapsed() >= Duration::from_secs(2), "taken over before the failover time (3 s)");
    for (partition, position, payload) in &seen.records {
        if a.payloads().contains(payload) {
            let committed = a.committed.get(partition);
            assert!(
                committed.is_none_or(|c| position > c),
                "{payload} on {partition} was processed again though a had committed past it ({committed:?})"
            );
        }
    }
    b.close().await;
}

/// A member that joins is handed leases only once their owner let them go (drained): while the
/// owner holds the revocation, the newcomer does not read the shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_member_is_handed_leases_only_once_the_owner_drained() {
    let wait = Duration::from_secs(60);
    let (_, log) = fresh(&["t"], 4).await;
    let mut a = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut a_seen = Seen::default();
    until(&mut *a, &mut a_seen, wait, "a takes every shard", |s| s.owned.len() == 4).await;
    let mut b = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut b_seen = Seen::default();
    let revocation = loop {
        match tokio::time::timeout(wait, a.next_event())
            .await
            .expect("a was never asked for a lease")
            .unwrap()
        {
            GroupEvent::Revoked(revocation) => break revocation,
            event => a_seen.take(&mut *a, event).await,
        }
    };
    let asked = revocation.partitions[0].partition;
    // Held: b must not get it meanwhile (two lease rounds of b's).
    let held_until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(event) = tokio::time::timeout_at(held_until, b.next_event()).await {
        b_seen.take(&mut *b, event.unwrap()).await;
        assert!(!b_seen.owned.contains(&asked), "b was given {asked} while a still held it");
    }
    drop(revocation);
    a_seen.owned.remove(&asked);
    until(&mut *b, &mut b_seen, wait, "b gets the lease a let go", |s| s.owned.contains(&asked)).await;
    // Balanced in the end: two each.
    let deadline = tokio::time::Instant::now() + wait;
    while b_seen.owned.len() < 2 || a_seen.owned.len() > 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not balanced: {:?} / {:?}",
            a_seen.owned,
            b_seen.owned
        );
        tokio::select! {
            event = a.next_event() => a_seen.take(&mut *a, event.unwrap()).await,
            event = b.next_event() => b_seen.take(&mut *b, event.unwrap()).await,
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
    assert!(a_seen.owned.is_disjoint(&b_seen.owned), "{:?} / {:?}", a_seen.owned, b_seen.owned);
    append_numbered(&*log, 0..40).await;
    let deadline = tokio::time::Instant::now() + wait;
    while a_seen.payloads().len() + b_seen.payloads().len() < 40 {
        assert!(tokio::time::Instant::now() < deadline, "records not all processed");
        tokio::select! {
            event = a.next_event() => a_seen.take(&mut *a, event.unwrap()).await,
            event = b.next_event() => b_seen.take(&mut *b, event.unwrap()).await,
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
    let all: std::collections::BTreeSet<String> =
        a_seen.payloads().union(&b_seen.payloads()).cloned().collect();
    assert_eq!(all, numbered(0..40));
    assert!(a_seen.payloads().is_disjoint(&b_seen.payloads()), "each record processed once");
    a.close().await;
    b.close().await;
}

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
