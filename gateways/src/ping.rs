//! One connection's pings in flight, sans I/O. Each ping carries a nonce drawn from a
//! cryptographic RNG, so only a pong that echoes a ping actually sent can answer it: a forged
//! "fresh" pong, or one sent unasked, matches nothing and is ignored (never logged). The send
//! time is the instant the fan-out wrote the ping to the socket, and a ping left unanswered
//! longer than the latency limit counts as a sample of its age, so a silent client is judged
//! like a slow one.
//!
//! The fan-out stamps each ping's send time into [`PingStamps`], which it shares with the
//! connection: the connection reads a stamp when it needs it (a pong, the next ping), so a
//! ping written costs the connection no message and no wake-up.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Pings kept in flight at most; a client that answers none has its oldest counted and dropped.
const MAX_IN_FLIGHT: usize = 8;

/// When the fan-out wrote a connection's pings: written by its shard, read by the connection.
/// Locked briefly by each, never across an await.
#[derive(Debug, Default)]
pub(crate) struct PingStamps(Mutex<VecDeque<(u64, i64)>>);

impl PingStamps {
    /// The ping `nonce` reached the socket at `at_us` (epoch µs).
    pub(crate) fn stamp(&self, nonce: u64, at_us: i64) {
        let mut stamps = self.0.lock().unwrap();
        if stamps.len() == MAX_IN_FLIGHT {
            stamps.pop_front();
        }
        stamps.push_back((nonce, at_us));
    }

    fn take(&self, nonce: u64) -> Option<i64> {
        let mut stamps = self.0.lock().unwrap();
        let index = stamps.iter().position(|&(n, _)| n == nonce)?;
        stamps.remove(index).map(|(_, at_us)| at_us)
    }
}

/// One connection's pings in flight.
#[derive(Debug, Default)]
pub(crate) struct PingTracker {
    /// Oldest first.
    in_flight: VecDeque<Ping>,
    /// Where the fan-out says when it wrote them.
    stamps: Arc<PingStamps>,
}

/// One ping in flight.
#[derive(Debug, Clone, Copy)]
struct Ping {
    nonce: u64,
    /// When the fan-out wrote it to the socket (epoch µs); `None` until its stamp was read.
    written_us: Option<i64>,
    /// When its pong arrived, if that was before its stamp could be read (the pong can reach
    /// the connection a moment before the shard stamps the write).
    answered_us: Option<i64>,
}

impl PingTracker {
    /// The stamps the fan-out writes this connection's send times into.
    pub(crate) fn stamps(&self) -> Arc<PingStamps> {
        Arc::clone(&self.stamps)
    }

    /// A new ping's nonce, unpredictable to the client.
    pub(crate) fn issue(&mut self) -> u64 {
        if self.in_flight.len() == MAX_IN_FLIGHT {
            self.in_flight.pop_front();
        }
        let nonce = uuid::Uuid::new_v4().as_u64_pair().0;
        self.in_flight.push_back(Ping { nonce, written_us: None, answered_us: None });
        nonce
    }

    /// A pong with `payload`, received at `at_us`. If it answers a ping in flight whose write
    /// is known, that is a sample: the ping's send time and the round trip in µs. A pong that
    /// answers nothing in flight changes nothing.
    pub(crate) fn answered(&mut self, payload: &[u8], at_us: i64) -> Option<(i64, i64)> {
        let nonce = u64::from_be_bytes(payload.try_into().ok()?);
        let index = self.in_flight.iter().position(|p| p.nonce == nonce && p.answered_us.is_none())?;
        let ping = &mut self.in_flight[index];
        if ping.written_us.is_none() {
            ping.written_us = self.stamps.take(nonce);
        }
        let Some(sent) = ping.written_us else {
            // Ahead of its stamp: the sample is taken once the stamp is read (`due`).
            ping.answered_us = Some(at_us);
            return None;
        };
        self.in_flight.remove(index);
        Some((sent, (at_us - sent).max(0)))
    }

    /// The samples due at `now_us`, each pushed to `out` as (send time, round trip in µs): a
    /// pong that came before its ping's stamp, and a ping written more than `limit_us` ago and
    /// still unanswered (a sample of its age). Each leaves the tracker.
    pub(crate) fn due(&mut self, now_us: i64, limit_us: i64, out: &mut Vec<(i64, i64)>) {
        let stamps = &self.stamps;
        self.in_flight.retain_mut(|ping| {
            if ping.written_us.is_none() {
                ping.written_us = stamps.take(ping.nonce);
            }
            match (ping.written_us, ping.answered_us) {
                (Some(sent), Some(answered)) => {
                    out.push((sent, (answered - sent).max(0)));
                    false
                }
                (Some(sent), None) if now_us - sent > limit_us => {
                    out.push((sent, now_us - sent));
                    false
                }
                _ => true,
            }
        });
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
        let mut pings = PingTracker::default();
        let nonce = pings.issue();
        pings.stamps().stamp(nonce, 1_000);
        assert_eq!(pings.answered(&(nonce ^ 1).to_be_bytes(), 1_500), None, "a forged nonce");
        assert_eq!(pings.answered(b"short", 1_500), None, "not a nonce at all");
        assert_eq!(pings.answered(&nonce.to_be_bytes(), 41_000), Some((1_000, 40_000)));
        assert_eq!(pings.answered(&nonce.to_be_bytes(), 42_000), None, "a pong counts once");
    }

    #[test]
    fn a_pong_that_overtakes_the_stamp_of_its_write_is_sampled_once_the_stamp_is_read() {
        let mut pings = PingTracker::default();
        let nonce = pings.issue();
        assert_eq!(pings.answered(&nonce.to_be_bytes(), 5_000), None, "its write is not stamped yet");
        assert_eq!(pings.answered(&nonce.to_be_bytes(), 6_000), None, "a second pong adds nothing");
        pings.stamps().stamp(nonce, 1_000);
        let mut out = Vec::new();
        pings.due(10_000_000, 150_000, &mut out);
        assert_eq!(out, [(1_000, 4_000)], "the pong's round trip, not the ping's age");
        out.clear();
        pings.due(20_000_000, 150_000, &mut out);
        assert!(out.is_empty(), "sampled once");
    }

    #[test]
    fn nonces_are_not_a_clock_or_a_counter() {
        let mut pings = PingTracker::default();
        let (a, b) = (pings.issue(), pings.issue());
        assert_ne!(a, b);
        assert_ne!(b.wrapping_sub(a), 1);
    }

    #[test]
    fn an_unanswered_ping_counts_as_a_sample_of_its_age() {
        let mut pings = PingTracker::default();
        let old = pings.issue();
        pings.stamps().stamp(old, 0);
        let fresh = pings.issue();
        pings.stamps().stamp(fresh, 900_000);
        let mut out = Vec::new();
        pings.due(1_000_000, 150_000, &mut out);
        assert_eq!(out, [(0, 1_000_000)]);
        assert_eq!(pings.answered(&old.to_be_bytes(), 1_000_001), None, "counted already");
        assert_eq!(pings.answered(&fresh.to_be_bytes(), 1_000_000), Some((900_000, 100_000)));
    }

    #[test]
    fn a_client_that_never_answers_holds_a_bounded_number_of_pings() {
        let mut pings = PingTracker::default();
        for _ in 0..100 {
            pings.issue();
        }
        assert_eq!(pings.in_flight.len(), MAX_IN_FLIGHT);
        assert_eq!(&ping_frame(0x0102)[..], &[0x89, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
    }
}
