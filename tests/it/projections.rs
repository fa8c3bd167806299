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

/// A game that will run for a minute, started on a server (with `extra` flags) that is stopped
/// once the game is in its store: the data directory, the ticket and the game's id.
async fn a_game_projected_by_a_stopped_server(extra: &[&str]) -> (tempfile::TempDir, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(dir.path(), extra);
    let ticket = first.start_game(json!({"userId":"old","tickMs":100,"countdownMs":60000})).await;
    let id = ticket["gameId"].as_str().unwrap().to_owned();
    eventually("the game projected", || async {
        (first.get(&format!("/edge/sessions/{id}")).await.0 == 200).then_some(())
    })
    .await;
    assert!(first.terminate().success());
    (dir, ticket, id)
}

/// After a restart whose directory reads no history, the edge still answers a join of a game
/// older than itself: from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_edge_answers_joins_of_games_older_than_itself() {
    let (dir, ticket, id) = a_game_projected_by_a_stopped_server(&[]).await;
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

/// In client-side tick mode a join answered from the store (the edge restarted and its directory
/// holds no history) carries the running game's true seed, read from the log: the store holds
/// none while a game runs, and a ticket never carries a wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_side_join_from_the_store_carries_the_true_seed() {
    let (dir, ticket, id) = a_game_projected_by_a_stopped_server(&["--use-tick-broadcaster", "false"]).await;
    let second =
        Server::start_in(dir.path(), &["--use-tick-broadcaster", "false", "--directory-history", "1ms"]);
    let joined = second.join_game(&id, "new").await;
    assert_eq!(joined["seed"], ticket["seed"], "{joined}");
    let seed: u64 = joined["seed"].as_str().unwrap().parse().unwrap();
    assert_eq!(tickcast_engine::seed_hash(seed), joined["seedHash"].as_str().unwrap());
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
    // The store drifts from the log (a row lost, another changed), so a rebuild that did
    // nothing would show.
    {
        let db = rusqlite::Connection::open(dir.path().join("projections.sqlite")).unwrap();
        let changed = db.execute("DELETE FROM connections WHERE session_id = ?1", [&id]).unwrap()
            + db.execute("DELETE FROM latency WHERE session_id = ?1", [&id]).unwrap()
            + db.execute(
                "UPDATE sessions SET item = json_set(item, '$.region', 'nowhere') WHERE session_id = ?1",
                [&id],
            )
            .unwrap();
        assert!(changed >= 2, "the store had the game's rows");
    }
    let drifted = Server::start_in(dir.path(), &[]);
    let (_, detail_drifted) = drifted.get(&format!("/edge/sessions/{id}")).await;
    assert_ne!(detail_drifted, detail_before, "the store differs before the rebuild");
    drop(drifted);
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

/// `projector --rebuild` builds the new tables beside the old ones and switches at the end: one
/// stopped by SIGTERM half-way leaves the store as it was, and the next rebuild completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_stopped_half_way_leaves_the_store_as_it_was() {
    use tickcast_schemas::event::{
        Event, EventBody, LatencySamples, PlayerJoined, RttSample, SessionCreated,
    };
    let dir = tempfile::tempdir().unwrap();
    const GAMES: usize = 2_000;
    {
        let log = tickcast_eventlog::embedded::EmbeddedLog::open(dir.path()).unwrap();
        let mut records = Vec::new();
        for game in 0..GAMES {
            let id = format!("game-{game:05}");
            let at = 1_800_000_000_000 + game as i64;
            let created = SessionCreated {
                region: "eu-west-1".into(),
                seed: game as u64,
                seed_hash: tickcast_engine::seed_hash(game as u64),
                start_at: at + 1000,
                tick_ms: 100,
                countdown_ms: 1000,
                min_break_steps: 10,
                max_break_steps: 100,
                max_rounds: 10,
                engine: 1,
                created_by: "ana".into(),
                max_tick_ms: None,
            };
            let joined = PlayerJoined {
                user_id: "ana".into(),
                connection_id: format!("c-{game}"),
                gateway_id: "gw".into(),
                region: "eu-west-1".into(),
            };
            let samples = LatencySamples {
                samples: (0..5)
                    .map(|i| RttSample {
                        connection_id: format!("c-{game}"),
                        rtt_ms: 10 + i,
                        at: at + 2000 + i as i64 * 1000,
                    })
                    .collect(),
            };
            for body in [
                EventBody::SessionCreated(created),
                EventBody::PlayerJoined(joined),
                EventBody::LatencySamples(samples),
            ] {
                let event = Event::new(id.clone(), at, "test", body);
                records.push(tickcast_eventlog::NewRecord {
                    key: id.clone(),
                    timestamp_ms: at,
                    payload: event.to_bytes().into(),
                });
            }
        }
        tickcast_eventlog::EventLog::append(
            &log,
            "game-events",
            records,
            tickcast_eventlog::Durability::Durable,
        )
        .await
        .unwrap();
    }
    let url = format!("embedded://{}", dir.path().display());
    let rebuild = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
            .args(["projector", "--rebuild", "--log", &url, "--store", &url])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let store = dir.path().join("projections.sqlite");
    let rows = || {
        let db = rusqlite::Connection::open(&store).unwrap();
        let count = |table: &str| {
            db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0)).unwrap()
        };
        (count("sessions"), count("connections"), count("latency"))
    };
    let complete = (GAMES as i64, GAMES as i64, 5 * GAMES as i64);
    assert!(rebuild().wait().unwrap().success());
    assert_eq!(rows(), complete, "a first rebuild fills the store");

    // A second one, stopped once it has begun its new tables.
    let mut stopped = crate::support::Process(rebuild());
    let rebuild_file = dir.path().join("projections.sqlite.rebuild");
    eventually("the rebuild to begin its new tables", || async { rebuild_file.exists().then_some(()) }).await;
    let status = stopped.terminate();
    assert!(!status.success(), "the rebuild was stopped half-way, not finished: {status}");
    assert_eq!(rows(), complete, "the store is as it was: not emptied, not partly refilled");

    // The next rebuild drops the unfinished one and completes.
    assert!(rebuild().wait().unwrap().success());
    assert_eq!(rows(), complete);
    assert!(!rebuild_file.exists(), "a finished rebuild leaves no file behind");
}
