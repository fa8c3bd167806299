//! Tick generators as a consumer group: scaling out, failing over and handing over without a
//! missing or doubled step, and judging the players of a dead gateway gone.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cluster::*;
use crate::ended_games::{assert_no_tick_after_the_end, collect_steps, games_ended_far_apart};
use crate::support::{Player, assert_every_step_once_from, eventually, topic_events};

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
