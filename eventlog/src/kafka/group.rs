//! Consumer-group members: the cooperative-sticky rebalance turned into [`GroupEvent`]s, with a
//! revocation that holds the rebalance until the member has drained, and explicit commits that
//! carry a time so the next owner can start inside a batch.
//!
//! Each member polls on its own thread: librdkafka delivers rebalances on the thread that
//! polls, and a revocation must be able to wait for the async side without blocking a runtime
//! worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::LOOKUP_TIMEOUT;
use super::config::{client_error, log_to_tracing};
use super::records::{BATCH, NextOffsets, to_record};
use crate::{CommitPosition, Error, GroupConsumer, GroupEvent, Result, Revocation, TopicPartition};

/// Tells this process's members apart in logs.
static NEXT_MEMBER: AtomicU32 = AtomicU32::new(1);

/// Events a member's thread may queue before it waits for the member: a revocation is one of
/// them, so the queue is short (a member learns of it soon) but long enough that record batches
/// flow while the member is busy.
pub(super) const EVENTS_AHEAD: usize = 16;

/// Context of group members: turns rebalances into [`GroupEvent`]s, and starts assigned
/// partitions where the group committed, even inside a batch (see [`CommitPosition`]).
pub(super) struct GroupContext {
    /// Rebalances and records to the member; a revocation waits on the member through it.
    events: mpsc::Sender<Result<GroupEvent>>,
    prefix: String,
    /// (full topic name, partition) → the next offset to hand out: records before it are
    /// skipped (the partition may start before its committed offset, at a batch found by time).
    next_offsets: Mutex<NextOffsets>,
    /// (full topic name, partition) → its high watermark when it was assigned, until the member
    /// has been handed the record before it ([`GroupEvent::CaughtUp`]).
    catching_up: Mutex<HashMap<(String, i32), i64>>,
    /// Whether a partition without a committed offset starts at its end (`StartFrom::End`).
    starts_at_end: bool,
    /// Tells this process's members apart in logs.
    member: u32,
}

impl GroupContext {
    pub(super) fn new(events: mpsc::Sender<Result<GroupEvent>>, prefix: String, starts_at_end: bool) -> Self {
        Self {
            events,
            prefix,
            next_offsets: Mutex::default(),
            catching_up: Mutex::default(),
            starts_at_end,
            member: NEXT_MEMBER.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Notes where each newly assigned partition ends now; returns those with nothing to read
    /// up to there (caught up already).
    fn watch_catch_up(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) -> Vec<TopicPartition> {
        let mut done = TopicPartitionList::new();
        let skip = self.next_offsets.lock().unwrap();
        let mut catching_up = self.catching_up.lock().unwrap();
        for element in tpl.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let (low, high) = match consumer.fetch_watermarks(topic, partition, LOOKUP_TIMEOUT) {
                Ok(marks) => marks,
                Err(error) => {
                    // Without the end, the member is told it is caught up now rather than never.
                    tracing::warn!(%error, topic, partition, "could not read the end of an assigned partition");
                    let _ = done.add_partition(topic, partition);
                    continue;
                }
            };
            let start = skip.get(topic, partition).unwrap_or(if self.starts_at_end { high } else { low });
            if start >= high {
                let _ = done.add_partition(topic, partition);
            } else {
                catching_up.insert((topic.to_owned(), partition), high);
            }
        }
        self.partitions(&done)
    }

    /// Whether the record at `offset` is the last one a catching-up partition waited for.
    fn reached(&self, topic: &str, partition: i32, offset: i64) -> bool {
        let mut catching_up = self.catching_up.lock().unwrap();
        if catching_up.is_empty() {
            return false;
        }
        let key = (topic.to_owned(), partition);
        if catching_up.get(&key).is_some_and(|end| offset + 1 >= *end) {
            catching_up.remove(&key);
            return true;
        }
        false
    }
}

impl GroupContext {
    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<TopicPartition> {
        tpl.elements()
            .iter()
            .map(|e| TopicPartition {
                topic: e.topic().strip_prefix(self.prefix.as_str()).unwrap_or(e.topic()).to_owned(),
                partition: e.partition() as u32,
            })
            .collect()
    }

    /// Where each newly assigned partition starts: at or before its committed offset, at a
    /// batch boundary, so a broker that serves whole batches only (tansu) misses nothing; what
    /// lies before the committed offset is skipped by [`poll_group`]. The commit's metadata
    /// holds a time that finds such a batch; without it (tansu does not return commit
    /// metadata) the partition is read from its beginning.
    fn start_positions(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) -> TopicPartitionList {
        let mut starts = tpl.clone();
        let committed = match consumer.committed_offsets(tpl.clone(), LOOKUP_TIMEOUT) {
            Ok(committed) => committed,
            Err(error) => {
                // The group's own fetch of committed offsets still applies.
                tracing::warn!(%error, "could not read committed offsets; starting where the group says");
                return starts;
            }
        };
        let mut by_time = TopicPartitionList::new();
        let mut skip = self.next_offsets.lock().unwrap();
        for element in committed.elements() {
            let Offset::Offset(offset) = element.offset() else {
                if self.starts_at_end {
                    self.start_at_end(consumer, &mut starts, &mut skip, element.topic(), element.partition());
                }
                continue;
            };
            let key = (element.topic().to_owned(), element.partition());
            skip.set(&key.0, key.1, offset);
            match parse_commit_metadata(element.metadata()) {
                Some(ts) => {
                    let _ = by_time.add_partition_offset(&key.0, key.1, Offset::Offset(ts));
                }
                None => {
                    let _ = starts.set_partition_offset(&key.0, key.1, Offset::Beginning);
                }
            }
        }
        if by_time.count() > 0 {
            let found = consumer.offsets_for_times(by_time.clone(), LOOKUP_TIMEOUT).unwrap_or(by_time);
            for element in found.elements() {
                let key = (element.topic().to_owned(), element.partition());
                let committed = skip.get(&key.0, key.1).unwrap_or(0);
                let start = match element.offset() {
                    Offset::Offset(start) if start <= committed => Offset::Offset(start),
                    _ => Offset::Beginning,
                };
                let _ = starts.set_partition_offset(&key.0, key.1, start);
            }
        }
        starts
    }

    /// Starts a partition the group has no offset for at the end it has now. Left to the
    /// group's `latest` reset, the end would be looked up only once fetching begins: a record
    /// appended after the member was told it had caught up could fall before that end and
    /// never reach it.
    fn start_at_end(
        &self,
        consumer: &BaseConsumer<Self>,
        starts: &mut TopicPartitionList,
        skip: &mut NextOffsets,
        topic: &str,
        partition: i32,
    ) {
        match consumer.fetch_watermarks(topic, partition, LOOKUP_TIMEOUT) {
            Ok((_, high)) => {
                skip.set(topic, partition, high);
                let _ = starts.set_partition_offset(topic, partition, Offset::Offset(high));
            }
            // The group's `latest` reset still applies, with the race above.
            Err(error) => tracing::warn!(%error, topic, partition, "could not read the end to start at"),
        }
    }
}

/// Commit metadata: the time [`CommitPosition::not_after_ms`], so the next owner can find the
/// position by time.
fn commit_metadata(not_after_ms: i64) -> String {
    format!("tickcast:ts={not_after_ms}")
}

fn parse_commit_metadata(metadata: &str) -> Option<i64> {
    metadata.strip_prefix("tickcast:ts=")?.parse().ok()
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let starts = self.start_positions(consumer, tpl);
                let assigned =
                    if cooperative { consumer.incremental_assign(&starts) } else { consumer.assign(&starts) };
                if let Err(error) = assigned {
                    tracing::error!(%error, "could not take the assigned partitions");
                    let _ = self.events.blocking_send(Err(Error::kafka("assigning partitions", error)));
                    return;
                }
                let partitions = self.partitions(tpl);
                tracing::info!(member = self.member, partitions = %TopicPartition::joined(&partitions), "partitions assigned");
                let caught_up = self.watch_catch_up(consumer, tpl);
                let _ = self.events.blocking_send(Ok(GroupEvent::Assigned(partitions)));
                if !caught_up.is_empty() {
                    let _ = self.events.blocking_send(Ok(GroupEvent::CaughtUp(caught_up)));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = self.partitions(tpl);
                if !partitions.is_empty() {
                    tracing::info!(
                        member = self.member,
                        ?partitions,
                        "partitions revoked; draining before letting them go"
                    );
                    let (release, released) = std_mpsc::channel();
                    let revocation = Revocation { partitions, release: Some(release) };
                    // The member drops the revocation once it has stopped acting on the
                    // partitions; a member that is gone cannot act on them either.
                    if self.events.blocking_send(Ok(GroupEvent::Revoked(revocation))).is_ok() {
                        let _ = released.recv();
                    }
                }
                let mut skip = self.next_offsets.lock().unwrap();
                let mut catching_up = self.catching_up.lock().unwrap();
                for element in tpl.elements() {
                    skip.remove(element.topic(), element.partition());
                    catching_up.remove(&(element.topic().to_owned(), element.partition()));
                }
                drop((skip, catching_up));
                let released =
                    if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(error) = released {
                    tracing::error!(%error, "could not let the revoked partitions go");
                }
            }
            other => {
                tracing::warn!(error = ?other, "rebalance failed");
                let _ = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
            }
        }
    }
}

pub(super) fn poll_group(
    consumer: Arc<BaseConsumer<GroupContext>>,
    tx: mpsc::Sender<Result<GroupEvent>>,
    prefix: String,
    stop: Arc<AtomicBool>,
) {
    let mut names = HashMap::new();
    while !stop.load(Ordering::Acquire) && !tx.is_closed() {
        let mut batch = Vec::new();
        let mut caught_up = Vec::new();
        let mut wait = Duration::from_millis(100);
        while batch.len() < BATCH {
            match consumer.poll(wait) {
                None => break,
                Some(Ok(message)) => {
                    wait = Duration::ZERO;
                    let admitted = consumer.context().next_offsets.lock().unwrap().admit(
                        message.topic(),
                        message.partition(),
                        message.offset(),
                    );
                    if admitted {
                        batch.push(to_record(&message, &prefix, &mut names));
                        if consumer.context().reached(message.topic(), message.partition(), message.offset())
                        {
                            let topic =
                                message.topic().strip_prefix(prefix.as_str()).unwrap_or(message.topic());
                            caught_up.push(TopicPartition {
                                topic: topic.to_owned(),
                                partition: message.partition() as u32,
                            });
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(error)) => {
                    tracing::warn!(%error, "Kafka consumer error");
                    if matches!(
                        error,
                        KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)
                    ) {
                        let _ = tx.blocking_send(Err(Error::kafka("consuming", error)));
                        return;
                    }
                    break;
                }
            }
        }
        if !batch.is_empty() && tx.blocking_send(Ok(GroupEvent::Records(batch))).is_err() {
            break;
        }
        if !caught_up.is_empty() && tx.blocking_send(Ok(GroupEvent::CaughtUp(caught_up))).is_err() {
            break;
        }
    }
    // Leaving the group: the consumer's last reference closes it here, on the thread that
    // serves its rebalance callbacks (the final revocation included).
    let started = Instant::now();
    drop(consumer);
    tracing::debug!(took = ?started.elapsed(), "left the consumer group");
}

/// A member of a Kafka consumer group.
pub(super) struct KafkaGroupConsumer {
    /// Shared with the polling thread, for commits; the thread holds the last reference and
    /// closes the consumer (leaving the group) on the thread that serves its callbacks.
    pub(super) consumer: Option<Arc<BaseConsumer<GroupContext>>>,
    /// Records and rebalances from the polling thread.
    pub(super) rx: mpsc::Receiver<Result<GroupEvent>>,
    /// Tells the polling thread to leave the group.
    pub(super) stop: Arc<AtomicBool>,
    pub(super) prefix: String,
    /// Fires when the thread has left the group.
    pub(super) closed: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl std::fmt::Debug for KafkaGroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaGroupConsumer").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Drop for KafkaGroupConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // The thread holds the other reference and closes the consumer when it sees `stop`.
        drop(self.consumer.take());
        self.rx.close();
        while let Ok(event) = self.rx.try_recv() {
            drop(event); // releases a pending revocation
        }
    }
}

#[async_trait]
impl GroupConsumer for KafkaGroupConsumer {
    async fn next_event(&mut self) -> Result<GroupEvent> {
        match self.rx.recv().await {
            Some(event) => event,
            None => Err(Error::Closed),
        }
    }

    async fn commit(&mut self, topic: &str, partition: u32, position: CommitPosition) -> Result<()> {
        let Some(consumer) = &self.consumer else { return Err(Error::Closed) };
        let next_offset =
            position.next.offset().ok_or_else(|| Error::ForeignPosition(position.next.clone()))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(
            &format!("{}{topic}", self.prefix),
            partition as i32,
            Offset::Offset(next_offset as i64),
        )
        .map_err(|e| Error::kafka("commit", e))?;
        for mut element in tpl.elements() {
            element.set_metadata(commit_metadata(position.not_after_ms));
        }
        match consumer.commit(&tpl, CommitMode::Async) {
            Ok(()) => Ok(()),
            // Not ours any more (a rebalance raced the commit): the new owner commits.
            Err(KafkaError::ConsumerCommit(
                RDKafkaErrorCode::UnknownMemberId | RDKafkaErrorCode::RebalanceInProgress,
            )) => Ok(()),
            Err(error) => Err(Error::kafka("committing offsets", error)),
        }
    }

    async fn close(mut self: Box<Self>) {
        let closed = self.closed.take();
        drop(self);
        if let Some(closed) = closed {
            let _ = closed.await;
        }
    }
}
