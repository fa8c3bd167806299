//! Gateways as processes of their own: games spread over a region's gateways, players resuming
//! on another after a stop, and the edge sending games only to regions with a ready gateway.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cluster::*;
use crate::support::{Player, Seen, assert_every_step_once_from, eventually};

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
