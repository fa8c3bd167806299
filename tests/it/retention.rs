//! The embedded log's retention (`tickcast up --retention`): old records go once the archiver
//! (and the projector) committed past them, never a running session's events or ticks, and
//! nothing before the tick generators have committed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tickcast_eventlog::embedded::EmbeddedLog;
use tickcast_eventlog::{CommitPosition, Durability, EventLog, NewRecord, Position, StartFrom};
use tickcast_processors::{Retention, RetentionConfig};
use tickcast_schemas::topics::GAME_EVENTS;

const TICKS: &str = "ticks.eu-west-1";
const HOUR: i64 = 3_600_000;

fn record(key: &str, timestamp_ms: i64, what: &str) -> NewRecord {
    NewRecord { key: key.into(), timestamp_ms, payload: Bytes::from(what.to_owned()) }
}

/// What `topic` still holds, as the payloads written.
async fn left(log: &EmbeddedLog, topic: &str) -> Vec<String> {
    let records = log.read(topic, StartFrom::Beginning, 100).await.unwrap();
    records.iter().map(|r| String::from_utf8(r.payload.to_vec()).unwrap()).collect()
}

async fn commit(log: &EmbeddedLog, group: &str, topic: &str, next: u64) {
    let mut member = log.consume(group, &[topic], StartFrom::Beginning).await.unwrap();
    member.commit(topic, 0, CommitPosition { next: Position::Offset(next), not_after_ms: 0 }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_archived_records_of_ended_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // Game a ended 3 h ago; b has run for 2 h; c started 10 minutes ago.
    let events = vec![
        record("a", now - 3 * HOUR, "a created"),
        record("a", now - 3 * HOUR + 10_000, "a ended"),
        record("b", now - 2 * HOUR, "b created"),
        record("b", now - 2 * HOUR + 5_000, "b joined"),
        record("c", now - 600_000, "c created"),
    ];
    log.append(GAME_EVENTS, events, Durability::Durable).await.unwrap();
    let ticks = vec![
        record("a", now - 3 * HOUR + 1_000, "a tick 0"),
        record("a", now - 3 * HOUR + 2_000, "a tick 1"),
        record("b", now - 2 * HOUR + 1_000, "b tick 0"),
        record("b", now - 300_000, "b tick 1"),
    ];
    log.append(TICKS, ticks, Durability::Durable).await.unwrap();
    let config = RetentionConfig {
        keep: Duration::from_secs(3600),
        every: Duration::from_secs(60),
        tick_topics: vec![TICKS.into()],
        archiver_group: "archiver".into(),
        generator_group: "tick-generator".into(),
        projector_group: Some("projector".into()),
    };
    let retention = Retention::new(Arc::clone(&log), config);

    // Archived, but no generator has said which sessions run: nothing goes.
    commit(&log, "archiver", GAME_EVENTS, 5).await;
    commit(&log, "archiver", TICKS, 1).await;
    commit(&log, "projector", GAME_EVENTS, 1).await;
    assert_eq!(retention.prune_once(now).await.unwrap(), 0);

    // The generators' commit stays at b, the oldest running session; the projector has folded
    // only a's creation, the archiver only a's first tick: those two go.
    commit(&log, "tick-generator", GAME_EVENTS, 2).await;
    assert_eq!(retention.prune_once(now).await.unwrap(), 2);
    assert_eq!(left(&log, GAME_EVENTS).await, ["a ended", "b created", "b joined", "c created"]);
    assert_eq!(left(&log, TICKS).await, ["a tick 1", "b tick 0", "b tick 1"]);

    // Projector and archiver catch up: the rest of a goes; b's events and ticks, older than the
    // retention, stay while b runs.
    commit(&log, "archiver", TICKS, 4).await;
    commit(&log, "projector", GAME_EVENTS, 5).await;
    assert_eq!(retention.prune_once(now).await.unwrap(), 2);
    assert_eq!(left(&log, GAME_EVENTS).await, ["b created", "b joined", "c created"]);
    assert_eq!(left(&log, TICKS).await, ["b tick 0", "b tick 1"]);

    // b ends, its end archived, the generators past it: b's old events and old tick go; what is
    // younger than the retention (c, b's end, b's last tick) stays.
    log.append(GAME_EVENTS, vec![record("b", now - 120_000, "b ended")], Durability::Durable).await.unwrap();
    commit(&log, "tick-generator", GAME_EVENTS, 6).await;
    commit(&log, "archiver", GAME_EVENTS, 6).await;
    assert_eq!(retention.prune_once(now).await.unwrap(), 3);
    assert_eq!(left(&log, GAME_EVENTS).await, ["c created", "b ended"]);
    assert_eq!(left(&log, TICKS).await, ["b tick 1"]);
    assert_eq!(retention.prune_once(now).await.unwrap(), 0);

    // A reader from the beginning starts at the first record left; offsets are unchanged.
    let first = log.read(GAME_EVENTS, StartFrom::Beginning, 1).await.unwrap();
    assert_eq!(first[0].position, Position::Offset(4));
}
