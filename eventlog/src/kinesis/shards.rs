//! A stream's shards, and reading one of them: `GetRecords` through a shard iterator, polled, as
//! Kinesis offers no push without enhanced fan-out.

use std::sync::Arc;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;

use super::{ENVELOPE_LEN, aws_error, open_envelope, partition_of};
use crate::{Error, Position, Record, Result, StartFrom};

/// Records per `GetRecords` call (the service allows 10,000 and 10 MB).
const RECORDS_PER_CALL: i32 = 1000;
/// A reader from an instant asks the service for records from this much earlier: the service
/// finds them by its own arrival time, the reader by its writers' clocks, which may run ahead.
const CLOCK_SLACK_MS: i64 = 5_000;

/// One shard as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub id: String,
    pub partition: u32,
    /// The shards it was split or merged from.
    pub parents: Vec<String>,
    /// Closed by a reshard: it takes no more records, and a reader that reached its end is done.
    pub closed: bool,
}

/// Every shard of `stream` (open and closed), by partition number: parents before children.
pub async fn list_shards(client: &Client, stream: &str, topic: &str) -> Result<Vec<ShardInfo>> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // The service takes the stream's name or a page token, never both.
        let request = match &token {
            Some(token) => client.list_shards().next_token(token),
            None => client.list_shards().stream_name(stream),
        };
        let page = request.send().await.map_err(|error| {
            if error.code() == Some("ResourceNotFoundException") {
                Error::MissingTopic(topic.to_owned())
            } else {
                aws_error(&format!("listing the shards of {stream}"), &error)
            }
        })?;
        for shard in page.shards() {
            shards.push(ShardInfo {
                id: shard.shard_id().to_owned(),
                partition: partition_of(shard.shard_id())?,
                parents: [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect(),
                closed: shard.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some(),
            });
        }
        token = page.next_token;
        if token.is_none() {
            shards.sort_by_key(|s| s.partition);
            return Ok(shards);
        }
    }
}

/// Where a shard reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardStart {
    TrimHorizon,
    /// After the last record the shard holds when the reader starts.
    Latest,
    At(String),
    After(String),
    /// The first record its writer stamped at or after this instant (epoch ms).
    Timestamp(i64),
}

impl ShardStart {
    /// The start `from` asks for; Kinesis has no offsets.
    pub fn of(from: StartFrom) -> Result<Self> {
        match from {
            StartFrom::Beginning => Ok(Self::TrimHorizon),
            StartFrom::End => Ok(Self::Latest),
            StartFrom::Timestamp(ms) => Ok(Self::Timestamp(ms)),
            StartFrom::Offset(offset) => Err(Error::ForeignPosition(Position::Offset(offset))),
        }
    }
}

/// What one call read.
#[derive(Debug, Default)]
pub struct Pulled {
    pub records: Vec<Record>,
    /// The call reached the shard's tip: the service said the reader is not behind, and the
    /// answer was not cut short by the call's record limit. (A reader that waited for an empty
    /// answer would never end on a shard written faster than it polls.)
    pub caught_up: bool,
    /// The shard is closed and read to its end: nothing will ever follow.
    pub shard_end: bool,
}

/// A reader of one shard.
#[derive(Debug)]
pub struct ShardReader {
    client: Client,
    stream: String,
    topic: Arc<str>,
    pub shard: ShardInfo,
    /// The iterator the next call uses; made from `start` (or after `last`) when missing or
    /// expired (iterators last 5 minutes).
    iterator: Option<String>,
    start: ShardStart,
    /// The sequence number of the last record handed out: where a new iterator resumes.
    last: Option<Arc<str>>,
    /// A reader from an instant skips records stamped before it, until the first that is not.
    not_before_ms: Option<i64>,
    ended: bool,
}

impl ShardReader {
    #[must_use]
    pub fn new(client: Client, stream: String, topic: Arc<str>, shard: ShardInfo, start: ShardStart) -> Self {
        let not_before_ms = match start {
            ShardStart::Timestamp(ms) => Some(ms),
            _ => None,
        };
        Self { client, stream, topic, shard, iterator: None, start, last: None, not_before_ms, ended: false }
    }

    /// Whether the shard is closed and read to its end.
    #[must_use]
    pub const fn ended(&self) -> bool {
        self.ended
    }

    /// The sequence number of the last record handed out.
    #[must_use]
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    async fn new_iterator(&self) -> Result<String> {
        let mut request = self.client.get_shard_iterator().stream_name(&self.stream).shard_id(&self.shard.id);
        request = match (&self.last, &self.start) {
            (Some(last), _) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(last.as_ref()),
            (None, ShardStart::TrimHorizon) => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            (None, ShardStart::Latest) => request.shard_iterator_type(ShardIteratorType::Latest),
            (None, ShardStart::At(sequence)) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(sequence),
            (None, ShardStart::After(sequence)) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
            (None, ShardStart::Timestamp(ms)) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis((ms - CLOCK_SLACK_MS).max(0))),
        };
        let answer = request
            .send()
            .await
            .map_err(|e| aws_error(&format!("starting to read {} of {}", self.shard.id, self.stream), &e))?;
        answer.shard_iterator.ok_or_else(|| Error::Aws {
            context: format!("starting to read {} of {}", self.shard.id, self.stream),
            message: "the service gave no shard iterator".into(),
            transient: true,
        })
    }

    /// Makes the iterator now, so a reader from the end starts at the end as it is now.
    pub async fn start(&mut self) -> Result<()> {
        if self.iterator.is_none() {
            self.iterator = Some(self.new_iterator().await?);
        }
        Ok(())
    }

    /// One `GetRecords` call. A throttled or failed call consumes nothing and can be made again.
    pub async fn pull(&mut self) -> Result<Pulled> {
        if self.ended {
            return Ok(Pulled { caught_up: true, shard_end: true, ..Pulled::default() });
        }
        self.start().await?;
        let iterator = self.iterator.clone().expect("made above");
        let answer =
            match self.client.get_records().shard_iterator(iterator).limit(RECORDS_PER_CALL).send().await {
                Ok(answer) => answer,
                Err(error) if error.code() == Some("ExpiredIteratorException") => {
                    self.iterator = None;
                    return Ok(Pulled::default());
                }
                Err(error) => {
                    return Err(aws_error(&format!("reading {} of {}", self.shard.id, self.stream), &error));
                }
            };
        let behind = answer.millis_behind_latest.unwrap_or(0);
        let (empty, count) = (answer.records.is_empty(), answer.records.len());
        let mut records = Vec::with_capacity(count);
        // The records are taken, not borrowed: each payload is a slice of the data the SDK read,
        // never copied (a tick stream's every record passes here, for every gateway).
        for record in answer.records {
            let number: Arc<str> = record.sequence_number.into();
            self.last = Some(Arc::clone(&number));
            let data = Bytes::from(record.data.into_inner());
            let Some((timestamp_ms, _)) = open_envelope(&data) else {
                tracing::warn!(stream = %self.stream, sequence = %number, "skipping a record no tickcast wrote");
                continue;
            };
            if let Some(not_before) = self.not_before_ms {
                if timestamp_ms < not_before {
                    continue;
                }
                self.not_before_ms = None;
            }
            records.push(Record {
                topic: Arc::clone(&self.topic),
                partition: self.shard.partition,
                position: Position::Sequence { number, after: false },
                key: record.partition_key.unwrap_or_default().into(),
                timestamp_ms,
                payload: data.slice(ENVELOPE_LEN..),
            });
        }
        let at_tip = behind == 0 && count < RECORDS_PER_CALL as usize;
        self.iterator = answer.next_shard_iterator;
        // A closed shard read to its end has no next iterator (moto gives one regardless: there
        // an empty, caught-up read of a closed shard is its end).
        self.ended = self.iterator.is_none() || (self.shard.closed && empty && behind == 0);
        Ok(Pulled { records, caught_up: at_tip || self.ended, shard_end: self.ended })
    }
}
