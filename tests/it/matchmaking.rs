//! Matchmaking by latency (docs/protocol.md, "Matchmaking"): tickets through the edge, matched
//! by the matchmaker inside `tickcast up`, every matched player then playing its game.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Player, Server, eventually, log_events};

/// Groups need not wait to be full after 1 s, and tickets expire after 4 s: the tests' clock.
const QUICK: [(&str, &str); 2] = [("TICKCAST_MATCH_FILL_AFTER", "1s"), ("TICKCAST_MATCH_TIMEOUT", "4s")];

async fn request(server: &Server, body: Value) -> (u16, Value) {
    server.post("/edge/match", &body.to_string()).await
}

/// Polls a ticket until it is no longer searching.
async fn settled(server: &Server, ticket: &str) -> Value {
    let path = format!("/edge/match/{ticket}");
    eventually(&format!("ticket {ticket} to settle"), || {
        let path = path.clone();
        async move {
            let (status, answer) = server.get(&path).await;
            // 503 while a restarted edge still reads the log's history.
            assert!(status == 200 || (status == 503 && answer["error"] == "not_ready"), "{status} {answer}");
            (status == 200 && answer["status"] != "searching").then_some(answer)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_latency_clusters_form_two_games_each_in_its_near_region_and_everyone_plays() {
    let server = Server::start_with_env(&QUICK, &[]);
    let mut tickets = Vec::new();
    for i in 0..8 {
        let (user, latencies) = if i < 4 {
            (format!("eu-{i}"), json!({"eu-west-1": 20 + i, "us-east-1": 130}))
        } else {
            (format!("us-{i}"), json!({"eu-west-1": 140, "us-east-1": 25 + i}))
        };
        let (status, answer) = request(&server, json!({"userId": user, "latencies": latencies})).await;
        assert_eq!((status, &answer["status"]), (202, &json!("searching")), "{answer}");
        tickets.push((user, answer["ticketId"].as_str().unwrap().to_owned()));
    }
    let (_, lobby) = server.get("/edge/match").await;
    assert!(lobby["searching"]["eu-west-1"].as_u64().unwrap_or(0) <= 4, "{lobby}");

    let mut games: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for (user, ticket) in &tickets {
        let matched = settled(&server, ticket).await;
        assert_eq!(matched["status"], "matched", "{user}: {matched}");
        let region = if user.starts_with("eu") { "eu-west-1" } else { "us-east-1" };
        assert_eq!(matched["region"], region, "{user} plays near: {matched}");
        assert!(matched["latencyMs"].as_u64().unwrap() < 40, "{matched}");
        assert_eq!(matched["players"].as_array().unwrap().len(), 4, "{matched}");
        for field in [
            "gameId",
            "wsEndpoint",
            "token",
            "startAt",
            "tickMs",
            "seedHash",
            "minBreakSteps",
            "maxBreakSteps",
        ] {
            assert!(!matched[field].is_null(), "{field} in {matched}");
        }
        games.entry(matched["gameId"].as_str().unwrap().to_owned()).or_default().push(matched);
    }
    assert_eq!(games.len(), 2, "two games of four");

    // Every matched player plays its game.
    let mut players = Vec::new();
    for (user, ticket) in &tickets {
        let (_, matched) = server.get(&format!("/edge/match/{ticket}")).await;
        players.push((user.clone(), Player::join(&matched, user, None).await));
    }
    for (user, player) in &mut players {
        let (_, joined) = player.until("session_joined").await;
        assert!(!joined["players"].as_array().unwrap().is_empty(), "{user}: {joined}");
        let (_, tick) = player.until("tick").await;
        assert!(tick["step"].as_i64().is_some(), "{user} gets ticks");
    }

    // In the log: each game created by the matchmaker, then its match_formed.
    let events = log_events(&server, "game-events").await;
    let formed: Vec<&Value> = events.iter().filter(|e| e["type"] == "match_formed").collect();
    assert_eq!(formed.len(), 2);
    for f in formed {
        let created = events
            .iter()
            .find(|e| e["type"] == "session_created" && e["sessionId"] == f["sessionId"])
            .expect("the game is logged");
        assert_eq!((&created["createdBy"], &created["region"]), (&json!("matchmaker"), &f["region"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_player_expires_and_a_cancelled_ticket_stays_cancelled() {
    let server = Server::start_with_env(&QUICK, &[]);
    let (_, far) =
        request(&server, json!({"userId": "far", "latencies": {"eu-west-1": 180, "us-east-1": 240}})).await;
    let (_, mine) = request(&server, json!({"userId": "me", "latencies": {"eu-west-1": 20}})).await;
    let (status, again) = request(&server, json!({"userId": "me", "latencies": {"eu-west-1": 20}})).await;
    assert_eq!((status, &again["error"]), (409, &json!("already_searching")), "{again}");
    let mine = mine["ticketId"].as_str().unwrap().to_owned();
    let response = server.http.delete(server.url(&format!("/edge/match/{mine}"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(settled(&server, &mine).await["status"], "cancelled");
    let response = server.http.delete(server.url(&format!("/edge/match/{mine}"))).send().await.unwrap();
    assert_eq!(response.status(), 409, "cancelled already");
    let (status, _) = request(&server, json!({"userId": "me", "latencies": {"eu-west-1": 20}})).await;
    assert_eq!(status, 202, "a new ticket once the last one is settled");
    let far = far["ticketId"].as_str().unwrap();
    assert_eq!(settled(&server, far).await["status"], "expired", "no region under the latency limit");
    let (status, answer) = server.get("/edge/match/no-such-ticket").await;
    assert_eq!((status, &answer["error"]), (404, &json!("unknown_ticket")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_waiting_through_a_kill_9_are_matched_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Three players needed: two tickets wait.
    let env = [("TICKCAST_MATCH_FILL_AFTER", "1s"), ("TICKCAST_MATCH_MIN_PLAYERS", "3")];
    let mut server = Server::start_in_with_env(dir.path(), &env, &[]);
    let mut tickets = Vec::new();
    for user in ["a", "b"] {
        let (_, answer) = request(&server, json!({"userId": user, "latencies": {"eu-west-1": 30}})).await;
        tickets.push(answer["ticketId"].as_str().unwrap().to_owned());
    }
    let waiting = eventually("the tickets to be read by the matchmaker", || {
        let server = &server;
        async move {
            let (_, answer) = server.get("/edge/match").await;
            (answer["searching"]["eu-west-1"] == 2).then_some(())
        }
    });
    waiting.await;
    tokio::time::sleep(Duration::from_millis(1_500)).await; // past the fill time: only the minimum holds them
    assert_eq!(server.get(&format!("/edge/match/{}", tickets[0])).await.1["status"], "searching");
    server.kill9();

    // Back with two players enough: the tickets are matched from the log.
    let server = Server::start_in_with_env(dir.path(), &[("TICKCAST_MATCH_FILL_AFTER", "1s")], &[]);
    let mut games = Vec::new();
    for (ticket, user) in tickets.iter().zip(["a", "b"]) {
        let matched = settled(&server, ticket).await;
        assert_eq!(matched["status"], "matched", "{matched}");
        games.push(matched["gameId"].clone());
        let mut player = Player::join(&matched, user, None).await;
        player.until("tick").await;
    }
    assert_eq!(games[0], games[1], "one game");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_match_requests_are_refused_saying_what_to_fix() {
    let server = Server::start();
    for (body, status, code) in [
        (json!({"latencies": {"eu-west-1": 20}}), 400, "invalid_body"),
        (json!({"userId": "a", "latencies": {"eu-west-1": "fast"}}), 400, "invalid_body"),
        (json!({"userId": "a", "latencies": {"eu-west-1": 10001}}), 400, "invalid_parameter"),
        (json!({"userId": "a", "latencies": {"mars-1": 20}}), 400, "unknown_region"),
        (json!({"userId": "a", "preferredRegion": "mars-1"}), 400, "unknown_region"),
        (json!({"userId": "", "latencies": {"eu-west-1": 20}}), 400, "invalid_parameter"),
        (json!({"userId": "a", "surprise": 1}), 400, "invalid_body"),
    ] {
        let (got, answer) = request(&server, body.clone()).await;
        assert_eq!((got, answer["error"].as_str()), (status, Some(code)), "{body}: {answer}");
        assert!(!answer["message"].as_str().unwrap_or_default().is_empty());
    }
    let response = server.http.post(server.url("/edge/match")).body("userId=a").send().await.unwrap();
    assert_eq!(response.status(), 415);
    // Without latencies, the hints choose the region: a ticket like any other.
    let (status, answer) =
        request(&server, json!({"userId": "hinted", "preferredRegion": "eu-west-1"})).await;
    assert_eq!(status, 202, "{answer}");
    let response = server.http.get(server.url("/ws/eu-west-1/ping")).send().await.unwrap();
    assert_eq!(response.status(), 204, "each gateway answers the page's latency probe");
}

/// On Kafka: two matchmakers, one active (it owns the partition all matchmaking events are
/// keyed to), one standing by. The active one is killed with kill -9 while tickets wait; the
/// standby takes the partition over, reads the tickets back from the log and matches them with
/// the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_matchmaker_takes_the_waiting_tickets_over_when_the_active_one_dies() {
    use crate::cluster::{Cluster, Role, free_port};
    let cluster = Cluster::start(1);
    let matchmaker = |instance: &str| {
        let admin = format!("127.0.0.1:{}", free_port());
        let mut args =
            vec!["matchmaker", "--log", &cluster.log, "--instance-id", instance, "--admin-listen", &admin];
        args.extend(["--match-min-players", "3", "--match-fill-after", "1s"]);
        args.extend(cluster.log_flags.iter().map(String::as_str));
        (Role::start(&args, None), format!("http://{admin}/metrics"))
    };
    let http = crate::support::http_client();
    let searching_at = |metrics: String| {
        let http = http.clone();
        async move {
            let text = http.get(metrics).send().await.ok()?.text().await.ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("tickcast_match_tickets_searching "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        }
    };
    let (mut active, active_metrics) = matchmaker("mm-1");
    let edge = cluster.edge.url.clone().unwrap();
    let mut tickets = vec![request_at(&http, &edge, "a").await, request_at(&http, &edge, "b").await];
    // The active matchmaker holds both: three are needed.
    eventually("the active matchmaker to hold two tickets", || {
        let searching = searching_at(active_metrics.clone());
        async move { (searching.await == Some(2.0)).then_some(()) }
    })
    .await;
    let (_standby, _) = matchmaker("mm-2");
    active.process.kill9();
    tickets.push(request_at(&http, &edge, "c").await);
    let mut games = Vec::new();
    for ticket in &tickets {
        let matched = poll_until_settled(&http, &edge, ticket).await;
        assert_eq!(matched["status"], "matched", "{matched}");
        games.push(matched["gameId"].clone());
    }
    assert!(games.iter().all(|g| *g == games[0]), "one game of three: {games:?}");
}

async fn request_at(http: &reqwest::Client, edge: &str, user: &str) -> String {
    let body = json!({"userId": user, "latencies": {"eu-west-1": 30}});
    let answer: Value =
        http.post(format!("{edge}/edge/match")).json(&body).send().await.unwrap().json().await.unwrap();
    answer["ticketId"].as_str().unwrap_or_else(|| panic!("{answer}")).to_owned()
}

async fn poll_until_settled(http: &reqwest::Client, edge: &str, ticket: &str) -> Value {
    eventually(&format!("ticket {ticket} to settle"), || {
        let url = format!("{edge}/edge/match/{ticket}");
        async move {
            let answer: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (answer["status"] != "searching").then_some(answer)
        }
    })
    .await
}
