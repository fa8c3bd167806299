//! What the bots count: a lock-free lateness histogram shared by all players, and each
//! player's record of the steps it received.

use std::sync::atomic::{AtomicU64, Ordering};

/// Lateness in microseconds, in buckets of 10 µs up to 10 ms, 100 µs up to 100 ms, 1 ms up to
/// 10 s, and one overflow bucket: percentiles to within a bucket, no allocation per sample.
#[derive(Debug)]
pub struct LatenessHistogram {
    buckets: Vec<AtomicU64>,
    max_us: AtomicU64,
    /// Samples below zero (a tick received before it was due: clock skew between machines).
    early: AtomicU64,
}

const FINE_END: u64 = 10_000; // 10 ms in 10 µs buckets
const MID_END: u64 = 100_000; // 100 ms in 100 µs buckets
const COARSE_END: u64 = 10_000_000; // 10 s in 1 ms buckets
const BUCKETS: usize =
    (FINE_END / 10 + (MID_END - FINE_END) / 100 + (COARSE_END - MID_END) / 1000 + 1) as usize;

fn bucket_of(us: u64) -> usize {
    (if us < FINE_END {
        us / 10
    } else if us < MID_END {
        FINE_END / 10 + (us - FINE_END) / 100
    } else if us < COARSE_END {
        FINE_END / 10 + (MID_END - FINE_END) / 100 + (us - MID_END) / 1000
    } else {
        BUCKETS as u64 - 1
    }) as usize
}

/// The upper bound of a bucket, in µs.
fn upper_bound(bucket: usize) -> u64 {
    let b = bucket as u64;
    let fine = FINE_END / 10;
    let mid = fine + (MID_END - FINE_END) / 100;
    if b < fine {
        (b + 1) * 10
    } else if b < mid {
        FINE_END + (b - fine + 1) * 100
    } else {
        MID_END + (b - mid + 1) * 1000
    }
}

impl Default for LatenessHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
            early: AtomicU64::new(0),
        }
    }
}

impl LatenessHistogram {
    /// Records one lateness, in µs (negative when early).
    pub fn record(&self, lateness_us: i64) {
        let us = if lateness_us < 0 {
            self.early.fetch_add(1, Ordering::Relaxed);
            0
        } else {
            lateness_us as u64
        };
        self.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    #[must_use]
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    #[must_use]
    pub fn early(&self) -> u64 {
        self.early.load(Ordering::Relaxed)
    }

    /// The value at quantile `q` (0–1), in ms: the upper bound of the bucket holding it.
    #[must_use]
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                let bound = upper_bound(i).min(self.max_us.load(Ordering::Relaxed));
                return bound as f64 / 1000.0;
            }
        }
        self.max_ms()
    }

    #[must_use]
    pub fn max_ms(&self) -> f64 {
        self.max_us.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// One player's received steps, as a bitset over `0..=last_expected`.
#[derive(Debug)]
pub struct StepRecord {
    seen: Vec<u64>,
    last_expected: i64,
    /// The range it was made for: the most `last_expected` may be.
    last_possible: i64,
    last_received: Option<i64>,
    pub delivered: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
}

impl StepRecord {
    #[must_use]
    pub fn new(last_expected: i64) -> Self {
        let words = usize::try_from(last_expected + 1).unwrap_or(0).div_ceil(64);
        Self {
            seen: vec![0; words],
            last_expected,
            last_possible: last_expected,
            last_received: None,
            delivered: 0,
            duplicates: 0,
            out_of_order: 0,
        }
    }

    /// Records a received step; returns whether it is inside the measured range.
    pub fn receive(&mut self, step: i64) -> bool {
        if let Some(last) = self.last_received
            && step < last
        {
            self.out_of_order += 1;
        }
        self.last_received = Some(self.last_received.map_or(step, |l| l.max(step)));
        if step < 0 || step > self.last_expected {
            return false;
        }
        let (word, bit) = ((step / 64) as usize, step % 64);
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
        } else {
            self.seen[word] |= 1 << bit;
            self.delivered += 1;
        }
        true
    }

    /// The measured range ends at `last` instead (an adaptive game's pace changed), never past
    /// the range it was made for nor below a step already received.
    pub fn expect_until(&mut self, last: i64) {
        let floor = self.last_received.unwrap_or(-1);
        self.last_expected = last.max(floor).min(self.last_possible);
    }

    /// Steps expected in the measured range.
    #[must_use]
    pub fn expected(&self) -> u64 {
        u64::try_from(self.last_expected + 1).unwrap_or(0)
    }

    #[must_use]
    pub fn missing(&self) -> u64 {
        self.expected() - self.delivered
    }

    /// Whether every expected step has arrived.
    #[must_use]
    pub fn complete(&self) -> bool {
        self.delivered == self.expected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_land_in_the_right_bucket() {
        let h = LatenessHistogram::default();
        for us in 1..=1000 {
            h.record(us * 100); // 0.1 ms … 100 ms
        }
        assert!((h.quantile_ms(0.5) - 50.0).abs() <= 0.11, "{}", h.quantile_ms(0.5));
        assert!((h.quantile_ms(0.99) - 99.0).abs() <= 1.0, "{}", h.quantile_ms(0.99));
        assert_eq!(h.max_ms(), 100.0);
        h.record(-5);
        assert_eq!(h.early(), 1);
        h.record(60_000_000);
        assert_eq!(h.max_ms(), 60_000.0);
    }

    #[test]
    fn steps_are_counted_once_and_disorder_noticed() {
        let mut r = StepRecord::new(9);
        for step in [0, 1, 2, 2, 4, 3, 5, 12] {
            r.receive(step);
        }
        assert_eq!((r.delivered, r.duplicates, r.out_of_order), (6, 1, 1));
        assert_eq!((r.expected(), r.missing()), (10, 4));
    }

    #[test]
    fn a_slower_pace_expects_fewer_steps_but_never_fewer_than_received_nor_more_than_planned() {
        let mut r = StepRecord::new(99);
        for step in 0..=20 {
            r.receive(step);
        }
        r.expect_until(40);
        assert_eq!(r.expected(), 41);
        r.expect_until(5);
        assert_eq!(r.expected(), 21, "step 20 was received");
        r.expect_until(1_000);
        assert_eq!(r.expected(), 100);
    }
}
