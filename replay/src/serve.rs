//! Re-broadcast: a recorded game played again over the client protocol, from a hundredth to a
//! thousand times its recorded pace, so the web client or any player client can watch it as a
//! spectator. A spectator's pings are answered and `leave` ends its replay, as at a gateway.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use tickcast_schemas::event::EventBody;
use tickcast_schemas::pace::Pace;
use tickcast_schemas::protocol::{ErrorCode, ServerMessage};

use crate::{Error, History};

/// The slowest and the fastest a replay plays: a hundredth of the recorded pace (a 10 Hz game
/// at one tick every 10 s) to a thousand times it (timers keep up to about a millisecond).
pub const MIN_SPEED: f64 = 0.01;
pub const MAX_SPEED: f64 = 1000.0;

/// A recorded game, ready to play: the frames of the client protocol and when they came,
/// relative to the first.
#[derive(Debug, Clone)]
pub struct Playback {
    pub session_id: String,
    pub joined: ServerMessage,
    /// (ms after the first frame, frame) in the order they were broadcast.
    pub frames: Vec<(i64, ServerMessage)>,
}

impl Playback {
    /// The countdowns, ticks and end of `session_id` as its players received them.
    pub fn of(history: &History, session_id: &str) -> Result<Self, Error> {
        let events = history.session(session_id)?;
        let created =
            crate::session_created(events).ok_or_else(|| Error::UnknownSession(session_id.to_owned()))?;
        let mut frames = Vec::new();
        let mut told_paces = std::collections::HashSet::new();
        for logged in events {
            let at = logged.event.at;
            let frame = match &logged.event.body {
                EventBody::Countdown(c) => ServerMessage::Countdown { remaining_ms: c.remaining_ms },
                EventBody::Tick(t) => ServerMessage::Tick {
                    step: t.step,
                    value: t.value,
                    round: t.round,
                    broken: t.broken,
                    scheduled_at: t.scheduled_at,
                    server_timestamp: t.emitted_at,
                },
                EventBody::SessionEnded(e) => {
                    ServerMessage::SessionEnded { reason: e.reason, last_step: e.last_step, seed: e.seed }
                }
                // Logged twice (the fact and its copy for players): told once.
                EventBody::TickRateChanged(c) if told_paces.insert(c.from_step) => ServerMessage::TickRate {
                    from_step: c.from_step,
                    scheduled_at: c.scheduled_at,
                    tick_ms: c.tick_ms,
                    reason: c.reason,
                },
                _ => continue,
            };
            frames.push((at, frame));
        }
        let first = frames.first().map_or(0, |f| f.0);
        for frame in &mut frames {
            frame.0 -= first;
        }
        let joined = ServerMessage::SessionJoined {
            session_id: session_id.to_owned(),
            start_at: created.start_at,
            tick_ms: created.tick_ms,
            max_tick_ms: created.slowest_tick_ms(),
            pace_from_step: 0,
            pace_scheduled_at: created.start_at,
            // Each change comes as a `tick_rate` frame before the ticks it applies to.
            paces: vec![Pace { from_step: 0, scheduled_at: created.start_at, tick_ms: created.tick_ms }],
            seed_hash: created.seed_hash.clone(),
            region: created.region.clone(),
            players: Vec::new(),
            min_break_steps: created.min_break_steps,
            max_break_steps: created.max_break_steps,
        };
        Ok(Self { session_id: session_id.to_owned(), joined, frames })
    }
}

#[derive(Debug)]
struct Replay {
    playback: Playback,
    speed: f64,
}

/// `/ws` (and `/ws/{region}`, so clients built for a gateway URL work): each connection that
/// sends `join` (or `resume`) gets the whole game from its start, `speed` times as fast.
pub fn router(playback: Playback, speed: f64) -> Router {
    debug_assert!((MIN_SPEED..=MAX_SPEED).contains(&speed), "the command line checks the speed");
    let state = Arc::new(Replay { playback, speed: speed.clamp(MIN_SPEED, MAX_SPEED) });
    Router::new().route("/ws", get(upgrade)).route("/ws/{region}", get(upgrade)).with_state(state)
}

async fn upgrade(State(replay): State<Arc<Replay>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(64 * 1024).on_upgrade(move |socket| watch(socket, replay))
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> bool {
    socket.send(Message::text(message.to_json())).await.is_ok()
}

async fn watch(mut socket: WebSocket, replay: Arc<Replay>) {
    // Wait for the spectator's join; anything else gets an error, as at a gateway.
    loop {
        let Some(Ok(message)) = socket.recv().await else { return };
        let Message::Text(text) = message else { continue };
        match tickcast_schemas::protocol::parse_client_message(&text) {
            Ok(
                tickcast_schemas::protocol::ClientMessage::Join { .. }
                | tickcast_schemas::protocol::ClientMessage::Resume { .. },
            ) => break,
            Ok(_) => {
                let error = ServerMessage::Error {
                    code: ErrorCode::NotJoined,
                    message: "send join to start the replay".into(),
                };
                if !send(&mut socket, &error).await {
                    return;
                }
            }
            Err((code, message)) => {
                if !send(&mut socket, &ServerMessage::Error { code, message }).await {
                    return;
                }
            }
        }
    }
    if !send(&mut socket, &replay.playback.joined).await {
        return;
    }
    let start = tokio::time::Instant::now();
    let mut frames = replay.playback.frames.iter();
    let mut next = frames.next();
    // Each frame at its time; meanwhile the spectator's messages are answered as a gateway
    // answers them (a ping gets its pong, leave ends the replay).
    while let Some((at, frame)) = next {
        let due = start + Duration::from_secs_f64(*at as f64 / 1000.0 / replay.speed);
        tokio::select! {
            () = tokio::time::sleep_until(due) => {
                if !send(&mut socket, frame).await {
                    return;
                }
                next = frames.next();
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    use tickcast_schemas::protocol::{ClientMessage, parse_client_message};
                    let answer = match parse_client_message(&text) {
                        Ok(ClientMessage::Ping { client_timestamp }) => {
                            ServerMessage::Pong { client_timestamp, server_timestamp: now_ms() }
                        }
                        Ok(ClientMessage::Leave) => return,
                        Ok(ClientMessage::Join { .. } | ClientMessage::Resume { .. }) => ServerMessage::Error {
                            code: ErrorCode::AlreadyJoined,
                            message: "this replay is already playing on this connection".into(),
                        },
                        Err((code, message)) => ServerMessage::Error { code, message },
                    };
                    if !send(&mut socket, &answer).await {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
    let close = CloseFrame { code: 1000, reason: "replay ended".into() };
    let _ = socket.send(Message::Close(Some(close))).await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
