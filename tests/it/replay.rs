//! `tickcast replay` over the log a real `tickcast up` wrote: sessions, timeline, and verify
//! catching a tampered tick and a missing step.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Player, Server};

fn replay(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .arg("replay")
        .args(args)
        .args(["--log", &format!("embedded://{}", dir.display())])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Plays one short game to its end on a fresh server, then stops the server.
async fn recorded_game() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let ticket = server
        .start_game(json!({"userId":"ana","tickMs":20,"countdownMs":0,"maxRounds":2,"minBreakSteps":40,"maxBreakSteps":60}))
        .await;
    let mut player = Player::join(&ticket, "ana", None).await;
    let (_, code) = player.until_closed().await;
    assert_eq!(code, Some(1000));
    assert!(server.terminate().success());
    (dir, ticket["gameId"].as_str().unwrap().to_owned(), ticket["region"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_timeline_and_verify_read_a_recorded_game() {
    let (dir, game, _) = recorded_game().await;
    let (ok, out, err) = replay(dir.path(), &["verify", "--all"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("verified 1 session(s)"), "{out}");

    let (ok, out, _) = replay(dir.path(), &["sessions", "--json"]);
    assert!(ok);
    let session: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        (session["sessionId"].as_str(), session["endReason"].as_str()),
        (Some(game.as_str()), Some("max_rounds"))
    );
    assert_eq!((session["players"].as_u64(), session["rounds"].as_u64()), (Some(1), Some(2)));
    let last_step = session["lastStep"].as_i64().unwrap();
    assert_eq!(session["ticks"].as_i64(), Some(last_step + 1));

    let (ok, out, _) = replay(dir.path(), &["timeline", "--session", &game, "--json"]);
    assert!(ok);
    let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events[0]["type"], "session_created");
    assert_eq!(events.iter().filter(|e| e["type"] == "session_ended").count(), 1, "the end is shown once");
    let end = events.iter().position(|e| e["type"] == "session_ended").unwrap();
    let last_tick = events.iter().rposition(|e| e["type"] == "tick").unwrap();
    assert!(last_tick < end, "the end comes after the last tick");
    assert!(events.iter().any(|e| e["type"] == "player_joined" && e["userId"] == "ana"));
    let steps: Vec<i64> =
        events.iter().filter(|e| e["type"] == "tick").map(|e| e["step"].as_i64().unwrap()).collect();
    assert_eq!(steps, (0..=last_step).collect::<Vec<_>>());

    let (ok, _, err) = replay(dir.path(), &["timeline", "--session", "nope"]);
    assert!(!ok && err.contains("no session nope"), "{err}");
}

/// Offset and payload of the tick at `step` in the region's tick topic.
fn tick_row(db: &rusqlite::Connection, topic: &str, game: &str, step: i64) -> (i64, String) {
    let mut stmt = db.prepare("SELECT offset, payload FROM records WHERE topic = ?1 AND key = ?2").unwrap();
    let rows = stmt
        .query_map(rusqlite::params![topic, game], |r| {
            Ok((r.get::<_, i64>(0)?, String::from_utf8(r.get::<_, Vec<u8>>(1)?).unwrap()))
        })
        .unwrap();
    rows.map(Result::unwrap)
        .find(|(_, payload)| {
            let v: Value = serde_json::from_str(payload).unwrap();
            v["type"] == "tick" && v["step"] == step
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_a_tampered_tick_and_a_missing_step() {
    let (dir, game, region) = recorded_game().await;
    let topic = format!("ticks.{region}");
    let db = rusqlite::Connection::open(dir.path().join("log.sqlite3")).unwrap();

    // A changed value.
    let (offset, payload) = tick_row(&db, &topic, &game, 3);
    let mut tick: Value = serde_json::from_str(&payload).unwrap();
    tick["value"] = json!(tick["value"].as_u64().unwrap() + 100);
    db.execute(
        "UPDATE records SET payload = ?1 WHERE topic = ?2 AND offset = ?3",
        rusqlite::params![tick.to_string().into_bytes(), topic, offset],
    )
    .unwrap();
    let (ok, out, err) = replay(dir.path(), &["verify", "--all"]);
    assert!(!ok, "a tampered tick must fail verification");
    let first = format!("{topic}@{offset} session {game} step 3");
    assert!(err.contains(&first) && out.contains("the engine says"), "{out}\n{err}");

    // A missing step (restore the value first, so the missing step is the only problem).
    db.execute(
        "UPDATE records SET payload = ?1 WHERE topic = ?2 AND offset = ?3",
        rusqlite::params![payload.into_bytes(), topic, offset],
    )
    .unwrap();
    assert!(replay(dir.path(), &["verify", "--session", &game]).0);
    let (offset, _) = tick_row(&db, &topic, &game, 5);
    db.execute("DELETE FROM records WHERE topic = ?1 AND offset = ?2", rusqlite::params![topic, offset])
        .unwrap();
    let (ok, out, err) = replay(dir.path(), &["verify", "--session", &game]);
    assert!(!ok);
    assert!(err.contains("step 5 missing"), "{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_parquet_is_read_back_by_pyarrow_with_the_logged_ticks() {
    let (dir, game, _) = recorded_game().await;
    let out = dir.path().join("ticks.parquet");
    let (ok, stdout, err) = replay(
        dir.path(),
        &["export", "--kind", "ticks", "--format", "parquet", "--out", out.to_str().unwrap()],
    );
    assert!(ok, "{stdout}{err}");
    let script = "import json, sys, pyarrow.parquet as pq\n\
        t = pq.read_table(sys.argv[1])\n\
        print(json.dumps({'schema': {f.name: str(f.type) for f in t.schema}, 'rows': t.select(['session_id','step','value','round','broken']).to_pylist()}))";
    let output = Command::new(crate::support::test_python())
        .args(["-c", script, out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let read: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(read["schema"]["step"], "int64");
    assert_eq!(read["schema"]["scheduled_at"], "timestamp[ms, tz=+00:00]");
    let (_, timeline, _) = replay(dir.path(), &["timeline", "--session", &game, "--json"]);
    let logged: Vec<Value> = timeline
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "tick")
        .map(|e| json!({"session_id": game, "step": e["step"], "value": e["value"], "round": e["round"], "broken": e["broken"]}))
        .collect();
    assert!(!logged.is_empty());
    assert_eq!(read["rows"].as_array().unwrap(), &logged, "pyarrow reads exactly the logged ticks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_one_self_contained_html_file_with_svg_plots() {
    let (dir, game, _) = recorded_game().await;
    let out = dir.path().join("report.html");
    let (ok, stdout, err) = replay(dir.path(), &["report", "--all", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stdout}{err}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains(&game));
    // Value curve, round lengths, RTT, lateness (kicks: none in this game, said in words).
    assert!(html.matches("<svg").count() >= 4, "{} charts", html.matches("<svg").count());
    assert!(!html.contains("chart not drawn"));
    assert!(html.contains("No kicks and no latency warnings."));
    for external in ["<script", "<link", "src=\"http", "href=\"http"] {
        assert!(!html.contains(external), "the report must not load {external}");
    }
    let (ok, _, err) = replay(dir.path(), &["report", "--session", "nope", "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("no session nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_serve_rebroadcasts_the_recorded_ticks_in_order_at_speed_10() {
    use std::io::{BufRead, BufReader};
    let (dir, game, _) = recorded_game().await;
    let (_, timeline, _) = replay(dir.path(), &["timeline", "--session", &game, "--json"]);
    let logged: Vec<Value> = timeline
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "tick")
        .collect();

    let mut child = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["replay", "serve", "--session", &game, "--speed", "10", "--listen", "127.0.0.1:0"])
        .args(["--log", &format!("embedded://{}", dir.path().display())])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .expect("serve prints its ws:// URL")
        .to_owned();

    let mut spectator = Player::connect(&url).await;
    spectator.send(json!({"action":"join","sessionId":game,"userId":"watcher","token":"-"})).await;
    // Each frame with when it came; a ping once the first tick is in.
    let (mut frames, mut arrived, mut pinged) = (Vec::new(), Vec::new(), false);
    let code = loop {
        match spectator.next().await {
            crate::support::Seen::Json(frame) => {
                if frame["type"] == "tick" && !pinged {
                    spectator.send(json!({"action":"ping","clientTimestamp":7})).await;
                    pinged = true;
                }
                arrived.push(std::time::Instant::now());
                frames.push(frame);
            }
            crate::support::Seen::Closed(code) => break code,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, Some(1000));
    assert_eq!(frames[0]["type"], "session_joined");
    let pong = frames.iter().find(|f| f["type"] == "pong").expect("a spectator's ping is answered");
    assert_eq!(pong["clientTimestamp"], 7);
    let ticks: Vec<(usize, &Value)> =
        frames.iter().enumerate().filter(|(_, f)| f["type"] == "tick").collect();
    assert_eq!(ticks.len(), logged.len());
    for ((_, sent), original) in ticks.iter().zip(&logged) {
        for field in ["step", "value", "round", "broken", "scheduledAt"] {
            assert_eq!(sent[field], original[field], "{field} of {original}");
        }
    }
    assert_eq!(frames.last().unwrap()["type"], "session_ended");
    // Paced at 10×: never ahead of the recorded pace divided by ten (the replay waits for each
    // frame's time), and well behind the recorded pace itself.
    let recorded_ms =
        logged.last().unwrap()["scheduledAt"].as_i64().unwrap() - logged[0]["scheduledAt"].as_i64().unwrap();
    let (first, last) = (ticks[0].0, ticks[ticks.len() - 1].0);
    let played_ms = arrived[last].duration_since(arrived[first]).as_secs_f64() * 1000.0;
    assert!(played_ms >= recorded_ms as f64 / 10.0 - 2.0, "played {played_ms} ms, recorded {recorded_ms} ms");
    assert!(
        played_ms < recorded_ms as f64 / 2.0,
        "played {played_ms} ms, recorded {recorded_ms} ms: not sped up"
    );
}

/// Loads `tests/fixtures/short-game.jsonl` (records as a `tickcast up` logged them) into a
/// fresh embedded log.
async fn fixture_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = tickcast_eventlog::embedded::EmbeddedLog::open(dir.path()).unwrap();
    let fixture = include_str!("../fixtures/short-game.jsonl");
    for line in fixture.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let record = tickcast_eventlog::NewRecord {
            key: row["key"].as_str().unwrap().to_owned(),
            timestamp_ms: row["ts"].as_i64().unwrap(),
            payload: row["payload"].to_string().into_bytes().into(),
        };
        let topic = row["topic"].as_str().unwrap();
        let offsets = tickcast_eventlog::EventLog::append(
            &log,
            topic,
            vec![record],
            tickcast_eventlog::Durability::Durable,
        )
        .await
        .unwrap();
        assert_eq!(
            offsets,
            [tickcast_eventlog::Position::Offset(row["offset"].as_u64().unwrap())],
            "the fixture's offsets are reproduced"
        );
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_timeline_and_verify_of_a_committed_fixture() {
    let dir = fixture_log().await;
    let (ok, out, err) =
        replay(dir.path(), &["timeline", "--session", "01a20d30-9d46-751f-b18b-7d3ddc2990a5", "--json"]);
    assert!(ok, "{err}");
    let want = include_str!("../fixtures/short-game.timeline.jsonl");
    let parse =
        |text: &str| text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect::<Vec<_>>();
    assert_eq!(parse(&out), parse(want), "timeline differs from tests/fixtures/short-game.timeline.jsonl");
    let (ok, out, err) = replay(dir.path(), &["verify", "--all"]);
    assert!(ok, "{err}");
    assert_eq!(out, include_str!("../fixtures/short-game.verify.txt"));
}

/// Two writers on one embedded log would hand out the same offsets: a second `tickcast up` on a
/// data directory in use fails at once, naming the lock file and the holder's PID, while
/// `tickcast replay` still reads the log beside the running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_is_refused_and_readers_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[]);
    let ticket = server.start_game(json!({"userId":"ana","tickMs":20,"countdownMs":0,"maxRounds":1})).await;
    let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("TICKCAST_TOKEN_SECRET", crate::support::TOKEN_SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a second writer started: {stderr}");
    let lock = dir.path().join("lock");
    assert!(stderr.contains(&lock.display().to_string()), "names the lock file: {stderr}");
    assert!(stderr.contains(&format!("process {}", server.pid())), "names the holder: {stderr}");
    assert!(stderr.contains("--data-dir"), "says what to do: {stderr}");
    let (ok, stdout, stderr) = replay(dir.path(), &["sessions", "--json"]);
    assert!(ok, "replay reads a log in use: {stderr}");
    assert!(stdout.contains(ticket["gameId"].as_str().unwrap()), "{stdout}");
}
