//! The Kinesis backend (`kinesis://PREFIX?region=R[&endpoint=URL][&poll_ms=N][&failover_ms=N]`):
//! one stream per topic, a topic's partitions are its shards (`shardId-000000000003` is
//! partition 3), a record's position its sequence number.
//!
//! - [`streams`]: the streams, made once, and appends that keep each key's order.
//! - [`shards`]: a stream's shards and reading one with `GetRecords`, polled.
//! - [`log`]: [`KinesisLog`], the [`crate::EventLog`] over them.
//! - [`leases`]: the shard leases consumer groups share through DynamoDB, as the Kinesis Client
//!   Library keeps them; [`group`] the group member over them.
//!
//! A Kinesis record has no timestamp of its writer's, only the service's arrival time; the
//! writer's is kept in front of the payload (8 bytes, big-endian epoch ms), which readers
//! take off again.

mod group;
pub mod leases;
mod log;
pub mod shards;
pub mod streams;

pub use log::KinesisLog;

use std::time::Duration;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::Error;

/// Where a Kinesis log lives: `kinesis://PREFIX?region=R[&endpoint=URL]`. Its streams are
/// `PREFIX-<topic>` and its lease table `PREFIX-leases`.
#[derive(Debug, Clone)]
pub struct KinesisAddress {
    pub prefix: String,
    /// The AWS region; without it, the default chain's (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// Another endpoint than AWS's (a local server), for Kinesis and DynamoDB alike.
    pub endpoint: Option<String>,
    /// The lease table's DynamoDB endpoint, when it is not `endpoint` (`dynamodb_endpoint`).
    pub dynamodb_endpoint: Option<String>,
    /// How long a reader waits before asking a shard again when it had nothing new
    /// (`poll_ms`, 200 ms by default). A shard answers 5 `GetRecords` calls a second, shared by
    /// every reader of it: readers × (1 s / poll) must stay under 5 (docs/operations.md).
    pub poll: Duration,
    /// How long a lease may go unrenewed before another member takes it over (`failover_ms`,
    /// 10 s by default).
    pub failover: Duration,
}

impl KinesisAddress {
    /// Parses `rest`, the URL after `kinesis://`; `url` is the whole URL, for messages.
    pub fn parse(url: &str, rest: &str) -> crate::Result<Self> {
        let bad = |reason: String| Error::BadUrl { url: url.to_owned(), reason };
        let (prefix, query) = rest.split_once('?').unwrap_or((rest, ""));
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(bad(
                "expected kinesis://PREFIX?region=R, PREFIX of letters, digits, '-', '_' or '.' (streams are PREFIX-game-events, …)"
                    .into(),
            ));
        }
        let (mut region, mut endpoint, mut dynamodb_endpoint) = (None, None, None);
        let (mut poll, mut failover) = (DEFAULT_POLL, DEFAULT_FAILOVER);
        let millis = |name: &str, value: &str, least: u64| match value.parse::<u64>() {
            Ok(ms) if ms >= least => Ok(Duration::from_millis(ms)),
            _ => Err(bad(format!("{name} must be a whole number of milliseconds, at least {least}"))),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("region", value)) if !value.is_empty() => region = Some(value.to_owned()),
                Some(("endpoint", value)) if !value.is_empty() => endpoint = Some(value.to_owned()),
                Some(("dynamodb_endpoint", value)) if !value.is_empty() => {
                    dynamodb_endpoint = Some(value.to_owned());
                }
                Some(("poll_ms", value)) => poll = millis("poll_ms", value, 10)?,
                Some(("failover_ms", value)) => failover = millis("failover_ms", value, 1000)?,
                _ => {
                    return Err(bad(format!(
                        "unknown parameter {pair:?}; supported: region=R, endpoint=URL, dynamodb_endpoint=URL, poll_ms=N, failover_ms=N"
                    )));
                }
            }
        }
        Ok(Self { prefix: prefix.to_owned(), region, endpoint, dynamodb_endpoint, poll, failover })
    }

    /// The lease table's name.
    #[must_use]
    pub fn lease_table(&self) -> String {
        format!("{}-leases", self.prefix)
    }
}

const DEFAULT_POLL: Duration = Duration::from_millis(200);
const DEFAULT_FAILOVER: Duration = Duration::from_secs(10);

/// The partition number of a shard: the number in `shardId-000000000003`.
pub(crate) fn partition_of(shard: &str) -> crate::Result<u32> {
    shard.strip_prefix("shardId-").and_then(|n| n.parse().ok()).ok_or_else(|| Error::Aws {
        context: "reading a shard list".into(),
        message: format!("a shard id of an unknown form: {shard:?}"),
        transient: false,
    })
}

/// The bytes in front of a record's payload: its writer's timestamp.
pub(crate) const ENVELOPE_LEN: usize = 8;

/// A record's data: its writer's timestamp, then the payload.
pub(crate) fn envelope(timestamp_ms: i64, payload: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(ENVELOPE_LEN + payload.len());
    data.extend_from_slice(&timestamp_ms.to_be_bytes());
    data.extend_from_slice(payload);
    data
}

/// The timestamp and payload of a record's data; `None` if it is too short to be one of ours.
pub(crate) fn open_envelope(data: &[u8]) -> Option<(i64, &[u8])> {
    let (stamp, payload) = data.split_first_chunk::<ENVELOPE_LEN>()?;
    Some((i64::from_be_bytes(*stamp), payload))
}

/// Kinesis and DynamoDB clients for `address`, with the AWS default credential chain.
pub async fn connect(address: &KinesisAddress) -> (aws_sdk_kinesis::Client, aws_sdk_dynamodb::Client) {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &address.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &address.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&config);
    if let Some(endpoint) = &address.dynamodb_endpoint {
        dynamodb = dynamodb.endpoint_url(endpoint);
    }
    (aws_sdk_kinesis::Client::new(&config), aws_sdk_dynamodb::Client::from_conf(dynamodb.build()))
}

/// A failed AWS call (Kinesis or DynamoDB: their SDKs share these error types); throttling,
/// server faults, timeouts and dropped connections can pass.
pub(crate) fn aws_error<E, R>(context: &str, error: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => matches!(
            error.code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "LimitExceededException"
                    | "InternalServerError"
                    | "InternalFailure"
            )
        ),
        _ => false,
    };
    Error::Aws { context: context.to_owned(), message: DisplayErrorContext(error).to_string(), transient }
}
