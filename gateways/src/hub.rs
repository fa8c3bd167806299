//! Session hubs: per session, the connected players' outboxes and the recent frames kept for
//! `resume`. The forwarder encodes each countdown, tick or end once and hands the same bytes to
//! every player's outbox; nothing here waits on a socket.

use std::collections::{HashMap, VecDeque};

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// What the forwarder hands to a connection.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// A countdown or tick frame, already encoded.
    Frame(Utf8Bytes),
    /// The session_ended frame: send it, then close.
    End(Utf8Bytes),
}

/// A connected player as the hub sees it.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) user_id: String,
    /// The connection's outbox. Bounded: a player who cannot take frames as fast as they come
    /// is disconnected rather than buffered without limit.
    pub(crate) outbox: mpsc::Sender<Outbound>,
    /// Ticks at or below this step are not sent to this member: it has them already (resume),
    /// or they predate its join (a gateway still reading its history from the log).
    pub(crate) after_step: i64,
}

/// One session's players and recent frames.
#[derive(Debug, Default)]
pub(crate) struct SessionHub {
    members: HashMap<u64, Member>,
    /// (step, frame) of the newest ticks, oldest first, for `resume`.
    history: VecDeque<(i64, Utf8Bytes)>,
    /// The highest step forwarded: ticks at or below it are duplicates (e.g. from two
    /// generators during a hand-over) and are dropped.
    last_step: Option<i64>,
    ended: Option<Utf8Bytes>,
}

/// What a broadcast did.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    /// Outboxes the frame went into.
    pub(crate) sent: usize,
    /// Connections dropped because their outbox was full.
    pub(crate) too_slow: Vec<u64>,
}

/// What to send a player right after it joins or resumes.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    pub(crate) frames: Vec<Utf8Bytes>,
    pub(crate) ended: Option<Utf8Bytes>,
}

impl SessionHub {
    pub(crate) fn user_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.members.values().map(|m| m.user_id.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Adds a member; with `resume_after`, returns the held ticks after that step (and the end,
    /// if the session ended), which the member must send before anything from its outbox.
    pub(crate) fn join(&mut self, connection: u64, mut member: Member, resume_after: Option<i64>) -> Backlog {
        let mut backlog = Backlog::default();
        let held = self.last_step.unwrap_or(-1);
        member.after_step = resume_after.map_or(held, |after| after.max(held));
        if let Some(after) = resume_after {
            backlog.frames =
                self.history.iter().filter(|(step, _)| *step > after).map(|(_, f)| f.clone()).collect();
            backlog.ended.clone_from(&self.ended);
        }
        if self.ended.is_none() {
            self.members.insert(connection, member);
        }
        backlog
    }

    pub(crate) const fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    pub(crate) fn leave(&mut self, connection: u64) {
        self.members.remove(&connection);
    }

    /// Forwards a tick frame unless its step was already forwarded; returns the connections
    /// whose outbox was full.
    pub(crate) fn tick(&mut self, step: i64, frame: Utf8Bytes, history_len: usize) -> Delivery {
        if self.last_step.is_some_and(|last| step <= last) {
            return Delivery::default();
        }
        self.last_step = Some(step);
        self.history.push_back((step, frame.clone()));
        while self.history.len() > history_len {
            self.history.pop_front();
        }
        self.broadcast(&Outbound::Frame(frame), step)
    }

    pub(crate) fn countdown(&mut self, frame: Utf8Bytes) -> Delivery {
        self.broadcast(&Outbound::Frame(frame), i64::MAX)
    }

    pub(crate) fn end(&mut self, frame: Utf8Bytes) -> Delivery {
        if self.ended.is_some() {
            return Delivery::default();
        }
        self.ended = Some(frame.clone());
        let full = self.broadcast(&Outbound::End(frame), i64::MAX);
        self.members.clear();
        full
    }

    /// Sends `message` to every member that has not got `step` yet.
    fn broadcast(&mut self, message: &Outbound, step: i64) -> Delivery {
        let mut delivery = Delivery::default();
        for (&connection, member) in &self.members {
            if step <= member.after_step {
                continue;
            }
            // try_send: a cheap clone of shared bytes, never an await while the hubs are locked.
            if member.outbox.try_send(message.clone()).is_ok() {
                delivery.sent += 1;
            } else {
                delivery.too_slow.push(connection);
            }
        }
        for connection in &delivery.too_slow {
            self.members.remove(connection);
        }
        delivery
    }
}

/// All sessions of a region, by session id.
#[derive(Debug, Default)]
pub(crate) struct Hubs {
    pub(crate) sessions: HashMap<String, SessionHub>,
}

impl Hubs {
    pub(crate) fn hub(&mut self, session_id: &str) -> &mut SessionHub {
        if !self.sessions.contains_key(session_id) {
            self.sessions.insert(session_id.to_owned(), SessionHub::default());
        }
        self.sessions.get_mut(session_id).expect("inserted above")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user: &str) -> (Member, mpsc::Receiver<Outbound>) {
        let (outbox, rx) = mpsc::channel(4);
        (Member { user_id: user.into(), outbox, after_step: -1 }, rx)
    }

    fn text(o: Outbound) -> String {
        match o {
            Outbound::Frame(f) | Outbound::End(f) => f.as_str().to_owned(),
        }
    }

    #[test]
    fn duplicate_steps_are_forwarded_once_and_resume_replays_what_is_held() {
        let mut hub = SessionHub::default();
        let (m, mut rx) = member("a");
        hub.join(1, m, None);
        for step in [0, 1, 1, 2, 0] {
            hub.tick(step, Utf8Bytes::from(format!("t{step}")), 2);
        }
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).map(text).collect();
        assert_eq!(got, ["t0", "t1", "t2"]);
        let (m, _rx) = member("b");
        let backlog = hub.join(2, m, Some(0));
        assert_eq!(backlog.frames.iter().map(|f| f.as_str()).collect::<Vec<_>>(), ["t1", "t2"]);
        assert_eq!(hub.user_ids(), ["a", "b"]);
    }

    #[test]
    fn a_member_never_gets_steps_at_or_below_its_resume_point() {
        // A gateway that just started holds nothing yet and reads old ticks from the log while a
        // player resumes at step 5: steps up to 5 must not reach the player again.
        let mut hub = SessionHub::default();
        let (m, mut rx) = member("a");
        assert!(hub.join(1, m, Some(5)).frames.is_empty());
        for step in 0..8 {
            hub.tick(step, Utf8Bytes::from(format!("t{step}")), 10);
        }
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).map(text).collect();
        assert_eq!(got, ["t6", "t7"]);
    }

    #[test]
    fn a_full_outbox_drops_the_member_not_the_frame_for_others() {
        let mut hub = SessionHub::default();
        let (slow, _slow_rx) = member("slow");
        let (fast, mut fast_rx) = member("fast");
        hub.join(1, slow, None);
        hub.join(2, fast, None);
        let mut dropped = Vec::new();
        for step in 0..6 {
            dropped.extend(hub.tick(step, Utf8Bytes::from(format!("t{step}")), 10).too_slow);
            while fast_rx.try_recv().is_ok() {}
        }
        assert_eq!(dropped, [1]);
        assert_eq!(hub.user_ids(), ["fast"]);
    }
}
