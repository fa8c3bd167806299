//! Matchmaking's events (docs/protocol.md, "Matchmaking") and the tickets' states they fold
//! into. Every one is written under [`MATCH_KEY`], so they keep their order and land in one
//! partition of `game-events`: the matchmaker that owns it is the one active member of its
//! group, and a standby that takes the partition over reads every live ticket back.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventBody};

/// The record key of every matchmaking event.
pub const MATCH_KEY: &str = "matchmaker";

/// A player asks for a match: its round trips to the regions it measured (ms), or, without any,
/// the one region the edge chose for it from its hints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRequested {
    pub ticket_id: String,
    pub user_id: String,
    pub latencies: BTreeMap<String, u64>,
    /// Its preferred region: a tie between regions goes to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_region: Option<String>,
}

/// Tickets matched into one game — the event's `sessionId` — whose `session_created`
/// (`createdBy: "matchmaker"`) is already in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchFormed {
    pub ticket_ids: Vec<String>,
    pub region: String,
}

/// A ticket its player cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchCancelled {
    pub ticket_id: String,
}

/// A ticket that waited past the timeout without a match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchExpired {
    pub ticket_id: String,
}

/// Where a ticket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketState {
    /// Waiting since its request (epoch ms).
    Searching {
        since: i64,
    },
    Matched {
        session_id: String,
        region: String,
        players: Vec<String>,
    },
    Cancelled,
    Expired,
}

/// A ticket as the edges know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub user_id: String,
    pub latencies: BTreeMap<String, u64>,
    pub state: TicketState,
    /// When its state last changed (epoch ms): settled tickets are forgotten after a while.
    pub changed_at: i64,
}

/// Every ticket by id, folded from the matchmaking events: what any edge answers about any
/// ticket, and which users have one searching.
#[derive(Debug, Default)]
pub struct TicketDirectory {
    tickets: HashMap<String, Ticket>,
}

impl TicketDirectory {
    /// Applies one event (others are ignored).
    pub fn apply(&mut self, event: &Event) {
        let at = event.at;
        match &event.body {
            EventBody::MatchRequested(requested) => {
                self.tickets.entry(requested.ticket_id.clone()).or_insert_with(|| Ticket {
                    user_id: requested.user_id.clone(),
                    latencies: requested.latencies.clone(),
                    state: TicketState::Searching { since: at },
                    changed_at: at,
                });
            }
            EventBody::MatchFormed(formed) => {
                let players: Vec<String> = formed
                    .ticket_ids
                    .iter()
                    .filter_map(|id| self.tickets.get(id).map(|t| t.user_id.clone()))
                    .collect();
                for id in &formed.ticket_ids {
                    self.settle(id, at, || TicketState::Matched {
                        session_id: event.session_id.clone(),
                        region: formed.region.clone(),
                        players: players.clone(),
                    });
                }
            }
            EventBody::MatchCancelled(cancelled) => {
                self.settle(&cancelled.ticket_id, at, || TicketState::Cancelled)
            }
            EventBody::MatchExpired(expired) => self.settle(&expired.ticket_id, at, || TicketState::Expired),
            _ => {}
        }
    }

    /// A searching ticket gets its outcome; a settled one keeps the first.
    fn settle(&mut self, id: &str, at: i64, state: impl FnOnce() -> TicketState) {
        if let Some(ticket) = self.tickets.get_mut(id)
            && matches!(ticket.state, TicketState::Searching { .. })
        {
            ticket.state = state();
            ticket.changed_at = at;
        }
    }

    #[must_use]
    pub fn get(&self, ticket_id: &str) -> Option<&Ticket> {
        self.tickets.get(ticket_id)
    }

    /// The ticket `user_id` has searching, if any.
    #[must_use]
    pub fn searching_of(&self, user_id: &str) -> Option<&str> {
        self.tickets
            .iter()
            .find(|(_, t)| t.user_id == user_id && matches!(t.state, TicketState::Searching { .. }))
            .map(|(id, _)| id.as_str())
    }

    /// Tickets searching, by region they could be matched in (a round trip within `max_ms`).
    #[must_use]
    pub fn searching_by_region(&self, max_ms: u64) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for ticket in self.tickets.values().filter(|t| matches!(t.state, TicketState::Searching { .. })) {
            for (region, _) in ticket.latencies.iter().filter(|(_, ms)| **ms <= max_ms) {
                *counts.entry(region.clone()).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Forgets tickets settled before `before` (epoch ms), to bound memory.
    pub fn forget_settled_before(&mut self, before: i64) {
        self.tickets
            .retain(|_, t| matches!(t.state, TicketState::Searching { .. }) || t.changed_at >= before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested(ticket: &str, user: &str) -> EventBody {
        EventBody::MatchRequested(MatchRequested {
            ticket_id: ticket.into(),
            user_id: user.into(),
            latencies: BTreeMap::from([("eu-west-1".to_owned(), 20), ("us-east-1".to_owned(), 120)]),
            preferred_region: None,
        })
    }

    #[test]
    fn tickets_settle_once_and_tell_who_searches_where() {
        let mut tickets = TicketDirectory::default();
        let at = |at: i64, session: &str, body: EventBody| Event::new(session, at, "test", body);
        tickets.apply(&at(1, "", requested("t1", "ana")));
        tickets.apply(&at(2, "", requested("t2", "bo")));
        tickets.apply(&at(3, "", requested("t3", "cy")));
        assert_eq!(tickets.searching_of("ana"), Some("t1"));
        assert_eq!(tickets.searching_by_region(100), BTreeMap::from([("eu-west-1".to_owned(), 3)]));
        let formed = MatchFormed { ticket_ids: vec!["t1".into(), "t2".into()], region: "eu-west-1".into() };
        tickets.apply(&at(4, "g", EventBody::MatchFormed(formed)));
        tickets.apply(&at(5, "", EventBody::MatchCancelled(MatchCancelled { ticket_id: "t1".into() })));
        tickets.apply(&at(6, "", EventBody::MatchExpired(MatchExpired { ticket_id: "t3".into() })));
        let TicketState::Matched { session_id, players, .. } = &tickets.get("t1").unwrap().state else {
            panic!("a matched ticket stays matched")
        };
        assert_eq!((session_id.as_str(), players.clone()), ("g", vec!["ana".to_owned(), "bo".to_owned()]));
        assert_eq!(tickets.get("t3").unwrap().state, TicketState::Expired);
        assert_eq!(tickets.searching_of("ana"), None);
        tickets.forget_settled_before(6);
        assert!(tickets.get("t1").is_none() && tickets.get("t3").is_some());
    }
}
