//! The writer thread: owns the write connection and commits whatever appends, group commits and
//! syncs are waiting as one transaction (group commit), lingering briefly when a batch is small.

use std::sync::Arc;

use rusqlite::{Connection, params};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::state::Shared;
use super::{DURABLE_LINGER, LINGER_BELOW_RECORDS, MAX_GROUP_COMMIT_RECORDS, RELAXED_LINGER};
use crate::{Durability, Error, Record, Result};

#[derive(Debug)]
pub(super) enum WriteRequest {
    Append {
        topic: String,
        /// With their offsets assigned.
        records: Vec<Record>,
        durability: Durability,
        /// Whether the records were made visible at append time (relaxed).
        visible: bool,
        reply: oneshot::Sender<Result<()>>,
        /// Released when the records are committed.
        _permit: OwnedSemaphorePermit,
    },
    Commit {
        group: String,
        topic: String,
        partition: u32,
        next_offset: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    Sync {
        reply: oneshot::Sender<Result<()>>,
    },
    /// Delete old records (retention): up to `limit` of `topic`'s oldest below offset `before`;
    /// the reply is how many went.
    Prune {
        topic: String,
        before: u64,
        limit: u32,
        reply: oneshot::Sender<Result<u64>>,
    },
}

impl WriteRequest {
    pub(super) const fn is_durable(&self) -> bool {
        !matches!(self, Self::Append { durability: Durability::Relaxed, .. })
    }

    pub(super) fn fail(self, message: &str) {
        let error = || Error::WriteFailed(message.to_owned());
        match self {
            Self::Append { reply, .. } | Self::Commit { reply, .. } | Self::Sync { reply } => {
                drop(reply.send(Err(error())));
            }
            Self::Prune { reply, .. } => drop(reply.send(Err(error()))),
        }
    }
}

impl WriteRequest {
    pub(super) fn record_count(&self) -> usize {
        match self {
            Self::Append { records, .. } => records.len(),
            _ => 1,
        }
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    conn: Connection,
    shared: Arc<Shared>,
    /// The connection's current `synchronous` setting, to change it only when needed.
    synchronous_full: Option<bool>,
}

impl Writer {
    pub(super) const fn new(conn: Connection, shared: Arc<Shared>) -> Self {
        Self { conn, shared, synchronous_full: None }
    }

    pub(super) fn run(mut self, mut requests: mpsc::UnboundedReceiver<WriteRequest>) {
        let mut batch = Vec::new();
        while let Some(first) = requests.blocking_recv() {
            let mut records = first.record_count();
            batch.push(first);
            let mut lingered = false;
            loop {
                match requests.try_recv() {
                    Ok(next) if records < MAX_GROUP_COMMIT_RECORDS => {
                        records += next.record_count();
                        batch.push(next);
                    }
                    Ok(next) => {
                        self.commit_batch(&mut batch);
                        records = next.record_count();
                        batch.push(next);
                    }
                    // A small batch waits a moment for company: every commit rewrites the pages
                    // it touches, so fewer, larger commits cost far less per record. Relaxed
                    // records are visible already and can wait longer than durable ones.
                    Err(_) if !lingered && records < LINGER_BELOW_RECORDS => {
                        lingered = true;
                        let durable = batch.iter().any(WriteRequest::is_durable);
                        std::thread::sleep(if durable { DURABLE_LINGER } else { RELAXED_LINGER });
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
        // All senders are gone: make relaxed writes durable before the thread ends.
        let _ = self
            .set_synchronous(true)
            .and_then(|()| Ok(self.conn.execute_batch("PRAGMA wal_checkpoint(FULL)")?));
    }

    fn set_synchronous(&mut self, full: bool) -> Result<()> {
        if self.synchronous_full != Some(full) {
            self.conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
            self.synchronous_full = Some(full);
        }
        Ok(())
    }

    fn commit_batch(&mut self, batch: &mut Vec<WriteRequest>) {
        let durable = batch.iter().any(WriteRequest::is_durable);
        let pruned = match self.write(batch, durable) {
            Ok(pruned) => pruned,
            Err(error) => {
                // The batch's offsets are handed out and cannot be reused without a gap: the log
                // stops taking appends and says why.
                let message = error.to_string();
                tracing::error!(%error, "embedded log commit failed; the log refuses further appends");
                *self.shared.failed.lock().unwrap() = Some(message.clone());
                for request in batch.drain(..) {
                    request.fail(&message);
                }
                return;
            }
        };
        let mut pruned = pruned.into_iter();
        {
            let mut topics = self.shared.topics.lock().unwrap();
            for request in batch.iter() {
                match request {
                    WriteRequest::Append { topic, records, visible: false, .. } => {
                        if let Some(state) = topics.get_mut(topic) {
                            state.publish(records);
                        }
                    }
                    // The memory window must not serve what is gone; dropping more than was
                    // deleted only sends those reads to SQLite.
                    WriteRequest::Prune { topic, before, .. } => {
                        if let Some(state) = topics.get_mut(topic) {
                            state.forget_before(*before);
                        }
                    }
                    _ => {}
                }
            }
        }
        for request in batch.drain(..) {
            match request {
                WriteRequest::Append { reply, .. }
                | WriteRequest::Commit { reply, .. }
                | WriteRequest::Sync { reply } => {
                    drop(reply.send(Ok(())));
                }
                WriteRequest::Prune { reply, .. } => drop(reply.send(Ok(pruned.next().unwrap_or(0)))),
            }
        }
    }

    /// Writes the batch in one transaction; returns how many records each prune deleted, in
    /// order.
    fn write(&mut self, batch: &[WriteRequest], durable: bool) -> Result<Vec<u64>> {
        self.set_synchronous(durable)?;
        let mut pruned = Vec::new();
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (topic, offset, key, ts, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut commit = tx.prepare_cached(
                "INSERT INTO group_offsets (grp, topic, partition, next_offset) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (grp, topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            )?;
            for request in batch {
                match request {
                    WriteRequest::Append { topic, records, .. } => {
                        for r in records {
                            insert.execute(params![
                                topic,
                                super::offset_of(r) as i64,
                                r.key,
                                r.timestamp_ms,
                                &r.payload[..]
                            ])?;
                        }
                    }
                    WriteRequest::Commit { group, topic, partition, next_offset, .. } => {
                        commit.execute(params![group, topic, partition, *next_offset as i64])?;
                    }
                    WriteRequest::Sync { .. } => {}
                    WriteRequest::Prune { topic, before, limit, .. } => {
                        // Oldest first by the primary key (topic, offset): what goes is always a
                        // prefix. Bounded, so appends queued behind it wait for one short delete.
                        let deleted = tx
                            .prepare_cached(
                                "DELETE FROM records WHERE topic = ?1 AND offset IN (SELECT offset FROM records
                                 WHERE topic = ?1 AND offset < ?2 ORDER BY offset LIMIT ?3)",
                            )?
                            .execute(params![topic, *before as i64, limit])?;
                        pruned.push(deleted as u64);
                    }
                }
            }
        }
        tx.commit()?;
        Ok(pruned)
    }
}
