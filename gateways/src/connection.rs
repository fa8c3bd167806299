//! One player's connection: reads and answers client frames and applies the latency policy to
//! the pongs. The session's frames and the pings reach the socket through the fan-out.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tickcast_schemas::event::{
    EventBody, LatencyStatus, LatencyWarned, LeaveReason, PlayerJoined, PlayerKicked, PlayerLeft,
};
use tickcast_schemas::protocol::{
    CLOSE_KICKED, CLOSE_REPLACED, CLOSE_UNAUTHORIZED, ClientMessage, ErrorCode, ServerMessage,
    parse_client_message,
};
use tickcast_schemas::token::TokenError;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::budget::MessageBudget;
use crate::fanout::{JoinRefused, Signal};
use crate::latency::{LatencyMonitor, Verdict};
use crate::ping::PingsInFlight;
use crate::stream::PlayerStream;
use crate::{Gateway, metrics, now_ms};

pub(crate) type Socket = WebSocketStream<PlayerStream>;
type Sink = Socket;

/// The session a connection has joined.
#[derive(Debug)]
struct Joined {
    session_id: String,
    user_id: String,
    /// Its latency status as last told (the players gauge counts it under this state).
    status: LatencyStatus,
}

/// How a connection ends.
#[derive(Debug)]
struct Close {
    code: CloseCode,
    reason: &'static str,
    /// `None`: the player had not joined, or the session ended (no player_left is written).
    left: Option<LeaveReason>,
}

/// A refused request: the error frame, and whether the connection closes after it.
struct Refusal {
    code: ErrorCode,
    message: String,
    close: bool,
}

impl Refusal {
    fn keep_open(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), close: false }
    }

    fn close(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), close: true }
    }
}

struct Connection {
    gateway: Arc<Gateway>,
    id: u64,
    /// `connectionId` in events.
    connection_id: String,
    joined: Option<Joined>,
    monitor: LatencyMonitor,
    /// Pings in flight, written by the fan-out: a pong answers one of them.
    pings: Arc<PingsInFlight>,
    /// What the client may still send before it counts as flooding.
    budget: MessageBudget,
    /// Its own signal channel, handed to the gateway's live-connection table when it joins (so
    /// a newer connection of the same player can replace it).
    own_signals: mpsc::UnboundedSender<Signal>,
}

fn close_frame(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))
}

async fn send(sink: &mut Sink, message: &ServerMessage) -> Result<(), WsError> {
    sink.send(Message::text(message.to_json())).await
}

/// Tells the player why its connection is closing (an `error` frame; if that write fails the
/// connection closes all the same), and how it closes.
async fn error_then_close(
    sink: &mut Sink,
    code: ErrorCode,
    message: String,
    close: CloseCode,
    reason: &'static str,
) -> Close {
    let _ = send(sink, &ServerMessage::Error { code, message }).await;
    Close { code: close, reason, left: Some(LeaveReason::Error) }
}

/// Serves one connection until it closes or the gateway shuts down.
pub(crate) async fn serve(
    gateway: Arc<Gateway>,
    mut socket: Socket,
    id: u64,
    pings: Arc<PingsInFlight>,
    own_signals: mpsc::UnboundedSender<Signal>,
    mut signals: mpsc::UnboundedReceiver<Signal>,
) {
    let mut conn = Connection {
        own_signals,
        connection_id: uuid::Uuid::now_v7().to_string(),
        monitor: LatencyMonitor::new(gateway.config.latency),
        pings,
        budget: MessageBudget::new(gateway.config.max_messages_per_s, std::time::Instant::now()),
        gateway,
        id,
        joined: None,
    };
    let shutdown = conn.gateway.shutdown.clone();
    // Registered once: a waiter per loop turn would contend on the token's list of waiters.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    // A socket that never joins would hold its file descriptor and its memory forever.
    let join_timeout = conn.gateway.config.join_timeout;
    let join_deadline = tokio::time::sleep(join_timeout);
    tokio::pin!(join_deadline);

    // The handlers below are boxed where they are awaited: a task is as large as the largest
    // state it may be in, and inline, the join's and the policy's futures made every idle
    // connection's task 2.9 KiB (1.9 boxed; one short allocation per message instead).
    let close = loop {
        let result = tokio::select! {
            () = &mut cancelled => break Close { code: CloseCode::Restart, reason: "gateway shutting down; reconnect", left: Some(LeaveReason::GatewayShutdown) },
            incoming = socket.next() => match incoming {
                None | Some(Ok(Message::Close(_))) => break Close { code: CloseCode::Normal, reason: "", left: Some(LeaveReason::Closed) },
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    let message = format!("frame of {size} bytes refused; frames are limited to {max_size} bytes");
                    break Box::pin(error_then_close(&mut socket, ErrorCode::FrameTooLarge, message, CloseCode::Size, "frame too large")).await;
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "connection failed");
                    break Close { code: CloseCode::Error, reason: "", left: Some(LeaveReason::Error) };
                }
                Some(Ok(_)) if !conn.budget.spend(std::time::Instant::now()) => {
                    metrics::client_error(ErrorCode::RateLimited);
                    let message = format!("more than {} messages a second; disconnected", conn.gateway.config.max_messages_per_s);
                    break Box::pin(error_then_close(&mut socket, ErrorCode::RateLimited, message, CloseCode::Policy, "rate_limited")).await;
                }
                Some(Ok(message)) => Box::pin(conn.on_message(message, &mut socket)).await,
            },
            signal = signals.recv() => match signal {
                Some(Signal::Ended) => break Close { code: CloseCode::Normal, reason: "session ended", left: Some(LeaveReason::Closed) },
                Some(Signal::TooSlow) => {
                    let message = "too slow to receive ticks; reconnect and resume".to_owned();
                    break Box::pin(error_then_close(&mut socket, ErrorCode::TooSlow, message, CloseCode::Policy, "too slow")).await;
                }
                Some(Signal::Replaced) => {
                    let message = "you joined this session on another connection; this one is closed".to_owned();
                    let close = Box::pin(error_then_close(&mut socket, ErrorCode::Replaced, message, CloseCode::Library(CLOSE_REPLACED), "replaced")).await;
                    break Close { left: Some(LeaveReason::Replaced), ..close };
                }
                Some(Signal::Migrated) => break Close { code: CloseCode::Restart, reason: "session moved; rejoin through the edge", left: Some(LeaveReason::Migrated) },
                Some(Signal::Unanswered { sent_us, age_us }) => Box::pin(conn.judge(sent_us, age_us, &mut socket)).await,
                None => break Close { code: CloseCode::Restart, reason: "gateway shutting down; reconnect", left: Some(LeaveReason::GatewayShutdown) },
            },
            () = &mut join_deadline, if conn.joined.is_none() && !join_timeout.is_zero() => {
                metrics::join_timed_out();
                break Close { code: CloseCode::Policy, reason: "no join in time", left: None };
            }
        };
        match result {
            Ok(None) => {}
            Ok(Some(close)) => break close,
            Err(error) => {
                tracing::debug!(%error, "write failed");
                break Close { code: CloseCode::Error, reason: "", left: Some(LeaveReason::Error) };
            }
        }
    };
    let _ = socket.send(close_frame(close.code, close.reason)).await;
    conn.leave(close.left);
    // The close frame is queued before the detach, which flushes it and takes the player out
    // of its session at once: no more ticks are written to a closing socket.
    conn.gateway.detach(id);
    // The detach also shut the socket's write side (a FIN after the close frame). Then drain
    // what the player still sends — its close reply, frames in flight, a flood — until it
    // closes its side, for a bounded time and a bounded number of bytes (RFC 6455 §7.1.1):
    // a socket closed with unread bytes is reset, and a reset can destroy the close frame
    // before the player reads it. The bytes are read raw: whatever they are, they are dropped.
    let stream = socket.get_mut();
    let mut scratch = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        let mut drained = 0;
        while drained < CLOSE_DRAIN_BYTES {
            match tokio::io::AsyncReadExt::read(stream, &mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// How long a closing connection reads what the player still sends, at most.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// How much of it a closing connection reads, at most: a flood is cut off after this.
const CLOSE_DRAIN_BYTES: usize = 8 * 1024 * 1024;

impl Connection {
    /// Handles one frame from the player; `Some` ends the connection.
    async fn on_message(&mut self, message: Message, sink: &mut Sink) -> Result<Option<Close>, WsError> {
        match message {
            // Frames over max_frame_bytes never get here: the parser refuses them (see `serve`).
            Message::Text(text) => self.on_text(text.as_str(), sink).await,
            Message::Binary(_) => {
                metrics::client_error(ErrorCode::UnsupportedFrame);
                let message = "binary frames are not part of the protocol; send JSON text frames".to_owned();
                Ok(Some(
                    error_then_close(
                        sink,
                        ErrorCode::UnsupportedFrame,
                        message,
                        CloseCode::Unsupported,
                        "binary frame",
                    )
                    .await,
                ))
            }
            Message::Pong(payload) => {
                // When the kernel took the pong in, not when this task got to it.
                let received_us = sink.get_ref().received_us();
                match self.pings.answered(&payload, received_us) {
                    Some((sent_us, rtt_us)) => self.judge(sent_us, rtt_us, sink).await,
                    // Unasked, forged or late: not a sample, and not logged.
                    None => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    async fn refuse(&mut self, refusal: Refusal, sink: &mut Sink) -> Result<Option<Close>, WsError> {
        metrics::client_error(refusal.code);
        send(sink, &ServerMessage::Error { code: refusal.code, message: refusal.message }).await?;
        Ok(refusal.close.then_some(Close {
            code: CloseCode::Library(CLOSE_UNAUTHORIZED),
            reason: "join refused",
            left: None,
        }))
    }

    async fn on_text(&mut self, text: &str, sink: &mut Sink) -> Result<Option<Close>, WsError> {
        let message = match parse_client_message(text) {
            Ok(message) => message,
            Err((code, message)) => {
                return self.refuse(Refusal::keep_open(code, message), sink).await;
            }
        };
        match message {
            ClientMessage::Ping { client_timestamp } => {
                send(sink, &ServerMessage::Pong { client_timestamp, server_timestamp: now_ms() }).await?;
                Ok(None)
            }
            ClientMessage::Leave => {
                if self.joined.is_none() {
                    return self
                        .refuse(Refusal::keep_open(ErrorCode::NotJoined, "leave before join"), sink)
                        .await;
                }
                Ok(Some(Close { code: CloseCode::Normal, reason: "left", left: Some(LeaveReason::Closed) }))
            }
            ClientMessage::Join { session_id, user_id, token } => {
                self.join(session_id, user_id, &token, None, sink).await
            }
            ClientMessage::Resume { session_id, user_id, token, last_step } => {
                self.join(session_id, user_id, &token, Some(last_step), sink).await
            }
        }
    }

    async fn join(
        &mut self,
        session_id: String,
        user_id: String,
        token: &str,
        resume_after: Option<i64>,
        sink: &mut Sink,
    ) -> Result<Option<Close>, WsError> {
        if self.joined.is_some() {
            return self
                .refuse(
                    Refusal::keep_open(
                        ErrorCode::AlreadyJoined,
                        "this connection has already joined a session",
                    ),
                    sink,
                )
                .await;
        }
        let gateway = Arc::clone(&self.gateway);
        let claims = match gateway.signer.verify(token, now_ms()) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => {
                return self
                    .refuse(
                        Refusal::close(ErrorCode::ExpiredToken, "token expired; ask the edge for a new one"),
                        sink,
                    )
                    .await;
            }
            Err(e) => {
                return self.refuse(Refusal::close(ErrorCode::InvalidToken, e.to_string()), sink).await;
            }
        };
        if claims.session_id != session_id
            || claims.user_id != user_id
            || claims.region != gateway.config.region
        {
            let message = format!(
                "token is for session {} as {} in {}, not session {session_id} as {user_id} in {}",
                claims.session_id, claims.user_id, claims.region, gateway.config.region
            );
            return self.refuse(Refusal::close(ErrorCode::TokenMismatch, message), sink).await;
        }
        let Some(info) = gateway.wait_for_session(&session_id).await else {
            return self
                .refuse(
                    Refusal::close(
                        ErrorCode::UnknownSession,
                        format!("no session {session_id} in {}", gateway.config.region),
                    ),
                    sink,
                )
                .await;
        };
        if info.region != gateway.config.region {
            // It moved away (an old ticket): the player is sent where it is now.
            let moved = ServerMessage::SessionMigrated {
                region: info.region.clone(),
                from_step: info.moved_at_step().unwrap_or(0),
            };
            send(sink, &moved).await?;
            return Ok(Some(Close {
                code: CloseCode::Restart,
                reason: "session moved; rejoin through the edge",
                left: None,
            }));
        }
        if info.ended && resume_after.is_none() {
            return self
                .refuse(
                    Refusal::close(ErrorCode::SessionEnded, format!("session {session_id} has ended")),
                    sink,
                )
                .await;
        }
        if info.kicked.contains(&user_id) {
            let message = format!("{user_id:?} was kicked from session {session_id} and may not rejoin it");
            return self.refuse(Refusal::close(ErrorCode::Kicked, message), sink).await;
        }
        let limit = gateway.config.max_players_per_session;
        if limit > 0 && !info.ended {
            let players = info.players();
            if players.len() >= limit && !players.contains(&user_id) {
                let message = format!(
                    "session {session_id} has its {limit} players (TICKCAST_MAX_PLAYERS_PER_SESSION)"
                );
                return self.refuse(Refusal::close(ErrorCode::SessionFull, message), sink).await;
            }
        }
        // Claimed before the join takes effect: the player's older connection is told at once,
        // and a join that began before this one can never take the place back after it (a slow
        // task claiming once its ticks already flow).
        gateway.claim_live(&session_id, &user_id, self.id, self.own_signals.clone());
        if gateway.join(self.id, info, user_id.clone(), resume_after).await == Err(JoinRefused::Ended) {
            gateway.release_live(&session_id, &user_id, self.id);
            let message = format!("session {session_id} has ended");
            return self.refuse(Refusal::close(ErrorCode::SessionEnded, message), sink).await;
        }
        gateway.series.player_joined();
        if let Some(load) = &gateway.config.saturation {
            load.player_joined();
        }
        self.joined = Some(Joined {
            session_id: session_id.clone(),
            user_id: user_id.clone(),
            status: LatencyStatus::Ok,
        });
        gateway.record(
            &session_id,
            EventBody::PlayerJoined(PlayerJoined {
                user_id,
                connection_id: self.connection_id.clone(),
                gateway_id: gateway.gateway_id.clone(),
                region: gateway.config.region.clone(),
            }),
        );
        Ok(None)
    }

    /// One RTT sample of a ping written at `sent_us`: logged, and judged by the latency policy
    /// unless the gateway itself lagged since the ping went out.
    async fn judge(&mut self, sent_us: i64, rtt_us: i64, sink: &mut Sink) -> Result<Option<Close>, WsError> {
        let Some(joined) = &self.joined else {
            return Ok(None);
        };
        let rtt_ms = rtt_us.max(0) as u64 / 1000;
        self.gateway.series.rtt.record(rtt_us.max(0) as f64 / 1000.0);
        let session_id = joined.session_id.clone();
        let connection_id = self.connection_id.clone();
        self.gateway.record_sample(&session_id, &connection_id, rtt_ms);
        if self.gateway.lag.lagged_since(sent_us) {
            metrics::sample_not_judged();
            return Ok(None);
        }
        match self.monitor.sample(rtt_ms) {
            Verdict::Unchanged => Ok(None),
            Verdict::Status { status, avg_rtt_ms, jitter_ms } => {
                let from = std::mem::replace(&mut self.joined.as_mut().expect("joined above").status, status);
                self.gateway.series.status_changed(from, status);
                self.gateway.record(
                    &session_id,
                    EventBody::LatencyWarned(LatencyWarned { connection_id, avg_rtt_ms, jitter_ms, status }),
                );
                send(sink, &ServerMessage::LatencyStatus { status, avg_rtt_ms, jitter_ms }).await?;
                Ok(None)
            }
            Verdict::Kick { avg_rtt_ms, jitter_ms } => {
                self.gateway.series.kicked_for_latency();
                let user_id = joined.user_id.clone();
                self.gateway.directory.lock().unwrap().mark_kicked(&session_id, &user_id);
                let reason = format!("latency too high: average RTT {avg_rtt_ms} ms, jitter {jitter_ms} ms");
                self.gateway.record(
                    &session_id,
                    EventBody::PlayerKicked(PlayerKicked {
                        connection_id,
                        user_id,
                        reason: "latency".into(),
                        avg_rtt_ms,
                        jitter_ms,
                    }),
                );
                send(sink, &ServerMessage::Kicked { reason }).await?;
                Ok(Some(Close {
                    code: CloseCode::Library(CLOSE_KICKED),
                    reason: "kicked",
                    left: Some(LeaveReason::Kicked),
                }))
            }
        }
    }

    /// Records why the player left; the fan-out drops it from its session when it detaches.
    fn leave(&self, reason: Option<LeaveReason>) {
        let Some(joined) = &self.joined else { return };
        self.gateway.series.player_left(joined.status);
        self.gateway.release_live(&joined.session_id, &joined.user_id, self.id);
        if let Some(load) = &self.gateway.config.saturation {
            load.player_left();
        }
        if let Some(reason) = reason {
            self.gateway.record(
                &joined.session_id,
                EventBody::PlayerLeft(PlayerLeft {
                    connection_id: self.connection_id.clone(),
                    user_id: joined.user_id.clone(),
                    reason,
                }),
            );
        }
    }
}
