//! Processors: the roles that consume the log and derive something from it.
//!
//! This crate owns the tick generator — the per-session schedule (sans I/O) and the consumer
//! that turns it into countdown, tick and session_ended events — the archiver, which writes
//! the log to Parquet files, and the projector, which folds `game-events` into the projection
//! store. It must not talk to players (gateways do) and must not keep state
//! that cannot be rebuilt from the log.
//!
//! # Layout
//! - [`schedule`]: one session's deadlines, engine stepper and end conditions (sans I/O).
//! - [`tick_generator`]: the consumer-group adapter over the event log; its `gateway_loss`:
//!   which gateway serves each player, and who leaves with a silent gateway.
//! - [`archiver`]: the log as Parquet files, partitioned by kind, date and region.
//! - [`projector`]: `game-events` as the sessions, connections and latency tables.
//! - [`matchmaker`]: tickets searching, matched into games by latency ([`matchmaker::rules`],
//!   sans I/O).
//! - [`retention`]: the embedded log's old records deleted once archived and not running.
//! - `metrics`: metric names.

pub mod archiver;
pub mod matchmaker;
mod metrics;
pub mod pace;
pub mod projector;
pub mod retention;
pub mod schedule;
pub mod tick_generator;

pub use archiver::{Archiver, ArchiverConfig};
pub use matchmaker::{Matchmaker, MatchmakerConfig};
pub use projector::{Projector, ProjectorConfig};
pub use retention::{Retention, RetentionConfig};
pub use tick_generator::{TickGenerator, TickGeneratorConfig};

/// Errors of the processors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] tickcast_eventlog::Error),
    #[error("archive: {0}")]
    Archive(String),
    #[error("archive: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("archive: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("projection store: {0}")]
    Store(#[from] tickcast_projections::Error),
    /// The operating system gave no random seed for a matched game (retrying may help).
    #[error("no entropy for a seed: {0}")]
    Entropy(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
