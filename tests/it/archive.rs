//! The archiver inside `tickcast up`: Parquet files read back by pyarrow (an independent
//! reader) match the log, also after a `kill -9` in the middle of a file.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{Player, Server, log_events, test_python};

/// What pyarrow finds in an archive: the distinct ticks and event ids, the row counts per kind,
/// and the tick schema.
fn read_archive(dir: &Path) -> Value {
    let script = r#"
import json, os, sys, pyarrow.dataset as ds
root = sys.argv[1]
out = {"rows": {}, "ticks": [], "event_ids": []}
for kind in sorted(os.listdir(root)):
    name = kind.split("=", 1)[1]
    table = ds.dataset(os.path.join(root, kind), format="parquet", partitioning="hive").to_table()
    out["rows"][name] = table.num_rows
    if name == "ticks":
        out["tick_schema"] = {f.name: str(f.type) for f in table.schema}
        out["ticks"] = sorted({(s, st) for s, st in zip(table["session_id"].to_pylist(), table["step"].to_pylist())})
    else:
        out["event_ids"] += table["event_id" if "event_id" in table.schema.names else "id"].to_pylist()
out["event_ids"] = sorted(set(out["event_ids"]))
print(json.dumps(out))
"#;
    let output = Command::new(test_python()).args(["-c", script]).arg(dir).output().unwrap();
    assert!(output.status.success(), "pyarrow: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// `tickcast replay ARGS --archive DIR`: (success, stdout + stderr).
pub(crate) fn replay_archive(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .arg("replay")
        .args(args)
        .arg("--archive")
        .arg(dir)
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The ticks and the ids of every other event in the server's log.
async fn logged(server: &Server, region: &str) -> (BTreeSet<(String, i64)>, BTreeSet<String>) {
    let mut ticks = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for topic in ["game-events".to_owned(), format!("ticks.{region}")] {
        for event in log_events(server, &topic).await {
            if event["type"] == "tick" {
                ticks.insert((
                    event["sessionId"].as_str().unwrap().to_owned(),
                    event["step"].as_i64().unwrap(),
                ));
            } else {
                ids.insert(event["id"].as_str().unwrap().to_owned());
            }
        }
    }
    (ticks, ids)
}

fn archived(read: &Value) -> (BTreeSet<(String, i64)>, BTreeSet<String>) {
    let ticks = read["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_str().unwrap().to_owned(), t[1].as_i64().unwrap()))
        .collect();
    let ids = read["event_ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect();
    (ticks, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_holds_every_event_with_typed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let ticket = server
        .start_game(json!({"userId":"ana","tickMs":20,"countdownMs":0,"maxRounds":2,"minBreakSteps":30,"maxBreakSteps":40}))
        .await;
    let region = ticket["region"].as_str().unwrap().to_owned();
    let mut player = Player::join(&ticket, "ana", None).await;
    let (_, code) = player.until_closed().await;
    assert_eq!(code, Some(1000));
    assert!(server.terminate().success(), "SIGTERM closes the open archive files and exits 0");

    let archive = dir.path().join("archive");
    let read = read_archive(&archive);
    let (log_ticks, log_ids) = logged(&server, &region).await;
    let (ticks, ids) = archived(&read);
    assert_eq!(ticks, log_ticks, "every logged tick, once");
    assert_eq!(ids, log_ids, "every other logged event, once");
    assert_eq!(read["rows"]["joins"], 1, "{read}");
    assert_eq!(read["tick_schema"]["step"], "int64");
    assert_eq!(read["tick_schema"]["value"], "uint64");
    assert_eq!(read["tick_schema"]["broken"], "bool");
    assert_eq!(read["tick_schema"]["emitted_at"], "timestamp[ms, tz=+00:00]");
    // Partitioned by kind, date and (ticks) region; no file left unclosed.
    let ticks_dir = std::fs::read_dir(archive.join("kind=ticks")).unwrap().next().unwrap().unwrap().path();
    assert!(ticks_dir.file_name().unwrap().to_str().unwrap().starts_with("date=20"), "{ticks_dir:?}");
    let region_dir = ticks_dir.join(format!("region={region}"));
    let files: Vec<_> = std::fs::read_dir(&region_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.iter().all(|f| f.extension().is_some_and(|e| e == "parquet")), "{files:?}");

    // The README's DuckDB query over the whole archive.
    let query = format!(
        "SELECT region, count(*) AS ticks FROM (SELECT DISTINCT region, session_id, step \
         FROM read_parquet('{}/kind=ticks/**/*.parquet', hive_partitioning = true)) GROUP BY region",
        archive.display()
    );
    let script = "import duckdb, json, sys\nprint(json.dumps(duckdb.sql(sys.argv[1]).fetchall()))";
    let output = Command::new(test_python()).args(["-c", script, &query]).output().unwrap();
    assert!(output.status.success(), "duckdb: {}", String::from_utf8_lossy(&output.stderr));
    let rows: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(rows, json!([[region, log_ticks.len()]]));

    // The replay tools read the archive as they read the log.
    let (ok, out) = replay_archive(&archive, &["verify", "--all"]);
    assert!(ok && out.contains("verified 1 session(s)"), "{out}");
    let (ok, out) = replay_archive(&archive, &["sessions", "--json"]);
    assert!(ok, "{out}");
    let session: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(session["endReason"], "max_rounds", "{session}");
    assert_eq!(session["ticks"].as_u64(), Some(log_ticks.len() as u64), "{session}");
}

/// kill -9 while a file is open, restart on the same log: after de-duplication the archive
/// holds every event of the log exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_a_file_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &[]);
    let ticket = server
        .start_game(json!({"userId":"ana","tickMs":20,"countdownMs":0,"maxRounds":3,"minBreakSteps":60,"maxBreakSteps":80}))
        .await;
    let region = ticket["region"].as_str().unwrap().to_owned();
    let mut player = Player::join(&ticket, "ana", None).await;
    // Well into the game, with files open (they roll after 60 s).
    loop {
        let frame = player.next_json().await;
        if frame["type"] == "tick" && frame["step"].as_i64() >= Some(40) {
            break;
        }
    }
    server.kill9();
    drop(player);
    let mut restarted = Server::start_in(dir.path(), &[]);
    // The restarted generator finishes the game; the player comes back for its end.
    let endpoint =
        ticket["wsEndpoint"].as_str().unwrap().replace(&server.addr.to_string(), &restarted.addr.to_string());
    let mut player = Player::connect(&endpoint).await;
    player
        .send(json!({"action":"join","sessionId":ticket["gameId"],"userId":"ana","token":ticket["token"]}))
        .await;
    let (_, code) = player.until_closed().await;
    assert_eq!(code, Some(1000));
    assert!(restarted.terminate().success());

    let read = read_archive(&dir.path().join("archive"));
    let (log_ticks, log_ids) = logged(&restarted, &region).await;
    let (ticks, ids) = archived(&read);
    assert_eq!(ticks, log_ticks, "after de-duplication, every logged tick once");
    assert_eq!(ids, log_ids, "after de-duplication, every other logged event once");
    let (ok, out) = replay_archive(&dir.path().join("archive"), &["verify", "--all"]);
    assert!(ok, "the archive of a crashed archiver verifies: {out}");
}
