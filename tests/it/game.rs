//! One game from start to end, as three players see it.

use serde_json::{Value, json};
use tickcast_engine::{Params, seed_hash, state_at};

use crate::support::{Player, Server, log_events};

/// Everything a player saw during one game.
struct Watched {
    frames: Vec<Value>,
}

impl Watched {
    fn of_type(&self, kind: &str) -> Vec<&Value> {
        self.frames.iter().filter(|f| f["type"] == kind).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_players_see_every_step_once_then_the_revealed_seed() {
    let server = Server::start();
    let ticket =
        server.start_game(json!({"userId":"alice","tickMs":50,"countdownMs":2500,"maxRounds":3})).await;
    let game_id = ticket["gameId"].as_str().unwrap();
    assert!(ticket.get("seed").is_none(), "the seed must not be revealed at start");
    let tickets =
        [ticket.clone(), server.join_game(game_id, "bob").await, server.join_game(game_id, "carol").await];
    for t in &tickets {
        assert_eq!(
            (t["gameId"].as_str(), t["seedHash"].as_str()),
            (Some(game_id), ticket["seedHash"].as_str())
        );
    }

    let mut watchers = Vec::new();
    for (t, user) in tickets.iter().zip(["alice", "bob", "carol"]) {
        let mut player = Player::join(t, user, None).await;
        watchers.push(tokio::spawn(async move {
            let (frames, code) = player.until_closed().await;
            assert_eq!(code, Some(1000), "closed normally after the end");
            Watched { frames }
        }));
    }

    let mut seeds = Vec::new();
    for watcher in watchers {
        let watched = watcher.await.unwrap();
        let joined = &watched.frames[0];
        assert_eq!(joined["type"], "session_joined");
        assert_eq!((joined["sessionId"].as_str(), joined["tickMs"].as_i64()), (Some(game_id), Some(50)));
        assert_eq!(joined["seedHash"], ticket["seedHash"]);

        let first_tick = watched.frames.iter().position(|f| f["type"] == "tick").expect("ticks arrived");
        assert!(
            watched.frames[..first_tick].iter().any(|f| f["type"] == "countdown"),
            "countdowns came before the first tick"
        );

        let ended = watched.of_type("session_ended");
        assert_eq!(ended.len(), 1);
        let ended = ended[0];
        assert_eq!(watched.frames.last().unwrap(), ended, "session_ended is the last frame");
        assert_eq!(ended["reason"], "max_rounds");
        let seed: u64 = ended["seed"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            seed_hash(seed),
            ticket["seedHash"].as_str().unwrap(),
            "the revealed seed matches the commitment"
        );

        let params = Params::with_seed(seed);
        let ticks = watched.of_type("tick");
        let steps: Vec<i64> = ticks.iter().map(|t| t["step"].as_i64().unwrap()).collect();
        let last_step = ended["lastStep"].as_i64().unwrap();
        assert_eq!(
            steps,
            (0..=last_step).collect::<Vec<_>>(),
            "every step from 0 to the last, once, in order"
        );
        for tick in &ticks {
            let state = state_at(&params, tick["step"].as_i64().unwrap());
            assert_eq!(
                (
                    tick["value"].as_u64().unwrap(),
                    tick["round"].as_u64().unwrap(),
                    tick["broken"].as_bool().unwrap()
                ),
                (state.value, state.round, state.broken),
                "tick {tick} equals the engine"
            );
            assert_eq!(
                tick["scheduledAt"].as_i64().unwrap(),
                joined["startAt"].as_i64().unwrap() + 50 * tick["step"].as_i64().unwrap()
            );
        }
        let last = ticks.last().unwrap();
        assert_eq!(
            (last["round"].as_u64(), last["broken"].as_bool()),
            (Some(3), Some(true)),
            "ends on the third break"
        );
        seeds.push(seed);
    }
    assert!(seeds.windows(2).all(|w| w[0] == w[1]));

    let events = crate::support::eventually("session_ended in game-events", || {
        let server = &server;
        async move {
            let events = log_events(server, "game-events").await;
            events.iter().any(|e| e["type"] == "session_ended" && e["sessionId"] == game_id).then_some(events)
        }
    })
    .await;
    let kinds: Vec<&str> =
        events.iter().filter(|e| e["sessionId"] == game_id).map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "player_joined").count(), 3);
    assert_eq!(kinds.first(), Some(&"session_created"));
    assert!(kinds.contains(&"session_ended"));
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    for name in [
        "tickcast_edge_sessions_created_total",
        "tickcast_ticks_emitted_total",
        "tickcast_gateway_frames_forwarded_total",
        "tickcast_tick_generator_lateness_ms",
    ] {
        assert!(metrics.contains(name), "/metrics has {name}:\n{metrics}");
    }
    let logged_ticks = log_events(&server, &format!("ticks.{}", ticket["region"].as_str().unwrap())).await;
    assert!(
        logged_ticks.iter().filter(|e| e["type"] == "tick" && e["sessionId"] == game_id).count() > 3,
        "ticks are logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_who_resumes_gets_the_missed_steps_and_pings_are_answered() {
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"dora","tickMs":20,"countdownMs":0})).await;
    let mut player = Player::join(&ticket, "dora", None).await;
    let (_, first) = player.until("tick").await;
    let mut last = first["step"].as_i64().unwrap();
    while last < 5 {
        last = player.until("tick").await.1["step"].as_i64().unwrap();
    }
    drop(player);

    let mut player = crate::support::Player::connect(ticket["wsEndpoint"].as_str().unwrap()).await;
    player.send(json!({"action":"resume","sessionId":ticket["gameId"],"userId":"dora","token":ticket["token"],"lastStep":last})).await;
    let (_, tick) = player.until("tick").await;
    assert_eq!(tick["step"].as_i64(), Some(last + 1), "resume continues right after lastStep");
    for expected in last + 2..last + 12 {
        let (_, tick) = player.until("tick").await;
        assert_eq!(tick["step"].as_i64(), Some(expected));
    }
    player.send(json!({"action":"ping","clientTimestamp":12345})).await;
    let (_, pong) = player.until("pong").await;
    assert_eq!(pong["clientTimestamp"], 12345);
    assert!(pong["serverTimestamp"].as_i64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_nobody_joins_ends_idle_and_sigterm_stops_cleanly() {
    let mut server = Server::start_with(&["--idle-ms", "300"]);
    let ticket = server.start_game(json!({"userId":"eve","tickMs":50,"countdownMs":0})).await;
    let game_id = ticket["gameId"].as_str().unwrap().to_owned();
    let ended = crate::support::eventually("the idle end", || {
        let server = &server;
        let game_id = game_id.clone();
        async move {
            log_events(server, "game-events")
                .await
                .into_iter()
                .find(|e| e["type"] == "session_ended" && e["sessionId"] == game_id.as_str())
        }
    })
    .await;
    assert_eq!(ended["reason"], "idle");
    // Idle from its start: it ends 300 ms in, after the steps of 50 ms due by then (0 to 5, and
    // 6 if its deadline came first), each logged once.
    let last_step = ended["lastStep"].as_i64().unwrap();
    assert!((5..=6).contains(&last_step), "ticks ran until the idle end: {ended}");
    let topic = format!("ticks.{}", ticket["region"].as_str().unwrap());
    let steps: Vec<i64> = log_events(&server, &topic)
        .await
        .iter()
        .filter(|e| e["type"] == "tick" && e["sessionId"] == game_id.as_str())
        .map(|e| e["step"].as_i64().unwrap())
        .collect();
    assert_eq!(steps, (0..=last_step).collect::<Vec<_>>(), "every step to the end, once");
    let path = format!("/edge/game/{game_id}/join");
    let refused = crate::support::eventually("joins of the ended game to be refused", || {
        let (server, path) = (&server, path.clone());
        async move {
            let (status, body) = server.post(&path, r#"{"userId":"late"}"#).await;
            (status == 409).then_some(body)
        }
    })
    .await;
    assert_eq!(refused["error"], "game_ended");
    let status = server.terminate();
    assert!(status.success(), "tickcast up exits 0 on SIGTERM: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_survives_kill_9_of_the_server_without_a_missing_or_doubled_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let ticket = server
        .start_game(json!({"userId":"fay","tickMs":50,"countdownMs":1000,"maxRounds":3,"minBreakSteps":30,"maxBreakSteps":60}))
        .await;
    // A join gets ticks from when it is made: the countdown lets it be made before step 0.
    let mut player = Player::join(&ticket, "fay", None).await;
    let mut steps = Vec::new();
    while steps.last().is_none_or(|s| *s < 20) {
        let (_, tick) = player.until("tick").await;
        steps.push(tick["step"].as_i64().unwrap());
    }
    server.kill9();
    drop(player);

    let restarted = Server::start_in(dir.path(), &[]);
    let endpoint =
        ticket["wsEndpoint"].as_str().unwrap().replace(&server.addr.to_string(), &restarted.addr.to_string());
    let mut player = Player::connect(&endpoint).await;
    let last = *steps.last().unwrap();
    player
        .send(json!({"action":"resume","sessionId":ticket["gameId"],"userId":"fay","token":ticket["token"],"lastStep":last}))
        .await;
    let (frames, code) = player.until_closed().await;
    assert_eq!(code, Some(1000), "{frames:?}");
    steps.extend(frames.iter().filter(|f| f["type"] == "tick").map(|f| f["step"].as_i64().unwrap()));
    let ended = frames.iter().find(|f| f["type"] == "session_ended").expect("the game ended");
    let last_step = ended["lastStep"].as_i64().unwrap();
    assert_eq!(steps, (0..=last_step).collect::<Vec<_>>(), "every step once, in order, across the crash");
    let seed: u64 = ended["seed"].as_str().unwrap().parse().unwrap();
    assert_eq!(seed_hash(seed), ticket["seedHash"].as_str().unwrap());
    let params = Params { seed, min_break_steps: 30, max_break_steps: 60 };
    for tick in frames.iter().filter(|f| f["type"] == "tick") {
        let state = state_at(&params, tick["step"].as_i64().unwrap());
        assert_eq!(tick["value"].as_u64(), Some(state.value), "{tick}");
        assert_eq!(tick["round"].as_u64(), Some(state.round), "{tick}");
    }
}

/// Client-side tick mode (`USE_TICK_BROADCASTER=false`): the ticket carries the seed, which
/// matches the seedHash, so a client computes the ticks itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_tick_mode_returns_the_seed_at_start() {
    let server = Server::start_with(&["--use-tick-broadcaster", "false"]);
    let ticket = server.start_game(json!({"userId":"cy"})).await;
    let seed: u64 = ticket["seed"].as_str().expect("the seed is in the ticket").parse().unwrap();
    assert_eq!(seed_hash(seed), ticket["seedHash"].as_str().unwrap());
    let joined = server.join_game(ticket["gameId"].as_str().unwrap(), "dee").await;
    assert_eq!(joined["seed"], ticket["seed"], "{joined}");
    assert_eq!((joined["minBreakSteps"].as_u64(), joined["maxBreakSteps"].as_u64()), (Some(10), Some(100)));
}
