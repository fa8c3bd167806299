//! What can go wrong in the event log, and whether trying again can help.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Whether the same call, made again later, can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryHint {
    /// A passing condition (a broker restarting, a full queue, a busy database): retry after a
    /// pause, or tell the client to.
    Retry,
    /// Retrying cannot help (a bad URL, a missing topic, a log that stopped after a failed
    /// commit): an operator must act.
    DoNotRetry,
}

/// Errors of the event log. Messages are written for the operator who reads them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported event log URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("embedded log storage failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("embedded log directory {path:?}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("embedded log write failed, nothing of it was stored: {0}")]
    WriteFailed(String),
    /// Another writer holds the embedded log's directory.
    #[error(
        "the embedded log in {dir} is in use by {holder} (it holds the lock file {lock}): stop that process, or give this one another directory (--data-dir, or --log embedded://DIR); `tickcast replay` reads a log in use"
    )]
    Locked { dir: String, lock: String, holder: String },
    /// A librdkafka call failed; `source` keeps librdkafka's error code.
    #[error("Kafka: {context}: {source}")]
    Kafka { context: String, source: KafkaError },
    /// A Kafka client's own thread or task could not be started or stopped early.
    #[error("Kafka: {0}")]
    KafkaClient(String),
    /// An AWS call (Kinesis, the lease table in DynamoDB) failed; `transient` when a retry can
    /// succeed (throttling, a timeout, a dropped connection).
    #[error("AWS: {context}: {message}")]
    Aws { context: String, message: String, transient: bool },
    #[error(
        "topic {0:?} does not exist; create the topics with `tickcast topics create --log URL --partitions N` (Kafka) or `tickcast streams create --log URL --shards N` (Kinesis)"
    )]
    MissingTopic(String),
    /// A position from another kind of log (a Kinesis sequence number given to an offset log).
    #[error("{0} is not a position in this log")]
    ForeignPosition(crate::Position),
    #[error("the event log was opened read-only")]
    ReadOnly,
    #[error("the event log is shut down")]
    Closed,
}

impl Error {
    /// A librdkafka failure while doing `context` (e.g. "producing to game-events").
    /// A Kafka call's failure. One that timed out says what the brokers last answered (a
    /// refused certificate or password, a broker down), which is why it timed out.
    pub(crate) fn kafka(context: impl Into<String>, source: KafkaError) -> Self {
        let mut context = context.into();
        let timed_out = source.rdkafka_error_code().is_some_and(|code| {
            matches!(
                code,
                RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::MessageTimedOut
                    | RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::BrokerTransportFailure
            )
        });
        if timed_out && let Some(last) = crate::kafka::config::last_client_error() {
            context = format!("{context} (the brokers last answered: {last})");
        }
        Self::Kafka { context, source }
    }

    /// Whether trying the same call again can succeed.
    #[must_use]
    pub fn retry_hint(&self) -> RetryHint {
        let retry = match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }
            Self::Kafka { source, .. } => source.rdkafka_error_code().is_some_and(kafka_code_is_transient),
            Self::KafkaClient(_) => true,
            Self::Aws { transient, .. } => *transient,
            Self::BadUrl { .. }
            | Self::Sqlite(_)
            | Self::Io { .. }
            | Self::WriteFailed(_)
            | Self::Locked { .. }
            | Self::MissingTopic(_)
            | Self::ForeignPosition(_)
            | Self::ReadOnly
            | Self::Closed => false,
        };
        if retry { RetryHint::Retry } else { RetryHint::DoNotRetry }
    }
}

/// librdkafka's codes for conditions that pass by themselves: brokers unreachable or moving
/// leadership, timeouts, full queues, a group rebalancing.
const fn kafka_code_is_transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::Resolve
            | C::MessageTimedOut
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::QueueFull
            | C::TimedOutQueue
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NetworkException
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::RebalanceInProgress
            | C::BrokerNotAvailable
            | C::KafkaStorageError
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::OffsetNotAvailable
            | C::PreferredLeaderNotAvailable
    )
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_the_cause() {
        let down = Error::kafka("producing", KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown));
        assert_eq!(down.retry_hint(), RetryHint::Retry);
        assert!(down.to_string().contains("producing"), "{down}");
        let denied = Error::kafka(
            "producing",
            KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed),
        );
        assert_eq!(denied.retry_hint(), RetryHint::DoNotRetry);
        assert_eq!(Error::MissingTopic("t".into()).retry_hint(), RetryHint::DoNotRetry);
        assert_eq!(Error::ReadOnly.retry_hint(), RetryHint::DoNotRetry);
    }
}
