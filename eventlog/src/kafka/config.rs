//! Client settings: tickcast's defaults per kind of client, the operator's `--kafka-option`s
//! over them, and librdkafka's log and client errors routed to `tracing`.

use std::sync::Mutex;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Settings of a Kafka log beyond its URL.
#[derive(Clone, Default)]
pub struct KafkaOptions {
    /// librdkafka settings applied to every client of the log, after tickcast's own defaults
    /// (e.g. `linger.ms=5`, `session.timeout.ms=6000`, `security.protocol=ssl`).
    pub client: Vec<(String, String)>,
    /// Static group membership: the `group.instance.id` of this process's group members.
    pub group_instance_id: Option<String>,
}

/// Passwords and keys never reach a log line through `{:?}`.
impl std::fmt::Debug for KafkaOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |key: &str| ["password", "secret", ".pem", "key"].iter().any(|s| key.contains(s));
        let client: Vec<(&str, &str)> = self
            .client
            .iter()
            .map(|(key, value)| (key.as_str(), if secret(key) { "<redacted>" } else { value.as_str() }))
            .collect();
        f.debug_struct("KafkaOptions")
            .field("client", &client)
            .field("group_instance_id", &self.group_instance_id)
            .finish()
    }
}

/// Where a Kafka log lives: `kafka://HOST:PORT[,HOST:PORT][?prefix=P]`.
#[derive(Debug, Clone)]
pub(super) struct KafkaAddress {
    pub(super) brokers: String,
    /// Put before every topic and group name (several deployments or test runs on one cluster).
    pub(super) prefix: String,
}

impl KafkaAddress {
    /// Parses `rest`, the URL after `kafka://`; `url` is the whole URL, for messages.
    pub(super) fn parse(url: &str, rest: &str) -> crate::Result<Self> {
        let bad = |reason: &str| crate::Error::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
        let (brokers, query) = rest.split_once('?').unwrap_or((rest, ""));
        if brokers.is_empty() || brokers.split(',').any(|b| !b.contains(':')) {
            return Err(bad("expected kafka://HOST:PORT[,HOST:PORT…], e.g. kafka://127.0.0.1:9092"));
        }
        let mut prefix = String::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", value)) => value.clone_into(&mut prefix),
                _ => return Err(bad(&format!("unknown parameter {pair:?}; supported: prefix=P"))),
            }
        }
        Ok(Self { brokers: brokers.to_owned(), prefix })
    }

    /// The name of `topic` (or a group) on the cluster.
    pub(super) fn full_name(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }
}

/// Which clients a librdkafka setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientKind {
    Producer,
    /// Consumers and admin clients.
    Consumer,
}

/// Settings only one kind of client understands go to that kind alone (librdkafka warns about
/// the others); everything else goes to every client.
fn applies_to(key: &str, kind: ClientKind) -> bool {
    const CONSUMER_ONLY: &[&str] = &[
        "session.",
        "heartbeat.",
        "group.",
        "partition.assignment",
        "fetch.",
        "auto.",
        "enable.auto",
        "max.poll",
        "isolation.",
    ];
    const PRODUCER_ONLY: &[&str] = &[
        "linger.",
        "batch.",
        "acks",
        "enable.idempotence",
        "compression.",
        "queue.buffering",
        "message.timeout",
        "retries",
        "partitioner",
        "delivery.timeout",
    ];
    match kind {
        ClientKind::Producer => !CONSUMER_ONLY.iter().any(|p| key.starts_with(p)),
        ClientKind::Consumer => !PRODUCER_ONLY.iter().any(|p| key.starts_with(p)),
    }
}

/// tickcast's defaults for a client, then the operator's settings over them.
pub(super) fn client_config(
    address: &KafkaAddress,
    options: &KafkaOptions,
    kind: ClientKind,
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &address.brokers).set("client.id", "tickcast");
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for (key, value) in options.client.iter().filter(|(key, _)| applies_to(key, kind)) {
        config.set(key, value);
    }
    // librdkafka's warnings (a broker refused, a certificate rejected) reach tracing; its
    // debug lines when the operator asked for some (`debug=…`).
    let debug = options.client.iter().any(|(key, _)| key == "debug");
    config.set_log_level(if debug { RDKafkaLogLevel::Debug } else { RDKafkaLogLevel::Warning });
    config
}

/// Context of clients without a group (readers, admin, metadata): librdkafka's log goes to
/// tracing.
pub(super) struct ReaderContext;

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_to_tracing(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        client_error(&error, reason);
    }
}

impl ConsumerContext for ReaderContext {}

/// The newest client-wide error a Kafka client of this process reported (a refused TLS
/// certificate, failed SASL, an unreachable broker): librdkafka retries those by itself, so a
/// call that then times out knows only that it timed out; its error quotes this instead.
/// Process-wide, as the brokers and their settings are.
static LAST_CLIENT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// librdkafka's client-wide errors. Most are transient (it reconnects by itself); the end of a
/// partition is news for a scan, not an error.
pub(super) fn client_error(error: &KafkaError, reason: &str) {
    if !matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
        // "All brokers are down" sums up the failures; it is not why they failed.
        if !matches!(error, KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)) {
            *LAST_CLIENT_ERROR.lock().unwrap() = Some(reason.to_owned());
        }
    }
}

/// What the brokers last answered, for the message of a call that timed out.
pub(crate) fn last_client_error() -> Option<String> {
    LAST_CLIENT_ERROR.lock().unwrap().clone()
}

/// librdkafka's own log lines, as tracing events.
pub(super) fn log_to_tracing(level: RDKafkaLogLevel, facility: &str, message: &str) {
    // Why a broker could not be reached or logged in to: what a timed-out call should quote.
    let connection_trouble = matches!(facility, "FAIL" | "SSL" | "SASL" | "SASLAUTH" | "AUTH" | "ERROR");
    let serious = !matches!(level, RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug);
    if connection_trouble && serious {
        *LAST_CLIENT_ERROR.lock().unwrap() = Some(message.to_owned());
    }
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_go_to_the_clients_that_understand_them() {
        assert!(applies_to("linger.ms", ClientKind::Producer));
        assert!(!applies_to("linger.ms", ClientKind::Consumer));
        assert!(applies_to("session.timeout.ms", ClientKind::Consumer));
        assert!(!applies_to("session.timeout.ms", ClientKind::Producer));
        assert!(applies_to("security.protocol", ClientKind::Producer));
        assert!(applies_to("security.protocol", ClientKind::Consumer));
    }

    #[test]
    fn secrets_are_not_printed() {
        let options = KafkaOptions {
            client: vec![
                ("sasl.password".into(), "hunter2".into()),
                ("ssl.key.pem".into(), "-----BEGIN".into()),
                ("sasl.username".into(), "ops".into()),
            ],
            group_instance_id: None,
        };
        let printed = format!("{options:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("BEGIN"), "{printed}");
        assert!(printed.contains("ops"), "{printed}");
    }

    #[test]
    fn urls_name_brokers_and_a_prefix() {
        let address = KafkaAddress::parse("kafka://a:1,b:2?prefix=p-", "a:1,b:2?prefix=p-").unwrap();
        assert_eq!(address.brokers, "a:1,b:2");
        assert_eq!(address.full_name("game-events"), "p-game-events");
        for rest in ["", "host", "a:1?x=y"] {
            let error = KafkaAddress::parse(&format!("kafka://{rest}"), rest).unwrap_err().to_string();
            assert!(error.contains("kafka://"), "{rest}: {error}");
        }
    }
}
