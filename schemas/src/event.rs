//! The event envelope and the event types of the log (docs/protocol.md, "Events").

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::match_events::{MatchCancelled, MatchExpired, MatchFormed, MatchRequested};
pub use crate::pace::{PaceReason, TickRateChanged};
pub use crate::region_events::{DrainReason, RegionDrained, RegionRestored, SessionMigrated};
pub use crate::session_created::{GameParams, SessionCreated};

/// The envelope version this crate writes and understands.
pub const ENVELOPE_VERSION: u32 = 1;

/// One event of the log: the envelope fields, then the type's own fields, flattened into one
/// JSON object: `{"v":1,"id":…,"type":…,"sessionId":…,"at":…,"source":…, …fields}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub v: u32,
    /// A UUID v7: unique, and ordered by creation time.
    pub id: Uuid,
    pub session_id: String,
    /// Epoch milliseconds when the event happened.
    pub at: i64,
    /// `role@instance` of the writer.
    pub source: String,
    #[serde(flatten)]
    pub body: EventBody,
}

/// Why an event could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a tickcast event: {0}")]
    Json(#[from] serde_json::Error),
}

impl Event {
    /// A new event with a fresh v7 id.
    #[must_use]
    pub fn new(session_id: impl Into<String>, at: i64, source: impl Into<String>, body: EventBody) -> Self {
        Self {
            v: ENVELOPE_VERSION,
            id: Uuid::now_v7(),
            session_id: session_id.into(),
            at,
            source: source.into(),
            body,
        }
    }

    /// The JSON bytes of this event.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        // Sized for a tick (most of the log) and trimmed to fit: the log keeps recent records in
        // memory, and a buffer grown by doubling would hold up to twice each payload there.
        let mut out = Vec::with_capacity(320);
        serde_json::to_writer(&mut out, self)
            .expect("events serialize infallibly: no maps with non-string keys");
        out.shrink_to_fit();
        out
    }

    /// Decodes an event. Unknown types, and envelopes of a version this crate does not know,
    /// decode to [`EventBody::Unknown`] so that consumers count and skip them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        // serde reads a tag that is a number as the variant's index (`"type":12` would be the
        // thirteenth type): a type is a string, or the bytes are no event.
        let Some(kind) = Self::peek_type(bytes) else {
            return Err(DecodeError::Json(serde::de::Error::custom("an event's type must be a string")));
        };
        // Ticks are most of the log: read them without the flattened envelope, which makes
        // serde buffer every field before it picks the body.
        if kind == "tick"
            && let Ok(flat) = serde_json::from_slice::<FlatTick<'_>>(bytes)
            && flat.v == ENVELOPE_VERSION
        {
            return Ok(flat.into_event());
        }
        match serde_json::from_slice::<Self>(bytes) {
            Ok(mut event) => {
                if event.v != ENVELOPE_VERSION {
                    event.body = EventBody::Unknown;
                }
                Ok(event)
            }
            // A later envelope version may change a known type's fields: keep the envelope,
            // skip the body.
            Err(error) => match serde_json::from_slice::<Envelope>(bytes) {
                Ok(e) if e.v != ENVELOPE_VERSION => Ok(Self {
                    v: e.v,
                    id: e.id,
                    session_id: e.session_id,
                    at: e.at,
                    source: e.source,
                    body: EventBody::Unknown,
                }),
                _ => Err(error.into()),
            },
        }
    }

    /// The `type` field of an encoded event, read without decoding the rest, so consumers can
    /// skip the events they do not need cheaply (every consumer of `game-events` sees a latency
    /// sample per player per second). `None` when the bytes are not an event.
    #[must_use]
    pub fn peek_type(bytes: &[u8]) -> Option<&str> {
        const KEY: &[u8] = b"\"type\":\"";
        // Fast path: the first `"type":"` at the top level of the object (exactly one `{`
        // before it). In valid JSON the pattern cannot occur inside a string, where the quotes
        // would be escaped; anything unusual falls back to the parser.
        if let Some(at) = find(bytes, KEY)
            && bytes[..at].iter().filter(|&&b| b == b'{').count() == 1
        {
            let rest = &bytes[at + KEY.len()..];
            if let Some(end) = rest.iter().position(|&b| b == b'"' || b == b'\\')
                && rest[end] == b'"'
                && let Ok(kind) = std::str::from_utf8(&rest[..end])
            {
                return Some(kind);
            }
        }
        #[derive(Deserialize)]
        struct TypeOnly<'a> {
            #[serde(rename = "type", borrow)]
            kind: &'a str,
        }
        serde_json::from_slice::<TypeOnly<'_>>(bytes).ok().map(|t| t.kind)
    }

    /// The RTT samples this event carries as (connectionId, rttMs, at): one for a
    /// `latency_sampled` (taken when it was written), each of a `latency_samples`'s; none for
    /// any other type. Readers of samples read both, as logs hold both.
    pub fn rtt_samples(&self) -> impl Iterator<Item = (&str, u64, i64)> {
        let (one, batch) = match &self.body {
            EventBody::LatencySampled(s) => (Some((s.connection_id.as_str(), s.rtt_ms, self.at)), &[][..]),
            EventBody::LatencySamples(b) => (None, b.samples.as_slice()),
            _ => (None, &[][..]),
        };
        one.into_iter().chain(batch.iter().map(|s| (s.connection_id.as_str(), s.rtt_ms, s.at)))
    }

    /// The type name as written in the `type` field (`"unknown"` for unknown types).
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        self.body.kind()
    }
}

/// The envelope alone, to read events whose body this version cannot.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    v: u32,
    id: Uuid,
    session_id: String,
    at: i64,
    source: String,
}

/// Every event type this build knows, as written in the `type` field.
pub const EVENT_TYPES: [&str; 19] = [
    "session_created",
    "player_joined",
    "latency_sampled",
    "latency_samples",
    "latency_warned",
    "player_kicked",
    "player_left",
    "session_ended",
    "countdown",
    "tick",
    "gateway_heartbeat",
    "region_drained",
    "region_restored",
    "session_migrated",
    "tick_rate_changed",
    "match_requested",
    "match_formed",
    "match_cancelled",
    "match_expired",
];

/// The type-specific part of an event, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    SessionCreated(SessionCreated),
    PlayerJoined(PlayerJoined),
    LatencySampled(LatencySampled),
    LatencySamples(LatencySamples),
    LatencyWarned(LatencyWarned),
    PlayerKicked(PlayerKicked),
    PlayerLeft(PlayerLeft),
    SessionEnded(SessionEnded),
    Countdown(Countdown),
    Tick(Tick),
    GatewayHeartbeat(GatewayHeartbeat),
    RegionDrained(RegionDrained),
    RegionRestored(RegionRestored),
    SessionMigrated(SessionMigrated),
    TickRateChanged(TickRateChanged),
    MatchRequested(MatchRequested),
    MatchFormed(MatchFormed),
    MatchCancelled(MatchCancelled),
    MatchExpired(MatchExpired),
    /// An event type (or envelope version) this build does not know: counted and skipped.
    #[serde(other)]
    Unknown,
}

impl EventBody {
    /// The `type` field's value.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::SessionCreated(_) => "session_created",
            Self::PlayerJoined(_) => "player_joined",
            Self::LatencySampled(_) => "latency_sampled",
            Self::LatencySamples(_) => "latency_samples",
            Self::LatencyWarned(_) => "latency_warned",
            Self::PlayerKicked(_) => "player_kicked",
            Self::PlayerLeft(_) => "player_left",
            Self::SessionEnded(_) => "session_ended",
            Self::Countdown(_) => "countdown",
            Self::Tick(_) => "tick",
            Self::GatewayHeartbeat(_) => "gateway_heartbeat",
            Self::RegionDrained(_) => "region_drained",
            Self::RegionRestored(_) => "region_restored",
            Self::SessionMigrated(_) => "session_migrated",
            Self::TickRateChanged(_) => "tick_rate_changed",
            Self::MatchRequested(_) => "match_requested",
            Self::MatchFormed(_) => "match_formed",
            Self::MatchCancelled(_) => "match_cancelled",
            Self::MatchExpired(_) => "match_expired",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayerJoined {
    pub user_id: String,
    pub connection_id: String,
    pub gateway_id: String,
    pub region: String,
}

/// One RTT sample of one connection, as a single event. What gateways wrote before they
/// batched their samples ([`LatencySamples`]); still read, never written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySampled {
    pub connection_id: String,
    pub rtt_ms: u64,
}

/// The RTT samples one gateway took of one session's players over about a second: one event
/// per session per gateway per second instead of one per player per second, so the log and its
/// followers handle a tenth of the records. Each sample keeps the time it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySamples {
    pub samples: Vec<RttSample>,
}

/// One ping's round trip: the connection, the RTT and when the pong arrived (epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RttSample {
    pub connection_id: String,
    pub rtt_ms: u64,
    pub at: i64,
}

/// Whether a player's latency is within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyStatus {
    Ok,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyWarned {
    pub connection_id: String,
    pub avg_rtt_ms: u64,
    pub jitter_ms: u64,
    pub status: LatencyStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayerKicked {
    pub connection_id: String,
    pub user_id: String,
    pub reason: String,
    pub avg_rtt_ms: u64,
    pub jitter_ms: u64,
}

/// Why a player's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Closed,
    Kicked,
    /// A newer connection of the same player joined the same session.
    Replaced,
    GatewayShutdown,
    Error,
    /// Its gateway stopped saying it serves the session (no `gateway_heartbeat` for longer than
    /// the timeout): written by the session's tick generator, once, for each of its players.
    GatewayLost,
    /// Its session moved to another region (`session_migrated`): the player reconnects there.
    Migrated,
}

/// A gateway still serves players of this session: each gateway writes one for every session
/// it has players in, every few seconds ([`GATEWAY_HEARTBEAT_MS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayHeartbeat {
    pub gateway_id: String,
    /// When this run of the gateway started (epoch ms): connections it shows joining before
    /// that were a previous run's, gone with it.
    #[serde(default)]
    pub started_at: i64,
}

/// How often a gateway writes `gateway_heartbeat` for each session it has players in.
pub const GATEWAY_HEARTBEAT_MS: i64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayerLeft {
    pub connection_id: String,
    pub user_id: String,
    pub reason: LeaveReason,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    MaxRounds,
    Idle,
    EndedByApi,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEnded {
    pub reason: EndReason,
    /// The last step emitted; -1 when the session ended before its first tick.
    pub last_step: i64,
    /// The seed, revealed now that nothing more can be predicted.
    #[serde(with = "crate::u64_string")]
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Countdown {
    pub remaining_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tick {
    pub step: i64,
    pub value: u64,
    pub round: u64,
    pub broken: bool,
    /// `startAt + step·tickMs`: when the tick was due.
    pub scheduled_at: i64,
    /// When the generator emitted it; `emittedAt − scheduledAt` is the generator's lateness.
    pub emitted_at: i64,
}

/// A `tick` event as one flat object: the envelope's fields and the tick's side by side.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlatTick<'a> {
    v: u32,
    id: Uuid,
    #[serde(borrow)]
    session_id: std::borrow::Cow<'a, str>,
    at: i64,
    #[serde(borrow)]
    source: std::borrow::Cow<'a, str>,
    step: i64,
    value: u64,
    round: u64,
    broken: bool,
    scheduled_at: i64,
    emitted_at: i64,
}

impl FlatTick<'_> {
    fn into_event(self) -> Event {
        Event {
            v: self.v,
            id: self.id,
            session_id: self.session_id.into_owned(),
            at: self.at,
            source: self.source.into_owned(),
            body: EventBody::Tick(Tick {
                step: self.step,
                value: self.value,
                round: self.round,
                broken: self.broken,
                scheduled_at: self.scheduled_at,
                emitted_at: self.emitted_at,
            }),
        }
    }
}

/// Where `needle` first occurs in `hay`: a scan for its first byte (a quote, a dozen of them
/// before an event's `type`), then a comparison there, rather than a comparison at every byte.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut from = 0;
    while let Some(offset) = hay[from..].iter().position(|&b| b == first) {
        let at = from + offset;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}
