//! `tickcast bots` against `tickcast up`: a small load, checked for behaviour (every step
//! delivered, exit status), never for speed.

use std::process::Command;

use serde_json::Value;

use crate::support::Server;

#[test]
fn a_small_bots_run_gets_every_step_and_exits_zero() {
    let server = Server::start();
    let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["bots", "--edge", &server.url(""), "--sessions", "3", "--players-per-session", "4"])
        .args(["--duration", "3s", "--tick-ms", "50", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bots failed: {stdout} {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["players"], 12);
    assert_eq!(report["connected"], 12);
    assert_eq!(report["missingSteps"], 0);
    assert_eq!(report["duplicateSteps"], 0);
    assert_eq!(report["outOfOrderSteps"], 0);
    assert_eq!(report["completePlayers"], 12);
    // 3 s of 50 ms ticks, at least, for each of 12 players.
    assert!(report["expectedSteps"].as_u64().unwrap() >= 12 * 60, "{report}");
    // Every player connected before its game started: all of its ticks are live ones, each
    // received after it was due.
    assert_eq!(report["backlogTicks"], 0, "{report}");
    let lateness = &report["latenessMs"];
    let (p50, p99, max) = (
        lateness["p50"].as_f64().unwrap(),
        lateness["p99"].as_f64().unwrap(),
        lateness["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{lateness}");
    assert_eq!(lateness["early"], 0, "one clock: no tick arrives before it is due");
}

/// A burst (every game created back to back, then every player at once) against a server that
/// admits 8 players: the bots report the players refused up front, and the admitted ones get
/// every step.
#[test]
fn a_burst_past_the_capacity_reports_the_refused_and_serves_the_admitted() {
    let server = Server::start_with(&["--max-players", "8"]);
    let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["bots", "--edge", &server.url(""), "--sessions", "4", "--players-per-session", "3"])
        .args(["--duration", "3s", "--tick-ms", "50", "--burst", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "bots failed: {stdout} {}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["arrival"], "burst");
    // Games of 3 players, created one after another: two whole games, a third with two
    // players, the fourth refused at its start.
    assert_eq!((report["refused"].as_u64(), report["connected"].as_u64()), (Some(4), Some(8)), "{report}");
    assert_eq!(report["missingSteps"], 0, "{report}");
    assert_eq!(report["completePlayers"], 8, "{report}");
}

#[test]
fn bots_that_answer_too_slowly_are_kicked_and_the_run_says_so() {
    let server = Server::start_with(&["--latency-samples", "2"]);
    let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["bots", "--edge", &server.url(""), "--sessions", "1", "--players-per-session", "2"])
        .args(["--duration", "4s", "--rtt-ms", "400", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["kicks"], 2, "{report}");
}

#[test]
fn bots_explain_an_unreachable_edge() {
    let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["bots", "--edge", "http://127.0.0.1:1", "--sessions", "1", "--duration", "1s"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the edge"), "{stderr}");
}
