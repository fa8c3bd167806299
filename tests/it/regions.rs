//! Draining and restoring regions: the operator's endpoints on `tickcast up` (and the edge),
//! `tickcast regions drain|restore` on a split deployment, and what new games do meanwhile.

use serde_json::{Value, json};

use crate::cluster::{Cluster, REGION, Role};
use crate::support::{Server, http_client, log_events};

pub(crate) const ADMIN_TOKEN: &str = "operator-secret";

/// A gateway of us-east-1 on `cluster`'s log, listening on `listen`.
pub(crate) fn us_gateway(cluster: &Cluster, listen: &str) -> Role {
    Role::start(
        &["gateway", "--log", &cluster.log, "--region", "us-east-1", "--listen", listen],
        Some("gateway listening on "),
    )
}

/// An edge on `cluster`'s log that places games on its eu-west-1 gateway and on `us`, with
/// `extra` flags; and its URL.
pub(crate) fn two_region_edge(cluster: &Cluster, us: &Role, extra: &[&str]) -> (Role, String) {
    let eu = format!("{REGION}={}", cluster.gateway.url.as_deref().unwrap());
    let us = format!("us-east-1={}", us.url.as_deref().unwrap());
    let mut args =
        vec!["edge", "--log", &cluster.log, "--listen", "127.0.0.1:0", "--gateway", &eu, "--gateway", &us];
    args.extend(extra);
    let edge = Role::start(&args, Some("edge listening on "));
    let url = edge.url.clone().unwrap();
    (edge, url)
}

/// `POST path` with `token` as the bearer token (none for `None`): the status and the body.
pub(crate) async fn admin(server: &Server, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = http_client().post(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Without an admin token configured, `/admin/*` does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_every_admin_path_answers_404() {
    let server = Server::start_with(&[]);
    for path in ["/admin/regions/eu-west-1/drain", "/admin/regions/eu-west-1/restore", "/admin", "/admin/x"] {
        let (status, body) = admin(&server, path, Some(ADMIN_TOKEN)).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{path}: {body}");
    }
}

/// An operator drains a region of `up`: the answer counts its running games, new games go to
/// the nearest active region and say they skipped it, the log holds the drain once however
/// often it is asked, and after a restore new games go there again. A wrong token, an unknown
/// region and the last active region are refused with what is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_region_gets_no_new_games_until_it_is_restored() {
    let server = Server::start_with(&["--regions", "eu-west-1,eu-central-1", "--admin-token", ADMIN_TOKEN]);
    let start = |user: &'static str| {
        let body = json!({"userId": user, "preferredRegion": "eu-west-1", "countdownMs": 60_000}).to_string();
        let server = &server;
        async move {
            let (status, ticket) = server.post("/edge/game/start", &body).await;
            assert_eq!(status, 200, "{ticket}");
            ticket
        }
    };
    assert_eq!(start("before").await["region"], "eu-west-1");

    let drain = "/admin/regions/eu-west-1/drain";
    for token in [None, Some("wrong")] {
        let (status, body) = admin(&server, drain, token).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")), "{token:?}: {body}");
    }
    let (status, body) = admin(&server, "/admin/regions/mars-1/drain", Some(ADMIN_TOKEN)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unknown_region")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("eu-central-1"), "it names the regions: {body}");

    for _ in 0..2 {
        let (status, body) = admin(&server, drain, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"region": "eu-west-1", "state": "drained", "sessionsMoving": 1}));
    }
    let (_, regions) = server.get("/edge/regions").await;
    assert_eq!(regions["states"], json!({"eu-west-1": "drained", "eu-central-1": "active"}), "{regions}");
    let moved = start("during").await;
    assert_eq!(moved["region"], "eu-central-1", "{moved}");
    assert_eq!(moved["routing"]["skipped"], json!(["eu-west-1"]), "{moved}");
    let (status, body) = admin(&server, "/admin/regions/eu-central-1/drain", Some(ADMIN_TOKEN)).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("last_region")), "{body}");

    let (status, body) = admin(&server, "/admin/regions/eu-west-1/restore", Some(ADMIN_TOKEN)).await;
    assert_eq!((status, body), (200, json!({"region": "eu-west-1", "state": "active", "sessionsMoving": 0})));
    assert_eq!(start("after").await["region"], "eu-west-1");

    assert_eq!(
        region_events(log_events(&server, "game-events").await),
        [
            json!({"type": "region_drained", "region": "eu-west-1", "reason": "operator"}),
            json!({"type": "region_restored", "region": "eu-west-1", "reason": null}),
        ],
        "one event per change, however often it was asked"
    );
}

/// `tickcast regions drain|restore` writes the same events on a split deployment, and its
/// edge follows them; it refuses the last active region and an unknown one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regions_command_drains_and_restores_for_a_split_deployment() {
    let cluster = Cluster::start(0);
    let regions = format!("{REGION},us-east-1");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
            .arg("regions")
            .args(args)
            .args(["--log", &cluster.log, "--regions", &regions])
            .args(&cluster.log_flags)
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    };
    let (ok, text) = run(&["drain", "mars-1"]);
    assert!(!ok && text.contains("no region \"mars-1\""), "{text}");
    let (ok, text) = run(&["drain", REGION]);
    assert!(ok && text.contains("drained"), "{text}");
    let (ok, text) = run(&["drain", REGION]);
    assert!(ok && text.contains("drained already"), "{text}");
    let (ok, text) = run(&["drain", "us-east-1"]);
    assert!(!ok && text.contains("last active region"), "{text}");

    let edge = cluster.edge.url.clone().unwrap();
    let states = |edge: String| async move {
        let regions: Value =
            http_client().get(format!("{edge}/edge/regions")).send().await.ok()?.json().await.ok()?;
        Some(regions["states"][REGION].as_str()?.to_owned())
    };
    crate::support::eventually("the edge to follow the drain", || {
        let edge = edge.clone();
        async move { (states(edge).await? == "drained").then_some(()) }
    })
    .await;
    let (ok, text) = run(&["restore", REGION]);
    assert!(ok && text.contains("active"), "{text}");
    crate::support::eventually("the edge to follow the restore", || {
        let edge = edge.clone();
        async move { (states(edge).await? == "active").then_some(()) }
    })
    .await;
}

/// An edge that sees no ready gateway in a region for the failover time drains it (reason
/// `unhealthy`), and restores it once a gateway there is ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_without_a_ready_gateway_is_drained_after_the_failover_time_and_restored() {
    let cluster = Cluster::start(0);
    let log = cluster.log.as_str();
    let listen = format!("127.0.0.1:{}", crate::cluster::free_port());
    let mut us = us_gateway(&cluster, &listen);
    let (_edge, edge_url) = two_region_edge(&cluster, &us, &["--region-failover-after", "2s"]);
    let state_is = |wanted: &'static str| {
        let edge_url = edge_url.clone();
        async move {
            let regions: Value =
                http_client().get(format!("{edge_url}/edge/regions")).send().await.ok()?.json().await.ok()?;
            (regions["states"]["us-east-1"] == wanted).then_some(())
        }
    };
    crate::support::eventually("both regions active", || state_is("active")).await;

    us.process.kill9();
    crate::support::eventually("the region drained once its gateway was gone 2 s", || state_is("drained"))
        .await;
    let mut brought_back = us_gateway(&cluster, &listen);
    crate::support::eventually("the region restored once its gateway was back", || state_is("active")).await;

    let events =
        crate::support::topic_events(tickcast_eventlog::open(log).unwrap().as_ref(), "game-events").await;
    assert_eq!(
        region_events(events),
        [
            json!({"type": "region_drained", "region": "us-east-1", "reason": "unhealthy"}),
            json!({"type": "region_restored", "region": "us-east-1", "reason": null}),
        ]
    );
    brought_back.process.kill9();
}

/// The region events among `events`: their type, region and reason.
fn region_events(events: Vec<Value>) -> Vec<Value> {
    events
        .into_iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("region_")))
        .map(|e| json!({"type": e["type"], "region": e["region"], "reason": e["reason"]}))
        .collect()
}
