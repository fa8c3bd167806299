//! From flags to the roles' typed configurations, with the checks that span several flags.

use std::sync::Arc;

use anyhow::{Context, bail};
use tickcast_eventlog::kafka::KafkaOptions;
use tickcast_eventlog::{EventLog, LogOptions};
use tickcast_gateways::GatewayConfig;
use tickcast_gateways::latency::LatencyPolicy;
use tickcast_gateways::socket_limits::SocketLimits;
use tickcast_processors::matchmaker::MatchmakerConfig;
use tickcast_processors::matchmaker::rules::MatchRules;
use tickcast_processors::pace::PaceConfig;
use tickcast_processors::{ArchiverConfig, TickGeneratorConfig};
use tickcast_producers::EdgeConfig;
use tickcast_producers::admission::{Admission, AdmissionLimits};
use tickcast_producers::rules::GameDefaults;
use tickcast_schemas::load::{LagGauge, ProcessLoad};
use tickcast_schemas::regions::{self, Region};

use crate::cli::{
    AdmissionArgs, CommonArgs, GameArgs, KafkaClientArgs, LatencyArgs, LogArgs, MaxPlayers, RegionArgs,
    RegionControlArgs, RollArgs, SocketLimitArgs,
};

/// Opens the log of a role's flags; `group_instance_id` makes its group members static.
pub(crate) fn open_log(
    args: &LogArgs,
    group_instance_id: Option<String>,
) -> anyhow::Result<Arc<dyn EventLog>> {
    open_log_at(&args.url, &args.kafka, group_instance_id)
}

/// Opens the log at `url` with the Kafka client settings of `kafka`.
pub(crate) fn open_log_at(
    url: &str,
    kafka: &KafkaClientArgs,
    group_instance_id: Option<String>,
) -> anyhow::Result<Arc<dyn EventLog>> {
    let options = LogOptions { kafka: kafka_options(kafka, group_instance_id)? };
    tickcast_eventlog::open_with(url, &options).with_context(|| format!("cannot open the event log {url}"))
}

/// The Kafka clients' settings: TLS and SASL from their flags, then every `--kafka-option`
/// (which may override them).
pub(crate) fn kafka_options(
    args: &KafkaClientArgs,
    group_instance_id: Option<String>,
) -> anyhow::Result<KafkaOptions> {
    let mut client = Vec::new();
    let mut set = |key: &str, value: &str| client.push((key.to_owned(), value.to_owned()));
    let protocol = match (&args.kafka_security_protocol, &args.kafka_sasl_mechanism) {
        (Some(protocol), _) => Some(protocol.as_str()),
        (None, Some(_)) => Some("sasl_ssl"),
        (None, None) => None,
    };
    if let Some(protocol) = protocol {
        set("security.protocol", protocol);
    }
    if let Some(ca) = &args.kafka_ca {
        if !ca.is_file() {
            bail!(
                "--kafka-ca / TICKCAST_KAFKA_CA: {} is not a file (give the PEM file of the brokers' CA)",
                ca.display()
            );
        }
        set("ssl.ca.location", &ca.display().to_string());
    }
    match &args.kafka_sasl_mechanism {
        Some(mechanism) => {
            if protocol.is_some_and(|p| !p.starts_with("sasl_")) {
                bail!("--kafka-sasl-mechanism needs --kafka-security-protocol sasl_ssl or sasl_plaintext");
            }
            let (Some(user), Some(password)) = (&args.kafka_sasl_username, &args.kafka_sasl_password) else {
                bail!(
                    "--kafka-sasl-mechanism needs TICKCAST_KAFKA_SASL_USERNAME and TICKCAST_KAFKA_SASL_PASSWORD"
                );
            };
            set("sasl.mechanism", mechanism);
            set("sasl.username", user);
            set("sasl.password", password);
        }
        None if protocol.is_some_and(|p| p.starts_with("sasl_")) => {
            bail!(
                "--kafka-security-protocol {} needs --kafka-sasl-mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)",
                protocol.unwrap_or_default()
            );
        }
        None => {}
    }
    client.extend(args.kafka_options.iter().cloned());
    Ok(KafkaOptions { client, group_instance_id })
}

/// Opens the projection store at `url`.
pub(crate) async fn open_store(url: &str) -> anyhow::Result<Arc<dyn tickcast_projections::ProjectionStore>> {
    tickcast_projections::open(url).await.with_context(|| format!("cannot open the projection store {url}"))
}

/// Fails with what to run when a topic the role needs is missing.
pub(crate) async fn check_topics(log: &dyn EventLog, needed: &[String]) -> anyhow::Result<()> {
    log.check_topics(needed).await.context("the event log is not ready for this role")
}

/// The region table of `--regions` / `TICKCAST_REGIONS`.
pub(crate) fn region_table(args: &RegionArgs) -> anyhow::Result<Vec<Region>> {
    regions::parse_table(args.table.as_deref()).context("--regions / TICKCAST_REGIONS")
}

/// The edge's regions: those it has a gateway for (`--gateway REGION=URL`), else the table.
pub(crate) fn edge_regions(gateways: &[String], table: Vec<Region>) -> anyhow::Result<Vec<Region>> {
    if gateways.is_empty() {
        return Ok(table);
    }
    gateways
        .iter()
        .map(|entry| regions::parse_gateway(entry).with_context(|| format!("--gateway {entry:?}")))
        .collect()
}

/// Region ids, for messages.
pub(crate) fn ids(regions: &[Region]) -> String {
    regions.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")
}

/// The latency policy, refused when a warning threshold is above its kick threshold (players
/// would be kicked without ever being warned).
pub(crate) fn latency_policy(args: &LatencyArgs) -> anyhow::Result<LatencyPolicy> {
    if args.warning_latency_ms > args.max_latency_ms {
        bail!(
            "WARNING_LATENCY_MS ({}) must not exceed MAX_LATENCY_MS ({}): players would be kicked before they are warned",
            args.warning_latency_ms,
            args.max_latency_ms
        );
    }
    if args.warning_jitter_ms > args.max_jitter_ms {
        bail!(
            "WARNING_JITTER_MS ({}) must not exceed MAX_JITTER_MS ({}): players would be kicked before they are warned",
            args.warning_jitter_ms,
            args.max_jitter_ms
        );
    }
    Ok(LatencyPolicy {
        max_latency_ms: args.max_latency_ms,
        max_jitter_ms: args.max_jitter_ms,
        warning_latency_ms: args.warning_latency_ms,
        warning_jitter_ms: args.warning_jitter_ms,
        samples: args.latency_samples as usize,
    })
}

/// A gateway of `region`, its policy still to be set.
pub(crate) fn gateway_config(
    region: String,
    common: &CommonArgs,
    latency: &LatencyArgs,
    sockets: &SocketLimitArgs,
    socket_limits: &Arc<SocketLimits>,
) -> GatewayConfig {
    let mut config = GatewayConfig::new(region);
    config.instance = common.instance.clone();
    config.lag_threshold = std::time::Duration::from_millis(latency.gateway_lag_limit_ms);
    config.join_timeout = std::time::Duration::from_millis(sockets.join_timeout_ms);
    config.max_messages_per_s = sockets.max_messages_per_s;
    config.max_players_per_session = sockets.max_players_per_session;
    config.allowed_origins = sockets
        .allowed_origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    #[cfg(feature = "test-hooks")]
    {
        config.debug_write_delay = std::time::Duration::from_millis(latency.debug_write_delay_ms);
    }
    config.socket_limits = Arc::clone(socket_limits);
    config
}

/// The socket caps of a process, shared by all its gateways.
pub(crate) fn socket_limits(sockets: &SocketLimitArgs) -> Arc<SocketLimits> {
    SocketLimits::new(sockets.max_connections, sockets.max_connections_per_ip)
}

/// The process's load (its parts' lag, its players, the ticks it delivers) and the edge's
/// admission over it; `None` when `--saturation-lag-ms 0 --max-players 0` admits everyone.
/// With `--max-players auto` the capacity is learned by [`crate::capacity`].
pub(crate) fn admission(args: &AdmissionArgs) -> anyhow::Result<Option<(Arc<ProcessLoad>, Arc<Admission>)>> {
    if args.saturation_lag_ms == 0 && args.max_players == MaxPlayers::Fixed(0) {
        return Ok(None);
    }
    if args.saturation_lag_ms > 0 && args.saturation_hold < std::time::Duration::from_secs(1) {
        bail!(
            "--saturation-hold / TICKCAST_SATURATION_HOLD must be at least 1s (it is also the Retry-After, in whole seconds)"
        );
    }
    let threshold = std::time::Duration::from_millis(args.saturation_lag_ms);
    let load = Arc::new(ProcessLoad::new(LagGauge::sustained(threshold, args.saturation_sustain)));
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let limits = AdmissionLimits {
        hold: (args.saturation_lag_ms > 0).then_some(args.saturation_hold),
        min_players: args.saturation_min_players,
        max_players: match args.max_players {
            MaxPlayers::Auto => 0,
            MaxPlayers::Fixed(n) => n,
        },
    };
    let admission = Arc::new(Admission::new(Arc::clone(&load), limits, now_us));
    Ok(Some((load, admission)))
}

pub(crate) fn edge_config(game: &GameArgs, common: &CommonArgs, control: &RegionControlArgs) -> EdgeConfig {
    EdgeConfig {
        admin_token: control.admin_token.clone().filter(|t| !t.is_empty()),
        region_failover_after: control.region_failover_after,
        defaults: GameDefaults {
            tick_ms: game.default_tick_ms,
            countdown_ms: game.countdown_ms,
            max_game_ms: game.max_game_duration.as_millis() as i64,
            ..GameDefaults::default()
        },
        instance: common.instance.clone(),
        reveal_seed_at_start: !game.use_tick_broadcaster,
        game_rate_per_ip: game.game_rate_per_ip,
        max_games_per_user: game.max_games_per_user,
        token_ttl_ms: game.ticket_ttl.as_millis() as i64,
        directory_history_ms: common.directory_history.as_millis() as i64,
        ..EdgeConfig::default()
    }
}

pub(crate) fn archiver_config(dir: std::path::PathBuf, table: &[Region], roll: &RollArgs) -> ArchiverConfig {
    let mut config = ArchiverConfig::new(dir, table.iter().map(|r| r.id.clone()).collect());
    config.roll_rows = roll.archive_roll_rows as usize;
    config.roll_age = roll.archive_roll_age;
    config
}

/// The matchmaker's rules and games; `max_latency_ms` when no --match-max-latency-ms is given.
pub(crate) fn matchmaker_config(
    matching: &crate::cli::MatchArgs,
    max_latency_ms: u64,
    game: tickcast_schemas::event::GameParams,
    common: &CommonArgs,
) -> anyhow::Result<MatchmakerConfig> {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let rules = MatchRules {
        min_players: matching.match_min_players as usize,
        max_players: matching.match_max_players as usize,
        max_latency_ms: matching.match_max_latency_ms.unwrap_or(max_latency_ms),
        max_spread_ms: matching.match_max_spread_ms,
        expand_after_ms: ms(matching.match_expand_after),
        fill_after_ms: ms(matching.match_fill_after),
        timeout_ms: ms(matching.match_timeout),
    };
    rules.check().map_err(anyhow::Error::msg)?;
    Ok(MatchmakerConfig { instance: common.instance.clone(), rules, game, ..MatchmakerConfig::default() })
}

pub(crate) fn generator_config(game: &GameArgs, common: &CommonArgs) -> anyhow::Result<TickGeneratorConfig> {
    Ok(TickGeneratorConfig {
        idle_ms: game.idle_ms,
        gateway_timeout_ms: i64::try_from(game.gateway_timeout.as_millis()).unwrap_or(i64::MAX),
        instance: common.instance.clone(),
        regions: region_table(&common.regions)?.into_iter().map(|r| r.id).collect(),
        pace: PaceConfig {
            rtt_factor: game.pace_rtt_factor,
            load_limit_ms: game
                .pace_load_limit_ms
                .map_or(PaceConfig::default().load_limit_ms, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
        },
        ..TickGeneratorConfig::default()
    })
}
