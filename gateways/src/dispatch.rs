//! The dispatcher: reads the region's tick topic once per gateway, decodes each record once and
//! encodes it once as a complete WebSocket frame, and hands the frames to every fan-out shard.
//! It must not write to sockets: the shards own them.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tickcast_eventlog::Record;
use tickcast_schemas::event::{Event, EventBody};
use tickcast_schemas::pace::Pace;
use tickcast_schemas::protocol::ServerMessage;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::caught_up::CaughtUp;
use crate::fanout::{Command, text_frame};
use crate::hub::HeldTick;
use crate::{metrics, now_ms};

/// Tick records forwarded between two yields to the scheduler.
const FORWARD_CHUNK: usize = 16;

/// A record of the tick topic, decoded and encoded once for every shard.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Tick {
        session_id: String,
        /// What the hubs hold for `resume`; its `scheduled_at` is when it was due (its
        /// lateness is measured when it is written).
        tick: HeldTick,
        frame: Bytes,
    },
    /// A frame for the members of a session, kept nowhere (countdowns, player lists).
    Broadcast {
        session_id: String,
        frame: Bytes,
    },
    Ended {
        session_id: String,
        frame: Bytes,
    },
    /// The session's pace changes (the copy of its `tick_rate_changed`, before the tick it
    /// applies from): its members get the frame, and the hubs keep it for later joins.
    Pace {
        session_id: String,
        pace: Pace,
        frame: Bytes,
    },
    /// The session moved to another region (the copy of its `session_migrated` in this
    /// region's tick topic): its members get the frame, then close with 1012 to rejoin there.
    Migrated {
        session_id: String,
        frame: Bytes,
    },
}

/// Decodes tick-topic records into frames, once per gateway; skips what players never see.
pub(crate) fn decode(records: &[Record]) -> Vec<Outgoing> {
    let now = now_ms();
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        let event = match Event::from_bytes(&record.payload) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(position = %record.position, %error, "skipping undecodable tick record");
                continue;
            }
        };
        let session_id = event.session_id;
        out.push(match event.body {
            EventBody::Tick(t) => {
                let tick = HeldTick::of(&t, now);
                Outgoing::Tick { session_id, tick, frame: text_frame(tick.message().to_json()) }
            }
            EventBody::Countdown(c) => Outgoing::Broadcast {
                session_id,
                frame: text_frame(ServerMessage::Countdown { remaining_ms: c.remaining_ms }.to_json()),
            },
            EventBody::SessionEnded(e) => {
                let message =
                    ServerMessage::SessionEnded { reason: e.reason, last_step: e.last_step, seed: e.seed };
                Outgoing::Ended { session_id, frame: text_frame(message.to_json()) }
            }
            // Its copy in this region's tick topic comes after the last tick written here.
            EventBody::SessionMigrated(moved) => {
                let message =
                    ServerMessage::SessionMigrated { region: moved.to_region, from_step: moved.from_step };
                Outgoing::Migrated { session_id, frame: text_frame(message.to_json()) }
            }
            EventBody::TickRateChanged(changed) => {
                let message = ServerMessage::TickRate {
                    from_step: changed.from_step,
                    scheduled_at: changed.scheduled_at,
                    tick_ms: changed.tick_ms,
                    reason: changed.reason,
                };
                Outgoing::Pace { session_id, pace: changed.pace(), frame: text_frame(message.to_json()) }
            }
            EventBody::Unknown => {
                metrics::unknown_event();
                continue;
            }
            _ => continue,
        });
    }
    out
}

/// Reads the tick topic, decodes each record once and hands the frames to every shard, in
/// chunks, until `stop` or a failed read.
pub(crate) async fn dispatch(
    mut ticks: CaughtUp,
    shards: Vec<mpsc::UnboundedSender<Command>>,
    stop: CancellationToken,
) -> Result<(), tickcast_eventlog::Error> {
    loop {
        let records = tokio::select! {
            records = ticks.next_batch() => records?,
            () = stop.cancelled() => return Ok(()),
        };
        for chunk in records.chunks(FORWARD_CHUNK) {
            let outgoing = Arc::new(decode(chunk));
            let queued = Instant::now();
            for shard in &shards {
                let _ = shard.send(Command::Forward(Arc::clone(&outgoing), queued));
            }
        }
    }
}
