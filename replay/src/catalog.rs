//! The sessions in the log, one summary each.

use serde::Serialize;
use tickcast_schemas::event::{EndReason, EventBody};

use crate::History;

/// What an analyst sees first about a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub session_id: String,
    pub region: String,
    pub start_at: i64,
    pub tick_ms: i64,
    /// Distinct userIds that joined.
    pub players: usize,
    /// Rounds completed (breaks) in the logged ticks.
    pub rounds: u64,
    pub ticks: u64,
    pub kicks: u64,
    /// `None` while the session runs.
    pub end_reason: Option<EndReason>,
    pub last_step: Option<i64>,
}

/// One summary per session that has a `session_created`, in start order.
#[must_use]
pub fn sessions(history: &History) -> Vec<SessionSummary> {
    let mut out: Vec<SessionSummary> = history
        .sessions
        .iter()
        .filter_map(|(id, events)| {
            let created = crate::session_created(events)?;
            let mut players: Vec<&str> = Vec::new();
            let mut summary = SessionSummary {
                session_id: id.clone(),
                region: created.region.clone(),
                start_at: created.start_at,
                tick_ms: created.tick_ms,
                players: 0,
                rounds: 0,
                ticks: 0,
                kicks: 0,
                end_reason: None,
                last_step: None,
            };
            for logged in events {
                match &logged.event.body {
                    EventBody::PlayerJoined(j) => players.push(&j.user_id),
                    EventBody::PlayerKicked(_) => summary.kicks += 1,
                    EventBody::Tick(t) => {
                        summary.ticks += 1;
                        summary.rounds = summary.rounds.max(t.round);
                    }
                    EventBody::SessionEnded(e) => {
                        summary.end_reason = Some(e.reason);
                        summary.last_step = Some(e.last_step);
                    }
                    _ => {}
                }
            }
            players.sort_unstable();
            players.dedup();
            summary.players = players.len();
            Some(summary)
        })
        .collect();
    out.sort_by(|a, b| (a.start_at, &a.session_id).cmp(&(b.start_at, &b.session_id)));
    out
}
