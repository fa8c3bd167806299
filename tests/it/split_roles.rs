//! The archiver and the projector as processes of their own (`tickcast archiver`, `tickcast
//! projector`), on an embedded log another process wrote: each reads it to the end, serves its
//! admin listener, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::support::{Process, eventually};

/// A role process and its admin listener.
struct Role {
    process: Process,
    admin: SocketAddr,
}

fn start_role(args: &[&str]) -> Role {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(args)
        .args(["--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let admin = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.trim().strip_prefix("admin (/metrics, /healthz, /readyz) on http://").map(str::to_owned)
        })
        .expect("the role printed its admin listener")
        .parse()
        .unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    Role { process: Process(child), admin }
}

/// The value of the first sample of `series` (any labels) on `admin`'s /metrics.
async fn series_value(admin: SocketAddr, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{admin}/metrics")).await.ok()?.text().await.ok()?;
    text.lines()
        .filter(|l| l.starts_with(series) && l[series.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(f64::max)
}

/// A log with one short game played to its end, written through the log's API as the roles
/// write it (no role has read it yet, so no group has committed on it): its directory, and the
/// game.
async fn logged_game() -> (tempfile::TempDir, String) {
    use tickcast_eventlog::{Durability, EventLog, NewRecord};
    use tickcast_schemas::event::{
        EndReason, Event, EventBody, PlayerJoined, SessionCreated, SessionEnded, Tick,
    };
    let dir = tempfile::tempdir().unwrap();
    let log = tickcast_eventlog::embedded::EmbeddedLog::open(dir.path()).unwrap();
    let (id, seed, start_at) =
        ("0191c0de-0000-7000-8000-000000000001".to_owned(), 42u64, 1_800_000_000_000i64);
    let created = SessionCreated {
        region: "eu-west-1".into(),
        seed,
        seed_hash: tickcast_engine::seed_hash(seed),
        start_at,
        tick_ms: 100,
        countdown_ms: 0,
        min_break_steps: 10,
        max_break_steps: 20,
        max_rounds: 1,
        engine: 1,
        created_by: "ana".into(),
        max_tick_ms: None,
    };
    let params = created.engine_params();
    let record = |at: i64, source: &str, body: EventBody| {
        let event = Event::new(id.clone(), at, source, body);
        NewRecord { key: id.clone(), timestamp_ms: at, payload: event.to_bytes().into() }
    };
    let joined = PlayerJoined {
        user_id: "ana".into(),
        connection_id: "c1".into(),
        gateway_id: "gw".into(),
        region: "eu-west-1".into(),
    };
    let mut ticks = Vec::new();
    let mut last_step = 0;
    for step in 0.. {
        let state = tickcast_engine::state_at(&params, step);
        let at = start_at + step * 100;
        let tick = Tick {
            step,
            value: state.value,
            round: state.round,
            broken: state.broken,
            scheduled_at: at,
            emitted_at: at,
        };
        ticks.push(record(at, "tick-generator@0", EventBody::Tick(tick)));
        if state.broken {
            last_step = step;
            break;
        }
    }
    let end_at = start_at + last_step * 100;
    let ended = EventBody::SessionEnded(SessionEnded { reason: EndReason::MaxRounds, last_step, seed });
    let events = vec![
        record(start_at, "edge@0", EventBody::SessionCreated(created)),
        record(start_at, "gateway@eu-west-1/0", EventBody::PlayerJoined(joined)),
        record(end_at, "tick-generator@0", ended.clone()),
    ];
    ticks.push(record(end_at, "tick-generator@0", ended));
    log.append("game-events", events, Durability::Durable).await.unwrap();
    log.append("ticks.eu-west-1", ticks, Durability::Durable).await.unwrap();
    (dir, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archiver_and_the_projector_run_as_processes_of_their_own() {
    let (dir, game) = logged_game().await;
    let log = format!("embedded://{}", dir.path().display());

    let archive = tempfile::tempdir().unwrap();
    let archive_dir = archive.path().display().to_string();
    // Files roll after a second, so the rows are written (and counted) without waiting a minute.
    let mut archiver =
        start_role(&["archiver", "--log", &log, "--archive", &archive_dir, "--archive-roll-age", "1s"]);
    eventually("the archiver's rows on its admin listener", || async {
        series_value(archiver.admin, "tickcast_archiver_rows_total").await.filter(|rows| *rows > 0.0)
    })
    .await;
    assert!(archiver.process.terminate().success(), "the archiver stops cleanly on SIGTERM");
    let verified = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["replay", "verify", "--all", "--archive", &archive_dir])
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&verified.stdout), String::from_utf8_lossy(&verified.stderr));
    assert!(verified.status.success() && out.contains("verified 1 session(s)"), "{out} {err}");

    let store = tempfile::tempdir().unwrap();
    let store_url = format!("embedded://{}", store.path().display());
    let mut projector = start_role(&["projector", "--log", &log, "--store", &store_url]);
    eventually("the projector's events on its admin listener", || async {
        series_value(projector.admin, "tickcast_projector_events_total").await.filter(|n| *n > 0.0)
    })
    .await;
    let ready = reqwest::get(format!("http://{}/readyz", projector.admin)).await.unwrap().status();
    assert_eq!(ready, 200, "a projector that joined its group is ready");
    assert!(projector.process.terminate().success(), "the projector stops cleanly on SIGTERM");
    let db = rusqlite::Connection::open(store.path().join("projections.sqlite")).unwrap();
    let phase: String =
        db.query_row("SELECT phase FROM sessions WHERE session_id = ?1", [&game], |row| row.get(0)).unwrap();
    assert_eq!(phase, "ended", "the game is in the store, ended");
}
