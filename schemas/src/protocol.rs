//! The client protocol (docs/protocol.md, "Gateway"): JSON text frames between a player and a gateway.

use serde::{Deserialize, Serialize};

use crate::event::{EndReason, LatencyStatus};
use crate::pace::PaceReason;

/// A frame from a player, tagged by `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum ClientMessage {
    Join {
        session_id: String,
        user_id: String,
        token: String,
    },
    /// After a reconnect: replay the ticks after `last_step` that the gateway still holds.
    Resume {
        session_id: String,
        user_id: String,
        token: String,
        last_step: i64,
    },
    Ping {
        client_timestamp: i64,
    },
    Leave,
}

/// A frame to a player, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum ServerMessage {
    SessionJoined {
        session_id: String,
        start_at: i64,
        /// The pace in force: step `s` from `pace_from_step` on is due at
        /// `pace_scheduled_at + (s − pace_from_step) · tick_ms`.
        tick_ms: i64,
        /// The slowest pace the session may go to (`tick_ms` of a fixed-pace session).
        max_tick_ms: i64,
        pace_from_step: i64,
        pace_scheduled_at: i64,
        /// Every pace so far, oldest first (the start's, then each change): what a client
        /// checks the `scheduledAt` of ticks it got before its join against.
        paces: Vec<crate::pace::Pace>,
        seed_hash: String,
        region: String,
        /// userIds of the players connected to the session, this one included.
        players: Vec<String>,
        /// The engine's break bounds: with the seed revealed at the end, a client recomputes
        /// every tick it received.
        min_break_steps: u64,
        max_break_steps: u64,
    },
    Countdown {
        remaining_ms: i64,
    },
    /// The session's pace changes from `from_step` on (a round's first step): step `s` from
    /// there is due at `scheduled_at + (s − from_step) · tick_ms`. Sent before that step's tick.
    TickRate {
        from_step: i64,
        scheduled_at: i64,
        tick_ms: i64,
        reason: PaceReason,
    },
    /// The players connected to the session changed (someone joined or left).
    Players {
        players: Vec<String>,
    },
    Tick {
        step: i64,
        value: u64,
        round: u64,
        broken: bool,
        scheduled_at: i64,
        server_timestamp: i64,
    },
    Pong {
        client_timestamp: i64,
        server_timestamp: i64,
    },
    LatencyStatus {
        status: LatencyStatus,
        avg_rtt_ms: u64,
        jitter_ms: u64,
    },
    /// Followed by a close with code [`CLOSE_KICKED`].
    Kicked {
        reason: String,
    },
    SessionEnded {
        reason: EndReason,
        last_step: i64,
        #[serde(with = "crate::u64_string")]
        seed: u64,
    },
    /// The session moved to `region` (its old region was drained): from `from_step` on its
    /// ticks come from there. Followed by a close with 1012; the player asks the edge for a
    /// ticket (`POST /edge/game/{gameId}/join`) and resumes there with its last step.
    SessionMigrated {
        region: String,
        from_step: i64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl ServerMessage {
    /// The JSON text of this message.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server messages serialize infallibly")
    }
}

/// WebSocket close code sent after `kicked`.
pub const CLOSE_KICKED: u16 = 4001;
/// Close code of a connection replaced by a newer one of the same player in the same session.
pub const CLOSE_REPLACED: u16 = 4002;
/// WebSocket close code sent after a refused join (bad token, unknown session).
pub const CLOSE_UNAUTHORIZED: u16 = 4003;

/// Machine-readable error codes of `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON.
    MalformedJson,
    /// The frame was JSON but not an object with a known `action` and its fields.
    InvalidMessage,
    UnknownAction,
    /// Binary frames are not part of the protocol.
    UnsupportedFrame,
    FrameTooLarge,
    InvalidToken,
    ExpiredToken,
    /// The token is valid but for another session, user or region.
    TokenMismatch,
    UnknownSession,
    SessionEnded,
    /// join/resume on a connection that already joined.
    AlreadyJoined,
    /// An action that needs a joined session, before join.
    NotJoined,
    /// The player did not read frames as fast as they came and was disconnected.
    TooSlow,
    /// The connection sent more messages than its budget allows and was disconnected.
    RateLimited,
    /// The session already has as many players as a session may.
    SessionFull,
    /// The player was kicked from this session and may not rejoin it.
    Kicked,
    /// A newer connection of the same player joined the same session.
    Replaced,
}

/// Decodes a client frame, telling malformed JSON apart from a well-formed frame with an
/// unknown action or missing fields, so the player gets an error that says what to fix.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, (ErrorCode, String)> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| (ErrorCode::MalformedJson, bounded(format!("frame is not valid JSON: {e}"))))?;
    let Some(object) = value.as_object() else {
        return Err((
            ErrorCode::InvalidMessage,
            "frame must be a JSON object with an \"action\" field".to_owned(),
        ));
    };
    let action = match object.get("action") {
        Some(serde_json::Value::String(a)) => a.clone(),
        Some(_) => {
            return Err((ErrorCode::InvalidMessage, "\"action\" must be a string".to_owned()));
        }
        None => {
            return Err((ErrorCode::InvalidMessage, "frame has no \"action\" field".to_owned()));
        }
    };
    if !matches!(action.as_str(), "join" | "resume" | "ping" | "leave") {
        // Echo no more of the client's bytes than it takes to recognise them.
        let shown: String = action.chars().take(32).collect();
        let more = if shown.len() < action.len() { "…" } else { "" };
        return Err((
            ErrorCode::UnknownAction,
            format!("unknown action {shown:?}{more}; expected one of join, resume, ping, leave"),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| (ErrorCode::InvalidMessage, bounded(format!("invalid {action} frame: {e}"))))
}

/// The longest error message sent back for a client frame.
pub const MAX_ERROR_MESSAGE_LEN: usize = 256;

/// `message`, cut to `MAX_ERROR_MESSAGE_LEN` bytes: a decoder's message can quote the client's
/// value (`invalid type: string "…"`), and a frame of 64 KiB must not come back whole.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_ERROR_MESSAGE_LEN {
        let mut end = MAX_ERROR_MESSAGE_LEN - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}
