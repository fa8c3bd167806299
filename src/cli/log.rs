//! The flags of the event log: where it is, how Kafka clients connect, how long records are
//! kept, the commands that make its topics, streams and tables, and those that drain and
//! restore regions.

use clap::{Args, Subcommand};

use super::RegionArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
    /// Create `game-events`, `ticks.<region>` for every configured region and the deployment's
    /// secrets topic; topics that exist are left as they are.
    Create {
        #[command(flatten)]
        log: LogArgs,
        /// Partitions per topic: the most tick generators that can share the work.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        partitions: u32,
        /// Copies of each partition (1 for a single broker).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        replication: u32,
        /// How long the brokers keep game-events and tick records (the topics' retention.ms);
        /// `forever` keeps them. It must outlast the longest game and the archiver's lag (see
        /// docs/operations.md#retention). The deployment's secrets topic is always kept.
        #[arg(long, default_value = "7d", value_parser = parse_retention)]
        retention: RecordRetention,
        /// Which `ticks.<region>` topics to create: those of the region table.
        #[command(flatten)]
        regions: RegionArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum StreamsCommand {
    /// Create `PREFIX-game-events`, `PREFIX-ticks-<region>` for every configured region, the
    /// deployment's secrets stream and the lease table `PREFIX-leases`; those that exist are
    /// left as they are.
    Create {
        /// The Kinesis log: kinesis://PREFIX?region=R[&endpoint=URL].
        #[arg(long = "log", env = "TICKCAST_LOG", value_name = "URL")]
        log: String,
        /// Shards per stream.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        shards: u32,
        /// How long the streams it creates keep game-events and tick records (24h to 365d,
        /// Kinesis's bounds; `forever` is 365d). It must outlast the longest game and the
        /// archiver's lag (docs/operations.md#retention). The deployment's secrets stream is
        /// kept 365 days.
        #[arg(long, default_value = "7d", value_parser = parse_retention)]
        retention: RecordRetention,
        #[command(flatten)]
        regions: RegionArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TablesCommand {
    /// Create `PREFIX-sessions`, `PREFIX-connections` and `PREFIX-latency` with their indexes
    /// and TTL, their second set `PREFIX-b-…` (what a rebuild fills) and `PREFIX-tables` (which
    /// set serves); tables that exist are left as they are.
    Create {
        /// The projection store: dynamodb://PREFIX?region=R[&endpoint=URL] (or embedded://DIR).
        #[arg(long = "store", env = "TICKCAST_STORE", value_name = "URL")]
        store: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegionsCommand {
    /// Drain a region: new games avoid it and its running games move to the nearest active
    /// region (writes `region_drained` with reason `operator`, as `POST
    /// /admin/regions/{region}/drain` does).
    Drain {
        /// The region, one of the region table's.
        region: String,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        regions: RegionArgs,
    },
    /// Restore a drained region: new games may go there again (writes `region_restored`).
    Restore {
        region: String,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        regions: RegionArgs,
    },
}

/// How long records are kept: a duration, or `forever`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordRetention {
    For(std::time::Duration),
    Forever,
}

impl RecordRetention {
    /// The longest a Kinesis stream keeps records: 365 days.
    pub(crate) const KINESIS_MAX_HOURS: i32 = 8760;

    /// A Kinesis stream's retention period in hours (`forever` is the longest Kinesis allows).
    pub(crate) fn kinesis_hours(self) -> Result<i32, String> {
        match self {
            Self::Forever => Ok(Self::KINESIS_MAX_HOURS),
            Self::For(keep) => {
                let hours = keep.as_secs().div_ceil(3600);
                if !(24..=u64::from(Self::KINESIS_MAX_HOURS.unsigned_abs())).contains(&hours) {
                    return Err(format!(
                        "Kinesis keeps records 24h to 365d (8760h), not {}",
                        humantime::format_duration(keep)
                    ));
                }
                Ok(hours as i32)
            }
        }
    }

    /// Kafka's `retention.ms` (-1: forever).
    pub(crate) fn kafka_ms(self) -> i64 {
        match self {
            Self::For(keep) => i64::try_from(keep.as_millis()).unwrap_or(i64::MAX),
            Self::Forever => -1,
        }
    }
}

pub(super) fn parse_retention(text: &str) -> Result<RecordRetention, String> {
    if text == "forever" {
        return Ok(RecordRetention::Forever);
    }
    match humantime::parse_duration(text).map_err(|e| format!("{e} (e.g. 7d, 36h or forever)"))? {
        keep if keep < std::time::Duration::from_secs(3600) => {
            Err("keep records at least 1h (longer than a game), e.g. 7d, or forever".into())
        }
        keep => Ok(RecordRetention::For(keep)),
    }
}

#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Event log URL: embedded://DIR, kafka://HOST:PORT[,HOST:PORT][?prefix=P] or
    /// kinesis://PREFIX?region=R[&endpoint=URL][&poll_ms=N][&failover_ms=N].
    #[arg(long = "log", env = "TICKCAST_LOG", default_value = "embedded://./data")]
    pub(crate) url: String,
    #[command(flatten)]
    pub(crate) kafka: KafkaClientArgs,
}

/// How Kafka clients connect: TLS, SASL and any librdkafka setting. Every command that opens a
/// log takes them (`up` included).
#[derive(Debug, Args)]
pub(crate) struct KafkaClientArgs {
    /// A librdkafka setting for every Kafka client, e.g. session.timeout.ms=6000 or
    /// linger.ms=5 (repeatable).
    #[arg(long = "kafka-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) kafka_options: Vec<(String, String)>,
    /// How Kafka clients reach the brokers (librdkafka's security.protocol) [default:
    /// plaintext; sasl_ssl with --kafka-sasl-mechanism].
    #[arg(long, env = "TICKCAST_KAFKA_SECURITY_PROTOCOL", value_name = "PROTOCOL",
          value_parser = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"])]
    pub(crate) kafka_security_protocol: Option<String>,
    /// PEM file of the CA certificates the brokers' certificates must chain to
    /// (ssl.ca.location) [default: the system's CAs].
    #[arg(long, env = "TICKCAST_KAFKA_CA", value_name = "FILE")]
    pub(crate) kafka_ca: Option<std::path::PathBuf>,
    /// SASL mechanism to authenticate to the brokers with; needs TICKCAST_KAFKA_SASL_USERNAME and
    /// TICKCAST_KAFKA_SASL_PASSWORD.
    #[arg(long, env = "TICKCAST_KAFKA_SASL_MECHANISM", value_name = "MECHANISM",
          value_parser = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])]
    pub(crate) kafka_sasl_mechanism: Option<String>,
    /// SASL user name.
    #[arg(long, env = "TICKCAST_KAFKA_SASL_USERNAME", value_name = "NAME")]
    pub(crate) kafka_sasl_username: Option<String>,
    /// SASL password: give it in the environment (a flag's value shows in the process list);
    /// never printed.
    #[arg(long, env = "TICKCAST_KAFKA_SASL_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub(crate) kafka_sasl_password: Option<String>,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.trim().to_owned())),
        _ => Err(format!("expected KEY=VALUE, e.g. session.timeout.ms=6000, not {text:?}")),
    }
}
