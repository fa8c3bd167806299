//! The event log contract, written once and run against each backend, plus the embedded
//! backend's crash test.

mod suite;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use bytes::Bytes;
use tickcast_eventlog::{Durability, EventLog, NewRecord, StartFrom, embedded::EmbeddedLog, open};

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
    async fn concurrent_appends_get_distinct_gapless_offsets() {
        let (_dir, log) = fresh();
        suite::concurrent_appends_get_distinct_gapless_offsets(log).await;
    }

    #[tokio::test]
    async fn group_offsets_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("embedded://{}", dir.path().display());
        suite::group_offsets_survive_reopen(|| open(&url).unwrap()).await;
    }

    #[tokio::test]
    async fn a_group_consumes_several_topics() {
        let (_dir, log) = fresh();
        suite::a_group_consumes_several_topics(log).await;
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
/// several tasks and prints each acknowledged offset, until killed.
#[test]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let log = Arc::new(EmbeddedLog::open(&dir).unwrap());
        let (acks, mut printed) = tokio::sync::mpsc::unbounded_channel::<(u64, String)>();
        for writer in 0..8 {
            let (log, acks) = (Arc::clone(&log), acks.clone());
            tokio::spawn(async move {
                for n in 0u64.. {
                    let payload = format!("w{writer}-n{n}");
                    let record = NewRecord {
                        key: format!("k{writer}"),
                        timestamp_ms: 0,
                        payload: Bytes::from(payload.clone()),
                    };
                    let offsets = log.append("facts", vec![record], Durability::Durable).await.unwrap();
                    acks.send((offsets[0], payload)).unwrap();
                }
            });
        }
        let mut out = std::io::stdout().lock();
        while let Some((offset, payload)) = printed.recv().await {
            writeln!(out, "ack {offset} {payload}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child_appender", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.len() < 2000 {
        assert!(std::time::Instant::now() < deadline, "child acknowledged only {} appends", acked.len());
        let line = lines.next().expect("child exited early").unwrap();
        if let Some(rest) = line.strip_prefix("ack ") {
            let (offset, payload) = rest.split_once(' ').unwrap();
            acked.push((offset.parse::<u64>().unwrap(), payload.to_owned()));
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
    let mut stored = std::collections::HashMap::new();
    let mut from = 0;
    loop {
        let batch = log.read("facts", StartFrom::Offset(from), 4096).await.unwrap();
        let Some(last) = batch.last() else { break };
        from = last.offset + 1;
        for record in batch {
            stored.insert(record.offset, String::from_utf8(record.payload.to_vec()).unwrap());
        }
    }
    for (offset, payload) in &acked {
        assert_eq!(stored.get(offset), Some(payload), "acknowledged append at offset {offset} was lost");
    }
    // Offsets stay gapless after a crash, and appends continue after the last one.
    assert_eq!(stored.len() as u64, from);
    let next = log
        .append(
            "facts",
            vec![NewRecord { key: "k".into(), timestamp_ms: 0, payload: Bytes::from_static(b"after") }],
            Durability::Durable,
        )
        .await
        .unwrap();
    assert_eq!(next, vec![from]);
}
