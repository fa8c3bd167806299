//! The Grafana dashboard and the alert rules (infra/grafana, infra/prometheus) against what the
//! processes expose: every series they query is on `tickcast up`'s `/metrics` after a short game,
//! and on the split roles' listeners from the moment they are ready, before any game (so a
//! dashboard shows 0, not "no data"). The split test also plays a game through the standalone
//! archiver and projector.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::cluster::{Cluster, REGION, Role, free_port};
use crate::infra::{repo_file, yaml_documents};
use crate::support::{Player, eventually, http_client};

/// The families of a Prometheus text exposition, parsed by the Prometheus project's Python
/// client: name → {type, samples (names), labels}.
fn parse_exposition(text: &str) -> serde_json::Map<String, Value> {
    use std::io::Write;
    let script = "import json, sys\nfrom prometheus_client.parser import text_string_to_metric_families\n\
        print(json.dumps({f.name: {'type': f.type, 'samples': sorted({s.name for s in f.samples}),\n\
        'labels': sorted({k for s in f.samples for k in s.labels})}\n\
        for f in text_string_to_metric_families(sys.stdin.read())}))";
    let mut child = std::process::Command::new(crate::support::test_python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "/metrics does not parse: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice::<Value>(&output.stdout).unwrap().as_object().unwrap().clone()
}

/// Every `tickcast_…` series name in a PromQL expression.
fn series_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("tickcast_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

/// Every series name a family's samples carry (`_bucket`, `_count`, … for histograms).
fn exposed_names(families: &serde_json::Map<String, Value>) -> BTreeSet<String> {
    families
        .values()
        .flat_map(|f| f["samples"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()))
        .collect()
}

/// Every query of the dashboard and of the alert rules, with where it comes from.
fn dashboard_and_alert_queries() -> Vec<(&'static str, String)> {
    let dashboard: Value =
        serde_json::from_str(&repo_file("infra/grafana/dashboards/tickcast.json")).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(("the dashboard", target["expr"].as_str().unwrap().to_owned()));
        }
    }
    let alerts = yaml_documents("infra/prometheus/alerts.yaml").remove(0);
    for group in alerts["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            queries.push(("the alert rules", rule["expr"].as_str().unwrap().to_owned()));
        }
    }
    assert!(queries.len() > 20, "the dashboard and the rules have their queries");
    queries
}

/// Every series the dashboard and the alert rules query is among `exposed`.
fn assert_every_query_exposed(exposed: &BTreeSet<String>, when: &str) {
    let mut missing = BTreeSet::new();
    for (source, expr) in &dashboard_and_alert_queries() {
        let names = series_in(expr);
        assert!(!names.is_empty() || expr.contains("up{"), "{source}: {expr} queries no tickcast series");
        for name in names {
            if !exposed.contains(&name) {
                missing.insert(format!("{name} ({source})"));
            }
        }
    }
    assert!(missing.is_empty(), "{when}: no process exposes {missing:?}");
}

/// The series operators rely on, with their labels, on `tickcast up`'s /metrics after a short
/// game (every role runs in that process), lateness as histograms with buckets; and every series
/// the dashboard and the alert rules query among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_dashboard_and_alerts_query_is_exposed_after_a_short_game() {
    // Admission control on, as shipped (the tests' servers run without): its gauge is queried.
    // A game in the first 10 s is never refused.
    let server = crate::support::Server::start_with(&["--saturation-lag-ms", "10"]);
    let ticket = server
        .start_game(serde_json::json!({"userId":"ana","tickMs":50,"countdownMs":0,"maxRounds":1,"minBreakSteps":10,"maxBreakSteps":12}))
        .await;
    let mut player = crate::support::Player::join(&ticket, "ana", None).await;
    let (_, ended) = player.until("session_ended").await;
    assert_eq!(ended["reason"], "max_rounds");
    let families = crate::support::eventually("an RTT sample and a projected end on /metrics", || {
        let server = &server;
        async move {
            let families = parse_exposition(&server.metrics().await);
            let rtt_seen = families["tickcast_gateway_rtt_ms"]["samples"]
                .as_array()
                .is_some_and(|s| s.iter().any(|n| n == "tickcast_gateway_rtt_ms_count"));
            (rtt_seen && families.contains_key("tickcast_projector_lag_ms")).then_some(families)
        }
    })
    .await;
    let expect = |name: &str, kind: &str, labels: &[&str]| {
        let family = families.get(name).unwrap_or_else(|| panic!("/metrics has no {name}"));
        assert_eq!(family["type"], kind, "{name}");
        for label in labels {
            assert!(
                family["labels"].as_array().unwrap().iter().any(|l| l == label),
                "{name} has no {label} label"
            );
        }
        if kind == "histogram" {
            assert!(family["samples"].as_array().unwrap().iter().any(|s| *s == format!("{name}_bucket")));
        }
    };
    expect("tickcast_ticks_emitted", "counter", &["region", "topic"]);
    expect("tickcast_tick_generator_lateness_ms", "histogram", &["region", "le"]);
    expect("tickcast_gateway_tick_lateness_ms", "histogram", &["region", "le"]);
    expect("tickcast_sessions_active", "gauge", &[]);
    expect("tickcast_gateway_players_connected", "gauge", &["region", "state"]);
    expect("tickcast_gateway_rtt_ms", "histogram", &["region"]);
    expect("tickcast_gateway_latency_warnings", "counter", &["region", "status"]);
    expect("tickcast_gateway_players_kicked", "counter", &["region", "reason"]);
    expect("tickcast_gateway_frames_forwarded", "counter", &["region"]);
    expect("tickcast_gateway_frames_dropped", "counter", &["region"]);
    expect("tickcast_gateway_send_queue_bytes", "gauge", &["region"]);
    expect("tickcast_log_consumer_lag_ms", "gauge", &["group", "topic", "partition"]);
    expect("tickcast_log_partitions_owned", "gauge", &["group", "topic"]);
    expect("tickcast_log_rebalances", "counter", &["group"]);
    expect("tickcast_log_append_ms", "histogram", &["topic"]);
    expect("tickcast_archiver_rows", "counter", &["kind"]);
    expect("tickcast_archiver_files", "counter", &["kind"]);
    expect("tickcast_projector_lag_ms", "gauge", &[]);
    expect("tickcast_ready", "gauge", &[]);

    assert_every_query_exposed(&exposed_names(&families), "tickcast up after a short game");
}

/// `tickcast ROLE --log LOG … --admin-listen ADDR` for a role without a listener of its own:
/// the role, and its admin listener's base URL.
fn role_with_admin(cluster: &Cluster, args: &[&str]) -> (Role, String) {
    let admin = format!("127.0.0.1:{}", free_port());
    let mut all = args.to_vec();
    all.extend(["--log", &cluster.log, "--admin-listen", &admin]);
    all.extend(cluster.log_flags.iter().map(String::as_str));
    (Role::start(&all, None), format!("http://{admin}"))
}

/// Every split role on Kafka (edge, gateway, tick generator, archiver, projector, matchmaker), each on its
/// own listener: from the moment each is ready, before any game, the union of their `/metrics`
/// holds every series the dashboard and the alert rules query. Then a game played through them
/// is archived by the standalone archiver and shown ended by the projector's store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_roles_expose_every_dashboard_series_from_the_start_and_archive_and_project_a_game() {
    let mut cluster = Cluster::start_with(0, 2, &[]);
    let generator_admin = format!("127.0.0.1:{}", free_port());
    cluster.generator_flags = vec!["--admin-listen".into(), generator_admin.clone()];
    cluster.add_generator();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let store = format!("embedded://{}", dir.path().join("store").display());
    let (_archiver, archiver_admin) = role_with_admin(
        &cluster,
        &["archiver", "--archive", archive.to_str().unwrap(), "--archive-roll-age", "1s"],
    );
    let (_projector, projector_admin) = role_with_admin(&cluster, &["projector", "--store", &store]);
    let (_matchmaker, matchmaker_admin) = role_with_admin(&cluster, &["matchmaker"]);
    // An edge that answers the read API from the projector's store.
    let gateway_url = cluster.gateway.url.clone().unwrap();
    let mut args = vec!["edge", "--log", &cluster.log, "--listen", "127.0.0.1:0", "--store", &store];
    let gateway = format!("{REGION}={gateway_url}");
    args.extend(["--gateway", &gateway]);
    args.extend(cluster.log_flags.iter().map(String::as_str));
    let edge = Role::start(&args, Some("edge listening on "));
    let edge_url = edge.url.clone().unwrap();

    let http = http_client();
    let listeners = [
        edge_url.clone(),
        // The gateway prints its WebSocket URL: ws://HOST:PORT/ws/REGION.
        gateway_url.replacen("ws://", "http://", 1).split("/ws/").next().unwrap().to_owned(),
        format!("http://{generator_admin}"),
        archiver_admin,
        projector_admin,
        matchmaker_admin,
    ];
    for base in &listeners {
        eventually(&format!("{base}/readyz answers 200"), || {
            let http = &http;
            async move {
                let status = http.get(format!("{base}/readyz")).send().await.ok()?.status();
                (status == 200).then_some(())
            }
        })
        .await;
    }
    let mut exposed = BTreeSet::new();
    for base in &listeners {
        let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        exposed.extend(exposed_names(&parse_exposition(&text)));
    }
    assert_every_query_exposed(&exposed, "the split roles, ready, before any game");

    // A game through them: archived as Parquet, projected as ended.
    let start = json!({"userId":"ana","tickMs":50,"countdownMs":0,"maxRounds":1,"minBreakSteps":10,"maxBreakSteps":12});
    let response = http.post(format!("{edge_url}/edge/game/start")).json(&start).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let ticket: Value = response.json().await.unwrap();
    let mut player = Player::join(&ticket, "ana", None).await;
    let (_, ended) = player.until("session_ended").await;
    assert_eq!(ended["reason"], "max_rounds");
    let id = ticket["gameId"].as_str().unwrap().to_owned();
    eventually("the projector's store shows the game ended", || {
        let (http, url, ended) = (&http, format!("{edge_url}/edge/sessions/{id}"), &ended);
        async move {
            let detail: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (detail["state"] == "ended" && detail["seed"] == ended["seed"]).then_some(())
        }
    })
    .await;
    let ticks = archive.join("kind=ticks");
    eventually("the archiver wrote the game's ticks as Parquet", || {
        let ticks = ticks.clone();
        async move {
            let found = walk(&ticks).into_iter().any(|f| f.extension().is_some_and(|e| e == "parquet"));
            found.then_some(())
        }
    })
    .await;
}

/// Every file under `dir` (none if it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] })
        .collect()
}
