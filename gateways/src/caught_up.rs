//! When a tail has read the log up to now: a gateway starts by reading hours of history, and is
//! not ready (`/readyz`) until both its tails are past it.
//!
//! A tail says nothing about where the log ends, so "caught up" is seen from what it delivers:
//! a record written after the tail started, or a pause — history comes back in batches without
//! waiting, so a tail that has had nothing for [`QUIET`] is at the end.

use std::time::Duration;

use tickcast_eventlog::{Record, Result, Tail};
use tickcast_schemas::health::Readiness;

/// How long a tail must have nothing to deliver to count as at the end of its history: longer
/// than a backend's pause between two history batches (Kinesis polls every 200 ms by default).
pub(crate) const QUIET: Duration = Duration::from_millis(1000);

/// A tail that sets `readiness` once it has caught up.
#[derive(Debug)]
pub(crate) struct CaughtUp {
    tail: Box<dyn Tail>,
    readiness: Readiness,
    /// Epoch ms when the tail started: a record stamped after it is live.
    started_ms: i64,
    /// Whether it has caught up: set once, so a gateway that turned not ready to stop is not
    /// made ready again by a quiet tail.
    caught_up: bool,
}

impl CaughtUp {
    pub(crate) fn new(tail: Box<dyn Tail>, readiness: Readiness) -> Self {
        Self { tail, readiness, started_ms: crate::now_ms(), caught_up: false }
    }

    /// The next records, as [`Tail::next_batch`]; cancel-safe like it.
    pub(crate) async fn next_batch(&mut self) -> Result<Vec<Record>> {
        if self.caught_up {
            return self.tail.next_batch().await;
        }
        match tokio::time::timeout(QUIET, self.tail.next_batch()).await {
            Ok(records) => {
                let records = records?;
                if records.iter().any(|r| r.timestamp_ms >= self.started_ms) {
                    self.caught_up();
                }
                Ok(records)
            }
            Err(_) => {
                self.caught_up();
                self.tail.next_batch().await
            }
        }
    }

    fn caught_up(&mut self) {
        self.caught_up = true;
        self.readiness.set_ready();
    }
}
