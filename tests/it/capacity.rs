//! Admission control: a saturated process refuses new players up front and keeps the ones it has.

use serde_json::json;

use crate::support::{Server, log_events, players_reading};

/// A process told it is saturated — each fan-out shard blocks 80 ms per batch of ticks, so its
/// own lag stays over the 25 ms limit — answers new games and new players with 503
/// `at_capacity` and a `Retry-After`, and keeps its players: they get every tick, in order, and
/// nobody is warned or kicked for the server's own delay.
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_server_refuses_new_games_and_keeps_its_players() {
    let server = Server::start_with(&[
        "--debug-write-delay-ms",
        "80",
        "--saturation-lag-ms",
        "25",
        "--saturation-sustain",
        "200ms",
        "--saturation-hold",
        "5s",
        "--saturation-min-players",
        "2",
    ]);
    // Idle, it admits.
    let ticket = server.start_game(json!({"userId":"a","countdownMs":0,"tickMs":100})).await;
    let game_id = ticket["gameId"].as_str().unwrap().to_owned();
    // 20 s of ticks: past the 10 s after its start in which a process is not judged.
    let readers = players_reading(&server, &ticket, &["a", "b"], 200).await;

    // Once its ticks flow (and its startup is behind it), it lags and refuses.
    let http = crate::support::http_client();
    let start = |http: reqwest::Client, url: String| async move {
        let response = http.post(url).json(&json!({"userId":"late"})).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), retry_after, response.json::<serde_json::Value>().await.unwrap())
    };
    let (retry_after, body) = crate::support::eventually("a new game refused as at capacity", || {
        let attempt = start(http.clone(), server.url("/edge/game/start"));
        async move {
            let (status, retry_after, body) = attempt.await;
            (status == 503).then_some((retry_after, body))
        }
    })
    .await;
    assert_eq!(body["error"], "at_capacity", "{body}");
    assert!(body["message"].as_str().unwrap().contains("retry"), "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"), "Retry-After is the hold, in seconds");
    let (status, retry_after, body) =
        start(http.clone(), server.url(&format!("/edge/game/{game_id}/join"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("at_capacity")),
        "a new player is refused too: {body}"
    );
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(server.metrics().await.contains("tickcast_edge_saturated 1"));

    // The players it had keep playing: every tick from their first, nobody warned or kicked.
    for reader in readers {
        let (frames, closed) = reader.await.unwrap();
        assert_eq!(closed, None, "a player was disconnected: {frames:?}");
        assert!(!frames.iter().any(|f| f["type"] == "latency_status" || f["type"] == "kicked"), "{frames:?}");
        let steps: Vec<i64> =
            frames.iter().filter(|f| f["type"] == "tick").map(|f| f["step"].as_i64().unwrap()).collect();
        let first = steps[0];
        assert_eq!(
            steps,
            (first..first + steps.len() as i64).collect::<Vec<_>>(),
            "every tick once, in order"
        );
    }
    let events = log_events(&server, "game-events").await;
    assert!(!events.iter().any(|e| e["type"] == "player_kicked" || e["type"] == "latency_warned"));
}

/// A process given its capacity (`--max-players`) refuses the excess of a burst of game starts
/// at the door — 503 `at_capacity` with `Retry-After`, before any of those games plays — and
/// admits exactly what fits; the players it had keep every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_capacity_is_refused_at_the_door() {
    let server = Server::start_with(&["--max-players", "12"]);
    // A game already playing, with two players.
    let ticket = server.start_game(json!({"userId":"a","countdownMs":0,"tickMs":100})).await;
    let game_id = ticket["gameId"].as_str().unwrap().to_owned();
    let readers = players_reading(&server, &ticket, &["a", "b"], 30).await;

    // A burst of 20 starts at once, each game counting down 10 s: room for 10 of them.
    let http = crate::support::http_client();
    let starts = (0..20).map(|i| {
        let (http, url) = (http.clone(), server.url("/edge/game/start"));
        async move {
            let response = http
                .post(url)
                .json(&json!({"userId": format!("burst-{i}"), "countdownMs": 10_000, "tickMs": 100}))
                .send()
                .await
                .unwrap();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), retry_after, response.json::<serde_json::Value>().await.unwrap())
        }
    });
    let answers = futures_util::future::join_all(starts).await;
    let answered_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let admitted: Vec<&serde_json::Value> =
        answers.iter().filter(|(status, ..)| *status == 200).map(|(_, _, body)| body).collect();
    let refused: Vec<_> = answers.iter().filter(|(status, ..)| *status != 200).collect();
    assert_eq!((admitted.len(), refused.len()), (10, 10), "{answers:?}");
    for (status, retry_after, body) in &refused {
        assert_eq!((*status, body["error"].as_str()), (503, Some("at_capacity")), "{body}");
        assert!(body["message"].as_str().unwrap().contains("--max-players"), "{body}");
        assert!(retry_after.is_some(), "a refusal says when to retry: {body}");
    }
    // Refused before any game of the burst plays.
    let first_start = admitted.iter().map(|t| t["startAt"].as_i64().unwrap()).min().unwrap();
    assert!((answered_at as i64) < first_start, "every answer came before the burst's first game started");
    // A new player of an admitted game is refused too, and one already admitted is not.
    let burst_game = admitted[0]["gameId"].as_str().unwrap();
    let (status, body) =
        server.post(&format!("/edge/game/{burst_game}/join"), &json!({"userId":"late"}).to_string()).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("at_capacity")), "{body}");
    let (status, body) =
        server.post(&format!("/edge/game/{game_id}/join"), &json!({"userId":"b"}).to_string()).await;
    assert_eq!(status, 200, "a second ticket of an admitted player: {body}");
    let metrics = server.metrics().await;
    assert!(metrics.contains("tickcast_edge_players_admitted 12"), "{metrics}");
    // Only the admitted games exist.
    let created = log_events(&server, "game-events").await;
    assert_eq!(created.iter().filter(|e| e["type"] == "session_created").count(), 11);

    // The players it had keep playing: every tick from their first, in order.
    for reader in readers {
        let (frames, closed) = reader.await.unwrap();
        assert_eq!(closed, None, "a player was disconnected: {frames:?}");
        let steps: Vec<i64> =
            frames.iter().filter(|f| f["type"] == "tick").map(|f| f["step"].as_i64().unwrap()).collect();
        assert_eq!(steps, (0..30).collect::<Vec<_>>(), "every tick once, in order");
    }
}

/// The tests of a gateway made slow from inside need the binary's test hooks: without them they
/// would not run, so this says how to run them rather than let them be skipped unseen.
#[cfg(not(feature = "test-hooks"))]
#[test]
fn the_tests_run_with_the_test_hooks() {
    panic!(
        "run the tests with `--features test-hooks` (scripts/test.sh does): the slow-gateway tests need it"
    );
}

/// What a run learned about the machine is where the next run on it starts: given a
/// `capacity.json` in its data directory (learned on as many cores as this machine has), `up`
/// counts admissions against it from its first game, not against the cold estimate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_learned_on_an_earlier_run_is_where_the_next_one_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    // 45 ticks a second: four players at 10 Hz, not five.
    let remembered = json!({"ticksPerSecond": 45.0, "cores": cores as f64, "learnedAtMs": 0});
    std::fs::write(dir.path().join("capacity.json"), remembered.to_string()).unwrap();
    let server = Server::start_in(dir.path(), &["--max-players", "auto"]);
    // Published by the task that learns it, which starts beside the listener.
    crate::support::eventually("the remembered capacity on /metrics", || {
        let server = &server;
        async move { server.metrics().await.contains("tickcast_capacity_ticks_per_second 45").then_some(()) }
    })
    .await;
    let mut answers = Vec::new();
    for i in 0..5 {
        let body = json!({"userId": format!("u{i}"), "countdownMs": 10_000, "tickMs": 100}).to_string();
        let (status, answer) = server.post("/edge/game/start", &body).await;
        answers.push((status, answer["error"].clone()));
    }
    let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 503], "{answers:?}");
    assert_eq!(answers[4].1, "at_capacity");
}
