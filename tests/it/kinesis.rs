//! The Kinesis log's administration (moto's server, `TICKCAST_TEST_DYNAMODB`: one endpoint for
//! Kinesis and DynamoDB): `tickcast streams create` makes the streams and the lease table once.

fn endpoint() -> String {
    std::env::var("TICKCAST_TEST_DYNAMODB").unwrap_or_else(|_| {
        panic!("set TICKCAST_TEST_DYNAMODB (an AWS endpoint, e.g. moto's server) or run ./scripts/test.sh, which provides it")
    })
}

fn streams_create(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["streams", "create"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn streams_create_makes_the_streams_and_the_lease_table_once() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("it{}-{}", std::process::id(), nanos % 1_000_000_000);
    let log = format!("kinesis://{prefix}?region=us-east-1&endpoint={}", endpoint());
    let args = ["--log", log.as_str(), "--shards", "2", "--regions", "eu-west-1"];
    let (ok, out, err) = streams_create(&args);
    assert!(ok, "{err}");
    for line in [
        format!("created  {prefix}-game-events (2 shards, records kept 168 h)"),
        format!("created  {prefix}-ticks-eu-west-1 (2 shards, records kept 168 h)"),
        format!("created  {prefix}-tickcast-deployment (1 shards, records kept 8760 h)"),
        format!("ready    {prefix}-leases"),
    ] {
        assert!(out.contains(&line), "{line:?} in {out}");
    }
    let (ok, out, err) = streams_create(&args);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("exists   {prefix}-game-events")), "{out}");
    let (ok, _, err) = streams_create(&["--log", "kafka://127.0.0.1:9092"]);
    assert!(!ok && err.contains("topics create"), "{err}");
    let (ok, _, err) = streams_create(&["--log", "kinesis://?region=us-east-1"]);
    assert!(!ok && err.contains("kinesis://PREFIX"), "{err}");
}

/// A fresh deployment prefix.
fn prefix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("it{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// A Kinesis log under a fresh prefix with its streams made (`shards` each, every default
/// region); reads polled every 200 ms (moto serves every poller of every role on two cores),
/// leases failing over after 3 s.
fn deployment(shards: u32) -> String {
    let log = format!(
        "kinesis://{}?region=us-east-1&endpoint={}&poll_ms=200&failover_ms=3000",
        prefix(),
        endpoint()
    );
    let (ok, _, err) = streams_create(&["--log", &log, "--shards", &shards.to_string()]);
    assert!(ok, "{err}");
    log
}

/// `tickcast up` on Kinesis with its projections in DynamoDB: a game of two players, every
/// step delivered once, in order, equal to the engine; the read API tells it from DynamoDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_through_up_on_kinesis_and_dynamodb() {
    use serde_json::json;
    let log = deployment(2);
    let store = format!("dynamodb://{}?region=us-east-1&endpoint={}", prefix(), endpoint());
    let server = crate::support::Server::start_with(&["--log", &log, "--store", &store]);
    let ticket =
        server.start_game(json!({"userId":"alice","tickMs":50,"countdownMs":1500,"maxRounds":2})).await;
    let game = ticket["gameId"].as_str().unwrap().to_owned();
    let second = server.join_game(&game, "bob").await;
    let mut games = Vec::new();
    for (name, ticket) in [("alice", ticket.clone()), ("bob", second)] {
        let mut player = crate::support::Player::join(&ticket, name, None).await;
        games.push((name, tokio::spawn(async move { player.until("session_ended").await })));
    }
    for (name, game) in games {
        let (frames, ended) = game.await.unwrap();
        assert_eq!(ended["reason"], "max_rounds", "{ended}");
        let seed: u64 = ended["seed"].as_str().unwrap().parse().unwrap();
        assert_eq!(tickcast_engine::seed_hash(seed), ticket["seedHash"].as_str().unwrap());
        let params = tickcast_engine::Params::with_seed(seed);
        let ticks: Vec<&serde_json::Value> = frames.iter().filter(|f| f["type"] == "tick").collect();
        let steps: Vec<i64> = ticks.iter().map(|t| t["step"].as_i64().unwrap()).collect();
        let last = ended["lastStep"].as_i64().unwrap();
        assert_eq!(steps, (0..=last).collect::<Vec<_>>(), "{name}: every step once, in order");
        for tick in ticks {
            let state = tickcast_engine::state_at(&params, tick["step"].as_i64().unwrap());
            assert_eq!(
                (tick["value"].as_u64(), tick["round"].as_u64(), tick["broken"].as_bool()),
                (Some(state.value), Some(state.round), Some(state.broken)),
                "{name}: {tick} equals the engine"
            );
        }
    }
    let detail = crate::support::eventually("the game ended in the projections", || async {
        let (status, detail) = server.get(&format!("/edge/sessions/{game}")).await;
        (status == 200 && detail["state"] == "ended").then_some(detail)
    })
    .await;
    assert_eq!(detail["endReason"], "max_rounds", "{detail}");
    assert_eq!(detail["connections"].as_array().map(Vec::len), Some(2), "{detail}");
}

/// Tick generators on Kinesis scaled out and killed (-9) during games, as on Kafka: every
/// player receives every step of its game once, in order. A generator taking a partition over
/// reads its history from the oldest running game's creation (moto reads a shard from its
/// start on every call) and finds where each game got to in the tick stream: it is given
/// longer than on Kafka to resume the games.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generators_on_kinesis_scale_out_and_fail_over_without_a_missing_or_doubled_step() {
    let _turn = crate::support::HEAVY.lock().await;
    let log = deployment(4);
    let mut cluster = crate::cluster::Cluster::on_log(log, &[], 3, &[]);
    crate::generators::scale_out_and_fail_over(&mut cluster, 40, std::time::Duration::from_secs(64)).await;
}
