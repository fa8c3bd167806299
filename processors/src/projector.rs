//! The projector: consumes `game-events` as a consumer group and folds every event into the
//! projection store ([`tickcast_projections`]), then commits. The store's writes are
//! idempotent, so a restart, a rebalance or a second projector replays without harm; offsets
//! are committed only after the writes they cover, so nothing is skipped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tickcast_eventlog::{CommitPosition, EventLog, GroupConsumer, GroupEvent, Record, StartFrom};
use tickcast_projections::ProjectionStore;
use tickcast_projections::apply::{Applied, Fold, Positioned, SessionEnds};
use tickcast_schemas::event::Event;
use tickcast_schemas::health::Readiness;
use tickcast_schemas::topics::GAME_EVENTS;
use tokio_util::sync::CancellationToken;

use crate::{Error, metrics, now_ms};

/// How far before a committed position's record a restart may begin reading (its writer's
/// clock may run behind another's): replays are harmless, holes are not.
const COMMIT_TIME_SLACK_MS: i64 = 60_000;
/// The first wait after a store error that may pass; it doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// How the projector behaves.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// The consumer group (one per deployment and store).
    pub group: String,
    /// How long items outlive their session's end.
    pub ttl: Duration,
    /// How often expired items are deleted, where the store does not do it itself.
    pub expire_every: Duration,
    /// Ready once the projector joined its group (`/readyz`).
    pub readiness: Readiness,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self {
            group: "tickcast-projector".into(),
            ttl: Duration::from_secs(7 * 24 * 3600),
            expire_every: Duration::from_secs(60),
            readiness: Readiness::new("the projector to join its consumer group"),
        }
    }
}

/// The projector role.
#[derive(Debug)]
pub struct Projector {
    log: Arc<dyn EventLog>,
    store: Arc<dyn ProjectionStore>,
    config: ProjectorConfig,
}

impl Projector {
    #[must_use]
    pub fn new(log: Arc<dyn EventLog>, store: Arc<dyn ProjectionStore>, config: ProjectorConfig) -> Self {
        Self { log, store, config }
    }

    /// Runs until `shutdown`, committing what it projected.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let mut ends = SessionEnds::default();
        metrics::expose_projector();
        self.store.create_tables().await?;
        let mut consumer = self.log.consume(&self.config.group, &[GAME_EVENTS], StartFrom::Beginning).await?;
        let mut expire = tokio::time::interval(self.config.expire_every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = expire.tick() => {
                    match self.store.expire(now_ms() / 1000).await {
                        Ok(0) => {}
                        Ok(deleted) => tracing::info!(deleted, "deleted expired projection items"),
                        Err(error) => tracing::warn!(%error, "could not delete expired projection items"),
                    }
                }
                event = consumer.next_event() => match event? {
                    GroupEvent::Records(records) => {
                        let Some(applied) = self.project_until_done(&records, &mut ends, &shutdown).await? else { break };
                        tracing::debug!(records = records.len(), ?applied, "projected");
                        if let Some(newest) = records.iter().map(|r| r.timestamp_ms).max() {
                            metrics::projected(records.len(), newest, now_ms());
                        }
                        commit(&mut *consumer, &records).await?;
                    }
                    GroupEvent::Assigned(_) | GroupEvent::CaughtUp(_) => self.config.readiness.set_ready(),
                    // Everything handed out was projected and committed before this: let go.
                    GroupEvent::Revoked(revocation) => revocation.release(),
                },
            }
        }
        consumer.close().await;
        tracing::info!("projector stopped");
        Ok(())
    }

    /// Projects `records`, waiting out store errors that may pass (throttling, a store that is
    /// briefly away) until `shutdown`: `None` when stopped first.
    async fn project_until_done(
        &self,
        records: &[Record],
        ends: &mut SessionEnds,
        shutdown: &CancellationToken,
    ) -> Result<Option<Applied>, Error> {
        let events = decode(records);
        let mut wait = FIRST_RETRY_WAIT;
        loop {
            match project(self.store.as_ref(), &events, self.config.ttl, ends).await {
                Ok(applied) => return Ok(Some(applied)),
                Err(error) if error.is_transient() => {
                    tracing::warn!(%error, retry_in = ?wait, "the projection store refused a write; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(None),
                        () = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(MAX_RETRY_WAIT);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// Folds `events` into `store`.
pub async fn project(
    store: &dyn ProjectionStore,
    events: &[Positioned],
    ttl: Duration,
    ends: &mut SessionEnds,
) -> tickcast_projections::Result<Applied> {
    Fold::new(store, i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX), ends).apply(events).await
}

/// The events of `records` with their positions; undecodable ones are skipped (and said).
pub fn decode(records: &[Record]) -> Vec<Positioned> {
    records
        .iter()
        .filter_map(|record| match Event::from_bytes(&record.payload) {
            Ok(event) => Some(Positioned { position: record.position.order_key(), event }),
            Err(error) => {
                tracing::warn!(position = %record.position, %error, "skipping an undecodable event");
                None
            }
        })
        .collect()
}

/// Commits, per partition, past the last of `records`.
async fn commit(consumer: &mut dyn GroupConsumer, records: &[Record]) -> Result<(), Error> {
    let mut last: HashMap<(&str, u32), &Record> = HashMap::new();
    for record in records {
        last.insert((&record.topic, record.partition), record);
    }
    for ((topic, partition), record) in last {
        let position = CommitPosition {
            next: record.position.next(),
            not_after_ms: record.timestamp_ms - COMMIT_TIME_SLACK_MS,
        };
        consumer.commit(topic, partition, position).await?;
    }
    Ok(())
}

/// Rebuilds the store from scratch: folds every event `game-events` holds now into a new, empty
/// store beside it, then switches to that one at once (on SQLite; DynamoDB's tables are emptied
/// and refilled in place), so the old items serve until the new ones are complete and a rebuild
/// stopped half-way changes nothing. Returns how many events were read. Stop the projectors
/// first: what one writes meanwhile is replaced by the rebuild's.
pub async fn rebuild(log: &dyn EventLog, store: &dyn ProjectionStore, ttl: Duration) -> Result<u64, Error> {
    store.create_tables().await?;
    let target = store.begin_rebuild().await?;
    let mut scan = log.scan(GAME_EVENTS, StartFrom::Beginning).await?;
    let (mut read, mut ends) = (0, SessionEnds::default());
    while let Some(batch) = scan.next_batch().await? {
        read += batch.len() as u64;
        project(target.as_ref(), &decode(&batch), ttl, &mut ends).await?;
    }
    store.finish_rebuild().await?;
    Ok(read)
}
