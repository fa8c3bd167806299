//! Readers of the embedded log: bounded scans, live tails (woken by the writer through each
//! topic's `watch` of its end) and the single member of a consumer group.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use super::MAX_BATCH;
use super::state::Shared;
use super::writer::WriteRequest;
use crate::{CommitPosition, Error, GroupConsumer, GroupEvent, Record, Result, Scan, Tail, TopicPartition};

/// A bounded reader of one topic of the embedded log: up to the end it had when it started.
#[derive(Debug)]
pub(super) struct EmbeddedScan {
    pub(super) shared: Arc<Shared>,
    pub(super) topic: Arc<str>,
    pub(super) position: u64,
    pub(super) end: u64,
}

#[async_trait]
impl Scan for EmbeddedScan {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        if self.position >= self.end {
            return Ok(None);
        }
        let wanted = (self.end - self.position).min(MAX_BATCH as u64) as usize;
        let records = self.shared.fetch(&self.topic, self.position, wanted).await?;
        let Some(last) = records.last() else { return Ok(None) };
        self.position = super::offset_of(last) + 1;
        Ok(Some(records))
    }
}

/// A live reader of one topic of the embedded log.
#[derive(Debug)]
pub(super) struct EmbeddedTail {
    pub(super) shared: Arc<Shared>,
    pub(super) topic: Arc<str>,
    /// The next offset to return; advanced only when records are handed out (cancel safety).
    pub(super) position: u64,
    /// The topic's committed end, pushed by the writer after each commit.
    pub(super) end_rx: watch::Receiver<u64>,
}

impl EmbeddedTail {
    fn has_records(&mut self) -> bool {
        *self.end_rx.borrow_and_update() > self.position
    }

    async fn take_available(&mut self) -> Result<Vec<Record>> {
        let records = self.shared.fetch(&self.topic, self.position, MAX_BATCH).await?;
        if let Some(last) = records.last() {
            self.position = super::offset_of(last) + 1;
        }
        Ok(records)
    }
}

#[async_trait]
impl Tail for EmbeddedTail {
    async fn next_batch(&mut self) -> Result<Vec<Record>> {
        loop {
            if self.has_records() {
                let records = self.take_available().await?;
                if !records.is_empty() {
                    return Ok(records);
                }
            }
            self.end_rx.changed().await.map_err(|_| Error::Closed)?;
        }
    }
}

/// The one member of an embedded consumer group (the embedded log serves one process).
#[derive(Debug)]
pub(super) struct EmbeddedConsumer {
    pub(super) group: String,
    pub(super) tails: Vec<EmbeddedTail>,
    /// Commits go through the writer so they share its group commit.
    pub(super) writer: mpsc::UnboundedSender<WriteRequest>,
    /// The single member owns every partition; it says so once, first.
    pub(super) unannounced: Option<Vec<TopicPartition>>,
    /// Per tail, the end of its topic when the member joined, until the member has read that
    /// far and said so with [`GroupEvent::CaughtUp`].
    pub(super) catching_up: Vec<Option<u64>>,
}

#[async_trait]
impl GroupConsumer for EmbeddedConsumer {
    async fn next_event(&mut self) -> Result<GroupEvent> {
        if let Some(assigned) = self.unannounced.take() {
            return Ok(GroupEvent::Assigned(assigned));
        }
        loop {
            let caught_up: Vec<TopicPartition> = self
                .tails
                .iter()
                .zip(&mut self.catching_up)
                .filter(|(tail, end)| end.is_some_and(|end| tail.position >= end))
                .map(|(tail, end)| {
                    *end = None;
                    TopicPartition { topic: tail.topic.to_string(), partition: 0 }
                })
                .collect();
            if !caught_up.is_empty() {
                return Ok(GroupEvent::CaughtUp(caught_up));
            }
            for tail in &mut self.tails {
                if tail.has_records() {
                    let records = tail.take_available().await?;
                    if !records.is_empty() {
                        return Ok(GroupEvent::Records(records));
                    }
                }
            }
            let changes = self.tails.iter_mut().map(|t| Box::pin(t.end_rx.changed()));
            let (changed, _, _) = futures_util::future::select_all(changes).await;
            changed.map_err(|_| Error::Closed)?;
        }
    }

    async fn commit(&mut self, topic: &str, partition: u32, position: CommitPosition) -> Result<()> {
        let next_offset =
            position.next.offset().ok_or_else(|| Error::ForeignPosition(position.next.clone()))?;
        let (reply, response) = oneshot::channel();
        let request = WriteRequest::Commit {
            group: self.group.clone(),
            topic: topic.to_owned(),
            partition,
            next_offset,
            reply,
        };
        self.writer.send(request).map_err(|_| Error::Closed)?;
        response.await.map_err(|_| Error::Closed)?
    }
}
