//! Kinesis streams as the log's topics: one stream per topic (`PREFIX-game-events`,
//! `PREFIX-ticks-REGION`), made by [`KinesisStreams::create`] for operators, and appends that keep
//! each key's order through throttling ([`KinesisStreams::put`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::client::Waiters;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use bytes::Bytes;

use super::aws_error;
use crate::{Error, Result};

/// Records per `PutRecords` call (the service's limit).
const MAX_RECORDS_PER_CALL: usize = 500;
/// Rounds a throttled record is retried before the append fails (each waits twice as long).
const MAX_ATTEMPTS: u32 = 10;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// Where a record landed: its shard and sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub shard: String,
    pub sequence: String,
}

/// The streams of one deployment (`PREFIX`).
#[derive(Debug, Clone)]
pub struct KinesisStreams {
    client: Client,
    prefix: String,
}

impl KinesisStreams {
    #[must_use]
    pub const fn new(client: Client, prefix: String) -> Self {
        Self { client, prefix }
    }

    /// The stream of `topic`: `PREFIX-topic`, with `.` as `-` (`ticks.eu-west-1` →
    /// `PREFIX-ticks-eu-west-1`), as stream names allow no dots.
    #[must_use]
    pub fn stream_name(&self, topic: &str) -> String {
        format!("{}-{}", self.prefix, topic.replace('.', "-"))
    }

    /// Creates `topic`'s stream with `shards` shards unless it exists, and waits until it is
    /// active; returns whether it was created.
    pub async fn create(&self, topic: &str, shards: i32) -> Result<bool> {
        let name = self.stream_name(topic);
        let created = match self.client.create_stream().stream_name(&name).shard_count(shards).send().await {
            Ok(_) => true,
            Err(error) if error.code() == Some("ResourceInUseException") => false,
            Err(error) => return Err(aws_error(&format!("creating stream {name}"), &error)),
        };
        self.client
            .wait_until_stream_exists()
            .stream_name(&name)
            .wait(Duration::from_secs(120))
            .await
            .map_err(|e| Error::Aws {
                context: format!("waiting for stream {name}"),
                message: DisplayErrorContext(&e).to_string(),
                transient: true,
            })?;
        Ok(created)
    }

    /// Sets how long `topic`'s stream keeps records, in hours (Kinesis allows 24 to 8760).
    pub async fn set_retention(&self, topic: &str, hours: i32) -> Result<()> {
        let name = self.stream_name(topic);
        let described = self
            .client
            .describe_stream_summary()
            .stream_name(&name)
            .send()
            .await
            .map_err(|e| aws_error(&format!("describing stream {name}"), &e))?;
        let current = described.stream_description_summary().map_or(24, |s| s.retention_period_hours());
        if hours != current {
            let context = format!("setting the retention of stream {name} to {hours} h");
            if hours > current {
                let call = self.client.increase_stream_retention_period();
                call.stream_name(&name)
                    .retention_period_hours(hours)
                    .send()
                    .await
                    .map_err(|e| aws_error(&context, &e))?;
            } else {
                let call = self.client.decrease_stream_retention_period();
                call.stream_name(&name)
                    .retention_period_hours(hours)
                    .send()
                    .await
                    .map_err(|e| aws_error(&context, &e))?;
            }
        }
        Ok(())
    }

    /// Appends `records` (partition key, payload) to `topic` and returns where each landed, in
    /// the order given, once every one has. Records of one key keep their order: a call carries
    /// at most one pending record per key (a wave), so a throttled record is retried before
    /// anything after it of its key is sent; other keys' records go on meanwhile.
    pub async fn put(&self, topic: &str, records: &[(String, Bytes)]) -> Result<Vec<Landed>> {
        let name = self.stream_name(topic);
        let mut pending: Vec<VecDeque<usize>> = Vec::new();
        let mut by_key: HashMap<&str, usize> = HashMap::new();
        for (index, (key, _)) in records.iter().enumerate() {
            let queue = *by_key.entry(key.as_str()).or_insert_with(|| {
                pending.push(VecDeque::new());
                pending.len() - 1
            });
            pending[queue].push_back(index);
        }
        let mut landed: Vec<Option<Landed>> = vec![None; records.len()];
        let (mut attempt, mut backoff) = (0, FIRST_BACKOFF);
        loop {
            let wave: Vec<(usize, usize)> = pending
                .iter()
                .enumerate()
                .filter_map(|(queue, indices)| indices.front().map(|index| (queue, *index)))
                .take(MAX_RECORDS_PER_CALL)
                .collect();
            if wave.is_empty() {
                return Ok(landed.into_iter().map(|l| l.expect("every record landed")).collect());
            }
            let entries = wave
                .iter()
                .map(|(_, index)| {
                    let (key, payload) = &records[*index];
                    PutRecordsRequestEntry::builder()
                        .partition_key(key)
                        .data(Blob::new(payload.to_vec()))
                        .build()
                        .map_err(|e| Error::Aws {
                            context: "building a record".into(),
                            message: e.to_string(),
                            transient: false,
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            let answer = self
                .client
                .put_records()
                .stream_name(&name)
                .set_records(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error(&format!("appending to {name}"), &e))?;
            let mut throttled = 0;
            for ((queue, index), result) in wave.iter().zip(answer.records()) {
                match (result.error_code(), result.shard_id(), result.sequence_number()) {
                    (None, Some(shard), Some(sequence)) => {
                        landed[*index] =
                            Some(Landed { shard: shard.to_owned(), sequence: sequence.to_owned() });
                        pending[*queue].pop_front();
                    }
                    _ => throttled += 1,
                }
            }
            if throttled == 0 {
                (attempt, backoff) = (0, FIRST_BACKOFF);
                continue;
            }
            attempt += 1;
            if attempt >= MAX_ATTEMPTS {
                return Err(Error::Aws {
                    context: format!("appending to {name}"),
                    message: format!("{throttled} records still refused after {attempt} attempts"),
                    transient: true,
                });
            }
            // Throttled (the shard's write limit): wait as the service asks, then the rest.
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
}
