//! Adaptive pace (docs/protocol.md, "Adaptive pace"): an adaptive game slows to its slowest
//! player's round trips at a round's start and comes back when that player leaves; a fixed-pace
//! game never changes; the paced schedule survives `kill -9`; every tick's `scheduledAt` follows
//! the paces its players were told of.

use std::time::Duration;

use serde_json::{Value, json};

use crate::archive::replay_archive;
use crate::support::{Player, Seen, Server, eventually, keep_reading, latency_proxy, log_events};

/// The load policy off: these tests judge the latency policy, and a machine busy with other
/// tests would slow the games for load (its own test is the policy's, in processors/src/pace.rs,
/// and its measurement is in BENCHMARKS.md).
const LATENCY_ONLY: [&str; 2] = ["--pace-load-limit-ms", "0"];

/// Rounds of 1–2 s at the fastest pace: "within three rounds" is a few seconds.
const ADAPTIVE: &str =
    r#"{"countdownMs":0,"tickMs":100,"maxTickMs":400,"minBreakSteps":10,"maxBreakSteps":20}"#;

fn adaptive_game(user_id: &str) -> Value {
    let mut body: Value = serde_json::from_str(ADAPTIVE).unwrap();
    body["userId"] = user_id.into();
    body
}

/// The paces a player was told of (its `session_joined`'s, then each `tick_rate`), by step.
fn paces_told(frames: &[Value]) -> Vec<(i64, i64, i64)> {
    let mut paces: Vec<(i64, i64, i64)> = Vec::new();
    for frame in frames {
        let told: Vec<&Value> = match frame["type"].as_str() {
            Some("session_joined") => frame["paces"].as_array().unwrap().iter().collect(),
            Some("tick_rate") => vec![frame],
            _ => continue,
        };
        for pace in told {
            let pace = (
                pace["fromStep"].as_i64().unwrap(),
                pace["scheduledAt"].as_i64().unwrap(),
                pace["tickMs"].as_i64().unwrap(),
            );
            if !paces.iter().any(|p| p.0 == pace.0) {
                paces.push(pace);
            }
        }
    }
    paces.sort_unstable();
    paces
}

/// Every tick the player got is due where the paces it was told of say.
fn assert_ticks_follow(who: &str, frames: &[Value]) {
    let paces = paces_told(frames);
    assert!(!paces.is_empty(), "{who} was told no pace");
    for tick in frames.iter().filter(|f| f["type"] == "tick") {
        let step = tick["step"].as_i64().unwrap();
        let pace = paces.iter().rev().find(|p| p.0 <= step).unwrap_or(&paces[0]);
        assert_eq!(
            tick["scheduledAt"].as_i64().unwrap(),
            pace.1 + (step - pace.0) * pace.2,
            "{who}: step {step}'s scheduledAt against the pace of {} ms from step {}",
            pace.2,
            pace.0
        );
    }
}

/// Reads `player`'s frames until `done` says so of the frames so far.
async fn read_until(player: &mut Player, frames: &mut Vec<Value>, done: impl Fn(&[Value]) -> bool) {
    while !done(frames) {
        match player.next().await {
            Seen::Json(frame) => frames.push(frame),
            Seen::Closed(code) => panic!("closed ({code:?}) after {} frames", frames.len()),
        }
    }
}

/// The game's two players: "far" joins 60 ms away each way (a 120 ms round trip) and reads in
/// a task of its own, answering pings, until aborted; "near" joins directly.
async fn far_and_near(
    server: &Server,
    ticket: &Value,
) -> (tokio::task::JoinHandle<(Vec<Value>, Option<u16>)>, Player) {
    let proxy = latency_proxy(server.addr, Duration::from_millis(60)).await;
    let far_ticket = server.join_game(ticket["gameId"].as_str().unwrap(), "far").await;
    let far = keep_reading(Player::join(&far_ticket, "far", Some(proxy)).await, usize::MAX);
    (far, Player::join(ticket, "near", None).await)
}

fn last_tick_rate(frames: &[Value]) -> Option<&Value> {
    frames.iter().rev().find(|f| f["type"] == "tick_rate")
}

/// Where each `tick_rate_changed` copy sits in the tick topic: right after the tick of its
/// step before and before the tick of its step.
fn assert_copies_precede_their_steps(ticks_topic: &[Value], game: &str) {
    let session: Vec<&Value> = ticks_topic.iter().filter(|e| e["sessionId"] == game).collect();
    let changes: Vec<usize> =
        (0..session.len()).filter(|&i| session[i]["type"] == "tick_rate_changed").collect();
    assert!(!changes.is_empty(), "the pace changes are copied to the tick topic");
    for i in changes {
        let from = session[i]["fromStep"].as_i64().unwrap();
        let step_at = |step: i64| session.iter().position(|e| e["type"] == "tick" && e["step"] == step);
        assert!(
            step_at(from - 1).is_some_and(|at| at < i),
            "the copy of the change at {from} follows step {}",
            from - 1
        );
        assert!(step_at(from).is_none_or(|at| at > i), "the copy of the change at {from} precedes its step");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_player_slows_an_adaptive_game_and_its_pace_comes_back_when_it_leaves() {
    let server = Server::start_with(&LATENCY_ONLY);
    let ticket = server.start_game(adaptive_game("near")).await;
    assert_eq!((ticket["tickMs"].as_i64(), ticket["maxTickMs"].as_i64()), (Some(100), Some(400)), "{ticket}");
    let game = ticket["gameId"].as_str().unwrap().to_owned();
    let far_ticket = server.join_game(&game, "far").await;
    assert_eq!(far_ticket["maxTickMs"], 400, "a join's ticket too");
    let proxy = latency_proxy(server.addr, Duration::from_millis(60)).await;

    let mut near = Player::join(&ticket, "near", None).await;
    let far = keep_reading(Player::join(&far_ticket, "far", Some(proxy)).await, usize::MAX);
    let mut frames = Vec::new();
    read_until(&mut near, &mut frames, |f| f.iter().any(|f| f["type"] == "session_joined")).await;
    let joined = frames.iter().find(|f| f["type"] == "session_joined").unwrap();
    assert_eq!(
        (&joined["tickMs"], &joined["maxTickMs"], &joined["paceFromStep"], &joined["paceScheduledAt"]),
        (&json!(100), &json!(400), &json!(0), &joined["startAt"]),
        "{joined}"
    );

    // A player 120 ms away: the pace goes to about 2 × 120 ms within three rounds.
    read_until(&mut near, &mut frames, |f| last_tick_rate(f).is_some()).await;
    let slower = last_tick_rate(&frames).unwrap().clone();
    let tick_ms = slower["tickMs"].as_i64().unwrap();
    assert!((200..=300).contains(&tick_ms), "{slower}");
    assert_eq!(slower["reason"], "latency", "{slower}");
    let from = slower["fromStep"].as_i64().unwrap();
    let breaks_before = frames.iter().filter(|f| f["type"] == "tick" && f["broken"] == true).count();
    assert!(breaks_before <= 3, "within three rounds: {breaks_before} rounds ended before step {from}");

    // It leaves: 5 s later, at a round's start, the pace is back to 100 ms.
    let left_at = chrono_ms();
    far.abort();
    read_until(&mut near, &mut frames, |f| last_tick_rate(f).is_some_and(|p| p["tickMs"] == 100)).await;
    let back = last_tick_rate(&frames).unwrap().clone();
    assert_eq!(back["reason"], "latency", "{back}");
    assert!(
        back["scheduledAt"].as_i64().unwrap() >= left_at + 5_000,
        "no sooner than 5 s after it left: {back}"
    );
    read_until(&mut near, &mut frames, |f| {
        f.iter().any(|f| f["type"] == "tick" && f["step"].as_i64() > back["fromStep"].as_i64())
    })
    .await;
    assert_ticks_follow("near", &frames);

    // The log: each change once as a fact (with the worst RTT it was decided on), its copy
    // before its step in the tick topic, and the read API's current pace.
    let changes: Vec<Value> = log_events(&server, "game-events")
        .await
        .into_iter()
        .filter(|e| e["type"] == "tick_rate_changed" && e["sessionId"] == game.as_str())
        .collect();
    assert!(changes.len() >= 2, "{changes:?}");
    assert_eq!(changes[0]["fromStep"], from);
    assert!(changes[0]["worstRttMs"].as_u64().unwrap() >= 120, "{}", changes[0]);
    let region = ticket["region"].as_str().unwrap();
    assert_copies_precede_their_steps(&log_events(&server, &format!("ticks.{region}")).await, &game);
    let path = format!("/edge/sessions/{game}");
    let detail = eventually("the projections to show the current pace", || {
        let (server, path, back) = (&server, path.clone(), &back);
        async move {
            let (status, detail) = server.get(&path).await;
            (status == 200 && detail["pace"]["fromStep"] == back["fromStep"]).then_some(detail)
        }
    })
    .await;
    assert_eq!((&detail["pace"]["tickMs"], &detail["maxTickMs"]), (&json!(100), &json!(400)), "{detail}");
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_pace_game_never_changes_its_pace_whatever_its_players_latency() {
    let server = Server::start();
    let body = json!({"userId":"near","countdownMs":0,"minBreakSteps":5,"maxBreakSteps":10,"maxRounds":4});
    let ticket = server.start_game(body).await;
    assert_eq!(ticket["maxTickMs"], ticket["tickMs"], "{ticket}");
    let (far, mut near) = far_and_near(&server, &ticket).await;
    let (frames, code) = near.until_closed().await;
    far.abort();
    assert!(frames.iter().any(|f| f["type"] == "session_ended"), "the game ran to its end ({code:?})");
    assert!(!frames.iter().any(|f| f["type"] == "tick_rate"), "no pace change");
    let joined = frames.iter().find(|f| f["type"] == "session_joined").unwrap();
    assert_eq!(joined["paces"].as_array().map(Vec::len), Some(1), "{joined}");
    assert_eq!(joined["maxTickMs"], joined["tickMs"]);
    let start_at = joined["startAt"].as_i64().unwrap();
    for tick in frames.iter().filter(|f| f["type"] == "tick") {
        assert_eq!(tick["scheduledAt"].as_i64().unwrap(), start_at + tick["step"].as_i64().unwrap() * 100);
    }
    let events = log_events(&server, "game-events").await;
    assert!(!events.iter().any(|e| e["type"] == "tick_rate_changed"), "nothing logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_up_mid_game_keeps_the_paced_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &LATENCY_ONLY);
    let mut body = adaptive_game("near");
    body["maxRounds"] = 6.into();
    let ticket = server.start_game(body).await;
    let game = ticket["gameId"].as_str().unwrap().to_owned();
    let (far, mut near) = far_and_near(&server, &ticket).await;
    let mut frames = Vec::new();
    read_until(&mut near, &mut frames, |f| {
        last_tick_rate(f).is_some_and(|p| f.iter().any(|t| t["type"] == "tick" && t["step"] == p["fromStep"]))
    })
    .await;
    let before = paces_told(&frames);
    server.kill9();
    far.abort();
    drop(near);

    // Back on the same log: the player resumes and is told the pace in force, logged before.
    let server = Server::start_in(dir.path(), &LATENCY_ONLY);
    let last_step =
        frames.iter().filter(|f| f["type"] == "tick").filter_map(|t| t["step"].as_i64()).max().unwrap();
    let rejoin = server.join_game(&game, "near").await;
    let url = rejoin["wsEndpoint"].as_str().unwrap();
    let mut near = Player::connect(url).await;
    near.send(json!({"action":"resume","sessionId":game,"userId":"near","token":rejoin["token"],"lastStep":last_step}))
        .await;
    let mut after = Vec::new();
    read_until(&mut near, &mut after, |f| f.iter().any(|f| f["type"] == "session_ended")).await;
    let joined = after.iter().find(|f| f["type"] == "session_joined").unwrap();
    let told = paces_told(&after);
    assert!(
        before.iter().all(|p| told.contains(p)),
        "the paces before the kill are kept: {before:?} {told:?}"
    );
    let in_force = told.iter().rev().find(|p| p.0 <= last_step + 1).unwrap();
    assert!(joined["paceFromStep"].as_i64().unwrap() >= in_force.0, "{joined}");
    assert_ticks_follow("near after the restart", &after);

    // The log and its archive verify: every tick's state and scheduledAt.
    let mut server = server;
    server.terminate();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["replay", "verify", "--session", &game, "--log"])
        .arg(format!("embedded://{}", dir.path().display()))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "replay verify: {text}");
    // The report plots the pace.
    let report = dir.path().join("report.html");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["replay", "report", "--session", &game, "--out"])
        .arg(&report)
        .arg("--log")
        .arg(format!("embedded://{}", dir.path().display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let html = std::fs::read_to_string(&report).unwrap();
    let plotted =
        html.split("<h2>Pace</h2>").nth(1).and_then(|rest| rest.split("<h2>").next()).unwrap_or_default();
    assert!(plotted.contains("change(s)") && plotted.contains("<svg"), "the pace is plotted: {plotted}");

    // The timeline shows each change once (its fact and its copy are one event).
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["replay", "timeline", "--session", &game, "--json", "--log"])
        .arg(format!("embedded://{}", dir.path().display()))
        .output()
        .unwrap();
    let timeline: Vec<Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let shown: Vec<i64> = timeline
        .iter()
        .filter(|e| e["type"] == "tick_rate_changed")
        .map(|e| e["fromStep"].as_i64().unwrap())
        .collect();
    let mut distinct = shown.clone();
    distinct.dedup();
    assert!(!shown.is_empty() && shown == distinct, "each change once: {shown:?}");
    let (ok, text) = replay_archive(&dir.path().join("archive"), &["verify", "--session", &game]);
    assert!(ok, "replay verify --archive: {text}");
    assert!(dir.path().join("archive").join("kind=tick_rate").is_dir(), "the archive has the pace changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paces_are_refused_naming_the_field() {
    let server = Server::start();
    for (body, field) in [
        (json!({"userId":"a","tickMs":100,"maxTickMs":99}), "maxTickMs"),
        (json!({"userId":"a","maxTickMs":10001}), "maxTickMs"),
        (json!({"userId":"a","maxTickMs":"slow"}), "maxTickMs"),
        // 1000 rounds of 100 steps at 4 s: 111 h, over the 6 h bound.
        (json!({"userId":"a","maxTickMs":4000}), "maxTickMs"),
    ] {
        let (status, answer) = server.post("/edge/game/start", &body.to_string()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(field), "{body}: {answer}");
    }
    let (status, answer) = server.post("/edge/game/start", r#"{"userId":"a","maxTickMs":100}"#).await;
    assert_eq!((status, &answer["maxTickMs"]), (200, &json!(100)), "{answer}");

    // Client-side tick mode: clients compute ticks from the clock alone.
    let client_side = Server::start_with(&["--use-tick-broadcaster", "false"]);
    let (status, answer) =
        client_side.post("/edge/game/start", r#"{"userId":"a","tickMs":100,"maxTickMs":200}"#).await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid_parameter")), "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("maxTickMs"), "{answer}");
    let (status, _) =
        client_side.post("/edge/game/start", r#"{"userId":"a","tickMs":100,"maxTickMs":100}"#).await;
    assert_eq!(status, 200);
}
