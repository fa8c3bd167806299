//! The items of the three tables, as the read API shows them (camelCase JSON, the DynamoDB
//! attribute names too).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tickcast_schemas::event::{EndReason, LatencyStatus, LeaveReason};
pub use tickcast_schemas::pace::Pace;

/// Where a session is in its life, as stored: `open` until `session_ended`. Whether an open
/// session is `waiting` or `running` depends on the clock ([`SessionItem::state`]), which no
/// event marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Open,
    Ended,
}

impl Phase {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Ended => "ended",
        }
    }
}

/// A session's state as the read API says it: `waiting` before `startAt`, `running`, `ended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Waiting,
    Running,
    Ended,
}

impl SessionState {
    /// The phase sessions in this state are stored under.
    #[must_use]
    pub const fn phase(self) -> Phase {
        match self {
            Self::Waiting | Self::Running => Phase::Open,
            Self::Ended => Phase::Ended,
        }
    }
}

/// `PREFIX-sessions`, keyed by `sessionId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionItem {
    pub session_id: String,
    /// Where its ticks come from now: where it was created, or where it last moved.
    pub region: String,
    pub phase: Phase,
    pub created_at: i64,
    pub start_at: i64,
    pub tick_ms: i64,
    /// The slowest pace of an adaptive session (absent: a fixed pace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tick_ms: Option<i64>,
    /// The pace in force: from `session_created`, then its latest `tick_rate_changed` (absent
    /// in items projected before paces could change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace: Option<Pace>,
    pub countdown_ms: i64,
    pub min_break_steps: u64,
    pub max_break_steps: u64,
    pub max_rounds: u64,
    pub seed_hash: String,
    pub created_by: String,
    /// The connections open now: connectionId → userId (a player replaced by a newer
    /// connection of its own is connected once).
    pub connected: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<i64>,
    /// The seed (decimal), only once the session has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// Its moves to other regions (`session_migrated`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<SessionMove>,
    /// The log position of the last event applied to this item, as an order key (byte order
    /// is log order; the log's offset or Kinesis sequence number inside).
    pub position: String,
    /// Epoch seconds after which the item may be deleted (DynamoDB TTL).
    pub expires_at: i64,
}

/// A session's move out of a drained region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMove {
    pub from_region: String,
    pub to_region: String,
    /// The first step written in `to_region`.
    pub from_step: i64,
    /// When it moved (epoch ms).
    pub at: i64,
}

impl SessionItem {
    /// `waiting`, `running` or `ended` at `now_ms`.
    #[must_use]
    pub const fn state(&self, now_ms: i64) -> SessionState {
        match self.phase {
            Phase::Ended => SessionState::Ended,
            Phase::Open if now_ms < self.start_at => SessionState::Waiting,
            Phase::Open => SessionState::Running,
        }
    }

    /// The distinct players connected now, sorted.
    #[must_use]
    pub fn players(&self) -> Vec<String> {
        let mut players: Vec<String> = self.connected.values().cloned().collect();
        players.sort();
        players.dedup();
        players
    }

    /// The latest a session of these parameters can end (epoch ms): every round at its longest.
    #[must_use]
    pub const fn latest_end_ms(&self) -> i64 {
        let steps = self.max_rounds.saturating_mul(self.max_break_steps);
        // Every step at the slowest pace it may go to.
        let tick_ms = match self.max_tick_ms {
            Some(ms) if ms > self.tick_ms => ms,
            _ => self.tick_ms,
        };
        self.start_at.saturating_add((steps as i64).saturating_mul(tick_ms))
    }
}

/// A connection's state, as far as the log can tell it: a socket that has not joined writes no
/// event, so `connecting` is never seen; `ready` is joined before the session's start (the read
/// API says `playing` once the start has passed), `disconnected` after it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Ready,
    Playing,
    Disconnected,
}

/// How many recent RTT samples a connection's figures are computed over.
pub const RTT_WINDOW: usize = 10;

/// `PREFIX-connections`, keyed by `connectionId`, indexed by `sessionId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionItem {
    pub connection_id: String,
    pub session_id: String,
    pub user_id: String,
    pub gateway_id: String,
    pub region: String,
    pub state: ConnectionState,
    pub joined_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_reason: Option<LeaveReason>,
    /// The newest RTT samples, oldest first (at most [`RTT_WINDOW`]): not stored (the latency
    /// table holds them), filled in by [`ConnectionItem::measured`] when read.
    #[serde(default)]
    pub recent_rtt_ms: Vec<u64>,
    /// What the gateway's policy said last (a warning or a kick), else the mean of
    /// `recentRttMs` when read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_rtt_ms: Option<u64>,
    /// The policy's figure, else the mean difference between consecutive `recentRttMs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// The gateway policy's latest verdict: `ok` until it warned.
    pub latency_status: LatencyStatus,
    pub kicked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kick_reason: Option<String>,
    /// As [`SessionItem::position`].
    pub position: String,
    pub expires_at: i64,
}

impl ConnectionItem {
    /// The connection with its newest samples (`newest_first`, as
    /// [`crate::ProjectionStore::latency_of`] gives them): `recentRttMs`, and the mean and
    /// jitter of them where the gateway's policy has said none. A sample costs one row of the
    /// latency table, not also a rewrite of its connection.
    #[must_use]
    pub fn measured(mut self, newest_first: &[LatencyItem]) -> Self {
        self.recent_rtt_ms = newest_first.iter().take(RTT_WINDOW).rev().map(|s| s.rtt_ms).collect();
        if self.avg_rtt_ms.is_none() && !self.recent_rtt_ms.is_empty() {
            let (avg, jitter) = figures(&self.recent_rtt_ms);
            (self.avg_rtt_ms, self.jitter_ms) = (Some(avg), Some(jitter));
        }
        self
    }
}

/// Mean RTT and jitter (mean absolute difference of consecutive samples) of `samples`.
fn figures(samples: &[u64]) -> (u64, u64) {
    if samples.is_empty() {
        return (0, 0);
    }
    let mean = samples.iter().sum::<u64>() / samples.len() as u64;
    let steps = samples.windows(2).map(|w| w[0].abs_diff(w[1])).collect::<Vec<_>>();
    let jitter = if steps.is_empty() { 0 } else { steps.iter().sum::<u64>() / steps.len() as u64 };
    (mean, jitter)
}

#[cfg(test)]
mod tests {
    use super::figures;

    #[test]
    fn figures_are_the_mean_and_the_mean_step() {
        assert_eq!(figures(&[]), (0, 0));
        assert_eq!(figures(&[40]), (40, 0));
        assert_eq!(figures(&[10, 30, 20]), (20, 15));
    }
}

/// `PREFIX-latency`, keyed by (`connectionId`, `at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyItem {
    pub connection_id: String,
    /// Epoch ms of the sample.
    pub at: i64,
    pub rtt_ms: u64,
    pub session_id: String,
    pub expires_at: i64,
}
