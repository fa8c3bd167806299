//! Tails and scans: a consumer without a group, assigned every partition of one topic, polled
//! on a thread of its own that hands batches to the async side.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::config::ReaderContext;
use super::records::{BATCH, NextOffsets, to_record};
use super::{LOOKUP_TIMEOUT, partitions_of};
use crate::{Error, Record, Result, RetryHint, Scan, StartFrom, Tail};

/// Batches a scan's thread may read ahead of its reader: a scan is read as fast as the caller
/// decodes, so a few batches keep both busy without holding the whole topic in memory.
pub(super) const SCAN_AHEAD: usize = 4;
/// Batches a tail's thread may read ahead: a live tail is mostly caught up, and a slow reader
/// makes the thread wait (backpressure) rather than buffer without bound.
pub(super) const TAIL_AHEAD: usize = 16;

/// A consumer without a group and where its partitions' scans end.
pub(super) struct AssignedConsumer {
    consumer: BaseConsumer<ReaderContext>,
    /// Partition → high watermark when the reader started; only partitions with records to read.
    ends: HashMap<i32, i64>,
}

impl AssignedConsumer {
    /// A consumer positioned at `from` on every partition of `name` (`topic` with the log's
    /// prefix), with the partitions' high watermarks when it started (where a scan ends).
    pub(super) async fn start(
        consumer: BaseConsumer<ReaderContext>,
        name: String,
        topic: String,
        from: StartFrom,
    ) -> Result<Self> {
        tokio::task::spawn_blocking(move || -> Result<Self> {
            let partitions = partitions_of(&consumer, &name, &topic)?;
            let mut tpl = TopicPartitionList::new();
            let mut ends = HashMap::new();
            for partition in &partitions {
                let (low, high) = consumer
                    .fetch_watermarks(&name, *partition, LOOKUP_TIMEOUT)
                    .map_err(|e| Error::kafka(format!("reading the end of {name}"), e))?;
                let offset = match from {
                    StartFrom::Beginning => Offset::Offset(low),
                    StartFrom::End => Offset::Offset(high),
                    StartFrom::Offset(n) => Offset::Offset(n as i64),
                    StartFrom::Timestamp(ts) => Offset::Offset(ts),
                };
                tpl.add_partition_offset(&name, *partition, offset).map_err(|e| Error::kafka("assign", e))?;
                ends.insert(*partition, high);
            }
            if matches!(from, StartFrom::Timestamp(_)) {
                // A partition with nothing at or after the instant resolves to its end.
                tpl = consumer
                    .offsets_for_times(tpl, LOOKUP_TIMEOUT)
                    .map_err(|e| Error::kafka(format!("finding offsets by time in {name}"), e))?;
            }
            for element in tpl.elements() {
                if let Offset::Offset(start) = element.offset()
                    && ends.get(&element.partition()).is_some_and(|end| start >= *end)
                {
                    ends.remove(&element.partition()); // nothing to scan there
                }
            }
            consumer.assign(&tpl).map_err(|e| Error::kafka(format!("assigning {name}"), e))?;
            Ok(Self { consumer, ends })
        })
        .await
        .map_err(|e| Error::KafkaClient(format!("lookup task failed: {e}")))?
    }

    /// A scan (`bounded`: up to the ends seen at start) or a tail, read by a thread of its own
    /// that may run `ahead` batches ahead.
    pub(super) fn into_reader(
        self,
        topic: &str,
        prefix: &str,
        from: StartFrom,
        bounded: bool,
        ahead: usize,
    ) -> KafkaReader {
        let (tx, rx) = mpsc::channel(ahead);
        let reader = Reader {
            prefix: prefix.to_owned(),
            not_before: not_before(from),
            ends: bounded.then_some(self.ends),
        };
        reader.spawn(self.consumer, tx);
        KafkaReader { rx, topic: topic.to_owned() }
    }
}

/// Records older than this are skipped: a broker may resolve an instant to an earlier offset
/// than asked (tansu resolves by the batch's write time, and to 0 when nothing is newer).
const fn not_before(from: StartFrom) -> i64 {
    match from {
        StartFrom::Timestamp(ts) => ts,
        _ => i64::MIN,
    }
}

/// What a reader thread does with what it polls.
struct Reader {
    prefix: String,
    not_before: i64,
    /// For a scan: the partitions still to finish and their ends. A partition is finished at
    /// end of partition or once a record at or past its end was seen (a broker whose "latest"
    /// is too low still hands out whole batches, so the scan passes the true end).
    ends: Option<HashMap<i32, i64>>,
}

impl Reader {
    /// Polls on its own thread until the receiver is gone or a scan is finished.
    fn spawn(mut self, consumer: BaseConsumer<ReaderContext>, tx: mpsc::Sender<Result<Vec<Record>>>) {
        let spawned = std::thread::Builder::new().name("kafka-reader".into()).spawn(move || {
            let mut names = HashMap::new();
            let mut next_offsets = NextOffsets::default();
            while !tx.is_closed() && !self.finished() {
                let mut batch = Vec::new();
                let mut wait_next = Duration::from_millis(100);
                while batch.len() < BATCH {
                    // A finished scan still takes what is already fetched: the rest of the
                    // batch whose first record reached a too-low end.
                    let wait = if self.finished() { Duration::ZERO } else { wait_next };
                    match consumer.poll(wait) {
                        None => break,
                        Some(Ok(message)) => {
                            if !next_offsets.admit(message.topic(), message.partition(), message.offset()) {
                                continue;
                            }
                            if let Some(ends) = &mut self.ends
                                && ends
                                    .get(&message.partition())
                                    .is_some_and(|end| message.offset() + 1 >= *end)
                            {
                                ends.remove(&message.partition());
                            }
                            let record = to_record(&message, &self.prefix, &mut names);
                            if record.timestamp_ms >= self.not_before {
                                batch.push(record);
                            }
                            wait_next = Duration::ZERO;
                        }
                        Some(Err(KafkaError::PartitionEOF(partition))) => {
                            if let Some(ends) = &mut self.ends {
                                ends.remove(&partition);
                            }
                        }
                        Some(Err(error)) => {
                            let error = Error::kafka("reading", error);
                            if error.retry_hint() == RetryHint::Retry {
                                // Brokers away or restarting: librdkafka reconnects by itself,
                                // and the reader goes on where it was.
                                tracing::debug!(%error, "Kafka reader waiting for the brokers");
                                break;
                            }
                            let _ = tx.blocking_send(Err(error));
                            return;
                        }
                    }
                }
                if !batch.is_empty() && tx.blocking_send(Ok(batch)).is_err() {
                    return;
                }
            }
            // A finished scan drops `tx`, which tells the reader it is at the end.
        });
        if let Err(error) = spawned {
            tracing::error!(%error, "could not start a Kafka reader thread");
        }
    }

    fn finished(&self) -> bool {
        self.ends.as_ref().is_some_and(HashMap::is_empty)
    }
}

/// A tail or scan: batches from a reader thread.
#[derive(Debug)]
pub(super) struct KafkaReader {
    /// Batches from the reader thread; dropping it stops the thread at its next poll.
    rx: mpsc::Receiver<Result<Vec<Record>>>,
    topic: String,
}

#[async_trait]
impl Tail for KafkaReader {
    async fn next_batch(&mut self) -> Result<Vec<Record>> {
        match self.rx.recv().await {
            Some(batch) => batch,
            None => Err(Error::KafkaClient(format!("the reader of {} stopped", self.topic))),
        }
    }
}

#[async_trait]
impl Scan for KafkaReader {
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>> {
        self.rx.recv().await.transpose()
    }
}
