//! The roles as separate processes on a Kafka log (a real broker, `TICKCAST_TEST_KAFKA`):
//! games through the edge, tick generators scaling out and failing over.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::ended_games::{assert_no_tick_after_the_end, collect_steps, games_ended_far_apart};
use crate::support::{
    Player, Process, Seen, TOKEN_SECRET, assert_every_step_once_from, eventually, relax_limits, topic_events,
};

fn broker() -> String {
    std::env::var("TICKCAST_TEST_KAFKA")
        .unwrap_or_else(|_| panic!("set TICKCAST_TEST_KAFKA (a Kafka-API broker, HOST:PORT) or run ./scripts/test.sh, which provides it"))
}

/// One tickcast role as a child process; killed on drop.
pub(crate) struct Role {
    process: Process,
    /// What it printed as its address (edge, gateway).
    url: Option<String>,
    /// Everything it printed, stdout and stderr (stderr is also passed on to the test's).
    output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Role {
    /// Starts `tickcast ARGS` with the tests' secret; waits for a stdout line starting with
    /// `listening` (then keeps the rest of the line as its URL).
    pub(crate) fn start(args: &[&str], listening: Option<&str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tickcast"));
        command.env("TICKCAST_TOKEN_SECRET", TOKEN_SECRET);
        Self::spawn(command.args(args), listening)
    }

    /// Starts `command` as a role; everything it prints (stdout and stderr) is kept in `output`.
    fn spawn(command: &mut Command, listening: Option<&str>) -> Self {
        let mut child = relax_limits(command)
            .env("RUST_LOG", std::env::var("TICKCAST_TEST_ROLE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let keep = std::sync::Arc::clone(&output);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
                keep.lock().unwrap().push_str(&line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut url = None;
        if let Some(prefix) = listening {
            for line in lines.by_ref() {
                let line = line.unwrap();
                output.lock().unwrap().push_str(&line);
                if let Some(rest) = line.strip_prefix(prefix) {
                    url = Some(rest.trim().to_owned());
                    break;
                }
            }
            assert!(url.is_some(), "a role exited before it listened: {}", output.lock().unwrap());
        }
        let keep = std::sync::Arc::clone(&output);
        std::thread::spawn(move || {
            lines.map_while(Result::ok).for_each(|l| keep.lock().unwrap().push_str(&l))
        });
        Self { process: Process(child), url, output }
    }
}

/// Topics under a fresh prefix, one gateway (eu-west-1), the edge, and tick generators.
pub(crate) struct Cluster {
    pub(crate) log: String,
    /// Flags every role and `topics create` get beside `--log` (how to reach the broker).
    log_flags: Vec<String>,
    pub(crate) edge: Role,
    gateway: Role,
    pub(crate) generators: Vec<Role>,
    generator_flags: Vec<String>,
    http: reqwest::Client,
}

pub(crate) const REGION: &str = "eu-west-1";

impl Cluster {
    fn start(generators: usize) -> Self {
        Self::start_with(generators, 6, &[])
    }

    /// `partitions` per topic; `generator_flags` for every tick generator.
    fn start_with(generators: usize, partitions: u32, generator_flags: &[&str]) -> Self {
        Self::start_on(&broker(), &[], generators, partitions, generator_flags)
    }

    /// The same on the broker at `broker` (HOST:PORT), reached with `log_flags`.
    pub(crate) fn start_on(
        broker: &str,
        log_flags: &[&str],
        generators: usize,
        partitions: u32,
        generator_flags: &[&str],
    ) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let log = format!("kafka://{broker}?prefix=it{}-{}-", std::process::id(), nanos % 1_000_000_000);
        let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
            .args(["topics", "create", "--log", &log, "--partitions", &partitions.to_string()])
            .args(log_flags)
            .output()
            .unwrap();
        assert!(output.status.success(), "topics create failed: {}", String::from_utf8_lossy(&output.stderr));
        Self::on_log(log, log_flags, generators, generator_flags)
    }

    /// The roles on the log at `log` (its topics made), reached with `log_flags`.
    pub(crate) fn on_log(
        log: String,
        log_flags: &[&str],
        generators: usize,
        generator_flags: &[&str],
    ) -> Self {
        let role = |args: &[&str], listening| {
            let mut args = args.to_vec();
            args.extend(["--log", &log]);
            args.extend(log_flags);
            Role::start(&args, listening)
        };
        let gateway =
            role(&["gateway", "--region", REGION, "--listen", "127.0.0.1:0"], Some("gateway listening on "));
        let gateway_url = gateway.url.clone().unwrap();
        let edge = role(
            &["edge", "--listen", "127.0.0.1:0", "--gateway", &format!("{REGION}={gateway_url}")],
            Some("edge listening on "),
        );
        let generator_flags = generator_flags.iter().map(|f| (*f).to_owned()).collect();
        let mut cluster = Self {
            log,
            log_flags: log_flags.iter().map(|f| (*f).to_owned()).collect(),
            edge,
            gateway,
            generators: Vec::new(),
            generator_flags,
            http: crate::support::http_client(),
        };
        for _ in 0..generators {
            cluster.add_generator();
        }
        cluster
    }

    /// Starts one more tick generator, `gen-N`.
    pub(crate) fn add_generator(&mut self) {
        let instance = format!("gen-{}", self.generators.len() + 1);
        let mut args = vec!["tick-generator", "--log", &self.log, "--instance-id", &instance];
        args.extend(self.log_flags.iter().map(String::as_str));
        args.extend(self.generator_flags.iter().map(String::as_str));
        self.generators.push(Role::start(&args, None));
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.edge.url.as_deref().unwrap());
        let response = self.http.post(url).json(&body).send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{path}: {answer}");
        answer
    }
}

/// Every tick step a player saw, with when it arrived.
type Received = Arc<Mutex<Vec<(i64, Instant)>>>;

/// Reads a player's frames until `stop`, recording ticks; returns the close code if it closed.
fn record_ticks(mut player: Player, stop: Instant) -> (Received, tokio::task::JoinHandle<Option<u16>>) {
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    let task = tokio::spawn(async move {
        while Instant::now() < stop {
            let frame = tokio::time::timeout_at(stop, player.next()).await;
            match frame {
                Err(_) => return None,
                Ok(Seen::Json(value)) if value["type"] == "tick" => {
                    sink.lock().unwrap().push((value["step"].as_i64().unwrap(), Instant::now()));
                }
                Ok(Seen::Json(value)) if value["type"] == "error" => panic!("error frame: {value}"),
                Ok(Seen::Json(_)) => {}
                Ok(Seen::Closed(code)) => return code,
            }
        }
        None
    });
    (received, task)
}

pub(crate) fn assert_every_step_once_in_order(who: &str, steps: &[i64]) {
    assert!(!steps.is_empty(), "{who} received no tick");
    for (expected, step) in (0..).zip(steps) {
        assert_eq!(*step, expected, "{who}: step {expected} missing, doubled or out of order (got {step})");
    }
}

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

/// 200 games of two players on three generators (default settings: a 6 s session timeout);
/// then kill -9 one, start a new one, SIGTERM another. Every player must receive every step of its game exactly once, in order. The
/// longest stall each event caused is reported (measured, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_scale_out_and_fail_over_without_a_missing_or_doubled_step() {
    let _turn = crate::support::HEAVY.lock().await;
    scale_out_and_fail_over(&mut Cluster::start(3), 200, Duration::from_secs(44)).await;
}

/// `sessions` games of two players on the cluster's three generators; then kill -9 one (at
/// 6 s), start a new one (18 s), SIGTERM another (28 s): every player receives every step of its
/// game once, in order, and still gets ticks before `stop` (after the games' start).
pub(crate) async fn scale_out_and_fail_over(cluster: &mut Cluster, sessions: usize, stop: Duration) {
    let countdown_ms = 8_000;
    let mut tickets = Vec::new();
    for i in 0..sessions {
        let ticket = cluster
            .post(
                "/edge/game/start",
                json!({"userId":format!("a{i}"),"tickMs":100,"countdownMs":countdown_ms,"preferredRegion":REGION}),
            )
            .await;
        let id = ticket["gameId"].as_str().unwrap().to_owned();
        let second = cluster.post(&format!("/edge/game/{id}/join"), json!({"userId":format!("b{i}")})).await;
        tickets.push((ticket, format!("a{i}")));
        tickets.push((second, format!("b{i}")));
    }
    let start_at = tickets.iter().map(|(t, _)| t["startAt"].as_i64().unwrap()).max().unwrap();
    let wall_ms =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let started = Instant::now() + Duration::from_millis((start_at - wall_ms()).max(0) as u64);
    let stop = started + stop;
    let mut players = Vec::new();
    for (ticket, user) in &tickets {
        let player = Player::join(ticket, user, None).await;
        players.push((user.clone(), record_ticks(player, stop)));
    }
    assert!(Instant::now() < started, "players joined after their games started; raise the countdown");

    let at = |secs: u64| started + Duration::from_secs(secs);
    let mut events: Vec<(&str, Instant)> = Vec::new();
    tokio::time::sleep_until(at(6)).await;
    cluster.generators[0].process.kill9();
    events.push(("kill -9 gen-1", Instant::now()));
    tokio::time::sleep_until(at(18)).await;
    cluster.add_generator();
    events.push(("scale out: start gen-4", Instant::now()));
    tokio::time::sleep_until(at(28)).await;
    let status = cluster.generators[1].process.terminate();
    events.push(("SIGTERM gen-2", Instant::now()));
    assert!(status.success(), "a generator stopped by SIGTERM exits 0, not {status}");

    let mut stalls: HashMap<&str, Duration> = HashMap::new();
    let (_, last_event) = *events.last().unwrap();
    for (user, (received, task)) in players {
        let closed = task.await.unwrap();
        assert_eq!(closed, None, "{user}'s connection closed");
        let received = received.lock().unwrap().clone();
        let steps: Vec<i64> = received.iter().map(|(s, _)| *s).collect();
        assert_every_step_once_in_order(&user, &steps);
        // Still ticked after the last hand-over: no game was dropped by one.
        assert!(received.iter().any(|(_, t)| *t > last_event), "{user}'s game stopped ticking");
        for (i, (name, when)) in events.iter().enumerate() {
            let until = events.get(i + 1).map_or(stop, |(_, next)| *next);
            let mut previous = *when;
            let mut longest = Duration::ZERO;
            for (_, arrived) in received.iter().filter(|(_, t)| *t > *when && *t <= until) {
                longest = longest.max(*arrived - previous);
                previous = *arrived;
            }
            let entry = stalls.entry(name).or_default();
            *entry = (*entry).max(longest);
        }
    }
    for (name, _) in &events {
        eprintln!("longest stall after {name}: {:?}", stalls[name]);
    }
}

/// `tickcast bots` against a gateway started on its own (edge, gateway and generator each a
/// process on Kafka): every step delivered, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_run_against_a_gateway_started_on_its_own() {
    let cluster = Cluster::start(1);
    let edge = cluster.edge.url.clone().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["bots", "--edge", &edge, "--sessions", "3", "--players-per-session", "2"])
        .args(["--duration", "3s", "--tick-ms", "50", "--json"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bots failed: {stdout} {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["connected"], 6, "{report}");
    assert_eq!(report["completePlayers"], 6, "{report}");
    assert_eq!(report["missingSteps"], 0, "{report}");
    assert_eq!(report["duplicateSteps"], 0, "{report}");
}

/// A tick generator's hand-over (kill -9, a new member takes the partition) after games ended
/// more than a read batch after they started: the running game goes on with every step once, a
/// new game ends, and no ended game ticks again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_hand_over_keeps_every_game_correct() {
    // One partition, so "more than a read batch apart" is a fact about one ordered stream.
    let mut cluster = Cluster::start_with(1, 1, &["--idle-ms", "8000"]);
    let log = tickcast_eventlog::open_read_only(&cluster.log).unwrap();
    let long = cluster
        .post(
            "/edge/game/start",
            json!({"userId":"p0","tickMs":50,"countdownMs":0,"maxRounds":4_000,"preferredRegion":REGION}),
        )
        .await;
    let long_id = long["gameId"].as_str().unwrap().to_owned();
    let stop = Instant::now() + Duration::from_secs(120);
    let mut players = Vec::new();
    for i in 0..10 {
        let ticket = if i == 0 {
            long.clone()
        } else {
            cluster.post(&format!("/edge/game/{long_id}/join"), json!({"userId":format!("p{i}")})).await
        };
        players.push(record_ticks(Player::join(&ticket, &format!("p{i}"), None).await, stop));
    }
    let (rounds, idle_id) = games_ended_far_apart(&cluster, &long_id).await;

    // The hand-over: the only generator dies; a new one takes the partition.
    cluster.generators[0].process.kill9();
    let handed_over = Instant::now();
    cluster.add_generator();
    let fresh = cluster
        .post(
            "/edge/game/start",
            json!({"userId":"n","tickMs":20,"countdownMs":1000,"maxRounds":1,"minBreakSteps":20,"maxBreakSteps":20,"preferredRegion":REGION}),
        )
        .await;
    let (steps, ended) = collect_steps(Player::join(&fresh, "n", None).await).await;
    assert!(ended, "a game started during the hand-over ended");
    assert_every_step_once_from("the new game's player", &steps, 0);

    // The long game ticks on past the hand-over, every step once.
    for (i, (received, _)) in players.iter().enumerate() {
        let received = Arc::clone(received);
        eventually("the long game ticking after the hand-over", || {
            let received = Arc::clone(&received);
            async move {
                (received.lock().unwrap().iter().filter(|(_, t)| *t > handed_over).count() > 20).then_some(())
            }
        })
        .await;
        let steps: Vec<i64> = received.lock().unwrap().iter().map(|(s, _)| *s).collect();
        assert_every_step_once_from(&format!("p{i}"), &steps, steps[0]);
    }
    let ticks = topic_events(log.as_ref(), &format!("ticks.{REGION}")).await;
    for session in [rounds["gameId"].as_str().unwrap(), &idle_id] {
        assert_no_tick_after_the_end(&ticks, session);
    }
}

/// A broker of this test's own (tansu, `TICKCAST_TEST_TANSU`), so pausing it stalls no other test.
fn own_broker() -> (Process, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    own_broker_on(port, port, &[])
}

/// tansu listening on `port` and telling clients to connect to `advertised` (a proxy in front),
/// with `extra` flags (e.g. `--authentication`).
pub(crate) fn own_broker_on(port: u16, advertised: u16, extra: &[&str]) -> (Process, String) {
    let bin = std::env::var("TICKCAST_TEST_TANSU").unwrap_or_else(|_| {
        panic!("set TICKCAST_TEST_TANSU (the tansu binary) or run ./scripts/test.sh, which provides it")
    });
    let child = Command::new(bin)
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
            "--storage-engine",
            "memory://tansu/",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&broker).is_err() {
        assert!(std::time::Instant::now() < deadline, "tansu did not listen on {broker}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Process(child), broker)
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

/// A gateway killed with -9 writes no `player_left`: its players count as gone once it has not
/// said it serves their session for the timeout — one `player_left` (`gateway_lost`) per
/// connection, written by the session's tick generator — and the game, with nobody left, ends
/// idle. A player who left before is not lost again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_of_a_gateway_killed_with_kill_9_leave_after_the_timeout() {
    let mut cluster = Cluster::start_with(1, 3, &["--gateway-timeout", "10s", "--idle-ms", "3000"]);
    let ticket = cluster
        .post(
            "/edge/game/start",
            json!({"userId":"ana","countdownMs":0,"maxRounds":50,"minBreakSteps":500,"maxBreakSteps":600,"preferredRegion":REGION}),
        )
        .await;
    let game_id = ticket["gameId"].as_str().unwrap().to_owned();
    let mut players = Vec::new();
    for user in ["ana", "bo", "cy"] {
        let ticket = cluster.post(&format!("/edge/game/{game_id}/join"), json!({ "userId": user })).await;
        let mut player = Player::join(&ticket, user, None).await;
        player.until("tick").await;
        players.push(player);
    }
    // cy leaves on its own first.
    let mut cy = players.pop().unwrap();
    cy.send(json!({"action":"leave"})).await;
    cy.until_closed().await;
    let log = tickcast_eventlog::open(&cluster.log).unwrap();
    let game_id = &game_id;
    let left_of = |events: &[Value], reason: &str| -> Vec<String> {
        let mut users: Vec<String> = events
            .iter()
            .filter(|e| e["sessionId"] == *game_id && e["type"] == "player_left" && e["reason"] == reason)
            .map(|e| e["userId"].as_str().unwrap().to_owned())
            .collect();
        users.sort();
        users
    };
    eventually("cy's own player_left", || {
        let (log, left_of) = (&log, &left_of);
        async move {
            let events = topic_events(log.as_ref(), tickcast_schemas::topics::GAME_EVENTS).await;
            let heartbeats =
                events.iter().any(|e| e["sessionId"] == *game_id && e["type"] == "gateway_heartbeat");
            (heartbeats && !left_of(&events, "closed").is_empty()).then_some(())
        }
    })
    .await;

    cluster.gateway.process.kill9();
    let events = eventually("the game ended idle after its players were lost", || {
        let log = &log;
        async move {
            let events = topic_events(log.as_ref(), tickcast_schemas::topics::GAME_EVENTS).await;
            events
                .iter()
                .any(|e| e["sessionId"] == *game_id && e["type"] == "session_ended" && e["reason"] == "idle")
                .then_some(events)
        }
    })
    .await;
    // Judged on the log's own times: each loss is written at least the timeout after the last
    // thing the gateway said about this session (a join, a leave or a heartbeat).
    let at = |e: &Value| e["at"].as_i64().unwrap();
    let last_word = events
        .iter()
        .filter(|e| e["sessionId"] == *game_id && e["source"].as_str().unwrap().starts_with("gateway@"))
        .map(at)
        .max()
        .unwrap();
    for lost in events.iter().filter(|e| e["reason"] == "gateway_lost") {
        assert!(
            at(lost) - last_word >= 10_000,
            "lost {} ms after the gateway's last word",
            at(lost) - last_word
        );
    }
    assert_eq!(left_of(&events, "gateway_lost"), ["ana", "bo"], "once each, cy not again");
    assert_eq!(left_of(&events, "closed"), ["cy"]);
    let lost: Vec<&Value> = events.iter().filter(|e| e["reason"] == "gateway_lost").collect();
    assert!(lost.iter().all(|e| e["source"].as_str().unwrap().starts_with("tick-generator@")));
    drop(players);
}

/// A gateway of `REGION` on `log`, on a free port, as `instance` (each gateway of a region needs
/// its own: players are counted by the gateway id they joined through).
fn gateway_on(log: &str, instance: &str) -> Role {
    Role::start(
        &["gateway", "--log", log, "--region", REGION, "--listen", "127.0.0.1:0", "--instance", instance],
        Some("gateway listening on "),
    )
}

/// An edge on `log` that sends players to these (region, gateway URL) pairs.
fn edge_with_gateways(log: &str, gateways: &[(&str, &str)]) -> Role {
    let mut args =
        vec!["edge".to_owned(), "--log".into(), log.into(), "--listen".into(), "127.0.0.1:0".into()];
    for (region, url) in gateways {
        args.extend(["--gateway".to_owned(), format!("{region}={url}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Role::start(&args, Some("edge listening on "))
}

/// Two gateways in one region: the edge spreads games over them by gameId (every join of a
/// game gets the same gateway, and the game plays there); with one killed, new games all go to
/// the other, in the same region (nothing skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_in_a_region_share_its_games() {
    let cluster = Cluster::start(1);
    let gateway = |instance| gateway_on(&cluster.log, instance);
    let (mut first, second) = (gateway("a"), gateway("b"));
    let (first_url, second_url) = (first.url.clone().unwrap(), second.url.clone().unwrap());
    let edge = edge_with_gateways(&cluster.log, &[(REGION, &first_url), (REGION, &second_url)]);
    let http = crate::support::http_client();
    let edge_url = edge.url.clone().unwrap();
    let post = |path: String, body: Value| {
        let (http, edge_url) = (http.clone(), edge_url.clone());
        async move {
            let response = http.post(format!("{edge_url}{path}")).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let start = |user: &str| {
        let body = json!({"userId":user,"tickMs":50,"countdownMs":0,"maxRounds":1,"minBreakSteps":10,"maxBreakSteps":12});
        post("/edge/game/start".to_owned(), body)
    };
    let mut on = HashMap::<String, usize>::new();
    for i in 0..12 {
        let ticket = start(&format!("p{i}")).await;
        assert_eq!(ticket["region"], REGION);
        let endpoint = ticket["wsEndpoint"].as_str().unwrap().to_owned();
        let game = ticket["gameId"].as_str().unwrap();
        let joined = post(format!("/edge/game/{game}/join"), json!({"userId": format!("q{i}")})).await;
        assert_eq!(joined["wsEndpoint"], endpoint.as_str(), "a game's players meet on one gateway");
        *on.entry(endpoint).or_default() += 1;
        if i < 2 {
            let mut player = Player::join(&ticket, &format!("p{i}"), None).await;
            player.until("session_ended").await;
        }
    }
    assert_eq!(on.len(), 2, "both gateways get games: {on:?}");
    assert!(on.keys().all(|e| *e == first_url || *e == second_url));

    first.process.kill9();
    eventually("every new game on the gateway left, in the region", || {
        let (start, second_url) = (&start, &second_url);
        async move {
            let mut all_there = true;
            for i in 0..6 {
                let ticket = start(&format!("r{i}")).await;
                assert_eq!((&ticket["region"], &ticket["routing"]["skipped"]), (&json!(REGION), &json!([])));
                all_there &= ticket["wsEndpoint"] == second_url.as_str();
            }
            all_there.then_some(())
        }
    })
    .await;
    drop(second);
}

/// Plays `game_id` as `user` to its end the way the player page does across a gateway restart:
/// on close 1012 it asks the edge for a fresh ticket and resumes from its last step there.
/// Returns every step seen, the last step of the game and the endpoints used in turn.
async fn play_across_restarts(
    http: &reqwest::Client,
    edge_url: &str,
    game_id: &str,
    user: &str,
    stop_after_steps: Option<tokio::sync::oneshot::Sender<()>>,
) -> (Vec<i64>, i64, Vec<String>) {
    let (mut steps, mut endpoints) = (Vec::<i64>::new(), Vec::<String>::new());
    let mut signal = stop_after_steps;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let response = http
            .post(format!("{edge_url}/edge/game/{game_id}/join"))
            .json(&json!({ "userId": user }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let ticket: Value = response.json().await.unwrap();
        let endpoint = ticket["wsEndpoint"].as_str().unwrap().to_owned();
        let Some(mut player) = Player::try_connect(&endpoint).await else {
            tokio::time::sleep(Duration::from_millis(200)).await; // a backoff, as the page's
            continue;
        };
        let base = json!({"sessionId": game_id, "userId": user, "token": ticket["token"]});
        let mut hello = base.as_object().unwrap().clone();
        match steps.last() {
            Some(&last) => {
                hello.insert("action".into(), json!("resume"));
                hello.insert("lastStep".into(), json!(last));
            }
            None => {
                hello.insert("action".into(), json!("join"));
            }
        }
        player.send(Value::Object(hello)).await;
        if endpoints.last() != Some(&endpoint) {
            endpoints.push(endpoint);
        }
        loop {
            match player.next().await {
                Seen::Json(frame) if frame["type"] == "tick" => {
                    steps.push(frame["step"].as_i64().unwrap());
                    if steps.len() == 20
                        && let Some(signal) = signal.take()
                    {
                        let _ = signal.send(());
                    }
                }
                Seen::Json(frame) if frame["type"] == "session_ended" => {
                    return (steps, frame["lastStep"].as_i64().unwrap(), endpoints);
                }
                Seen::Json(frame) if frame["type"] == "error" => break, // e.g. refused while stopping
                Seen::Json(_) => {}
                Seen::Closed(Some(1012)) => break,
                Seen::Closed(code) => panic!("{user}: closed with {code:?}, not 1012"),
            }
        }
    }
    panic!("{user}: the game did not end within the deadline");
}

/// Two gateways in one region, one stopped with SIGTERM during a game: it stops being ready,
/// tells its players to reconnect (close 1012), and they get a fresh ticket from the edge and
/// resume on the other gateway without a missing or doubled step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_of_a_gateway_stopped_with_sigterm_resume_on_another() {
    let cluster = Cluster::start(1);
    let gateway = |instance| gateway_on(&cluster.log, instance);
    let mut gateways = vec![gateway("a"), gateway("b")];
    let urls: Vec<String> = gateways.iter().map(|g| g.url.clone().unwrap()).collect();
    let edge = edge_with_gateways(&cluster.log, &[(REGION, &urls[0]), (REGION, &urls[1])]);
    let (http, edge_url) = (crate::support::http_client(), edge.url.clone().unwrap());
    let body = json!({"userId":"ana","tickMs":50,"countdownMs":500,"maxRounds":1,"minBreakSteps":150,"maxBreakSteps":160});
    let ticket: Value = http
        .post(format!("{edge_url}/edge/game/start"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let game_id = ticket["gameId"].as_str().unwrap().to_owned();
    let first = urls.iter().position(|u| ticket["wsEndpoint"] == u.as_str()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let ana = tokio::spawn({
        let (http, edge_url, game_id) = (http.clone(), edge_url.clone(), game_id.clone());
        async move { play_across_restarts(&http, &edge_url, &game_id, "ana", Some(stop)).await }
    });
    let bo = tokio::spawn({
        let (http, edge_url, game_id) = (http.clone(), edge_url.clone(), game_id.clone());
        async move { play_across_restarts(&http, &edge_url, &game_id, "bo", None).await }
    });
    stopped.await.unwrap();
    let status = gateways[first].process.terminate();
    assert!(status.success(), "a gateway stopped by SIGTERM exits 0, not {status}");
    for player in [ana, bo] {
        let (steps, last_step, endpoints) = player.await.unwrap();
        assert_every_step_once_from("a player moved by a SIGTERM", &steps, 0);
        assert_eq!(steps.last(), Some(&last_step), "to the game's last step");
        assert_eq!(endpoints, [urls[first].clone(), urls[1 - first].clone()], "moved once, to the other");
    }
    drop(gateways);
}

/// The edge polls a `wss://` gateway's `/readyz` over TLS: trusted through `--gateway-ca`, its
/// region gets games, and once it is killed the region has no ready gateway (503); an edge that
/// does not trust its certificate never counts it ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_asks_a_wss_gateway_whether_it_is_ready_over_tls() {
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = crate::tls::self_signed(dir.path());
    let mut gateway = Role::start(
        &[
            "gateway",
            "--log",
            &cluster.log,
            "--region",
            REGION,
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        Some("gateway listening on "),
    );
    let url = gateway.url.clone().unwrap();
    assert!(url.starts_with("wss://"), "{url}");
    let edge = |trust: bool| {
        let mut args = vec!["edge", "--log", &cluster.log, "--listen", "127.0.0.1:0"];
        let route = format!("{REGION}={url}");
        args.extend(["--gateway", route.as_str()]);
        if trust {
            args.extend(["--gateway-ca", cert.as_str()]);
        }
        Role::start(&args, Some("edge listening on "))
    };
    let (trusting, distrusting) = (edge(true), edge(false));
    let http = crate::support::http_client();
    let start = |edge: &Role| {
        let (http, edge_url) = (http.clone(), edge.url.clone().unwrap());
        async move {
            let body = json!({"userId":"tls","countdownMs":0,"maxRounds":1});
            let response = http.post(format!("{edge_url}/edge/game/start")).json(&body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    eventually("the distrusting edge counts the gateway not ready", || {
        let start = &start;
        let edge = &distrusting;
        async move { (start(edge).await.0 == 503).then_some(()) }
    })
    .await;
    let (status, ticket) = start(&trusting).await;
    assert_eq!((status, ticket["wsEndpoint"].as_str()), (200, Some(url.as_str())));
    gateway.process.kill9();
    eventually("the trusting edge sees the gateway go", || {
        let start = &start;
        let edge = &trusting;
        async move { (start(edge).await.0 == 503).then_some(()) }
    })
    .await;
}

/// A free port on 127.0.0.1, for a process that must come back where it was.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The edge asks each region's gateway `/readyz`: with eu-west-1's gateway killed, a game that
/// prefers eu-west-1 starts in the nearest ready region (eu-central-1) and its ticket says it
/// skipped eu-west-1, and the game ticks there; once the gateway is back, games go to it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_without_a_ready_gateway_gets_no_games_until_it_is_back() {
    let cluster = Cluster::start(1);
    let west_port = free_port();
    let west_args = [
        "gateway",
        "--log",
        &cluster.log,
        "--region",
        "eu-west-1",
        "--listen",
        &format!("127.0.0.1:{west_port}"),
    ];
    let mut west = Role::start(&west_args, Some("gateway listening on "));
    let central = Role::start(
        &["gateway", "--log", &cluster.log, "--region", "eu-central-1", "--listen", "127.0.0.1:0"],
        Some("gateway listening on "),
    );
    let (west_url, central_url) = (west.url.clone().unwrap(), central.url.clone().unwrap());
    let edge = edge_with_gateways(&cluster.log, &[("eu-west-1", &west_url), ("eu-central-1", &central_url)]);
    let http = crate::support::http_client();
    let edge_url = edge.url.clone().unwrap();
    let start = || {
        let (http, edge_url) = (http.clone(), edge_url.clone());
        async move {
            let body = json!({"userId":"roamer","tickMs":50,"countdownMs":300,"maxRounds":1,"preferredRegion":"eu-west-1"});
            let response = http.post(format!("{edge_url}/edge/game/start")).json(&body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let ticket = start().await;
    assert_eq!(
        (ticket["region"].as_str(), &ticket["routing"]),
        (Some("eu-west-1"), &json!({"by":"preferred","skipped":[]}))
    );

    west.process.kill9();
    let moved = crate::support::eventually("games moved off eu-west-1", || async {
        let ticket = start().await;
        (ticket["region"] == "eu-central-1").then_some(ticket)
    })
    .await;
    assert_eq!(moved["routing"], json!({"by":"preferred","skipped":["eu-west-1"]}), "{moved}");
    let mut player = Player::join(&moved, "roamer", None).await;
    let (frames, _) = player.until("session_ended").await;
    assert!(frames.iter().any(|f| f["type"] == "tick"), "the moved game ticked in eu-central-1");

    let _west_again = Role::start(&west_args, Some("gateway listening on "));
    let back = crate::support::eventually("games back in eu-west-1", || async {
        let ticket = start().await;
        (ticket["region"] == "eu-west-1").then_some(ticket)
    })
    .await;
    assert_eq!(back["routing"]["skipped"], json!([]), "{back}");
}
