//! Restarts of `tickcast up` (SIGTERM and kill -9) with a running game of many players and games
//! that ended since it started, far enough back that re-reading the log takes several batches:
//! the running game continues with every step once, its players resume with the tickets they
//! had (no secret configured), a new game ticks to its end, and no ended game ticks again.

use std::collections::HashMap;

use serde_json::json;
use tokio::task::JoinSet;

use crate::ended_games::{assert_no_tick_after_the_end, collect_steps, games_ended_far_apart};
use crate::support::{Player, Server, log_events};

/// Players of the long game.
const PLAYERS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_restart_keeps_every_game_correct() {
    restart_keeps_every_game_correct(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_restart_keeps_every_game_correct() {
    restart_keeps_every_game_correct(true).await;
}

async fn restart_keeps_every_game_correct(kill_9: bool) {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--idle-ms", "8000"];
    let mut server = Server::start_unconfigured(dir.path(), &flags);

    // The long game: many players, ticking throughout (4,000 rounds: endless for a test, within
    // the longest game accepted).
    let long = server.start_game(json!({"userId":"p0","tickMs":50,"countdownMs":0,"maxRounds":4_000})).await;
    let long_id = long["gameId"].as_str().unwrap().to_owned();
    let mut tickets = vec![long.clone()];
    for i in 1..PLAYERS {
        tickets.push(server.join_game(&long_id, &format!("p{i}")).await);
    }
    let mut players = JoinSet::new();
    for (i, ticket) in tickets.iter().enumerate() {
        let player = Player::join(ticket, &format!("p{i}"), None).await;
        players.spawn(async move { (i, collect_steps(player).await) });
    }

    // Games that ended since the start, far enough back that re-reading the log takes batches.
    let (rounds, idle_id) = games_ended_far_apart(&server, &long_id).await;

    // The restart.
    if kill_9 {
        server.kill9();
    } else {
        assert!(server.terminate().success(), "tickcast up exits 0 on SIGTERM");
    }
    let mut before: HashMap<usize, Vec<i64>> = HashMap::new();
    while let Some(joined) = players.join_next().await {
        let (i, (steps, _)) = joined.unwrap();
        assert!(!steps.is_empty(), "player {i} saw ticks before the restart");
        before.insert(i, steps);
    }
    let restarted = Server::start_unconfigured(dir.path(), &flags);

    // Every player resumes with the ticket it had and misses no step.
    let target = before.values().map(|s| *s.last().unwrap()).max().unwrap() + 20;
    let mut resumed = JoinSet::new();
    for (i, ticket) in tickets.iter().enumerate() {
        let endpoint = ticket["wsEndpoint"]
            .as_str()
            .unwrap()
            .replace(&server.addr.to_string(), &restarted.addr.to_string());
        let mut player = Player::connect(&endpoint).await;
        let last = *before[&i].last().unwrap();
        player
            .send(json!({"action":"resume","sessionId":long_id,"userId":format!("p{i}"),"token":ticket["token"],"lastStep":last}))
            .await;
        resumed.spawn(async move {
            let mut steps = Vec::new();
            while steps.last().is_none_or(|s| *s < target) {
                let frame = player.next_json().await;
                assert_ne!(frame["type"], "error", "player {i} resumes with its ticket: {frame}");
                if frame["type"] == "tick" {
                    steps.push(frame["step"].as_i64().unwrap());
                }
            }
            (i, steps)
        });
    }
    while let Some(done) = resumed.join_next().await {
        let (i, after) = done.unwrap();
        let mut steps = before.remove(&i).unwrap();
        steps.extend(after);
        let first = steps[0];
        assert_eq!(
            steps,
            (first..first + steps.len() as i64).collect::<Vec<_>>(),
            "player {i}: every step once, in order"
        );
    }

    // A game started after the restart ticks to its end.
    let fresh = restarted
        .start_game(json!({"userId":"n","tickMs":20,"countdownMs":1000,"maxRounds":1,"minBreakSteps":20,"maxBreakSteps":20}))
        .await;
    let (steps, ended) = collect_steps(Player::join(&fresh, "n", None).await).await;
    assert!(ended, "the new game ended");
    assert_eq!(steps, (0..steps.len() as i64).collect::<Vec<_>>());

    // The games that had ended never ticked again.
    let ticks = log_events(&restarted, &format!("ticks.{}", rounds["region"].as_str().unwrap())).await;
    for session in [rounds["gameId"].as_str().unwrap(), &idle_id] {
        assert_no_tick_after_the_end(&ticks, session);
    }
}
