//! The event log contract, written once and run against each backend, plus the embedded
//! backend's crash test.

mod kafka;
mod kinesis;
mod kinesis_members;
mod kinesis_reshard;
mod leases;
mod streams;
mod throttle;

/// The AWS configuration of the tests: moto's server (`TICKCAST_TEST_DYNAMODB`, one endpoint
/// for DynamoDB and Kinesis), with the static credentials the test script sets.
pub(crate) async fn aws_test_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("TICKCAST_TEST_DYNAMODB").unwrap_or_else(|_| {
        panic!("set TICKCAST_TEST_DYNAMODB (an AWS endpoint, e.g. moto's server) or run ./scripts/test.sh, which provides it")
    });
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .load()
        .await
}
mod suite;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use tickcast_eventlog::{Durability, EventLog, NewRecord, Position, StartFrom, embedded::EmbeddedLog, open};

mod embedded {
    use super::*;

    fn fresh() -> (tempfile::TempDir, Arc<dyn EventLog>) {
        let dir = tempfile::tempdir().unwrap();
        let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
        (dir, log)
    }

    #[tokio::test]
    async fn appends_read_back_in_order() {
        let (_dir, log) = fresh();
        suite::appends_read_back_in_order(log).await;
    }

    #[tokio::test]
    async fn offsets_count_from_zero() {
        let (_dir, log) = fresh();
        suite::offsets_count_from_zero(log).await;
    }

    #[tokio::test]
    async fn reads_from_a_timestamp_and_from_the_end() {
        let (_dir, log) = fresh();
        suite::reads_from_a_timestamp_and_from_the_end(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tails_see_live_appends() {
        let (_dir, log) = fresh();
        suite::tails_see_live_appends(log).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_get_distinct_positions() {
        let (_dir, log) = fresh();
        suite::concurrent_appends_get_distinct_positions(log).await;
    }

    #[tokio::test]
    async fn group_offsets_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("embedded://{}", dir.path().display());
        suite::group_offsets_survive_reopen(|| open(&url).unwrap()).await;
    }

    #[tokio::test]
    async fn a_member_from_the_end_misses_nothing_appended_after_catching_up() {
        let (_dir, log) = fresh();
        suite::a_member_from_the_end_misses_nothing_appended_after_catching_up(log).await;
    }

    #[tokio::test]
    async fn a_group_consumes_several_topics() {
        let (_dir, log) = fresh();
        suite::a_group_consumes_several_topics(log).await;
    }

    #[tokio::test]
    async fn a_member_is_told_when_it_has_caught_up() {
        let (_dir, log) = fresh();
        suite::a_member_is_told_when_it_has_caught_up(log).await;
    }

    #[tokio::test]
    async fn a_topic_never_written_reads_empty() {
        let (_dir, log) = fresh();
        assert!(log.read("other", StartFrom::Beginning, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_read_only_log_reads_beside_the_writer_and_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let missing = EmbeddedLog::open_read_only(dir.path()).unwrap_err().to_string();
    assert!(missing.contains("no event log"), "{missing}");
    let writer = EmbeddedLog::open(dir.path()).unwrap();
    let record = NewRecord { key: "k".into(), timestamp_ms: 1, payload: Bytes::from_static(b"fact") };
    writer.append("facts", vec![record.clone()], Durability::Durable).await.unwrap();
    let reader = EmbeddedLog::open_read_only(dir.path()).unwrap();
    let read = reader.read("facts", StartFrom::Beginning, 10).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(&read[0].payload[..], b"fact");
    let refused = reader.append("facts", vec![record], Durability::Durable).await.unwrap_err();
    assert!(matches!(refused, tickcast_eventlog::Error::ReadOnly), "{refused}");
    assert_eq!(writer.read("facts", StartFrom::Beginning, 10).await.unwrap().len(), 1);
}

#[test]
fn unknown_schemes_and_bad_urls_say_what_to_use() {
    for url in ["postgres://x", "./data", "embedded://"] {
        let message = open(url).unwrap_err().to_string();
        assert!(message.contains("embedded://"), "{url}: {message}");
    }
}

const CHILD_DIR_ENV: &str = "TICKCAST_EVENTLOG_CRASH_CHILD_DIR";

/// Run as a child process by `acknowledged_appends_survive_kill_9`: appends durably from
/// several tasks (and relaxed records beside them, as a gateway and a generator do) and prints
/// each acknowledged durable offset, until killed.
#[test]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let log = Arc::new(EmbeddedLog::open(&dir).unwrap());
        let (acks, mut printed) = tokio::sync::mpsc::unbounded_channel::<(u64, String)>();
        let run = std::process::id();
        for writer in 0..8 {
            let (log, acks) = (Arc::clone(&log), acks.clone());
            tokio::spawn(async move {
                for n in 0u64.. {
                    let payload = format!("r{run}-w{writer}-n{n}");
                    let record = NewRecord {
                        key: format!("k{writer}"),
                        timestamp_ms: 0,
                        payload: Bytes::from(payload.clone()),
                    };
                    let offsets = log.append("facts", vec![record], Durability::Durable).await.unwrap();
                    acks.send((offsets[0].offset().unwrap(), payload)).unwrap();
                }
            });
        }
        let relaxed = Arc::clone(&log);
        tokio::spawn(async move {
            for n in 0u64.. {
                let records = (0..10)
                    .map(|i| NewRecord {
                        key: "t".into(),
                        timestamp_ms: 0,
                        payload: Bytes::from(format!("t{n}-{i}")),
                    })
                    .collect();
                relaxed.append("ticks", records, Durability::Relaxed).await.unwrap();
                // At a generator's pace, not a flood: the point is relaxed writes in flight.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        let mut out = std::io::stdout().lock();
        while let Some((offset, payload)) = printed.recv().await {
            writeln!(out, "ack {offset} {payload}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// Every record of `topic`, by offset; panics on a hole.
async fn stored_gapless(log: &EmbeddedLog, topic: &str) -> std::collections::HashMap<u64, String> {
    let mut stored = std::collections::HashMap::new();
    let mut from = 0;
    loop {
        let batch = log.read(topic, StartFrom::Offset(from), 4096).await.unwrap();
        let Some(last) = batch.last() else { break };
        for record in &batch {
            let offset = record.position.offset().unwrap();
            assert_eq!(offset, from, "{topic}: offsets have a hole before {offset}");
            from += 1;
            stored.insert(offset, String::from_utf8(record.payload.to_vec()).unwrap());
        }
        from = last.position.offset().unwrap() + 1;
    }
    stored
}

/// 100 trials on one log: a child appends until it is killed with SIGKILL at a different point
/// each time (after 1 to ~300 acknowledgements); after each, every durable append it had
/// acknowledged, in this trial or an earlier one, is there, and both topics' offsets are gapless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_kill_9() {
    const TRIALS: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    for trial in 0..TRIALS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child_appender", "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Spread the kills over the write stream: a prime stride through 1..=300.
        let kill_after = 1 + (trial * 97) % 300;
        let mut this_trial = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while this_trial < kill_after {
            assert!(
                std::time::Instant::now() < deadline,
                "trial {trial}: child acknowledged only {this_trial} appends"
            );
            let line = lines.next().expect("child exited early").unwrap();
            if let Some(rest) = line.strip_prefix("ack ") {
                let (offset, payload) = rest.split_once(' ').unwrap();
                acked.push((offset.parse::<u64>().unwrap(), payload.to_owned()));
                this_trial += 1;
            }
        }
        // SIGKILL: no destructor, no flush, no checkpoint runs.
        child.kill().unwrap();
        child.wait().unwrap();
        // Acks printed before the kill but not yet read are acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Some((offset, payload)) = line.strip_prefix("ack ").and_then(|r| r.split_once(' ')) {
                acked.push((offset.parse().unwrap(), payload.to_owned()));
            }
        }
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let stored = stored_gapless(&log, "facts").await;
        for (offset, payload) in &acked {
            assert_eq!(
                stored.get(offset),
                Some(payload),
                "trial {trial}: acknowledged append at offset {offset} was lost"
            );
        }
        stored_gapless(&log, "ticks").await;
        // Appends continue right after the last record.
        let next = log
            .append(
                "facts",
                vec![NewRecord {
                    key: "k".into(),
                    timestamp_ms: 0,
                    payload: Bytes::from(format!("after-{trial}")),
                }],
                Durability::Durable,
            )
            .await
            .unwrap();
        assert_eq!(next, vec![Position::Offset(stored.len() as u64)], "trial {trial}");
        acked.push((stored.len() as u64, format!("after-{trial}")));
    }
}
