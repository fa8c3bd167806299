//! Which gateway each player of a session is connected through, and when each gateway last
//! said it serves the session (its `player_joined` events and `gateway_heartbeat`s): a gateway
//! silent for longer than the timeout is lost, with its players. Sans I/O: the tick generator
//! feeds it the session's events and asks, with the time, who is lost.

use std::collections::HashMap;

use tickcast_eventlog::Durability;
use tickcast_schemas::event::{EventBody, LeaveReason, PlayerLeft};
use tickcast_schemas::topics::GAME_EVENTS;

use super::{TickGenerator, event_record};
use crate::{Error, metrics};

impl TickGenerator {
    /// Writes `player_left` (`gateway_lost`) for the players of each session whose gateway has
    /// been silent past the timeout. Only sessions of caught-up partitions are judged: before,
    /// a heartbeat may still be ahead in the partition. Nothing is judged until the generator
    /// has kept up for the timeout: one behind (emitting late, or with read events waiting)
    /// may not have read the heartbeats of a gateway that is well. Once each: the players are
    /// forgotten here as they are written, and a later owner reads the leave back.
    pub(super) async fn leave_for_lost_gateways(&mut self, now: i64) -> Result<(), Error> {
        if now - self.steady_since <= self.config.gateway_timeout_ms {
            return Ok(());
        }
        let mut leaves = Vec::new();
        for (id, session) in &mut self.sessions {
            if !self.caught_up.contains(&session.partition) || session.schedule.is_ended() {
                continue;
            }
            for (connection_id, user_id) in session.gateways.lost(now, self.config.gateway_timeout_ms) {
                tracing::warn!(session = %id, connection = %connection_id, user = %user_id, "its gateway is lost: the player leaves");
                let body = EventBody::PlayerLeft(PlayerLeft {
                    connection_id,
                    user_id,
                    reason: LeaveReason::GatewayLost,
                });
                leaves.push(event_record(&self.source, id, now, body));
            }
        }
        if !leaves.is_empty() {
            metrics::players_lost(leaves.len());
            self.log.append(GAME_EVENTS, leaves, Durability::Durable).await?;
        }
        Ok(())
    }
}

/// One session's connections and gateways.
#[derive(Debug, Default)]
pub(crate) struct SessionGateways {
    /// connectionId → (gatewayId, userId, when it joined), for the connections joined and not
    /// left.
    connections: HashMap<String, (String, String, i64)>,
    /// gatewayId → the latest time (epoch ms) it said it serves this session.
    seen: HashMap<String, i64>,
    /// gatewayId → when its latest run started (from its heartbeats): what joined through it
    /// before was an earlier run's.
    started: HashMap<String, i64>,
}

impl SessionGateways {
    pub(crate) fn joined(&mut self, connection: &str, user: &str, gateway: &str, at: i64) {
        self.connections.insert(connection.to_owned(), (gateway.to_owned(), user.to_owned(), at));
        self.heartbeat(gateway, at, 0);
    }

    pub(crate) fn left(&mut self, connection: &str) {
        self.connections.remove(connection);
    }

    pub(crate) fn heartbeat(&mut self, gateway: &str, at: i64, started_at: i64) {
        let seen = self.seen.entry(gateway.to_owned()).or_insert(at);
        *seen = (*seen).max(at);
        let started = self.started.entry(gateway.to_owned()).or_insert(started_at);
        *started = (*started).max(started_at);
    }

    /// The connections (connectionId, userId) of gateways silent since before `now − timeout`,
    /// and those that joined through a gateway before its latest run started (it restarted
    /// without writing their `player_left`), forgotten here as they are returned: each is
    /// reported once.
    pub(crate) fn lost(&mut self, now: i64, timeout_ms: i64) -> Vec<(String, String)> {
        let (seen, started) = (&self.seen, &self.started);
        let silent = |gateway: &str| seen.get(gateway).is_none_or(|&at| now - at > timeout_ms);
        let earlier_run = |gateway: &str, joined: i64| started.get(gateway).is_some_and(|&s| joined < s);
        let mut gone: Vec<(String, String)> = self
            .connections
            .extract_if(|_, (gateway, _, joined)| silent(gateway) || earlier_run(gateway, *joined))
            .map(|(connection, (_, user, _))| (connection, user))
            .collect();
        gone.sort();
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_gateway_loses_its_players_once_and_only_its_own() {
        let mut session = SessionGateways::default();
        session.joined("c1", "ana", "eu/0", 1_000);
        session.joined("c2", "bo", "eu/0", 1_500);
        session.joined("c3", "cy", "eu/1", 1_000);
        session.heartbeat("eu/1", 6_000, 500);
        session.heartbeat("eu/1", 11_000, 500);
        // eu/0 last spoke at 1,500: within 15 s until 16,500.
        assert!(session.lost(16_500, 15_000).is_empty());
        assert_eq!(session.lost(16_501, 15_000), [("c1".into(), "ana".into()), ("c2".into(), "bo".into())]);
        assert!(session.lost(16_502, 15_000).is_empty(), "reported once");
        // eu/1 spoke at 11,000.
        assert_eq!(session.lost(26_001, 15_000), [("c3".into(), "cy".into())]);
    }

    #[test]
    fn players_who_left_are_not_lost_and_heartbeats_keep_a_gateway_alive() {
        let mut session = SessionGateways::default();
        session.joined("c1", "ana", "eu/0", 1_000);
        session.joined("c2", "bo", "eu/0", 1_000);
        session.left("c1");
        for at in (6_000..=60_000).step_by(5_000) {
            session.heartbeat("eu/0", at, 900);
            assert!(session.lost(at + 1_000, 15_000).is_empty());
        }
        // The last heartbeat was at 56,000; an older one read late does not move it back.
        session.heartbeat("eu/0", 2_000, 900);
        assert!(session.lost(71_000, 15_000).is_empty());
        assert_eq!(session.lost(71_001, 15_000), [("c2".into(), "bo".into())]);
    }

    #[test]
    fn a_restarted_gateway_s_earlier_connections_are_lost_at_its_first_heartbeat() {
        let mut session = SessionGateways::default();
        session.joined("old", "ana", "eu/0", 1_000);
        // eu/0 restarts at 3,000 and ana rejoins through it: its heartbeat says when it started.
        session.joined("new", "ana", "eu/0", 3_500);
        session.heartbeat("eu/0", 5_000, 3_000);
        assert_eq!(session.lost(5_100, 15_000), [("old".into(), "ana".into())]);
        assert!(session.lost(5_200, 15_000).is_empty(), "the new connection stays");
    }
}
