//! The command line: `tickcast engine`, and bad flags answered with a message that says what to fix.

use std::process::Command;

use serde_json::Value;

/// `tickcast ARGS` in a directory of its own (a command that gets as far as making its data
/// directory makes it there, not in the repository).
fn tickcast(args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_tickcast")).args(args).current_dir(dir.path()).output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn engine_prints_one_json_line_in_field_order() {
    let (ok, out, _) = tickcast(&["engine", "--seed", "0", "--step", "-3"]);
    assert!(ok);
    assert_eq!(out, "{\"step\":-3,\"value\":0,\"round\":0,\"broken\":false}\n");
    let vectors: Value =
        serde_json::from_str(include_str!("../../engine/tests/vectors/engine-v1.json")).unwrap();
    for case in vectors["state_at_step"].as_array().unwrap().iter().step_by(37) {
        let (seed, step) = (case["seed"].as_str().unwrap(), case["step"].to_string());
        let (min, max) = (case["minBreakSteps"].to_string(), case["maxBreakSteps"].to_string());
        let args =
            ["engine", "--seed", seed, "--step", &step, "--min-break-steps", &min, "--max-break-steps", &max];
        let (ok, out, err) = tickcast(&args);
        assert!(ok, "{err}");
        let got: Value = serde_json::from_str(&out).unwrap();
        for field in ["step", "value", "round", "broken"] {
            assert_eq!(got[field], case[field], "{field} of {case}");
        }
    }
}

#[test]
fn engine_hash_lets_a_player_check_a_revealed_seed() {
    let (ok, out, _) = tickcast(&["engine", "--seed", "18446744073709551615", "--hash"]);
    assert!(ok);
    assert_eq!(out.trim(), tickcast_engine::seed_hash(u64::MAX));
}

#[test]
fn bad_flags_say_what_to_fix() {
    let cases: &[(&[&str], &str)] = &[
        (&["engine", "--seed", "-1", "--step", "1"], "--seed"),
        (&["engine", "--seed", "abc", "--step", "1"], "--seed"),
        (&["engine", "--seed", "1"], "--step"),
        (&["engine", "--seed", "1", "--step", "1", "--min-break-steps", "0"], "--min-break-steps"),
        (
            &["engine", "--seed", "1", "--step", "1", "--min-break-steps", "50", "--max-break-steps", "40"],
            "--min-break-steps",
        ),
        (&["up", "--listen", "not-an-address"], "--listen"),
        (&["edge", "--log", "postgres://db"], "embedded://"),
        (&["gateway", "--region", "mars-1", "--log", "embedded:///tmp/tickcast-cli-test"], "mars-1"),
        (&["up", "--default-tick-ms", "5"], "--default-tick-ms"),
        (&["frobnicate"], "frobnicate"),
        // Values that make no sense together are refused before anything starts.
        (&["up", "--warning-latency-ms", "200", "--max-latency-ms", "150"], "WARNING_LATENCY_MS (200)"),
        (&["gateway", "--region", "eu-west-1", "--warning-jitter-ms", "60"], "MAX_JITTER_MS (50)"),
        (&["up", "--regions", "eu west"], "--regions"),
        (&["edge", "--gateway", "eu-west-1"], "REGION=ws://"),
        (&["edge", "--gateway", "eu-west-1=http://h:1"], "ws:// or wss://"),
        (&["archiver", "--log", "embedded:///tmp/tickcast-cli-test"], "--archive DIR"),
        (&["replay", "verify", "--log", "embedded:///tmp/tickcast-cli-test"], "--session"),
        // Limits and secrets that cannot work say so.
        (&["up", "--ticket-ttl", "0s"], "longer than 0 s"),
        (&["up", "--trusted-proxies", "10.0.0.0/33"], "--trusted-proxies"),
        (
            &["up", "--previous-token-secrets", "an old secret, long enough"],
            "TICKCAST_PREVIOUS_TOKEN_SECRETS_UNTIL",
        ),
        (&["up", "--saturation-hold", "0s"], "--saturation-hold"),
        (&["up", "--tls-cert", "cert.pem"], "--tls-key"),
        (
            &["topics", "create", "--log", "kafka://127.0.0.1:1", "--kafka-sasl-mechanism", "PLAIN"],
            "TICKCAST_KAFKA_SASL_USERNAME",
        ),
        (
            &["topics", "create", "--log", "kafka://127.0.0.1:1", "--kafka-security-protocol", "sasl_ssl"],
            "--kafka-sasl-mechanism",
        ),
        (
            &["topics", "create", "--log", "kafka://127.0.0.1:1", "--kafka-ca", "/nonexistent/ca.pem"],
            "not a file",
        ),
        (
            &["topics", "create", "--log", "kafka://127.0.0.1:1", "--kafka-security-protocol", "tls"],
            "sasl_ssl",
        ),
        (
            &["up", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"],
            "cannot read the TLS certificate chain /nonexistent/cert.pem",
        ),
    ];
    for (args, mention) in cases {
        let (ok, _, err) = tickcast(args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(mention), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `/` serves the built web client; without a build it says how to make one (never a 404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_page_is_served_or_explains_how_to_build_it() {
    let unbuilt = crate::support::Server::start_with(&["--web-dir", "/nonexistent/web/dist"]);
    let response = reqwest::get(unbuilt.url("/")).await.unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("not built") && page.contains("npm ci"), "{page}");
    assert!(reqwest::get(unbuilt.url("/lite")).await.unwrap().text().await.unwrap().contains("<html"));

    let build = tempfile::tempdir().unwrap();
    std::fs::create_dir(build.path().join("assets")).unwrap();
    std::fs::write(build.path().join("index.html"), "<html><script src=\"/assets/app.js\"></script></html>")
        .unwrap();
    std::fs::write(build.path().join("assets/app.js"), "console.log('tickcast')").unwrap();
    let built = crate::support::Server::start_with(&["--web-dir", build.path().to_str().unwrap()]);
    let page = reqwest::get(built.url("/")).await.unwrap().text().await.unwrap();
    assert!(page.contains("/assets/app.js"), "{page}");
    let script = reqwest::get(built.url("/assets/app.js")).await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().contains("javascript"));
}

/// The first stderr line of `tickcast tick-generator` on a fresh embedded log that says its
/// partitions were assigned, read with a deadline; the process is killed after.
fn first_assignment_line(format: &str) -> String {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["tick-generator", "--log", &format!("embedded://{}", dir.path().display())])
        .args(["--log-format", format])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("partitions assigned") && tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("no assignment logged");
    child.kill().unwrap();
    child.wait().unwrap();
    line
}

/// Off a terminal, text logs carry no colour codes; `--log-format json` writes one JSON object a
/// line, the event's fields as keys (a partition as `topic/partition`, not a struct dump).
#[test]
fn logs_are_plain_text_off_a_terminal_and_json_when_asked() {
    let text = first_assignment_line("text");
    assert!(!text.contains('\u{1b}'), "escape codes in a log written to a pipe: {text:?}");
    assert!(text.contains("partitions=game-events/0"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&first_assignment_line("json")).unwrap();
    assert_eq!(json["level"], "INFO", "{json}");
    assert_eq!(json["partitions"], "game-events/0", "{json}");
    assert!(json["message"].as_str().unwrap().contains("partitions assigned"), "{json}");
    assert!(json["timestamp"].is_string(), "{json}");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["engine", "--log-format", "xml"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("text, json"), "the choices are named");
}

/// `tickcast up` takes its log from `TICKCAST_LOG` as every other role does: the records land
/// in the log the variable names, not in the data directory's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_reads_its_log_from_tickcast_log() {
    let elsewhere = tempfile::tempdir().unwrap();
    let url = format!("embedded://{}", elsewhere.path().display());
    let server = crate::support::Server::start_with_env(&[("TICKCAST_LOG", &url)], &[]);
    let ticket = server.start_game(serde_json::json!({"userId":"ana"})).await;
    assert!(elsewhere.path().join("log.sqlite3").exists(), "the log is where TICKCAST_LOG says");
    assert!(!server.data_dir.join("log.sqlite3").exists(), "not in the data directory");
    let log = tickcast_eventlog::embedded::EmbeddedLog::open_read_only(elsewhere.path()).unwrap();
    let events = crate::support::topic_events(&log, "game-events").await;
    assert!(events.iter().any(|e| e["type"] == "session_created" && e["sessionId"] == ticket["gameId"]));
}
