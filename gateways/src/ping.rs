//! Pings, sans I/O: who is pinged when ([`PingSchedule`], one per fan-out shard) and each
//! connection's pings in flight ([`PingsInFlight`]).
//!
//! The shard that writes a player's ticks also writes its pings: one timer per shard, not one
//! per player, so a ping costs the player's connection task no timer and no wake-up; the task
//! wakes for the pong alone. Each ping carries a nonce drawn from a cryptographic RNG, so only
//! a pong that echoes a ping actually sent can answer it: a forged "fresh" pong, or one sent
//! unasked, matches nothing and is ignored (never logged). A ping left unanswered longer than
//! the latency limit counts as a sample of its age, so a silent client is judged like a slow one.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pings kept in flight at most; a client that answers none has its oldest counted and dropped.
const MAX_IN_FLIGHT: usize = 8;

/// Pings due this close together are written in one wake-up of the shard: a ping a few
/// milliseconds early measures the same round trip.
const COALESCE: Duration = Duration::from_millis(10);

/// One connection's pings in flight: issued by its shard as it writes them, answered by its
/// connection as pongs arrive. Locked briefly by each, never across an await.
#[derive(Debug, Default)]
pub(crate) struct PingsInFlight(Mutex<VecDeque<Ping>>);

/// One ping in flight.
#[derive(Debug, Clone, Copy)]
struct Ping {
    nonce: u64,
    /// When the shard wrote it (epoch µs).
    written_us: i64,
}

impl PingsInFlight {
    /// A ping written at `written_us`: its nonce, unpredictable to the client. Pings written
    /// more than `limit_us` before it and still unanswered leave as samples of their age,
    /// pushed to `overdue` as (send time, age in µs).
    pub(crate) fn issue(&self, written_us: i64, limit_us: i64, overdue: &mut Vec<(i64, i64)>) -> u64 {
        let mut in_flight = self.0.lock().unwrap();
        in_flight.retain(|ping| {
            let age = written_us - ping.written_us;
            let keep = age <= limit_us;
            if !keep {
                overdue.push((ping.written_us, age));
            }
            keep
        });
        if in_flight.len() == MAX_IN_FLIGHT {
            in_flight.pop_front();
        }
        let nonce = uuid::Uuid::new_v4().as_u64_pair().0;
        in_flight.push_back(Ping { nonce, written_us });
        nonce
    }

    /// A pong with `payload`, received at `at_us`. If it answers a ping in flight, that is a
    /// sample: the ping's send time and the round trip in µs. A pong that answers nothing in
    /// flight changes nothing.
    pub(crate) fn answered(&self, payload: &[u8], at_us: i64) -> Option<(i64, i64)> {
        let nonce = u64::from_be_bytes(payload.try_into().ok()?);
        let mut in_flight = self.0.lock().unwrap();
        let index = in_flight.iter().position(|p| p.nonce == nonce)?;
        let ping = in_flight.remove(index)?;
        Some((ping.written_us, (at_us - ping.written_us).max(0)))
    }
}

/// When each of a shard's players is next pinged, soonest first. Every player is pinged at
/// the same interval, so a queue in the order of scheduling stays in the order of due times.
#[derive(Debug)]
pub(crate) struct PingSchedule {
    interval: Duration,
    /// (due, connection), soonest first; a connection gone by its turn is forgotten then.
    due: VecDeque<(Instant, u64)>,
}

impl PingSchedule {
    pub(crate) fn new(interval: Duration) -> Self {
        Self { interval, due: VecDeque::new() }
    }

    /// `connection` joined at `now`: its first ping is due one interval later.
    pub(crate) fn add(&mut self, connection: u64, now: Instant) {
        self.due.push_back((now + self.interval, connection));
    }

    /// When the soonest ping is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.front().map(|&(due, _)| due)
    }

    /// Calls `ping` for each connection due by `now`; each one it pings (`true`) is due again
    /// one interval from `now`, each other one is forgotten.
    pub(crate) fn take_due(&mut self, now: Instant, mut ping: impl FnMut(u64) -> bool) {
        while let Some(&(due, connection)) = self.due.front() {
            if due > now + COALESCE {
                return;
            }
            self.due.pop_front();
            if ping(connection) {
                self.due.push_back((now + self.interval, connection));
            }
        }
    }
}

/// The frame of a ping with `nonce`, as a server sends it (unmasked).
pub(crate) fn ping_frame(nonce: u64) -> bytes::Bytes {
    let mut frame = Vec::with_capacity(10);
    frame.extend_from_slice(&[0x89, 8]);
    frame.extend_from_slice(&nonce.to_be_bytes());
    bytes::Bytes::from(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pong_echoing_a_written_ping_is_a_sample() {
        let pings = PingsInFlight::default();
        let nonce = pings.issue(1_000, 150_000, &mut Vec::new());
        assert_eq!(pings.answered(&(nonce ^ 1).to_be_bytes(), 1_500), None, "a forged nonce");
        assert_eq!(pings.answered(b"short", 1_500), None, "not a nonce at all");
        assert_eq!(pings.answered(&nonce.to_be_bytes(), 41_000), Some((1_000, 40_000)));
        assert_eq!(pings.answered(&nonce.to_be_bytes(), 42_000), None, "a pong counts once");
    }

    #[test]
    fn nonces_are_not_a_clock_or_a_counter() {
        let pings = PingsInFlight::default();
        let (a, b) = (pings.issue(0, 1, &mut Vec::new()), pings.issue(0, 1, &mut Vec::new()));
        assert_ne!(a, b);
        assert_ne!(b.wrapping_sub(a), 1);
    }

    #[test]
    fn an_unanswered_ping_counts_as_a_sample_of_its_age_when_the_next_one_goes_out() {
        let pings = PingsInFlight::default();
        let mut overdue = Vec::new();
        let old = pings.issue(0, 150_000, &mut overdue);
        let fresh = pings.issue(100_000, 150_000, &mut overdue);
        assert!(overdue.is_empty(), "100 ms old: within the limit");
        pings.issue(1_000_000, 150_000, &mut overdue);
        assert_eq!(overdue, [(0, 1_000_000), (100_000, 900_000)]);
        assert_eq!(pings.answered(&old.to_be_bytes(), 1_000_001), None, "counted already");
        assert_eq!(pings.answered(&fresh.to_be_bytes(), 1_000_001), None, "counted already");
    }

    #[test]
    fn a_client_that_never_answers_holds_a_bounded_number_of_pings() {
        let pings = PingsInFlight::default();
        for _ in 0..100 {
            pings.issue(0, i64::MAX, &mut Vec::new());
        }
        assert_eq!(pings.0.lock().unwrap().len(), MAX_IN_FLIGHT);
        assert_eq!(&ping_frame(0x0102)[..], &[0x89, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn each_player_is_pinged_once_an_interval_and_a_gone_one_is_forgotten() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut schedule = PingSchedule::new(second);
        schedule.add(1, start);
        schedule.add(2, start + Duration::from_millis(5));
        schedule.add(3, start + Duration::from_millis(500));
        assert_eq!(schedule.next_due(), Some(start + second));
        let mut pinged = Vec::new();
        schedule.take_due(start + Duration::from_millis(999), |c| {
            pinged.push(c);
            c != 2
        });
        assert_eq!(pinged, [1, 2], "due within the coalescing window; 3 is not due yet");
        assert_eq!(schedule.next_due(), Some(start + Duration::from_millis(1_500)));
        pinged.clear();
        schedule.take_due(start + Duration::from_millis(2_000), |c| {
            pinged.push(c);
            true
        });
        assert_eq!(pinged, [3, 1], "2 was gone and is forgotten");
        assert_eq!(schedule.next_due(), Some(start + Duration::from_millis(3_000)));
    }
}
