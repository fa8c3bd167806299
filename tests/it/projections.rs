//! The projections through the edge's read API, end to end: `tickcast up` on its default store
//! (SQLite in the data directory) and on DynamoDB (moto's server, `TICKCAST_TEST_DYNAMODB`).

use serde_json::{Value, json};

use crate::support::{Player, Server, eventually};

fn dynamodb_store() -> String {
    let endpoint = std::env::var("TICKCAST_TEST_DYNAMODB").unwrap_or_else(|_| {
        panic!("set TICKCAST_TEST_DYNAMODB (a DynamoDB endpoint, e.g. moto's server) or run ./scripts/test.sh, which provides it")
    });
    let prefix = format!("it{}", uuid_like());
    format!("dynamodb://{prefix}?region=us-east-1&endpoint={endpoint}")
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

fn connections(detail: &Value) -> &Vec<Value> {
    detail["connections"].as_array().expect("a session's connections")
}

/// A game of two players as the read API shows it: running with both playing and measured,
/// the seed nowhere; then ended with the seed and both disconnected.
async fn a_game_is_followed_through_the_read_api(server: &Server) {
    let ticket = server
        .start_game(json!({"userId":"ana","tickMs":50,"countdownMs":1500,"maxRounds":2,"minBreakSteps":40,"maxBreakSteps":60}))
        .await;
    let id = ticket["gameId"].as_str().unwrap().to_owned();
    let second = server.join_game(&id, "ben").await;
    let mut games = Vec::new();
    for (user, ticket) in [("ana", ticket.clone()), ("ben", second)] {
        let mut player = Player::join(&ticket, user, None).await;
        games.push(tokio::spawn(async move { player.until_closed().await }));
    }
    let path = format!("/edge/sessions/{id}");
    let running = eventually("the game running with both players playing and measured", || async {
        let (status, detail) = server.get(&path).await;
        let ready = status == 200
            && detail["state"] == "running"
            && connections(&detail).len() == 2
            && connections(&detail).iter().all(|c| c["state"] == "playing" && c["avgRttMs"].is_u64());
        ready.then_some(detail)
    })
    .await;
    assert_eq!(running["players"], json!(["ana", "ben"]), "{running}");
    assert_eq!((running["createdBy"].as_str(), running["tickMs"].as_i64()), (Some("ana"), Some(50)));
    assert_eq!(running["seedHash"], ticket["seedHash"]);
    assert!(running.get("seed").is_none(), "no seed while the game runs: {running}");
    let (_, listed) = server.get("/edge/sessions?state=running").await;
    assert!(listed["sessions"].as_array().unwrap().iter().any(|s| s["sessionId"] == id.as_str()), "{listed}");

    let mut seed = None;
    for game in games {
        let (frames, code) = game.await.unwrap();
        assert_eq!(code, Some(1000), "closed normally after the end");
        let ended = frames.iter().find(|f| f["type"] == "session_ended").expect("the end arrived").clone();
        seed = Some(ended["seed"].clone());
    }
    let ended = eventually("the game ended with both players disconnected", || async {
        let (_, detail) = server.get(&path).await;
        let over = detail["state"] == "ended"
            && connections(&detail).iter().all(|c| c["state"] == "disconnected" && c["leftAt"].is_i64());
        over.then_some(detail)
    })
    .await;
    assert_eq!(ended["seed"], seed.unwrap(), "the seed, revealed: {ended}");
    assert_eq!(ended["endReason"], "max_rounds");
    assert!(ended["players"].as_array().unwrap().is_empty(), "{ended}");
    let (_, listed) = server.get("/edge/sessions?state=ended&limit=5").await;
    assert!(listed["sessions"].as_array().unwrap().iter().any(|s| s["sessionId"] == id.as_str()), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_store_shows_a_game_running_then_ended() {
    let server = Server::start();
    a_game_is_followed_through_the_read_api(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_store_shows_a_game_running_then_ended() {
    let store = dynamodb_store();
    let server = Server::start_with(&["--store", &store]);
    a_game_is_followed_through_the_read_api(&server).await;
}

/// After a restart whose directory reads no history, the edge still answers a join of a game
/// older than itself: from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_edge_answers_joins_of_games_older_than_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(dir.path(), &[]);
    let ticket = first.start_game(json!({"userId":"old","tickMs":100,"countdownMs":60000})).await;
    let id = ticket["gameId"].as_str().unwrap().to_owned();
    eventually("the game projected", || async {
        (first.get(&format!("/edge/sessions/{id}")).await.0 == 200).then_some(())
    })
    .await;
    assert!(first.terminate().success());
    let second = Server::start_in(dir.path(), &["--directory-history", "1ms"]);
    let joined = second.join_game(&id, "new").await;
    assert_eq!(
        (joined["gameId"].as_str(), joined["seedHash"].as_str()),
        (Some(id.as_str()), ticket["seedHash"].as_str())
    );
    let (status, unknown) = second.post("/edge/game/nope/join", &json!({"userId":"x"}).to_string()).await;
    assert_eq!((status, unknown["error"].as_str()), (404, Some("unknown_game")));
    let (status, unknown) = second.get("/edge/sessions/nope").await;
    assert_eq!((status, unknown["error"].as_str()), (404, Some("unknown_game")));
}

/// Rebuilding the store from the log gives the same tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_from_the_log_gives_the_same_tables() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    a_game_is_followed_through_the_read_api(&server).await;
    let (_, before) = server.get("/edge/sessions?limit=10").await;
    let id = before["sessions"][0]["sessionId"].as_str().unwrap().to_owned();
    let (_, detail_before) = server.get(&format!("/edge/sessions/{id}")).await;
    assert!(server.terminate().success());
    let log = format!("embedded://{}", dir.path().display());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["projector", "--rebuild", "--log", &log, "--store", &log])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let server = Server::start_in(dir.path(), &[]);
    let (_, detail_after) = server.get(&format!("/edge/sessions/{id}")).await;
    assert_eq!(detail_after, detail_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_read_api_queries_get_a_clear_answer() {
    let server = Server::start();
    for (path, mention) in [
        ("/edge/sessions?state=paused", "waiting, running or ended"),
        ("/edge/sessions?limit=0", "limit"),
        ("/edge/sessions?limit=lots", "limit"),
        ("/edge/sessions?colour=red", "state=waiting"),
    ] {
        let (status, answer) = server.get(path).await;
        assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_parameter")), "{path}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(mention), "{path}: {answer}");
    }
}

/// `tickcast tables create` makes the DynamoDB tables with their TTL, and again leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_create_makes_the_dynamodb_tables_once() {
    let store = dynamodb_store();
    for _ in 0..2 {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
            .args(["tables", "create", "--store", &store])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert!(String::from_utf8_lossy(&output.stdout).contains("TTL"));
    }
    let opened = tickcast_projections::open(&store).await.unwrap();
    assert!(opened.expiry_enabled().await.unwrap(), "TTL is on for every table");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["tables", "create", "--store", "cassandra://x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("dynamodb://PREFIX"));
}
