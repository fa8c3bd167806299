//! Retention of the embedded log (`tickcast up --retention`): records older than the retention
//! are deleted once nothing still needs them. Kafka and Kinesis delete by time themselves
//! (`topics create --retention`, the streams' retention period).
//!
//! A record of a topic is deleted only when all of these hold:
//! - it is older than the retention (its writer's timestamp);
//! - the archiver has committed past it: it is in a closed Parquet file;
//! - on `game-events`, the projector (when there is one) has committed past it too, and it lies
//!   before the tick generators' commit — which stays at the `session_created` of the oldest
//!   running session, so no running session loses an event;
//! - on a tick topic, it was written before the oldest running session was created (that
//!   `session_created`'s timestamp), so a generator taking a running session over still finds
//!   where its ticks got to.
//!
//! Before any of these groups has committed, nothing is deleted.

use std::sync::Arc;
use std::time::Duration;

use tickcast_eventlog::embedded::EmbeddedLog;
use tickcast_eventlog::{EventLog, Position, StartFrom};
use tickcast_schemas::topics::GAME_EVENTS;
use tokio_util::sync::CancellationToken;

use crate::{Error, metrics, now_ms};

/// Records deleted per transaction: appends queued behind a delete wait for one short one.
const DELETE_CHUNK: u32 = 10_000;

/// What the retention keeps and whose progress guards it.
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How long records are kept.
    pub keep: Duration,
    /// How often it looks for records to delete.
    pub every: Duration,
    /// The tick topics (`ticks.<region>`); `game-events` is always looked at.
    pub tick_topics: Vec<String>,
    /// The archiver's group: nothing it has not archived is deleted.
    pub archiver_group: String,
    /// The tick generators' group: its commit on `game-events` marks the oldest running session.
    pub generator_group: String,
    /// The projector's group, when projections are kept: nothing it has not projected is deleted.
    pub projector_group: Option<String>,
}

/// The retention role.
#[derive(Debug)]
pub struct Retention {
    log: Arc<EmbeddedLog>,
    config: RetentionConfig,
}

impl Retention {
    #[must_use]
    pub const fn new(log: Arc<EmbeddedLog>, config: RetentionConfig) -> Self {
        Self { log, config }
    }

    /// Deletes what may go every `config.every` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let mut every = tokio::time::interval(self.config.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while shutdown.run_until_cancelled(every.tick()).await.is_some() {
            match self.prune_once(now_ms()).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(deleted, "deleted records past their retention"),
                Err(error) => {
                    tracing::warn!(%error, "could not apply the log's retention; trying again later")
                }
            }
        }
        Ok(())
    }

    /// One pass at `now_ms`: deletes every record that may go; returns how many.
    pub async fn prune_once(&self, now_ms: i64) -> Result<u64, Error> {
        let cutoff = now_ms - i64::try_from(self.config.keep.as_millis()).unwrap_or(i64::MAX);
        let Some(running_from) = self.log.committed(&self.config.generator_group, GAME_EVENTS).await? else {
            return Ok(0);
        };
        // The oldest running session's creation (or, with none running, the end of the topic).
        let oldest_running_ms =
            match self.log.read(GAME_EVENTS, StartFrom::Offset(running_from), 1).await?.first() {
                Some(created) => created.timestamp_ms,
                None => now_ms,
            };
        let mut deleted = 0;
        let mut game_events_before = Some(running_from);
        if let Some(group) = &self.config.projector_group {
            game_events_before = min(game_events_before, self.log.committed(group, GAME_EVENTS).await?);
        }
        deleted += self.prune(GAME_EVENTS, game_events_before, cutoff).await?;
        for topic in &self.config.tick_topics {
            deleted += self.prune(topic, Some(u64::MAX), cutoff.min(oldest_running_ms)).await?;
        }
        Ok(deleted)
    }

    /// Deletes `topic`'s records stamped before `older_than_ms`, below `guard` and below what
    /// the archiver committed.
    async fn prune(&self, topic: &str, guard: Option<u64>, older_than_ms: i64) -> Result<u64, Error> {
        let archived = self.log.committed(&self.config.archiver_group, topic).await?;
        // What goes is a prefix of the topic: up to the first record at or after the cutoff.
        let young = self.log.read(topic, StartFrom::Timestamp(older_than_ms), 1).await?;
        let young = young.first().map_or(Some(u64::MAX), |r| match r.position {
            Position::Offset(offset) => Some(offset),
            Position::Sequence { .. } => None,
        });
        let Some(before) = min(min(guard, archived), young) else { return Ok(0) };
        let mut deleted = 0;
        loop {
            let chunk = self.log.prune(topic, before, DELETE_CHUNK).await?;
            deleted += chunk;
            if chunk < u64::from(DELETE_CHUNK) {
                break;
            }
        }
        if deleted > 0 {
            metrics::records_deleted(topic, deleted);
        }
        Ok(deleted)
    }
}

/// The lower of two bounds, `None` (unknown: delete nothing) if either is.
fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(a?.min(b?))
}
