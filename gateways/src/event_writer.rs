//! The player-event writer: connections queue their events (joins, latency samples, kicks,
//! leaves) without waiting, and one task appends them to `game-events` in batches, durably;
//! beside them, the gateway's heartbeats for the sessions it serves.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tickcast_eventlog::{Durability, NewRecord, RetryHint};
use tickcast_schemas::event::{Event, EventBody, GATEWAY_HEARTBEAT_MS, GatewayHeartbeat};
use tickcast_schemas::topics::GAME_EVENTS;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Gateway, metrics, now_ms};

/// How long the event writer gathers player events before appending them.
const EVENT_LINGER: Duration = Duration::from_millis(20);

/// The longest pause between two tries of an append the log refused for a passing reason.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

impl Gateway {
    /// Queues an event for the log. Never blocks a connection on a write.
    pub(crate) fn record(&self, session_id: &str, body: EventBody) {
        let event = Event::new(session_id, now_ms(), self.source.clone(), body);
        if let Err(error) = self.events.try_send(event) {
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

    /// Appends queued events in batches until shutdown, then drains what is left.
    pub(crate) async fn write_events(self: Arc<Self>, mut events: mpsc::Receiver<Event>) {
        let connections_done = async {
            self.shutdown.cancelled().await;
            self.connections.close();
            self.connections.wait().await;
        };
        tokio::pin!(connections_done);
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                received = events.recv_many(&mut batch, 4096) => {
                    if received == 0 {
                        break;
                    }
                    // Nobody waits for these appends: let a few milliseconds of events share one
                    // durable commit (a latency sample per player per second adds up).
                    tokio::time::sleep(EVENT_LINGER).await;
                    while batch.len() < 4096 && let Ok(event) = events.try_recv() {
                        batch.push(event);
                    }
                }
                () = &mut connections_done => {
                    while let Ok(event) = events.try_recv() {
                        batch.push(event);
                    }
                    self.append(&mut batch).await;
                    break;
                }
            }
            self.append(&mut batch).await;
        }
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
