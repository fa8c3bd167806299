//! The session directory: which sessions exist, their public parameters and whether they have
//! ended, derived from `game-events`. A pure projection that the edge and the gateways each
//! keep in memory. It holds each session's seed (client-side tick mode hands it out at the start,
//! and the edge answers joins from it), so whatever serves its contents to players must leave
//! the seed out while the session runs, as [`SessionInfo`]'s users do.

use std::collections::HashMap;

use crate::event::{Event, EventBody};

/// What a role may tell a player about a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: String,
    pub region: String,
    pub start_at: i64,
    /// The fastest pace (the one it starts at) and the slowest (`tick_ms` when fixed).
    pub tick_ms: i64,
    pub max_tick_ms: i64,
    /// Its paces so far, from its `tick_rate_changed` events.
    pub paces: crate::pace::PaceSchedule,
    pub countdown_ms: i64,
    pub seed_hash: String,
    /// The secret seed: revealed by `session_ended`, or at the start where clients compute the
    /// ticks themselves (client-side tick mode).
    pub seed: u64,
    /// The engine's parameters besides the seed, so a client can check the ticks at the end.
    pub min_break_steps: u64,
    pub max_break_steps: u64,
    /// The userId that started it.
    pub created_by: String,
    /// Set once `session_ended` is seen.
    pub ended: bool,
    /// Players kicked from it (`player_kicked`), who may not rejoin it.
    pub kicked: std::collections::BTreeSet<String>,
    /// Connected players, from `player_joined` / `player_left`: connection id → user id.
    pub connections: std::collections::BTreeMap<String, String>,
    /// The regions it moved out of (`session_migrated`), oldest first, each with the first
    /// step written after it left: the steps before that were written there.
    pub moved_from: Vec<(String, i64)>,
}

impl SessionInfo {
    /// The first step written in its region now, if it moved there.
    #[must_use]
    pub fn moved_at_step(&self) -> Option<i64> {
        self.moved_from.last().map(|(_, step)| *step)
    }
}

impl SessionInfo {
    /// The userIds connected to the session (across every gateway), sorted, each once.
    #[must_use]
    pub fn players(&self) -> Vec<String> {
        let mut players: Vec<String> = self.connections.values().cloned().collect();
        players.sort();
        players.dedup();
        players
    }
}

/// Sessions by id.
#[derive(Debug, Default)]
pub struct SessionDirectory {
    sessions: HashMap<String, SessionInfo>,
}

impl SessionDirectory {
    /// Sessions of `region` that have not ended (waiting or running).
    #[must_use]
    pub fn running_in(&self, region: &str) -> usize {
        self.sessions.values().filter(|info| !info.ended && info.region == region).count()
    }

    /// How many games `user_id` started that have not ended.
    #[must_use]
    pub fn running_games_of(&self, user_id: &str) -> usize {
        self.sessions.values().filter(|info| !info.ended && info.created_by == user_id).count()
    }

    /// Applies one event (`session_created`, `session_ended`, `session_migrated` — the session's
    /// region is then its new one —, `tick_rate_changed`, `player_joined`, `player_kicked`,
    /// `player_left`; others are ignored). Returns whether the session's players changed.
    pub fn apply(&mut self, event: &Event) -> bool {
        match &event.body {
            EventBody::SessionCreated(created) => {
                self.sessions.entry(event.session_id.clone()).or_insert_with(|| SessionInfo {
                    session_id: event.session_id.clone(),
                    region: created.region.clone(),
                    start_at: created.start_at,
                    tick_ms: created.tick_ms,
                    max_tick_ms: created.slowest_tick_ms(),
                    paces: crate::pace::PaceSchedule::new(created.start_at, created.tick_ms),
                    countdown_ms: created.countdown_ms,
                    seed_hash: created.seed_hash.clone(),
                    seed: created.seed,
                    min_break_steps: created.min_break_steps,
                    max_break_steps: created.max_break_steps,
                    created_by: created.created_by.clone(),
                    kicked: std::collections::BTreeSet::new(),
                    ended: false,
                    connections: std::collections::BTreeMap::new(),
                    moved_from: Vec::new(),
                });
                false
            }
            EventBody::SessionEnded(_) => {
                if let Some(info) = self.sessions.get_mut(&event.session_id) {
                    info.ended = true;
                }
                false
            }
            EventBody::PlayerJoined(joined) => self.sessions.get_mut(&event.session_id).is_some_and(|info| {
                info.connections.insert(joined.connection_id.clone(), joined.user_id.clone()).is_none()
            }),
            EventBody::PlayerKicked(kicked) => {
                if let Some(info) = self.sessions.get_mut(&event.session_id) {
                    info.kicked.insert(kicked.user_id.clone());
                }
                false
            }
            EventBody::SessionMigrated(moved) => {
                if let Some(info) = self.sessions.get_mut(&event.session_id) {
                    info.moved_from.push((
                        std::mem::replace(&mut info.region, moved.to_region.clone()),
                        moved.from_step,
                    ));
                }
                false
            }
            EventBody::TickRateChanged(changed) => {
                if let Some(info) = self.sessions.get_mut(&event.session_id) {
                    info.paces.record(changed.pace());
                }
                false
            }
            EventBody::PlayerLeft(left) => self
                .sessions
                .get_mut(&event.session_id)
                .is_some_and(|info| info.connections.remove(&left.connection_id).is_some()),
            _ => false,
        }
    }

    #[must_use]
    pub fn get(&self, session_id: &str) -> Option<&SessionInfo> {
        self.sessions.get(session_id)
    }

    /// Marks `user_id` kicked from `session_id` at once, before its `player_kicked` comes back
    /// from the log.
    pub fn mark_kicked(&mut self, session_id: &str, user_id: &str) {
        if let Some(info) = self.sessions.get_mut(session_id) {
            info.kicked.insert(user_id.to_owned());
        }
    }

    /// Forgets ended sessions whose start is before `before` (epoch ms), to bound memory.
    pub fn forget_ended_before(&mut self, before: i64) {
        self.sessions.retain(|_, s| !s.ended || s.start_at >= before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EndReason, SessionCreated, SessionEnded};

    #[test]
    fn follows_creation_and_end() {
        let mut directory = SessionDirectory::default();
        let created = SessionCreated {
            region: "r".into(),
            seed: 1,
            seed_hash: "h".into(),
            start_at: 10,
            tick_ms: 100,
            countdown_ms: 0,
            min_break_steps: 1,
            max_break_steps: 2,
            max_rounds: 1,
            engine: 1,
            created_by: "u".into(),
            max_tick_ms: None,
        };
        directory.apply(&Event::new("s", 0, "t", EventBody::SessionCreated(created)));
        assert_eq!(directory.get("s").map(|s| (s.ended, s.start_at)), Some((false, 10)));
        directory.apply(&Event::new(
            "s",
            0,
            "t",
            EventBody::SessionEnded(SessionEnded { reason: EndReason::Idle, last_step: 0, seed: 1 }),
        ));
        assert!(directory.get("s").unwrap().ended);
        directory.forget_ended_before(11);
        assert!(directory.get("s").is_none());
    }
}
