//! The player-event writer: connections queue their events (joins, kicks, leaves) and RTT
//! samples without waiting, and one task appends them to `game-events` in batches, durably;
//! beside them, the gateway's heartbeats for the sessions it serves.
//!
//! Samples are gathered per session and written once a second as one `latency_samples` event
//! per session (every player's sample of that second), not one event per player per second:
//! the log, its followers, the projector and the archiver then handle about a tenth of the
//! records. Order per session is kept: an event of a session is written after the samples of
//! that session taken before it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tickcast_eventlog::{Durability, NewRecord, RetryHint};
use tickcast_schemas::event::{
    Event, EventBody, GATEWAY_HEARTBEAT_MS, GatewayHeartbeat, LatencySamples, RttSample,
};
use tickcast_schemas::topics::GAME_EVENTS;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Gateway, metrics, now_ms};

/// How long the event writer gathers player events before appending them.
const EVENT_LINGER: Duration = Duration::from_millis(20);

/// How long RTT samples gather per session before they are written as one event.
const SAMPLES_EVERY: Duration = Duration::from_secs(1);

/// The longest pause between two tries of an append the log refused for a passing reason.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// What a connection queues for the log.
#[derive(Debug)]
pub(crate) enum Queued {
    Event(Event),
    /// One RTT sample of a player of `session_id`, written with the session's others.
    Sample {
        session_id: String,
        sample: RttSample,
    },
}

/// RTT samples not yet written, by session.
#[derive(Debug, Default)]
struct PendingSamples(HashMap<String, Vec<RttSample>>);

impl PendingSamples {
    /// Adds what `queued` holds to `batch`: an event after its session's pending samples (so
    /// they keep their order), a sample to its session's pending ones.
    fn sort(&mut self, queued: Queued, batch: &mut Vec<Event>, source: &str) {
        match queued {
            Queued::Event(event) => {
                if let Some(samples) = self.0.remove(&event.session_id) {
                    batch.push(samples_event(&event.session_id, samples, source));
                }
                batch.push(event);
            }
            Queued::Sample { session_id, sample } => self.0.entry(session_id).or_default().push(sample),
        }
    }

    /// Every pending sample, as one event per session.
    fn flush(&mut self, batch: &mut Vec<Event>, source: &str) {
        for (session_id, samples) in self.0.drain() {
            batch.push(samples_event(&session_id, samples, source));
        }
    }
}

fn samples_event(session_id: &str, samples: Vec<RttSample>, source: &str) -> Event {
    Event::new(session_id, now_ms(), source, EventBody::LatencySamples(LatencySamples { samples }))
}

impl Gateway {
    /// Queues an event for the log. Never blocks a connection on a write.
    pub(crate) fn record(&self, session_id: &str, body: EventBody) {
        let event = Event::new(session_id, now_ms(), self.source.clone(), body);
        self.queue(Queued::Event(event));
    }

    /// Queues an RTT sample of `connection_id` in `session_id`, taken now.
    pub(crate) fn record_sample(&self, session_id: &str, connection_id: &str, rtt_ms: u64) {
        let sample = RttSample { connection_id: connection_id.to_owned(), rtt_ms, at: now_ms() };
        self.queue(Queued::Sample { session_id: session_id.to_owned(), sample });
    }

    fn queue(&self, queued: Queued) {
        if let Err(error) = self.events.try_send(queued) {
            // The writer is 64k events behind: the log is down or far too slow.
            tracing::error!(%error, "gateway event queue is full; event not logged");
            metrics::event_dropped();
        }
    }

    /// Every [`GATEWAY_HEARTBEAT_MS`], a `gateway_heartbeat` for each session this gateway has
    /// players in, until `stop`: the sessions' tick generators count the players of a gateway
    /// that falls silent as gone.
    pub(crate) async fn heartbeats(self: Arc<Self>, stop: CancellationToken) {
        let started_at = self.started_at;
        let mut every = tokio::time::interval(Duration::from_millis(GATEWAY_HEARTBEAT_MS as u64));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while stop.run_until_cancelled(every.tick()).await.is_some() {
            let sessions: BTreeSet<String> =
                self.live.lock().unwrap().keys().map(|(session, _)| session.clone()).collect();
            for session in sessions {
                let body = EventBody::GatewayHeartbeat(GatewayHeartbeat {
                    gateway_id: self.gateway_id.clone(),
                    started_at,
                });
                self.record(&session, body);
            }
        }
    }

    /// Appends queued events in batches (and the samples once a second) until shutdown, then
    /// drains what is left.
    pub(crate) async fn write_events(self: Arc<Self>, mut queue: mpsc::Receiver<Queued>) {
        let connections_done = async {
            self.shutdown.cancelled().await;
            self.connections.close();
            self.connections.wait().await;
        };
        tokio::pin!(connections_done);
        let mut samples_every = tokio::time::interval(SAMPLES_EVERY);
        samples_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut pending, mut incoming, mut batch) = (PendingSamples::default(), Vec::new(), Vec::new());
        loop {
            tokio::select! {
                biased;
                received = queue.recv_many(&mut incoming, 4096) => {
                    if received == 0 {
                        break;
                    }
                    // Nobody waits for these appends: let a few milliseconds of events share one
                    // durable commit.
                    tokio::time::sleep(EVENT_LINGER).await;
                    while incoming.len() < 4096 && let Ok(queued) = queue.try_recv() {
                        incoming.push(queued);
                    }
                    for queued in incoming.drain(..) {
                        pending.sort(queued, &mut batch, &self.source);
                    }
                }
                _ = samples_every.tick() => pending.flush(&mut batch, &self.source),
                () = &mut connections_done => {
                    while let Ok(queued) = queue.try_recv() {
                        pending.sort(queued, &mut batch, &self.source);
                    }
                    pending.flush(&mut batch, &self.source);
                    self.append(&mut batch).await;
                    break;
                }
            }
            self.append(&mut batch).await;
        }
        pending.flush(&mut batch, &self.source);
        self.append(&mut batch).await;
    }

    async fn append(&self, batch: &mut Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let records: Vec<NewRecord> = batch
            .drain(..)
            .map(|e| NewRecord {
                key: e.session_id.clone(),
                timestamp_ms: e.at,
                payload: e.to_bytes().into(),
            })
            .collect();
        // A log that refuses for a passing reason (a broker restarting) is tried again, with a
        // growing pause, so a blip loses no event; meanwhile new events queue up behind (the
        // queue is bounded). A retried batch may land twice if part of it had been written:
        // events carry ids, so readers can tell a copy.
        let mut pause = Duration::from_millis(100);
        loop {
            match self.log.append(GAME_EVENTS, records.clone(), Durability::Durable).await {
                Ok(_) => return,
                Err(error) if error.retry_hint() == RetryHint::Retry => {
                    tracing::warn!(%error, retry_in = ?pause, "could not write gateway events; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY_PAUSE);
                }
                Err(error) => {
                    tracing::error!(%error, events = records.len(), "could not write gateway events; they are lost");
                    metrics::event_dropped();
                    return;
                }
            }
        }
    }
}
