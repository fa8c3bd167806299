//! Session hubs: per session, the members (connections that joined it) and the recent ticks
//! kept for `resume`. Plain data: the fan-out decides where frames go with it, then writes them.

use std::collections::VecDeque;

use bytes::Bytes;
use tickcast_schemas::pace::{Pace, PaceSchedule};
use tickcast_schemas::protocol::ServerMessage;

use crate::conn_map::ConnMap;

/// A player in a session, as the hub sees it.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) user_id: String,
    /// Ticks at or below this step are not sent to this member: it has them already (resume),
    /// or they predate its join (a gateway still reading its history from the log).
    after_step: i64,
}

/// A tick as a player receives it, held for `resume`: its fields, not its frame. A session's
/// 300 held ticks in every shard are most of a gateway's memory per player at 10 players per
/// session: 48 bytes each inline, where a frame is a 150-byte allocation beside its handle.
/// A resume (rare) encodes its backlog again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeldTick {
    pub(crate) step: i64,
    pub(crate) value: u64,
    pub(crate) round: u64,
    pub(crate) broken: bool,
    pub(crate) scheduled_at: i64,
    /// When the gateway first wrote it: a resumed player gets the same tick, stamp included.
    pub(crate) server_timestamp: i64,
}

impl HeldTick {
    /// A logged tick, as first written by this gateway at `server_timestamp`.
    pub(crate) const fn of(tick: &tickcast_schemas::event::Tick, server_timestamp: i64) -> Self {
        Self {
            step: tick.step,
            value: tick.value,
            round: tick.round,
            broken: tick.broken,
            scheduled_at: tick.scheduled_at,
            server_timestamp,
        }
    }

    pub(crate) const fn message(&self) -> ServerMessage {
        ServerMessage::Tick {
            step: self.step,
            value: self.value,
            round: self.round,
            broken: self.broken,
            scheduled_at: self.scheduled_at,
            server_timestamp: self.server_timestamp,
        }
    }
}

/// One session's members and recent ticks.
#[derive(Debug, Default)]
pub(crate) struct SessionHub {
    members: ConnMap<Member>,
    /// The newest ticks, oldest first, for `resume`; allocated once at its full length.
    history: VecDeque<HeldTick>,
    /// The highest step forwarded: ticks at or below it are duplicates (e.g. from two
    /// generators during a hand-over) and are dropped.
    last_step: Option<i64>,
    ended: Option<Bytes>,
    /// Pace changes read from the tick topic: a join tells them even before the directory,
    /// which reads `game-events`, has them.
    paces: Vec<Pace>,
}

/// What to send a player right after it joins or resumes, before anything live.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    pub(crate) ticks: Vec<HeldTick>,
    pub(crate) ended: Option<Bytes>,
}

impl SessionHub {
    pub(crate) fn user_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.members.values().map(|m| m.user_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    pub(crate) const fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    /// Adds a member; returns the held ticks after `resume_after` (all of them for a join: a
    /// player who joins a running game gets the game so far, as far as it is held) and the end,
    /// if the session ended, which must be written before anything live.
    pub(crate) fn join(&mut self, connection: u64, user_id: String, resume_after: Option<i64>) -> Backlog {
        let held = self.last_step.unwrap_or(-1);
        let after = resume_after.unwrap_or(i64::MIN);
        let backlog = Backlog {
            ticks: self.history.iter().filter(|t| t.step > after).copied().collect(),
            ended: self.ended.clone(),
        };
        if self.ended.is_none() {
            self.members.insert(connection, Member { user_id, after_step: after.max(held) });
        }
        backlog
    }

    pub(crate) fn leave(&mut self, connection: u64) {
        self.members.remove(&connection);
    }

    /// Records a tick unless its step was already forwarded, and calls `deliver` for each member
    /// that has not got it yet.
    pub(crate) fn tick(&mut self, tick: &HeldTick, history_len: usize, mut deliver: impl FnMut(u64)) {
        let step = tick.step;
        if self.last_step.is_some_and(|last| step <= last) {
            return;
        }
        self.last_step = Some(step);
        if self.history.capacity() == 0 {
            // Exactly what it will hold (pushed, then trimmed): growth by doubling would leave
            // 512 places for 301.
            self.history.reserve_exact(history_len + 1);
        }
        self.history.push_back(*tick);
        while self.history.len() > history_len {
            self.history.pop_front();
        }
        for (&connection, member) in &self.members {
            if step > member.after_step {
                deliver(connection);
            }
        }
    }

    /// Records a pace change; whether it is new (a second generator's copy during a hand-over
    /// is not).
    pub(crate) fn pace(&mut self, pace: Pace) -> bool {
        if self.paces.iter().any(|p| p.from_step == pace.from_step) {
            return false;
        }
        self.paces.push(pace);
        true
    }

    /// `known` (the directory's paces of the session) with the changes this hub read.
    pub(crate) fn paces(&self, known: &PaceSchedule) -> PaceSchedule {
        let mut paces = known.clone();
        for pace in &self.paces {
            paces.record(*pace);
        }
        paces
    }

    /// Calls `deliver` for every member (countdowns).
    pub(crate) fn each_member(&self, deliver: impl FnMut(u64)) {
        self.members.keys().copied().for_each(deliver);
    }

    /// The session moved to another region: its members, who are no longer members.
    pub(crate) fn move_away(&mut self) -> Vec<u64> {
        self.members.drain().map(|(connection, _)| connection).collect()
    }

    /// Records the end; returns the members, who are no longer members, or nothing if the end
    /// was already seen.
    pub(crate) fn end(&mut self, frame: &Bytes) -> Vec<u64> {
        if self.ended.is_some() {
            return Vec::new();
        }
        self.ended = Some(frame.clone());
        self.members.drain().map(|(connection, _)| connection).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(step: i64) -> Bytes {
        Bytes::from(format!("t{step}"))
    }

    fn held(step: i64) -> HeldTick {
        HeldTick {
            step,
            value: 100 + step as u64,
            round: 0,
            broken: false,
            scheduled_at: step,
            server_timestamp: step,
        }
    }

    fn ticks(hub: &mut SessionHub, steps: impl IntoIterator<Item = i64>) -> Vec<(u64, i64)> {
        let mut delivered = Vec::new();
        for step in steps {
            hub.tick(&held(step), 2, |c| delivered.push((c, step)));
        }
        delivered
    }

    #[test]
    fn duplicate_steps_are_forwarded_once_and_resume_replays_what_is_held() {
        let mut hub = SessionHub::default();
        hub.join(1, "a".into(), None);
        assert_eq!(ticks(&mut hub, [0, 1, 1, 2, 0]), [(1, 0), (1, 1), (1, 2)]);
        let backlog = hub.join(2, "b".into(), Some(0));
        assert_eq!(backlog.ticks, [held(1), held(2)]);
        assert_eq!(hub.user_ids(), ["a", "b"]);
    }

    #[test]
    fn a_player_who_joins_a_running_game_gets_the_held_ticks_then_the_live_ones() {
        // Its join reached the gateway after the game's first ticks (a slow join, a late
        // player): it gets what is held, oldest first, then each live tick once.
        let mut hub = SessionHub::default();
        hub.join(1, "a".into(), None);
        ticks(&mut hub, 0..4);
        let backlog = hub.join(2, "b".into(), None);
        assert_eq!(backlog.ticks, [held(2), held(3)], "the two held ticks");
        let mut live = ticks(&mut hub, 3..5);
        live.sort_unstable();
        assert_eq!(live, [(1, 4), (2, 4)], "then live, no step twice");
    }

    #[test]
    fn a_member_never_gets_steps_at_or_below_its_resume_point() {
        // A gateway that just started holds nothing yet and reads old ticks from the log while a
        // player resumes at step 5: steps up to 5 must not reach the player again.
        let mut hub = SessionHub::default();
        assert!(hub.join(1, "a".into(), Some(5)).ticks.is_empty());
        assert_eq!(ticks(&mut hub, 0..8), [(1, 6), (1, 7)]);
    }

    #[test]
    fn the_end_releases_the_members_once() {
        let mut hub = SessionHub::default();
        hub.join(1, "a".into(), None);
        assert_eq!(hub.end(&frame(9)), [1]);
        assert!(hub.end(&frame(9)).is_empty());
        assert!(hub.is_ended());
        let backlog = hub.join(2, "a".into(), Some(0));
        assert_eq!(backlog.ended, Some(frame(9)));
        assert!(hub.user_ids().is_empty(), "nobody joins an ended session");
    }
}
