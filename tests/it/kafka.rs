//! The Kafka log under the roles: a game through them, the secret kept in the log only when
//! told to, topics and their retention, a broker paused, a generator's readiness.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cluster::*;
use crate::support::{Player, eventually, topic_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_through_edge_gateway_and_generators_on_kafka() {
    let cluster = Cluster::start(2);
    let ticket = cluster
        .post(
            "/edge/game/start",
            json!({"userId":"alice","tickMs":50,"countdownMs":1500,"maxRounds":2,"preferredRegion":REGION}),
        )
        .await;
    assert_eq!(ticket["region"], REGION);
    let second = cluster
        .post(&format!("/edge/game/{}/join", ticket["gameId"].as_str().unwrap()), json!({"userId":"bob"}))
        .await;
    // Both read all along, as real clients do (a client that stops reading stops answering
    // pings, and is kicked).
    let mut games = Vec::new();
    for (name, ticket) in [("alice", &ticket), ("bob", &second)] {
        let mut player = Player::join(ticket, name, None).await;
        games.push((name, tokio::spawn(async move { player.until("session_ended").await })));
    }
    for (name, game) in games {
        let (frames, ended) = game.await.unwrap();
        let steps: Vec<i64> =
            frames.iter().filter(|f| f["type"] == "tick").map(|f| f["step"].as_i64().unwrap()).collect();
        assert_every_step_once_in_order(name, &steps);
        assert_eq!(ended["reason"], "max_rounds", "{ended}");
        assert_eq!(ended["lastStep"].as_i64(), steps.last().copied(), "{ended}");
        let seed: u64 = ended["seed"].as_str().unwrap().parse().unwrap();
        assert_eq!(ticket["seedHash"].as_str().unwrap(), tickcast_engine::seed_hash(seed));
    }
}

/// Without `TICKCAST_TOKEN_SECRET`, split roles on Kafka refuse to start unless told to keep
/// the deployment's secret in the log; told so, an edge and a gateway started apart agree on it
/// (a ticket from one opens the other), and neither prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_roles_keep_their_secret_in_the_log_only_when_told_to() {
    let cluster = Cluster::start(1);
    let refused = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["edge", "--log", &cluster.log, "--listen", "127.0.0.1:0"])
        .env_remove("TICKCAST_TOKEN_SECRET")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("TICKCAST_TOKEN_SECRET") && stderr.contains("--allow-log-stored-secret"),
        "{stderr}"
    );

    let unconfigured = |args: &[&str], listening: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tickcast"));
        command.args(args).arg("--allow-log-stored-secret").env_remove("TICKCAST_TOKEN_SECRET");
        Role::spawn(&mut command, Some(listening))
    };
    let gateway = unconfigured(
        &["gateway", "--log", &cluster.log, "--region", REGION, "--listen", "127.0.0.1:0"],
        "gateway listening on ",
    );
    let gateway_url = gateway.url.clone().unwrap();
    let edge = unconfigured(
        &[
            "edge",
            "--log",
            &cluster.log,
            "--listen",
            "127.0.0.1:0",
            "--gateway",
            &format!("{REGION}={gateway_url}"),
        ],
        "edge listening on ",
    );
    let response = reqwest::Client::new()
        .post(format!("{}/edge/game/start", edge.url.as_ref().unwrap()))
        .json(&json!({"userId":"ana","countdownMs":0,"preferredRegion":REGION}))
        .send()
        .await
        .unwrap();
    let ticket: Value = response.json().await.unwrap();
    let mut player = Player::join(&ticket, "ana", None).await;
    let (_, joined) = player.until("session_joined").await;
    assert_eq!(joined["sessionId"], ticket["gameId"], "the gateway accepts the edge's ticket");

    let log = tickcast_eventlog::open(&cluster.log).unwrap();
    let stored = log
        .read(tickcast_schemas::topics::DEPLOYMENT, tickcast_eventlog::StartFrom::Beginning, 16)
        .await
        .unwrap();
    let secret =
        String::from_utf8(stored.first().expect("the secret is in the log").payload.to_vec()).unwrap();
    for role in [&gateway, &edge] {
        assert!(!role.output.lock().unwrap().contains(&secret), "a role printed the secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_its_topics_says_how_to_create_them() {
    let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["tick-generator", "--log", &format!("kafka://{}?prefix=missing-topics-", broker())])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not exist") && stderr.contains("tickcast topics create"), "{stderr}");
}

/// The broker stopped (SIGSTOP) for 10 s during games, then resumed: no role exits, and every
/// player sees every step exactly once afterwards, late and in order. (Roles' logs:
/// `TICKCAST_TEST_ROLE_LOG=info` shows them.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_second_broker_pause_loses_nothing() {
    let (broker, address) = own_broker();
    // A session timeout above the pause, so the pause is no rebalance: tansu 0.6 keeps a member
    // that vanished during a pause as the group's leader and never completes the rebalance
    // (docs/operations.md), where Apache Kafka would expire it.
    let mut cluster = Cluster::start_on(&address, &[], 1, 6, &["--kafka-option", "session.timeout.ms=30000"]);
    let stop = Instant::now() + Duration::from_secs(120);
    let mut players = Vec::new();
    let mut tickets = Vec::new();
    for i in 0..4 {
        let ticket = cluster
            .post(
                "/edge/game/start",
                json!({"userId":format!("u{i}"),"tickMs":100,"countdownMs":1000,"preferredRegion":REGION}),
            )
            .await;
        players
            .push((format!("u{i}"), record_ticks(Player::join(&ticket, &format!("u{i}"), None).await, stop)));
        tickets.push(ticket);
    }
    let ticks_since = |after: Instant| -> usize {
        players
            .iter()
            .map(|(_, (received, _))| received.lock().unwrap().iter().filter(|(_, t)| *t > after).count())
            .min()
            .unwrap_or(0)
    };
    let started = Instant::now();
    eventually("every game ticking", || async { (ticks_since(started) > 0).then_some(()) }).await;

    broker.signal("STOP");
    // The pause is the trial, not a wait for something.
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.signal("CONT");
    let resumed = Instant::now();
    eventually("every game ticking after the pause", || async { (ticks_since(resumed) >= 30).then_some(()) })
        .await;

    for role in [&mut cluster.edge, &mut cluster.gateway] {
        assert!(role.process.0.try_wait().unwrap().is_none(), "a role exited during the pause");
    }
    assert!(
        cluster.generators[0].process.0.try_wait().unwrap().is_none(),
        "the generator exited during the pause"
    );
    for (user, (received, task)) in players {
        task.abort();
        let steps: Vec<i64> = received.lock().unwrap().iter().map(|(s, _)| *s).collect();
        assert_every_step_once_in_order(&user, &steps);
    }
    // Facts written before the pause are all there after it.
    let log = tickcast_eventlog::open_read_only(&cluster.log).unwrap();
    let events = topic_events(log.as_ref(), "game-events").await;
    for ticket in &tickets {
        assert!(events.iter().any(|e| e["type"] == "session_created" && e["sessionId"] == ticket["gameId"]));
    }
    drop(broker);
}

/// A tick generator serves `/readyz` (503, saying what it waits for, until it joined its group;
/// 200 after), `/healthz` and `/metrics` on `--admin-listen`, its only listener; after a short
/// game its metrics hold the ticks it emitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_generator_is_ready_once_it_joined_its_group_and_serves_its_metrics() {
    let cluster = Cluster::start(0);
    let admin_line = "admin (/metrics, /healthz, /readyz) on ";
    let generator = Role::start(
        &[
            "tick-generator",
            "--log",
            &cluster.log,
            "--instance-id",
            "observed",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        Some(admin_line),
    );
    let admin = generator.url.clone().unwrap();
    let http = crate::support::http_client();
    let first = http.get(format!("{admin}/readyz")).send().await.unwrap();
    assert_eq!(first.status(), 503, "ready before joining its group");
    let body: Value = first.json().await.unwrap();
    assert!(body["waitingFor"][0].as_str().unwrap().contains("consumer group"), "{body}");
    let health = http.get(format!("{admin}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "alive while not ready");
    crate::support::eventually("the tick generator ready", || async {
        let status = http.get(format!("{admin}/readyz")).send().await.unwrap().status();
        (status == 200).then_some(())
    })
    .await;

    let ticket = cluster
        .post(
            "/edge/game/start",
            json!({"userId":"obs","tickMs":50,"countdownMs":500,"maxRounds":1,"preferredRegion":REGION}),
        )
        .await;
    let mut player = Player::join(&ticket, "obs", None).await;
    player.until("session_ended").await;
    let metrics = http.get(format!("{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let emitted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("tickcast_ticks_emitted_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(emitted > 0.0, "no ticks counted in {metrics}");
    let bucket =
        |le: &str| format!("tickcast_tick_generator_lateness_ms_bucket{{region=\"{REGION}\",le=\"{le}\"}}");
    assert!(
        metrics.contains(&bucket("5")) && metrics.contains(&bucket("+Inf")),
        "lateness is a histogram with buckets, by region: {metrics}"
    );
}

/// `topics create --retention` sets how long the broker keeps game-events and the tick topics
/// (`retention.ms`, read back from the broker); the deployment's secrets topic is kept forever,
/// whatever the flag says. A retention shorter than a game is refused, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_create_sets_how_long_the_broker_keeps_records() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;

    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("ret{}-{}-", std::process::id(), nanos % 1_000_000_000);
    let log = format!("kafka://{}?prefix={prefix}", broker());
    let create = |retention: &str| {
        Command::new(env!("CARGO_BIN_EXE_tickcast"))
            .args(["topics", "create", "--log", &log, "--regions", REGION, "--retention", retention])
            .output()
            .unwrap()
    };
    let short = create("10m");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 1h"), "{short:?}");
    let output = create("2d");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("records kept 2days"), "{output:?}");

    let admin: AdminClient<DefaultClientContext> =
        rdkafka::ClientConfig::new().set("bootstrap.servers", broker()).create().unwrap();
    let names = [
        format!("{prefix}{}", tickcast_schemas::topics::GAME_EVENTS),
        format!("{prefix}{}", tickcast_schemas::topics::ticks(REGION)),
        format!("{prefix}{}", tickcast_schemas::topics::DEPLOYMENT),
    ];
    let resources: Vec<ResourceSpecifier<'_>> = names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let described = admin.describe_configs(&resources, &AdminOptions::new()).await.unwrap();
    let retention: Vec<String> = described
        .into_iter()
        .map(|config| {
            let config = config.unwrap();
            config.get("retention.ms").and_then(|e| e.value.clone()).unwrap_or_default()
        })
        .collect();
    assert_eq!(retention, ["172800000", "172800000", "-1"], "game-events, ticks, the secrets topic");
}
