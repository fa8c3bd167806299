//! The original design's tables — sessions, connections, latency — as projections of the log:
//! rebuilt from `game-events` at any time, written idempotently, never the source of truth.
//!
//! This crate owns the items ([`model`]), how each event changes them ([`apply::Fold`], written
//! once for every store), and the [`ProjectionStore`] trait with its backends, chosen by URL
//! ([`open`]): `embedded://DIR` (SQLite, `DIR/projections.sqlite`) and
//! `dynamodb://PREFIX?region=R[&endpoint=URL]` (DynamoDB tables `PREFIX-sessions`,
//! `PREFIX-connections`, `PREFIX-latency`, and a second set a rebuild fills). It reads no log and serves no HTTP: the projector
//! role feeds it, the edge reads it.
//!
//! # Layout
//! - [`model`]: the items, as the read API shows them.
//! - [`apply`]: the fold from events to item writes.
//! - [`embedded`], [`dynamodb`]: the stores.

pub mod apply;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod embedded;
mod error;
pub mod model;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::{Error, Result};
use model::{ConnectionItem, LatencyItem, Phase, SessionItem};

/// The items one batch of events changed, each in its latest version.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub sessions: Vec<SessionItem>,
    pub connections: Vec<ConnectionItem>,
    pub latency: Vec<LatencyItem>,
}

/// Where the projections live. Every write of a session or connection is conditional: it
/// happens only if the stored item has not seen a later event (`position`).
#[async_trait]
pub trait ProjectionStore: Send + Sync + std::fmt::Debug {
    /// Creates the tables (and on DynamoDB their indexes and TTL) if they are missing.
    async fn create_tables(&self) -> Result<()>;
    /// Whether expired items are deleted (DynamoDB: TTL enabled on every table).
    async fn expiry_enabled(&self) -> Result<bool>;

    async fn session(&self, id: &str) -> Result<Option<SessionItem>>;
    async fn connection(&self, id: &str) -> Result<Option<ConnectionItem>>;
    /// Writes a batch: each session and connection unless the stored one's position is at or
    /// past the item's, and the latency samples (facts: writing one again writes the same
    /// item). Returns how many sessions and connections were written (the others had seen
    /// their events already).
    async fn write(&self, batch: &Batch) -> Result<usize>;

    /// Sessions in `phase`, newest (`createdAt`) first.
    async fn sessions(&self, phase: Phase, limit: usize) -> Result<Vec<SessionItem>>;
    /// A session's connections, by `joinedAt`.
    async fn connections_of(&self, session_id: &str) -> Result<Vec<ConnectionItem>>;
    /// A connection's newest latency samples, newest first.
    async fn latency_of(&self, connection_id: &str, limit: usize) -> Result<Vec<LatencyItem>>;

    /// Deletes items whose `expiresAt` (epoch s) is before `now_s`, where the store does not do
    /// it itself (DynamoDB's TTL does); returns how many.
    async fn expire(&self, now_s: i64) -> Result<u64>;

    /// Removes every item.
    async fn clear(&self) -> Result<()>;

    /// A new, empty store to rebuild this one into: readers of this store see its items, not
    /// the rebuild's, until [`ProjectionStore::finish_rebuild`]. A rebuild stopped half-way
    /// leaves this store as it was (and its unfinished rebuild is dropped by the next one).
    async fn begin_rebuild(&self) -> Result<Arc<dyn ProjectionStore>>;

    /// Makes the rebuild's items this store's, at once, and drops the rebuild.
    async fn finish_rebuild(&self) -> Result<()>;
}

/// Opens the store at `url`: `embedded://DIR` or `dynamodb://PREFIX?region=R[&endpoint=URL]`.
pub async fn open(url: &str) -> Result<Arc<dyn ProjectionStore>> {
    let bad = |reason: &str| Error::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
    if let Some(dir) = url.strip_prefix("embedded://") {
        if dir.is_empty() {
            return Err(bad("expected embedded://DIR, e.g. embedded://./data"));
        }
        return Ok(Arc::new(embedded::EmbeddedStore::open(std::path::Path::new(dir))?));
    }
    if let Some(rest) = url.strip_prefix("dynamodb://") {
        #[cfg(feature = "dynamodb")]
        {
            let address = dynamodb::DynamoAddress::parse(url, rest)?;
            return Ok(Arc::new(dynamodb::DynamoStore::connect(address).await));
        }
        #[cfg(not(feature = "dynamodb"))]
        return Err(bad(&format!(
            "this build has no DynamoDB store (feature `dynamodb`); {rest:?} cannot open"
        )));
    }
    Err(bad("unknown scheme; use embedded://DIR or dynamodb://PREFIX?region=R[&endpoint=URL]"))
}
