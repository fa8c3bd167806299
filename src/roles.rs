//! Wiring: builds each role from flags and runs the roles of a command under one shutdown tree.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tickcast_engine::{Params, seed_hash, state_at};
use tickcast_eventlog::kafka::{KafkaLog, KafkaOptions};
use tickcast_eventlog::{Durability, EventLog, LogOptions, NewRecord, StartFrom};
use tickcast_gateways::latency::LatencyPolicy;
use tickcast_gateways::{Gateway, GatewayConfig};
use tickcast_processors::{Archiver, ArchiverConfig, TickGenerator, TickGeneratorConfig};
use tickcast_producers::rules::GameDefaults;
use tickcast_producers::{Edge, EdgeConfig};
use tickcast_schemas::regions::{Region, default_regions};
use tickcast_schemas::token::TokenSigner;
use tickcast_schemas::topics::{self, GAME_EVENTS};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::{
    BotsArgs, Cli, Command, CommonArgs, EngineArgs, GameArgs, LatencyArgs, LogArgs, ReplayCommand, RollArgs,
    TopicsCommand, UpArgs,
};

/// How long roles get to finish after a shutdown signal before they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Engine(args) => engine(&args),
        Command::Bots(args) => bots(args).await,
        Command::Replay(command) => replay(command).await,
        Command::Up(args) => up(args).await,
        Command::Archiver(args) => {
            let log = open_log(&args.log, None)?;
            let table = regions(&args.common)?;
            let mut needed = vec![GAME_EVENTS.to_owned()];
            needed.extend(table.iter().map(|r| topics::ticks(&r.id)));
            check_topics(log.as_ref(), &needed).await?;
            let mut roles = Roles::new();
            let archiver = Archiver::new(log, archiver_config(args.archive, &table, &args.roll));
            roles.spawn("archiver", archiver.run(roles.shutdown.clone()));
            roles.wait().await
        }
        Command::Topics(TopicsCommand::Create { log, partitions, replication, regions: spec }) => {
            create_topics(&log, partitions, replication, spec).await
        }
        Command::Edge(args) => {
            let log = open_log(&args.log, None)?;
            check_topics(log.as_ref(), &[GAME_EVENTS.to_owned()]).await?;
            let table = edge_regions(&args.gateways, regions(&args.common)?)?;
            let mut roles = Roles::new();
            let edge = Edge::new(
                Arc::clone(&log),
                shared_signer(&args.common, &args.log, log.as_ref()).await?,
                table,
                edge_config(&args.game, &args.common),
            );
            let token = roles.shutdown.clone();
            roles.spawn("edge directory", Arc::clone(&edge).follow_sessions(token));
            let app = edge.routes().merge(common_routes(roles.prometheus.clone(), &args.common.web_dir));
            let addr = roles.serve(args.listen, app).await?;
            announce(&format!("edge listening on http://{addr}"));
            roles.wait().await
        }
        Command::Gateway(args) => {
            let log = open_log(&args.log, None)?;
            check_topics(log.as_ref(), &[GAME_EVENTS.to_owned(), topics::ticks(&args.region)]).await?;
            let table = regions(&args.common)?;
            if !table.iter().any(|r| r.id == args.region) {
                bail!(
                    "region {:?} is not in the region table ({}); set --regions or TICKCAST_REGIONS",
                    args.region,
                    ids(&table)
                );
            }
            let mut roles = Roles::new();
            let mut config = GatewayConfig::new(args.region);
            config.instance = args.common.instance.clone();
            config.latency = latency_policy(&args.latency);
            let signer = shared_signer(&args.common, &args.log, log.as_ref()).await?;
            let gateway = Gateway::new(log, signer, config, roles.shutdown.clone());
            roles.spawn("gateway", Arc::clone(&gateway).run());
            let region = gateway.region().to_owned();
            let app = tickcast_gateways::routes(&[gateway])
                .merge(common_routes(roles.prometheus.clone(), &args.common.web_dir));
            let addr = roles.serve(args.listen, app).await?;
            announce(&format!("gateway listening on ws://{addr}/ws/{region}"));
            roles.wait().await
        }
        Command::TickGenerator(args) => {
            let member = args.static_membership.then(|| args.common.instance.clone());
            let log = open_log(&args.log, member)?;
            let mut needed = vec![GAME_EVENTS.to_owned()];
            needed.extend(regions(&args.common)?.iter().map(|r| topics::ticks(&r.id)));
            check_topics(log.as_ref(), &needed).await?;
            let mut roles = Roles::new();
            let generator = TickGenerator::new(log, generator_config(&args.game, &args.common));
            let token = roles.shutdown.clone();
            roles.spawn("tick generator", generator.run(token));
            roles.wait().await
        }
    }
}

fn engine(args: &EngineArgs) -> anyhow::Result<()> {
    if args.hash {
        println!("{}", seed_hash(args.seed));
        return Ok(());
    }
    if args.min_break_steps > args.max_break_steps {
        bail!(
            "--min-break-steps ({}) must not exceed --max-break-steps ({})",
            args.min_break_steps,
            args.max_break_steps
        );
    }
    let step = args.step.context("--step or --hash is required")?;
    let params = Params {
        seed: args.seed,
        min_break_steps: args.min_break_steps,
        max_break_steps: args.max_break_steps,
    };
    let state = state_at(&params, step);
    // Field order is part of the output: step, value, round, broken.
    println!(
        r#"{{"step":{step},"value":{},"round":{},"broken":{}}}"#,
        state.value, state.round, state.broken
    );
    Ok(())
}

async fn replay(command: ReplayCommand) -> anyhow::Result<()> {
    let source = match &command {
        ReplayCommand::Sessions { source, .. }
        | ReplayCommand::Timeline { source, .. }
        | ReplayCommand::Export { source, .. }
        | ReplayCommand::Report { source, .. }
        | ReplayCommand::Serve { source, .. }
        | ReplayCommand::Verify { source, .. } => source,
    };
    let history = match &source.archive {
        Some(dir) => tickcast_replay::archive::load(dir)
            .with_context(|| format!("cannot read the archive {}", dir.display()))?,
        None => {
            let url = &source.log.url;
            let log = tickcast_eventlog::open_read_only(url)
                .with_context(|| format!("cannot open the event log {url}"))?;
            // A spinner on long reads, for people (not when stderr is a file or a pipe).
            let spinner = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                let spinner = indicatif::ProgressBar::new_spinner();
                spinner.enable_steady_tick(Duration::from_millis(120));
                spinner
            } else {
                indicatif::ProgressBar::hidden()
            };
            let mut progress = |read: u64| spinner.set_message(format!("read {read} records"));
            let history = tickcast_replay::History::load_with_progress(log.as_ref(), &mut progress).await?;
            spinner.finish_and_clear();
            history
        }
    };
    let mut out = std::io::stdout().lock();
    match command {
        ReplayCommand::Sessions { json, .. } => {
            for s in tickcast_replay::catalog::sessions(&history) {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&s)?)?;
                } else {
                    let end = s.end_reason.map_or_else(
                        || "running".to_owned(),
                        |r| {
                            serde_json::to_value(r)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        },
                    );
                    writeln!(
                        out,
                        "{}  {:<14}  start {}  players {:>3}  rounds {:>4}  ticks {:>6}  kicks {:>2}  {}",
                        s.session_id, s.region, s.start_at, s.players, s.rounds, s.ticks, s.kicks, end
                    )?;
                }
            }
        }
        ReplayCommand::Timeline { session, json, .. } => {
            let events = history.session(&session)?;
            let start = tickcast_replay::session_created(events).map(|c| c.start_at);
            for logged in events {
                let value = serde_json::to_value(&logged.event)?;
                if json {
                    writeln!(out, "{value}")?;
                    continue;
                }
                let mut fields = value.as_object().cloned().unwrap_or_default();
                for envelope in ["v", "id", "type", "sessionId", "at", "source"] {
                    fields.remove(envelope);
                }
                let relative = start
                    .map_or(String::new(), |s| format!("{:+.3}s", (logged.event.at - s) as f64 / 1000.0));
                writeln!(
                    out,
                    "{:>10}  {:<24}  {:<16}  {}",
                    relative,
                    logged.position.to_string(),
                    logged.event.kind(),
                    serde_json::Value::Object(fields)
                )?;
            }
        }
        ReplayCommand::Export { kind, format, out: path, session, from, to, .. } => {
            let filter = tickcast_replay::export::Filter { session, from_ms: from, to_ms: to };
            let rows = tickcast_replay::export::export(&history, kind, &filter, format, &path)?;
            writeln!(out, "wrote {rows} rows to {}", path.display())?;
        }
        ReplayCommand::Report { out: path, session, .. } => {
            let selected: Vec<String> = session.into_iter().collect();
            if let Some(id) = selected.first() {
                history.session(id)?;
            }
            let html = tickcast_replay::report::report(&history, &selected);
            std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "wrote {}", path.display())?;
        }
        ReplayCommand::Serve { session, speed, listen, .. } => {
            if !(speed.is_finite() && speed > 0.0) {
                bail!("--speed must be a positive number, e.g. 10");
            }
            let playback = tickcast_replay::serve::Playback::of(&history, &session)?;
            drop(out);
            let mut roles = Roles::new();
            let addr = roles.serve(listen, tickcast_replay::serve::router(playback, speed)).await?;
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(
                stdout,
                "replaying session {session} at {speed}x on ws://{addr}/ws (send join to watch)"
            );
            let _ = stdout.flush();
            drop(stdout);
            return roles.wait().await;
        }
        ReplayCommand::Verify { session, .. } => {
            let ids: Vec<String> = match session {
                Some(id) => {
                    history.session(&id)?;
                    vec![id]
                }
                None => history.sessions.keys().cloned().collect(),
            };
            let (mut ticks, mut problems) = (0, Vec::new());
            for id in &ids {
                let check = tickcast_replay::verify::verify_session(id, history.session(id)?);
                ticks += check.ticks;
                problems.extend(check.problems);
            }
            if let Some(first) = problems.first() {
                for p in &problems {
                    writeln!(out, "{p}")?;
                }
                bail!("verification failed: {} problem(s); the first: {first}", problems.len());
            }
            writeln!(
                out,
                "verified {} session(s), {ticks} ticks: every tick matches the engine, no step is missing or doubled, every revealed seed matches its seedHash",
                ids.len()
            )?;
        }
    }
    Ok(())
}

async fn bots(args: BotsArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let config = tickcast_bots::BotsConfig {
        edge: args.edge.trim_end_matches('/').to_owned(),
        sessions: args.sessions as usize,
        players_per_session: args.players_per_session as usize,
        duration: args.duration,
        rtt: Duration::from_millis(args.rtt_ms),
        jitter: Duration::from_millis(args.jitter_ms),
        tick_ms: args.tick_ms,
        connect_rate: args.connect_rate,
        server_pid: args.server_pid,
        region: args.region,
        progress: !args.json && std::io::stderr().is_terminal(),
    };
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    let report = tickcast_bots::run(config, shutdown).await?;
    let text = if args.json { serde_json::to_string(&report)? } else { report.human() };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.trim_end());
    let imperfect =
        report.missing_steps + report.duplicate_steps + report.out_of_order_steps + report.connect_failures;
    if imperfect > 0 {
        std::process::exit(2);
    }
    Ok(())
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let url = format!("embedded://{}", args.data_dir.display());
    let log = tickcast_eventlog::open(&url).with_context(|| format!("cannot open the event log {url}"))?;
    let signer = signer(&args.common)?;
    let table = regions(&args.common)?;
    let mut roles = Roles::new();

    let edge =
        Edge::new(Arc::clone(&log), signer.clone(), table.clone(), edge_config(&args.game, &args.common));
    roles.spawn("edge directory", Arc::clone(&edge).follow_sessions(roles.shutdown.clone()));

    let mut gateways = Vec::new();
    for region in &table {
        let mut config = GatewayConfig::new(region.id.clone());
        config.instance = args.common.instance.clone();
        config.latency = latency_policy(&args.latency);
        let gateway = Gateway::new(Arc::clone(&log), signer.clone(), config, roles.shutdown.clone());
        roles.spawn("gateway", Arc::clone(&gateway).run());
        gateways.push(gateway);
    }

    let generator = TickGenerator::new(Arc::clone(&log), generator_config(&args.game, &args.common));
    roles.spawn("tick generator", generator.run(roles.shutdown.clone()));

    // The archiver stops last, after the roles that write, so the archive ends where the log does.
    let archive = args.archive.clone().unwrap_or_else(|| args.data_dir.join("archive"));
    let archiver = Archiver::new(Arc::clone(&log), archiver_config(archive.clone(), &table, &args.roll));
    let archiver_stop = CancellationToken::new();
    let (stop, everything) = (archiver_stop.clone(), roles.shutdown.clone());
    let archiver = tokio::spawn(async move {
        let result = archiver.run(stop).await;
        if let Err(error) = &result {
            tracing::error!("archiver failed: {error}");
            everything.cancel(); // a backend that silently stops archiving is worse than one that stops
        }
        result
    });

    let app = edge
        .routes()
        .merge(tickcast_gateways::routes(&gateways))
        .merge(common_routes(roles.prometheus.clone(), &args.common.web_dir));
    let addr = roles.serve(args.listen, app).await?;
    let banner = format!(
        "tickcast is up on the embedded log at {} (Parquet archive in {})\n  open        http://{addr}/\n  start game  curl -s -XPOST http://{addr}/edge/game/start -H 'content-type: application/json' -d '{{\"userId\":\"alice\"}}'\n  gateways    ws://{addr}/ws/<region>   ({})\n  Ctrl-C stops it cleanly.\n",
        args.data_dir.display(),
        archive.display(),
        ids(&table)
    );
    announce(&banner);
    let roles_result = roles.wait().await;
    archiver_stop.cancel();
    let archived = match archiver.await {
        Ok(result) => result.context("archiver failed"),
        Err(join_error) => Err(anyhow::anyhow!("the archiver panicked: {join_error}")),
    };
    roles_result.and(archived)
}

/// One line (or block) on stdout for whoever started us, e.g. where we listen. They may have
/// stopped reading stdout: that is no reason to stop serving.
fn announce(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.trim_end()).and_then(|()| stdout.flush());
}

/// Opens the log of a role's flags; `group_instance_id` makes its group members static.
fn open_log(args: &LogArgs, group_instance_id: Option<String>) -> anyhow::Result<Arc<dyn EventLog>> {
    let options =
        LogOptions { kafka: KafkaOptions { client: args.kafka_options.clone(), group_instance_id } };
    tickcast_eventlog::open_with(&args.url, &options)
        .with_context(|| format!("cannot open the event log {}", args.url))
}

/// Fails with what to run when a topic the role needs is missing.
async fn check_topics(log: &dyn EventLog, needed: &[String]) -> anyhow::Result<()> {
    log.check_topics(needed).await.context("the event log is not ready for this role")
}

async fn create_topics(
    args: &LogArgs,
    partitions: u32,
    replication: u32,
    spec: Option<String>,
) -> anyhow::Result<()> {
    let Some(rest) = args.url.strip_prefix("kafka://") else {
        bail!(
            "topics create is for a Kafka log (kafka://HOST:PORT); the embedded log makes its topics itself"
        );
    };
    let options = KafkaOptions { client: args.kafka_options.clone(), group_instance_id: None };
    let kafka = KafkaLog::open(&args.url, rest, options)
        .with_context(|| format!("cannot open the event log {}", args.url))?;
    let mut names = vec![GAME_EVENTS.to_owned()];
    names.extend(region_table(spec.as_deref())?.iter().map(|r| topics::ticks(&r.id)));
    let mut created = kafka.create_topics(&names, partitions, replication).await?;
    // One partition: "the first record wins" needs one order.
    created.extend(kafka.create_topics(&[topics::DEPLOYMENT.to_owned()], 1, replication).await?);
    let mut stdout = std::io::stdout().lock();
    for name in &names {
        if created.iter().any(|c| c.ends_with(name.as_str())) {
            writeln!(stdout, "created  {name} ({partitions} partitions)")?;
        } else {
            writeln!(stdout, "exists   {name} (left as it is)")?;
        }
    }
    Ok(())
}

/// The edge's regions: those it has a gateway for (`--gateway REGION=URL`), else the table.
fn edge_regions(gateways: &[String], table: Vec<Region>) -> anyhow::Result<Vec<Region>> {
    if gateways.is_empty() {
        return Ok(table);
    }
    let defaults = default_regions();
    let mut regions = Vec::new();
    for entry in gateways {
        let Some((id, url)) = entry.split_once('=') else {
            bail!("--gateway {entry:?}: expected REGION=ws://HOST:PORT/ws/REGION");
        };
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            bail!("--gateway {entry:?}: the URL must start with ws:// or wss://");
        }
        let countries = defaults.iter().find(|r| r.id == id).map(|r| r.countries.clone()).unwrap_or_default();
        regions.push(Region { id: id.to_owned(), ws_endpoint: url.to_owned(), countries });
    }
    Ok(regions)
}

/// The join-token signer of a role that runs apart from others: the configured secret, else the
/// deployment's, kept in the log so that every edge and gateway on it agrees.
async fn shared_signer(
    common: &CommonArgs,
    args: &LogArgs,
    log: &dyn EventLog,
) -> anyhow::Result<TokenSigner> {
    if common.token_secret.is_some() || args.url.starts_with("embedded://") {
        return signer(common);
    }
    let key = "token-secret";
    let first = |records: Vec<tickcast_eventlog::Record>| records.into_iter().find(|r| r.key == key);
    let mut found = first(log.read(topics::DEPLOYMENT, StartFrom::Beginning, 64).await?);
    if found.is_none() {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).context("cannot draw a random token secret")?;
        let record = NewRecord {
            key: key.to_owned(),
            timestamp_ms: now_ms(),
            payload: hex::encode(secret).into_bytes().into(),
        };
        log.append(topics::DEPLOYMENT, vec![record], Durability::Durable).await?;
        // Another process may have proposed one at the same time: the first in the log wins.
        found = first(log.read(topics::DEPLOYMENT, StartFrom::Beginning, 64).await?);
    }
    let record = found.context("the deployment's token secret could not be read back")?;
    Ok(TokenSigner::new(&record.payload))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn ids(regions: &[Region]) -> String {
    regions.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")
}

fn signer(common: &CommonArgs) -> anyhow::Result<TokenSigner> {
    match &common.token_secret {
        Some(secret) if secret.len() < 16 => {
            bail!("TICKCAST_TOKEN_SECRET must be at least 16 bytes")
        }
        Some(secret) => Ok(TokenSigner::new(secret.as_bytes())),
        None => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).context("cannot draw a random token secret")?;
            Ok(TokenSigner::new(&secret))
        }
    }
}

/// Parses `TICKCAST_REGIONS`: `id` entries take the default region's countries when it is one
/// of the eight, `id=URL` sets the gateway's public WebSocket URL.
fn regions(common: &CommonArgs) -> anyhow::Result<Vec<Region>> {
    region_table(common.regions.as_deref())
}

fn region_table(spec: Option<&str>) -> anyhow::Result<Vec<Region>> {
    let defaults = default_regions();
    let Some(spec) = spec.filter(|s| !s.trim().is_empty()) else {
        return Ok(defaults);
    };
    let mut table = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (id, endpoint) = entry.split_once('=').map_or((entry, ""), |(i, e)| (i.trim(), e.trim()));
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("region id {id:?} in TICKCAST_REGIONS must be letters, digits, '-' or '_'");
        }
        if !(endpoint.is_empty() || endpoint.starts_with("ws://") || endpoint.starts_with("wss://")) {
            bail!("region {id}: the endpoint {endpoint:?} must be a ws:// or wss:// URL");
        }
        let countries = defaults.iter().find(|r| r.id == id).map(|r| r.countries.clone()).unwrap_or_default();
        table.push(Region { id: id.to_owned(), ws_endpoint: endpoint.to_owned(), countries });
    }
    if table.is_empty() {
        bail!("TICKCAST_REGIONS lists no region");
    }
    Ok(table)
}

fn latency_policy(args: &LatencyArgs) -> LatencyPolicy {
    LatencyPolicy {
        max_latency_ms: args.max_latency_ms,
        max_jitter_ms: args.max_jitter_ms,
        warning_latency_ms: args.warning_latency_ms,
        warning_jitter_ms: args.warning_jitter_ms,
        samples: args.latency_samples as usize,
    }
}

fn edge_config(game: &GameArgs, common: &CommonArgs) -> EdgeConfig {
    EdgeConfig {
        defaults: GameDefaults {
            tick_ms: game.default_tick_ms,
            countdown_ms: game.countdown_ms,
            ..GameDefaults::default()
        },
        instance: common.instance.clone(),
        reveal_seed_at_start: !game.use_tick_broadcaster,
        ..EdgeConfig::default()
    }
}

fn archiver_config(dir: std::path::PathBuf, table: &[Region], roll: &RollArgs) -> ArchiverConfig {
    let mut config = ArchiverConfig::new(dir, table.iter().map(|r| r.id.clone()).collect());
    config.roll_rows = roll.archive_roll_rows as usize;
    config.roll_age = roll.archive_roll_age;
    config
}

fn generator_config(game: &GameArgs, common: &CommonArgs) -> TickGeneratorConfig {
    TickGeneratorConfig {
        idle_ms: game.idle_ms,
        instance: common.instance.clone(),
        ..TickGeneratorConfig::default()
    }
}

/// `/healthz`, `/metrics` (Prometheus text), the player page and JSON 404s.
///
/// The player page is the built web client in `web_dir` (`index.html` and `assets/`); without a
/// build, `/` says how to make one. `/lite` is a minimal page that needs no build.
fn common_routes(prometheus: Option<PrometheusHandle>, web_dir: &std::path::Path) -> Router {
    let index = web_dir.join("index.html");
    let router = Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.as_ref().map(|p| p.render()).unwrap_or_default())),
        )
        .route("/lite", get(|| async { Html(include_str!("play.html")) }));
    let router = if index.is_file() {
        router
            .route_service("/", tower_http::services::ServeFile::new(index))
            .nest_service("/assets", tower_http::services::ServeDir::new(web_dir.join("assets")))
    } else {
        let page = include_str!("unbuilt.html").replace("{web_dir}", &web_dir.display().to_string());
        router.route("/", get(move || std::future::ready(Html(page.clone()))))
    };
    router.fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": "not_found", "message": "no such endpoint" })),
        )
            .into_response()
    })
}

/// The roles of one command under one shutdown tree: a root token cancelled by Ctrl-C,
/// SIGTERM or the first role that fails, then a bounded grace period.
struct Roles {
    /// Root of the shutdown tree: every role and connection watches it.
    shutdown: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Renders `/metrics`; `None` if another recorder was installed first.
    prometheus: Option<PrometheusHandle>,
}

impl Roles {
    fn new() -> Self {
        let shutdown = CancellationToken::new();
        let signal = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            signal.cancel();
        });
        let prometheus = PrometheusBuilder::new().install_recorder().ok();
        if let Some(handle) = prometheus.clone() {
            // Histograms accumulate samples until upkeep folds them into their summaries.
            let token = shutdown.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(5));
                while token.run_until_cancelled(every.tick()).await.is_some() {
                    handle.run_upkeep();
                }
            });
        }
        Self { shutdown, tasks: JoinSet::new(), prometheus }
    }

    fn spawn<E>(&mut self, name: &'static str, task: impl Future<Output = Result<(), E>> + Send + 'static)
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.tasks.spawn(async move { task.await.with_context(|| format!("{name} failed")) });
    }

    /// Binds `addr` and serves `app` until shutdown; returns the bound address.
    async fn serve(
        &mut self,
        addr: std::net::SocketAddr,
        app: Router,
    ) -> anyhow::Result<std::net::SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}; pick another with --listen"))?;
        let bound = listener.local_addr()?;
        let token = self.shutdown.clone();
        self.tasks.spawn(async move {
            tickcast_gateways::http::serve(listener, app, token).await.context("HTTP server failed")
        });
        Ok(bound)
    }

    async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        let token = self.shutdown.clone();
        let grace_over = async move {
            token.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::pin!(grace_over);
        loop {
            let next = tokio::select! {
                next = self.tasks.join_next() => next,
                () = &mut grace_over => {
                    tracing::warn!(remaining = self.tasks.len(), "grace period over; aborting");
                    self.tasks.abort_all();
                    break;
                }
            };
            match next {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => {
                    tracing::error!("{error:#}");
                    first_error.get_or_insert(error);
                    self.shutdown.cancel();
                }
                Some(Err(join_error)) => {
                    first_error.get_or_insert_with(|| anyhow::anyhow!("a role panicked: {join_error}"));
                    self.shutdown.cancel();
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
