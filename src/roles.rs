//! The role commands: each builds its roles from flags and runs them under one shutdown tree
//! ([`Roles`]). `up` runs them all in one process on the embedded log; the others run one role
//! each, for a deployment on Kafka.

use std::sync::Arc;

use anyhow::{Context, bail};
use tickcast_eventlog::kafka::KafkaLog;
use tickcast_gateways::Gateway;
use tickcast_processors::matchmaker::MATCHED_GAME;
use tickcast_processors::{
    Archiver, Matchmaker, Projector, ProjectorConfig, Retention, RetentionConfig, TickGenerator,
};
use tickcast_producers::Edge;
use tickcast_schemas::event::GameParams;
use tickcast_schemas::regions::Region;
use tickcast_schemas::topics::{self, GAME_EVENTS};

use crate::cli::{
    ArchiverArgs, EdgeArgs, GatewayArgs, LogArgs, MatchmakerArgs, MaxPlayers, ProjectorArgs, RecordRetention,
    RegionArgs, StoreArgs, TickGeneratorArgs, UpArgs,
};
use crate::config::{
    admission, archiver_config, check_topics, edge_config, edge_regions, gateway_config, generator_config,
    ids, kafka_options, latency_policy, matchmaker_config, open_log, open_log_at, open_store, region_table,
    socket_limits,
};
use crate::routes::common_routes;
use crate::secret::{shared_signer, signer_in, with_previous};
use crate::shutdown::Roles;

/// `tickcast up`: every role in one process, on the embedded log in the data directory unless
/// `--log` names another.
pub(crate) async fn up(args: UpArgs) -> anyhow::Result<()> {
    let table = region_table(&args.common.regions)?;
    let latency = latency_policy(&args.latency)?;
    // Flags that cannot work are refused before anything is made on disk.
    let saturation = admission(&args.admission)?;
    let signer = with_previous(&args.common, signer_in(&args.common, &args.data_dir)?)?;
    let embedded = format!("embedded://{}", args.data_dir.display());
    let url = args.log.clone().unwrap_or(embedded);
    // The embedded log is opened as itself, for the retention role that deletes its old records.
    let embedded_log = match &args.log {
        None => Some(Arc::new(
            tickcast_eventlog::embedded::EmbeddedLog::open(&args.data_dir)
                .with_context(|| format!("cannot open the event log {url}"))?,
        )),
        Some(_) => None,
    };
    let log = match &embedded_log {
        Some(embedded) => {
            tickcast_eventlog::metered(Arc::clone(embedded) as Arc<dyn tickcast_eventlog::EventLog>)
        }
        None => open_log_at(&url, &args.kafka, None)?,
    };
    check_topics(log.as_ref(), &needed_topics(&table)).await?;
    let mut roles = Roles::new();
    // One saturation gauge for the process: its gateways and generator report to it, the edge
    // refuses new games while it is over.
    let mut edge_config = edge_config(&args.game, &args.common, &args.regions_control);
    edge_config.match_max_latency_ms =
        args.matching.match_max_latency_ms.unwrap_or(args.latency.warning_latency_ms);
    edge_config.admission = saturation.as_ref().map(|(_, admission)| Arc::clone(admission));
    let saturation = saturation.map(|(gauge, _)| gauge);
    if let Some(load) = &saturation
        && args.admission.max_players == MaxPlayers::Auto
    {
        let remembered = crate::capacity::remembered_at(&args.data_dir);
        roles.spawn("capacity", crate::capacity::learn(Arc::clone(load), remembered, roles.shutdown.clone()));
    }
    // The projections, in the data directory unless --store says otherwise: the projector
    // feeds them, the edge answers the read API and joins from them. `--store none` runs
    // without (no read API, no lobby): what the load benchmarks compare against.
    let store_url =
        args.store.store.clone().unwrap_or_else(|| format!("embedded://{}", args.data_dir.display()));
    let mut projector_group = None;
    if store_url != "none" {
        let store = open_store(&store_url).await?;
        edge_config.store = Some(Arc::clone(&store));
        let config = projector_config(&args.store);
        roles.ready_when(&config.readiness);
        projector_group = Some(config.group.clone());
        let projector = Projector::new(Arc::clone(&log), store, config);
        roles.spawn("projector", projector.run(roles.shutdown.clone()));
    }

    let edge = Edge::new(Arc::clone(&log), signer.clone(), table.clone(), edge_config);
    roles.spawn("edge directory", Arc::clone(&edge).follow_sessions(roles.shutdown.clone()));

    let mut gateways = Vec::new();
    let socket_limits = socket_limits(&args.sockets);
    for region in &table {
        let mut config =
            gateway_config(region.id.clone(), &args.common, &args.latency, &args.sockets, &socket_limits);
        config.latency = latency;
        config.saturation.clone_from(&saturation);
        let gateway = Gateway::new(Arc::clone(&log), signer.clone(), config, roles.shutdown.clone());
        for readiness in gateway.readiness() {
            roles.ready_when(&readiness);
        }
        roles.spawn("gateway", Arc::clone(&gateway).run());
        gateways.push(gateway);
    }

    let mut generator_config = generator_config(&args.game, &args.common)?;
    generator_config.saturation = saturation;
    // Late for the pace is late for admission, unless told otherwise.
    if args.game.pace_load_limit_ms.is_none() {
        generator_config.pace.load_limit_ms =
            i64::try_from(args.admission.saturation_lag_ms).unwrap_or(i64::MAX);
    }
    roles.ready_when(&generator_config.readiness);
    let generator_group = generator_config.group.clone();
    let generator = TickGenerator::new(Arc::clone(&log), generator_config);
    roles.spawn("tick generator", generator.run(roles.shutdown.clone()));

    let matched_game = GameParams {
        tick_ms: args.game.default_tick_ms,
        max_tick_ms: args.game.default_tick_ms,
        countdown_ms: args.game.countdown_ms,
        ..MATCHED_GAME
    };
    let matchmaker_config =
        matchmaker_config(&args.matching, args.latency.warning_latency_ms, matched_game, &args.common)?;
    roles.ready_when(&matchmaker_config.readiness);
    roles.spawn(
        "matchmaker",
        Matchmaker::new(Arc::clone(&log), matchmaker_config).run(roles.shutdown.clone()),
    );

    // The archiver stops last, after the roles that write, so the archive ends where the log does.
    let archive = args.archive.dir.clone().unwrap_or_else(|| args.data_dir.join("archive"));
    let archiver_config = archiver_config(archive.clone(), &table, &args.roll);
    roles.ready_when(&archiver_config.readiness);
    if let (Some(embedded), RecordRetention::For(keep)) = (embedded_log, args.retention) {
        let retention = RetentionConfig {
            keep,
            every: std::time::Duration::from_secs(60),
            tick_topics: table.iter().map(|r| topics::ticks(&r.id)).collect(),
            archiver_group: archiver_config.group.clone(),
            generator_group: generator_group.clone(),
            projector_group: projector_group.clone(),
        };
        roles.spawn("retention", Retention::new(embedded, retention).run(roles.shutdown.clone()));
    }
    let archiver = Archiver::new(Arc::clone(&log), archiver_config);
    roles.spawn_last("archiver", |stop| archiver.run(stop))?;

    let app = edge.routes().merge(tickcast_gateways::routes(&gateways)).merge(common_routes(
        roles.metrics_on(&args.listen),
        roles.readiness(),
        &args.common.web_dir,
    ));
    let addr = roles.serve(&args.listen, 8080, app).await?;
    let (http, ws) = (args.listen.scheme(), args.listen.ws_scheme());
    let banner = format!(
        "tickcast is up on {} (Parquet archive in {})\n  open        {http}://{addr}/\n  start game  curl -s -XPOST {http}://{addr}/edge/game/start -H 'content-type: application/json' -d '{{\"userId\":\"alice\"}}'\n  gateways    {ws}://{addr}/ws/<region>   ({})\n  Ctrl-C stops it cleanly.\n",
        args.log.as_ref().map_or_else(
            || format!("the embedded log at {}", args.data_dir.display()),
            |url| format!("the event log {url}")
        ),
        archive.display(),
        ids(&table)
    );
    announce(&banner);
    roles.wait().await
}

/// `tickcast edge`: game start and join over HTTP.
pub(crate) async fn edge(args: EdgeArgs) -> anyhow::Result<()> {
    let table = edge_regions(&args.gateways, region_table(&args.common.regions)?)?;
    let log = open_log(&args.log, None)?;
    check_topics(log.as_ref(), &[GAME_EVENTS.to_owned()]).await?;
    let mut roles = Roles::new();
    let mut config = edge_config(&args.game, &args.common, &args.regions_control);
    config.gateway_ca.clone_from(&args.gateway_ca);
    if let Some(url) = &args.store {
        config.store = Some(open_store(url).await?);
    }
    let edge = Edge::new(
        Arc::clone(&log),
        with_previous(&args.common, shared_signer(&args.common, &args.log, log.as_ref()).await?)?,
        table,
        config,
    );
    let token = roles.shutdown.clone();
    roles.spawn("edge directory", Arc::clone(&edge).follow_sessions(token));
    // Gateways named by URL are asked whether they are ready; their regions get no games while not.
    roles.spawn("gateway health", Arc::clone(&edge).watch_gateways(roles.shutdown.clone()));
    let app = edge.routes().merge(common_routes(
        roles.metrics_on(&args.listen),
        roles.readiness(),
        &args.common.web_dir,
    ));
    let addr = roles.serve(&args.listen, 8080, app).await?;
    announce(&format!("edge listening on {}://{addr}", args.listen.scheme()));
    roles.wait().await
}

/// `tickcast gateway`: one region's WebSocket gateway.
pub(crate) async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let latency = latency_policy(&args.latency)?;
    let log = open_log(&args.log, None)?;
    check_topics(log.as_ref(), &[GAME_EVENTS.to_owned(), topics::ticks(&args.region)]).await?;
    let table = region_table(&args.common.regions)?;
    if !table.iter().any(|r| r.id == args.region) {
        bail!(
            "region {:?} is not in the region table ({}); set --regions or TICKCAST_REGIONS",
            args.region,
            ids(&table)
        );
    }
    let mut roles = Roles::new();
    let mut config = gateway_config(
        args.region,
        &args.common,
        &args.latency,
        &args.sockets,
        &socket_limits(&args.sockets),
    );
    config.latency = latency;
    let signer = with_previous(&args.common, shared_signer(&args.common, &args.log, log.as_ref()).await?)?;
    let gateway = Gateway::new(log, signer, config, roles.shutdown.clone());
    for readiness in gateway.readiness() {
        roles.ready_when(&readiness);
    }
    roles.spawn("gateway", Arc::clone(&gateway).run());
    let region = gateway.region().to_owned();
    let ready = gateway.readiness();
    let app = tickcast_gateways::routes(&[gateway]).merge(common_routes(
        roles.metrics_on(&args.listen),
        roles.readiness(),
        &args.common.web_dir,
    ));
    let addr = roles.serve(&args.listen, 8081, app).await?;
    // Said once the gateway is ready (its tails past the history it reads at start), so what
    // waits for this line can send players at once.
    while !ready.iter().all(tickcast_schemas::health::Readiness::is_ready) {
        let pause = tokio::time::sleep(std::time::Duration::from_millis(20));
        if roles.shutdown.run_until_cancelled(pause).await.is_none() {
            break;
        }
    }
    announce(&format!("gateway listening on {}://{addr}/ws/{region}", args.listen.ws_scheme()));
    roles.wait().await
}

/// `tickcast tick-generator`: one member of the tick generators' consumer group.
pub(crate) async fn tick_generator(args: TickGeneratorArgs) -> anyhow::Result<()> {
    let member = args.static_membership.then(|| args.common.instance.clone());
    let log = open_log(&args.log, member)?;
    let table = region_table(&args.common.regions)?;
    check_topics(log.as_ref(), &needed_topics(&table)).await?;
    let mut roles = Roles::new();
    let config = generator_config(&args.game, &args.common)?;
    roles.ready_when(&config.readiness);
    if let Some(admin) = args.admin.admin_listen {
        roles.serve_admin(admin).await?;
    }
    let generator = TickGenerator::new(log, config);
    let token = roles.shutdown.clone();
    roles.spawn("tick generator", generator.run(token));
    roles.wait().await
}

/// How the projector keeps the items.
fn projector_config(store: &StoreArgs) -> ProjectorConfig {
    ProjectorConfig { ttl: store.store_ttl, ..ProjectorConfig::default() }
}

/// `tickcast projector`: `game-events` as the projection store's tables; `--rebuild` rebuilds
/// them from the log and exits.
pub(crate) async fn projector(args: ProjectorArgs) -> anyhow::Result<()> {
    let Some(url) = &args.store.store else {
        bail!(
            "the projector needs a store to write: --store URL or TICKCAST_STORE (embedded://DIR or dynamodb://PREFIX?region=R)"
        );
    };
    let log = open_log(&args.log, None)?;
    check_topics(log.as_ref(), &[GAME_EVENTS.to_owned()]).await?;
    let store = open_store(url).await?;
    if args.rebuild {
        let read =
            tickcast_processors::projector::rebuild(log.as_ref(), store.as_ref(), args.store.store_ttl)
                .await?;
        announce(&format!("rebuilt the projections in {url} from {read} events"));
        return Ok(());
    }
    let mut roles = Roles::new();
    let config = projector_config(&args.store);
    roles.ready_when(&config.readiness);
    if let Some(admin) = args.admin.admin_listen {
        roles.serve_admin(admin).await?;
    }
    let projector = Projector::new(log, store, config);
    roles.spawn("projector", projector.run(roles.shutdown.clone()));
    roles.wait().await
}

/// `tickcast matchmaker`: one member of the matchmakers' consumer group.
pub(crate) async fn matchmaker(args: MatchmakerArgs) -> anyhow::Result<()> {
    let log = open_log(&args.log, None)?;
    check_topics(log.as_ref(), &[GAME_EVENTS.to_owned()]).await?;
    let game = GameParams {
        tick_ms: args.default_tick_ms,
        max_tick_ms: args.default_tick_ms,
        countdown_ms: args.countdown_ms,
        ..MATCHED_GAME
    };
    let config = matchmaker_config(&args.matching, 100, game, &args.common)?;
    let mut roles = Roles::new();
    roles.ready_when(&config.readiness);
    if let Some(admin) = args.admin.admin_listen {
        roles.serve_admin(admin).await?;
    }
    roles.spawn("matchmaker", Matchmaker::new(log, config).run(roles.shutdown.clone()));
    roles.wait().await
}

/// `tickcast tables create`: the projection store's tables, indexes and TTL.
pub(crate) async fn create_tables(url: &str) -> anyhow::Result<()> {
    let store = open_store(url).await?;
    store.create_tables().await.with_context(|| format!("cannot create the tables of {url}"))?;
    announce(&format!("the tables of {url} exist, with their indexes and TTL"));
    Ok(())
}

/// `tickcast archiver`: the log as Parquet files.
pub(crate) async fn archiver(args: ArchiverArgs) -> anyhow::Result<()> {
    let Some(dir) = args.archive.dir else {
        bail!("the archiver needs a directory to write: --archive DIR or TICKCAST_ARCHIVE");
    };
    let log = open_log(&args.log, None)?;
    let table = region_table(&args.common.regions)?;
    check_topics(log.as_ref(), &needed_topics(&table)).await?;
    let mut roles = Roles::new();
    let config = archiver_config(dir, &table, &args.roll);
    roles.ready_when(&config.readiness);
    if let Some(admin) = args.admin.admin_listen {
        roles.serve_admin(admin).await?;
    }
    let archiver = Archiver::new(log, config);
    roles.spawn("archiver", archiver.run(roles.shutdown.clone()));
    roles.wait().await
}

/// `tickcast topics create`: every topic a Kafka deployment needs.
pub(crate) async fn create_topics(
    args: &LogArgs,
    partitions: u32,
    replication: u32,
    retention: RecordRetention,
    regions: &RegionArgs,
) -> anyhow::Result<()> {
    use std::io::Write;
    let Some(rest) = args.url.strip_prefix("kafka://") else {
        bail!(
            "topics create is for a Kafka log (kafka://HOST:PORT); the embedded log makes its topics itself"
        );
    };
    // Creating topics writes no records: the administration needs no producer.
    let kafka = KafkaLog::open_read_only(&args.url, rest, kafka_options(&args.kafka, None)?)
        .with_context(|| format!("cannot open the event log {}", args.url))?;
    let names = needed_topics(&region_table(regions)?);
    let mut created = kafka.create_topics(&names, partitions, replication, retention.kafka_ms()).await?;
    // One partition: "the first record wins" needs one order; kept forever, since its first
    // record is the deployment's token secret.
    let deployment = [topics::DEPLOYMENT.to_owned()];
    created
        .extend(kafka.create_topics(&deployment, 1, replication, RecordRetention::Forever.kafka_ms()).await?);
    let mut stdout = std::io::stdout().lock();
    for name in &names {
        if created.iter().any(|c| c.ends_with(name.as_str())) {
            let kept = match retention {
                RecordRetention::For(keep) => format!("records kept {}", humantime::format_duration(keep)),
                RecordRetention::Forever => "records kept forever".to_owned(),
            };
            writeln!(stdout, "created  {name} ({partitions} partitions, {kept})")?;
        } else {
            writeln!(stdout, "exists   {name} (left as it is)")?;
        }
    }
    Ok(())
}

/// `tickcast streams create`: every stream a Kinesis deployment needs, and its lease table.
pub(crate) async fn create_streams(
    url: &str,
    shards: u32,
    retention: RecordRetention,
    regions: &RegionArgs,
) -> anyhow::Result<()> {
    use tickcast_eventlog::kinesis::{KinesisAddress, connect, leases::LeaseTable, streams::KinesisStreams};
    let Some(rest) = url.strip_prefix("kinesis://") else {
        bail!("streams create is for a Kinesis log (kinesis://PREFIX?region=R); for Kafka use topics create");
    };
    let hours = retention.kinesis_hours().map_err(|e| anyhow::anyhow!("--retention: {e}"))?;
    let address = KinesisAddress::parse(url, rest)?;
    let (kinesis, dynamodb) = connect(&address).await;
    let streams = KinesisStreams::new(kinesis, address.prefix.clone());
    let mut wanted: Vec<(String, u32, i32)> =
        needed_topics(&region_table(regions)?).into_iter().map(|topic| (topic, shards, hours)).collect();
    // One shard: "the first record wins" needs one order; kept as long as Kinesis allows, since
    // its first record is the deployment's token secret.
    wanted.push((topics::DEPLOYMENT.to_owned(), 1, RecordRetention::KINESIS_MAX_HOURS));
    for (topic, shards, hours) in wanted {
        let name = streams.stream_name(&topic);
        let shards = i32::try_from(shards).unwrap_or(i32::MAX);
        if streams.create(&topic, shards).await.with_context(|| format!("cannot create stream {name}"))? {
            streams
                .set_retention(&topic, hours)
                .await
                .with_context(|| format!("cannot set the retention of stream {name}"))?;
            announce(&format!("created  {name} ({shards} shards, records kept {hours} h)"));
        } else {
            announce(&format!("exists   {name} (left as it is)"));
        }
    }
    let table = address.lease_table();
    LeaseTable::new(dynamodb, table.clone())
        .create()
        .await
        .with_context(|| format!("cannot create table {table}"))?;
    announce(&format!("ready    {table} (shard leases)"));
    Ok(())
}

/// `game-events` and the tick topic of every region.
fn needed_topics(table: &[Region]) -> Vec<String> {
    let mut needed = vec![GAME_EVENTS.to_owned()];
    needed.extend(table.iter().map(|r| topics::ticks(&r.id)));
    needed
}

/// One line (or block) on stdout for whoever started us, e.g. where we listen. They may have
/// stopped reading stdout: that is no reason to stop serving.
pub(crate) fn announce(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", text.trim_end()).and_then(|()| stdout.flush());
}
