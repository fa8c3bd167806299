//! The matchmaker (docs/protocol.md, "Matchmaking"): consumes `game-events` as a consumer
//! group, keeps the tickets searching, and every `interval` expires the ones waited out and
//! forms the matches its [`MatchRules`] allow: each match's game is a `session_created`
//! (`createdBy: "matchmaker"`) in the region the match chose, then a `match_formed` naming the
//! tickets. Every matchmaking event is written under one key, so it lives in one partition: the
//! member that owns it is the one active matchmaker, and a standby that takes it over (after a
//! crash, a restart, a rebalance) reads every live ticket back from the log.
//!
//! Committed position, per partition: the `match_requested` of the oldest ticket still
//! searching (or the consumed position when none is), so the next owner re-reads exactly the
//! tickets it must keep matching. It forms no match before its partition is caught up: a ticket
//! read early may have been matched, cancelled or expired further on.
//!
//! A crash between a match's `session_created` and its `match_formed` leaves its tickets
//! searching: the next owner matches them into another game, and the first one, which nobody
//! joins, ends as idle.

pub mod rules;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tickcast_eventlog::{
    CommitPosition, Durability, EventLog, GroupConsumer, GroupEvent, NewRecord, Record, StartFrom,
};
use tickcast_schemas::event::{Event, EventBody, GameParams, SessionCreated};
use tickcast_schemas::health::Readiness;
use tickcast_schemas::match_events::{MATCH_KEY, MatchExpired, MatchFormed};
use tickcast_schemas::topics::GAME_EVENTS;
use tokio_util::sync::CancellationToken;

use self::rules::{Match, MatchRules, Waiting};
use crate::{Error, metrics, now_ms};

/// The game a matchmaker creates unless told otherwise: the edge's defaults for a game start.
pub const MATCHED_GAME: GameParams = GameParams {
    tick_ms: 100,
    max_tick_ms: 100,
    countdown_ms: 3_000,
    max_rounds: 1_000,
    min_break_steps: 10,
    max_break_steps: 100,
};

/// How a matchmaker runs.
#[derive(Debug, Clone)]
pub struct MatchmakerConfig {
    /// Consumer group name shared by all matchmakers (one active, the others standing by).
    pub group: String,
    /// `matchmaker@<instance>` is the `source` of what it writes.
    pub instance: String,
    pub rules: MatchRules,
    /// The games it creates (a fixed pace).
    pub game: GameParams,
    /// How often tickets are matched and expired.
    pub interval: Duration,
    /// Ready once it joined its group (`/readyz`).
    pub readiness: Readiness,
}

impl Default for MatchmakerConfig {
    fn default() -> Self {
        Self {
            group: "matchmaker".into(),
            instance: "0".into(),
            rules: MatchRules::default(),
            game: MATCHED_GAME,
            interval: Duration::from_millis(250),
            readiness: Readiness::new("the matchmaker to join its consumer group"),
        }
    }
}

/// A ticket searching, with where its request is in the log.
#[derive(Debug)]
struct Searching {
    ticket: Waiting,
    partition: u32,
    requested: CommitPosition,
}

/// The matchmaker role.
#[derive(Debug)]
pub struct Matchmaker {
    log: Arc<dyn EventLog>,
    config: MatchmakerConfig,
    source: String,
    /// The tickets searching, oldest first.
    searching: Vec<Searching>,
    /// Owned partitions read up to where they ended when assigned: their tickets may be matched.
    caught_up: HashSet<u32>,
    /// Per owned partition: the position after the last record read.
    consumed: HashMap<u32, CommitPosition>,
    /// Per owned partition: the position last committed, to commit only what moved.
    committed: HashMap<u32, CommitPosition>,
}

impl Matchmaker {
    #[must_use]
    pub fn new(log: Arc<dyn EventLog>, config: MatchmakerConfig) -> Self {
        let source = format!("matchmaker@{}", config.instance);
        Self {
            log,
            config,
            source,
            searching: Vec::new(),
            caught_up: HashSet::new(),
            consumed: HashMap::new(),
            committed: HashMap::new(),
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        let mut consumer = self.log.consume(&self.config.group, &[GAME_EVENTS], StartFrom::Beginning).await?;
        metrics::expose_matchmaker();
        let mut round = tokio::time::interval(self.config.interval);
        round.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = round.tick() => {
                    self.match_round(now_ms()).await?;
                    self.commit(&mut *consumer).await?;
                }
                event = consumer.next_event() => match event? {
                    GroupEvent::Records(records) => self.read(records),
                    GroupEvent::Assigned(_) => self.config.readiness.set_ready(),
                    GroupEvent::CaughtUp(partitions) => {
                        self.config.readiness.set_ready();
                        self.caught_up.extend(partitions.iter().filter(|p| p.topic == GAME_EVENTS).map(|p| p.partition));
                    }
                    GroupEvent::Revoked(revocation) => {
                        let gone: Vec<u32> = revocation.partitions.iter().map(|p| p.partition).collect();
                        self.searching.retain(|s| !gone.contains(&s.partition));
                        for partition in &gone {
                            self.caught_up.remove(partition);
                            self.consumed.remove(partition);
                            self.committed.remove(partition);
                        }
                        revocation.release();
                    }
                },
            }
        }
        self.commit(&mut *consumer).await?;
        consumer.close().await;
        tracing::info!("matchmaker stopped");
        Ok(())
    }

    /// Folds the matchmaking events of `records` into the tickets searching.
    fn read(&mut self, records: Vec<Record>) {
        for record in records {
            self.consumed.insert(
                record.partition,
                CommitPosition { next: record.position.next(), not_after_ms: record.timestamp_ms },
            );
            if &*record.key != MATCH_KEY
                || !matches!(
                    Event::peek_type(&record.payload),
                    Some("match_requested" | "match_formed" | "match_cancelled" | "match_expired")
                )
            {
                continue;
            }
            let Ok(event) = Event::from_bytes(&record.payload) else {
                tracing::warn!(position = %record.position, "skipping an undecodable matchmaking event");
                continue;
            };
            match event.body {
                EventBody::MatchRequested(requested) => {
                    if self.searching.iter().any(|s| s.ticket.ticket_id == requested.ticket_id) {
                        continue;
                    }
                    self.searching.push(Searching {
                        ticket: Waiting {
                            ticket_id: requested.ticket_id,
                            latencies: requested.latencies,
                            preferred_region: requested.preferred_region,
                            since: event.at,
                        },
                        partition: record.partition,
                        requested: CommitPosition {
                            next: record.position.clone(),
                            not_after_ms: record.timestamp_ms,
                        },
                    });
                }
                EventBody::MatchFormed(formed) => {
                    self.searching.retain(|s| !formed.ticket_ids.contains(&s.ticket.ticket_id))
                }
                EventBody::MatchCancelled(cancelled) => {
                    self.searching.retain(|s| s.ticket.ticket_id != cancelled.ticket_id)
                }
                EventBody::MatchExpired(expired) => {
                    self.searching.retain(|s| s.ticket.ticket_id != expired.ticket_id)
                }
                _ => {}
            }
        }
        metrics::tickets_searching(self.searching.len());
    }

    /// Expires the tickets waited out and forms every match that may form, among the tickets
    /// of caught-up partitions.
    async fn match_round(&mut self, now: i64) -> Result<(), Error> {
        let ready: Vec<Waiting> = self
            .searching
            .iter()
            .filter(|s| self.caught_up.contains(&s.partition))
            .map(|s| s.ticket.clone())
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        let rules = self.config.rules;
        let expired: Vec<String> = rules.expired(&ready, now).map(|w| w.ticket_id.clone()).collect();
        if !expired.is_empty() {
            let records = expired
                .iter()
                .map(|id| {
                    self.record(
                        MATCH_KEY,
                        "",
                        now,
                        EventBody::MatchExpired(MatchExpired { ticket_id: id.clone() }),
                    )
                })
                .collect();
            self.log.append(GAME_EVENTS, records, Durability::Durable).await?;
            metrics::tickets_expired(expired.len());
            self.searching.retain(|s| !expired.contains(&s.ticket.ticket_id));
        }
        let mut open: Vec<Waiting> = ready.into_iter().filter(|w| !expired.contains(&w.ticket_id)).collect();
        for found in rules.form_all(&mut open, now) {
            self.form(found, now).await?;
        }
        metrics::tickets_searching(self.searching.len());
        Ok(())
    }

    /// Creates the match's game, then says which tickets play it.
    async fn form(&mut self, found: Match, now: i64) -> Result<(), Error> {
        let seed = getrandom::u64().map_err(|e| Error::Entropy(e.to_string()))?;
        let session_id = uuid::Uuid::now_v7().to_string();
        let created =
            SessionCreated::new_game(found.region.clone(), seed, now, self.config.game, "matchmaker".into());
        // The game first: a ticket matched to a game not yet logged would send its player nowhere.
        let record = self.record(&session_id, &session_id, now, EventBody::SessionCreated(created));
        self.log.append(GAME_EVENTS, vec![record], Durability::Durable).await?;
        let formed = MatchFormed { ticket_ids: found.ticket_ids.clone(), region: found.region.clone() };
        let record = self.record(MATCH_KEY, &session_id, now, EventBody::MatchFormed(formed));
        self.log.append(GAME_EVENTS, vec![record], Durability::Durable).await?;
        for searching in self.searching.iter().filter(|s| found.ticket_ids.contains(&s.ticket.ticket_id)) {
            metrics::match_waited(now - searching.ticket.since);
        }
        self.searching.retain(|s| !found.ticket_ids.contains(&s.ticket.ticket_id));
        metrics::match_formed(&found.region);
        tracing::info!(session = %session_id, region = %found.region, players = found.ticket_ids.len(), worst_latency_ms = found.worst_latency_ms, "match formed");
        Ok(())
    }

    fn record(&self, key: &str, session_id: &str, now: i64, body: EventBody) -> NewRecord {
        let event = Event::new(session_id, now, &self.source, body);
        NewRecord { key: key.to_owned(), timestamp_ms: now, payload: event.to_bytes().into() }
    }

    /// Commits, per partition, the oldest searching ticket's request, or what was consumed.
    async fn commit(&mut self, consumer: &mut dyn GroupConsumer) -> Result<(), Error> {
        let mut targets = self.consumed.clone();
        for searching in &self.searching {
            targets.entry(searching.partition).and_modify(|t| {
                if searching.requested.next < t.next {
                    *t = searching.requested.clone();
                }
            });
        }
        for (partition, target) in targets {
            if self.committed.get(&partition) != Some(&target) {
                consumer.commit(GAME_EVENTS, partition, target.clone()).await?;
                self.committed.insert(partition, target);
            }
        }
        Ok(())
    }
}
