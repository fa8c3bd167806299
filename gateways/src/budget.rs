//! A connection's allowance of client messages (sans I/O: the caller passes the time). A client
//! that sends more than its budget is disconnected: every message costs the gateway a parse and
//! often an answer, so one flooding socket must not take the time of the players around it.

use std::time::Instant;

/// A token bucket: `per_second` messages a second on average, bursts of up to two seconds' worth.
#[derive(Debug)]
pub(crate) struct MessageBudget {
    /// 0: no limit.
    per_second: u64,
    /// Thousandths of a message, so refills need no floats.
    capacity_milli: u64,
    tokens_milli: u64,
    refilled_at: Instant,
}

impl MessageBudget {
    pub(crate) fn new(per_second: u32, now: Instant) -> Self {
        let capacity_milli = u64::from(per_second) * 2 * 1000;
        Self { per_second: per_second.into(), capacity_milli, tokens_milli: capacity_milli, refilled_at: now }
    }

    /// Spends one message received at `now`; `false` once the budget is exhausted.
    pub(crate) fn spend(&mut self, now: Instant) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let elapsed_us = now.saturating_duration_since(self.refilled_at).as_micros() as u64;
        // per_second messages a second are per_second thousandths a millisecond.
        let refill = elapsed_us.saturating_mul(self.per_second) / 1000;
        if refill > 0 {
            self.tokens_milli = (self.tokens_milli + refill).min(self.capacity_milli);
            self.refilled_at = now;
        }
        if self.tokens_milli < 1000 {
            return false;
        }
        self.tokens_milli -= 1000;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_of_two_seconds_then_the_rate() {
        let t0 = Instant::now();
        let mut budget = MessageBudget::new(10, t0);
        assert_eq!((0..30).filter(|_| budget.spend(t0)).count(), 20, "a burst of two seconds' worth");
        assert!(!budget.spend(t0 + Duration::from_millis(50)), "half a message refilled");
        assert!(budget.spend(t0 + Duration::from_millis(100)), "one message after 100 ms");
        // A client that keeps to the rate is never refused.
        let mut steady = MessageBudget::new(10, t0);
        assert!((1..1000).all(|i| steady.spend(t0 + Duration::from_millis(100 * i))));
    }

    #[test]
    fn zero_is_no_limit() {
        let t0 = Instant::now();
        let mut budget = MessageBudget::new(0, t0);
        assert!((0..100_000).all(|_| budget.spend(t0)));
    }
}
