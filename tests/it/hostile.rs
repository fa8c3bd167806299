//! Clients that hold what they should not: half-sent requests, idle connections, sockets that
//! never join. Each is closed by a timer, never left to hold a file descriptor forever.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Player, Server, eventually, keep_reading};

/// Reads until the server closes the connection (or the deadline passes: then `None`).
async fn closed_within(stream: &mut TcpStream, deadline: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(deadline, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
}

/// Slowloris: a request whose headers never end is closed once the header read timeout
/// passes, and so is a kept-alive connection that sends no next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_and_idle_connections_are_closed_by_the_header_timeout() {
    let server = Server::start_with(&["--header-read-timeout", "1s"]);

    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: tickcast\r\nX-Slow: ").await.unwrap();
    let started = std::time::Instant::now();
    let answer = closed_within(&mut slow, Duration::from_secs(10)).await;
    assert!(answer.is_some(), "a half-sent request still held its socket after 10 s");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout: {answer:?}");

    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: tickcast\r\n\r\n").await.unwrap();
    let answer = closed_within(&mut idle, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection is closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "the request itself was answered: {text}");

    // Meanwhile the server serves everyone else.
    let (status, _) = server.post("/edge/game/start", r#"{"userId":"alice"}"#).await;
    assert_eq!(status, 200);
}

/// An upgraded WebSocket that never joins is closed with 1008 after `JOIN_TIMEOUT_MS`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_joins_is_closed_with_1008() {
    let server = Server::start_with(&["--join-timeout-ms", "500"]);
    let mut player = Player::connect(&format!("ws://{}/ws/us-east-1", server.addr)).await;
    let (frames, code) = tokio::time::timeout(Duration::from_secs(10), player.until_closed())
        .await
        .expect("a socket that never joins is closed");
    assert_eq!(code, Some(1008), "{frames:?}");
    assert!(server.metrics().await.contains("tickcast_gateway_join_timeouts_total 1"));

    // One that joins in time stays.
    let ticket = server.start_game(serde_json::json!({"userId":"bo","countdownMs":0})).await;
    let mut player = Player::join(&ticket, "bo", None).await;
    let mut ticks = 0;
    while ticks < 10 {
        ticks += usize::from(player.next_json().await["type"] == "tick");
    }
}

/// A joined client that floods the gateway is closed with 1008 `rate_limited`, while a player of
/// another game misses no step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_is_closed_with_1008_and_other_players_miss_no_step() {
    let server = Server::start();
    let calm_ticket =
        server.start_game(serde_json::json!({"userId":"calm","countdownMs":0,"tickMs":50})).await;
    let calm = keep_reading(Player::join(&calm_ticket, "calm", None).await, 60);
    let flood_ticket = server
        .start_game(
            serde_json::json!({"userId":"flood","countdownMs":0,"preferredRegion":calm_ticket["region"]}),
        )
        .await;
    let mut flooder = Player::join(&flood_ticket, "flood", None).await;
    let (_, joined) = flooder.until("session_joined").await;
    assert_eq!(joined["sessionId"], flood_ticket["gameId"]);
    for i in 0..200 {
        flooder.send(serde_json::json!({"action":"ping","clientTimestamp":i})).await;
    }
    let (frames, code) = flooder.until_closed().await;
    assert_eq!(code, Some(1008), "{frames:?}");
    let error = frames.iter().find(|f| f["type"] == "error").expect("an error frame before the close");
    assert_eq!(error["code"], "rate_limited", "{error}");
    let answered = frames.iter().filter(|f| f["type"] == "pong").count();
    assert!(
        (20..=45).contains(&answered),
        "a burst of two seconds' worth (40) was answered, then no more: {answered}"
    );

    let (frames, closed) = calm.await.unwrap();
    assert_eq!(closed, None);
    let steps: Vec<i64> =
        frames.iter().filter(|f| f["type"] == "tick").map(|f| f["step"].as_i64().unwrap()).collect();
    assert_eq!(
        steps,
        (steps[0]..steps[0] + steps.len() as i64).collect::<Vec<_>>(),
        "the calm player missed no step"
    );
}

async fn start_from(
    server: &Server,
    forwarded_for: Option<&str>,
) -> (u16, Option<String>, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .post(server.url("/edge/game/start"))
        .header("content-type", "application/json")
        .body(r#"{"userId":"flood"}"#);
    if let Some(hops) = forwarded_for {
        request = request.header("x-forwarded-for", hops);
    }
    let response = request.send().await.unwrap();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after, response.json().await.unwrap())
}

/// A game flood from one address gets 429 `rate_limited` with `Retry-After` once its allowance
/// is spent; other addresses keep theirs. Behind a trusted proxy the address is the first
/// untrusted hop of X-Forwarded-For from the right, so a client cannot forge its way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_flood_from_one_address_gets_429_with_retry_after() {
    let server = Server::start_with(&["--game-rate-per-ip", "5", "--trusted-proxies", "127.0.0.1"]);
    for _ in 0..5 {
        let (status, _, body) = start_from(&server, Some("198.51.100.1")).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, retry_after, body) = start_from(&server, Some("198.51.100.1")).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("rate_limited")), "{body}");
    let retry_after: u64 = retry_after.expect("a Retry-After").parse().unwrap();
    assert!((1..=12).contains(&retry_after), "one game every 12 s: {retry_after}");
    assert!(body["message"].as_str().unwrap().contains("TICKCAST_GAME_RATE_PER_IP"), "{body}");
    // A forged hop on the left changes nothing: the proxy saw 198.51.100.1.
    let (status, _, _) = start_from(&server, Some("203.0.113.7, 198.51.100.1")).await;
    assert_eq!(status, 429);
    // Another client of the proxy, and the proxy itself, have their own allowance.
    assert_eq!(start_from(&server, Some("198.51.100.2")).await.0, 200);
    assert_eq!(start_from(&server, None).await.0, 200);
}

/// A session holds at most `TICKCAST_MAX_PLAYERS_PER_SESSION` players; one more is refused with
/// `session_full` and close 4003, while a player already in it may reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_session_refuses_one_more_player() {
    let server = Server::start_with(&["--max-players-per-session", "2"]);
    let ticket = server.start_game(serde_json::json!({"userId":"a","countdownMs":60000})).await;
    let game_id = ticket["gameId"].as_str().unwrap().to_owned();
    let mut players = Vec::new();
    for user in ["a", "b"] {
        let ticket = if user == "a" { ticket.clone() } else { server.join_game(&game_id, user).await };
        let mut player = Player::join(&ticket, user, None).await;
        player.until("session_joined").await;
        players.push(player);
    }
    // The gateway learns of both joins from the log: once it tells a that b is there too.
    loop {
        let frame = players[0].next_json().await;
        if frame["type"] == "players" && frame["players"].as_array().unwrap().len() == 2 {
            break;
        }
    }
    let third = server.join_game(&game_id, "c").await;
    let mut player = Player::join(&third, "c", None).await;
    let (frames, code) = player.until_closed().await;
    let refused = (frames.iter().find(|f| f["code"] == "session_full").cloned().expect("session_full"), code);
    assert_eq!(refused.1, Some(4003), "{refused:?}");
    assert!(refused.0["message"].as_str().unwrap().contains("2 players"), "{refused:?}");
    let mut again = Player::join(&ticket, "a", None).await;
    let (_, joined) = again.until("session_joined").await;
    assert_eq!(joined["sessionId"], game_id.as_str());
}

/// With an Origin allow-list, a browser page from another origin cannot open a game socket
/// (403 before the upgrade); the allowed origin and clients that send no Origin can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_from_another_origin_cannot_open_a_game_socket() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let server = Server::start_with(&["--allowed-origins", "https://play.example.com"]);
    let url = format!("ws://{}/ws/us-east-1", server.addr);
    let with_origin = |origin: &str| {
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        request
    };
    match tokio_tungstenite::connect_async(with_origin("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("origin_not_allowed"), "{body}");
        }
        other => panic!("another origin was let in: {:?}", other.map(|(_, r)| r.status())),
    }
    assert!(tokio_tungstenite::connect_async(with_origin("https://play.example.com")).await.is_ok());
    assert!(tokio_tungstenite::connect_async(url.as_str()).await.is_ok(), "no Origin: not a browser");
}

/// Tickets live `TICKCAST_TICKET_TTL`: after that a join gets `expired_token` and close 4003.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_expires_after_its_configured_lifetime() {
    let server = Server::start_with(&["--ticket-ttl", "1s"]);
    let ticket = server.start_game(serde_json::json!({"userId":"a","countdownMs":60000})).await;
    let expired = crate::support::eventually("the ticket to expire", || {
        let ticket = ticket.clone();
        async move {
            let mut player = Player::join(&ticket, "a", None).await;
            let first = player.next_json().await;
            (first["code"] == "expired_token").then_some((first, player))
        }
    })
    .await;
    let (_, mut player) = expired;
    assert_eq!(player.until_closed().await.1, Some(4003));
}

/// Game sockets are capped per client address (429) and in all (503), refused before the
/// upgrade with a JSON answer; a closed socket gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_are_capped_per_address_and_in_all() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let server = Server::start_with(&[
        "--max-connections-per-ip",
        "2",
        "--max-connections",
        "3",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    let url = format!("ws://{}/ws/us-east-1", server.addr);
    let from = |client: &str| {
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert("x-forwarded-for", client.parse().unwrap());
        request
    };
    let refused = |result: Result<_, tokio_tungstenite::tungstenite::Error>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
            (response.status().as_u16(), body)
        }
        Ok(_) => panic!("a socket over the cap was accepted"),
        Err(error) => panic!("{error}"),
    };
    let (first, _) = tokio_tungstenite::connect_async(from("198.51.100.1")).await.unwrap();
    let _second = tokio_tungstenite::connect_async(from("198.51.100.1")).await.unwrap();
    let (status, body) = refused(tokio_tungstenite::connect_async(from("198.51.100.1")).await);
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("too_many_connections") && body.contains("TICKCAST_MAX_CONNECTIONS_PER_IP"),
        "{body}"
    );
    let _third = tokio_tungstenite::connect_async(from("198.51.100.2")).await.unwrap();
    let (status, body) = refused(tokio_tungstenite::connect_async(from("198.51.100.3")).await);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("TICKCAST_MAX_CONNECTIONS"), "{body}");

    drop(first);
    eventually("the closed socket's place to come back", || async {
        tokio_tungstenite::connect_async(from("198.51.100.3")).await.ok().map(drop)
    })
    .await;
}

/// One userId may have `TICKCAST_MAX_GAMES_PER_USER` games running; one more gets 429
/// `rate_limited` with `Retry-After`, and another user still starts games.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_with_too_many_games_running_gets_429() {
    let server = Server::start_with(&["--max-games-per-user", "2"]);
    for _ in 0..2 {
        server.start_game(serde_json::json!({"userId":"greedy","countdownMs":60000})).await;
    }
    let response = reqwest::Client::new()
        .post(server.url("/edge/game/start"))
        .json(&serde_json::json!({"userId":"greedy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(body["message"].as_str().unwrap().contains("TICKCAST_MAX_GAMES_PER_USER"), "{body}");
    server.start_game(serde_json::json!({"userId":"modest"})).await;
}

/// One ticket on two sockets never plays twice: the second join replaces the first, which gets
/// `replaced` and close 4002; the second plays on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ticket_on_two_sockets_never_plays_twice() {
    let server = Server::start();
    let ticket = server.start_game(serde_json::json!({"userId":"twin","countdownMs":0})).await;
    let mut first = Player::join(&ticket, "twin", None).await;
    first.until("tick").await;
    let mut second = Player::join(&ticket, "twin", None).await;
    let (frames, code) = first.until_closed().await;
    assert_eq!(code, Some(4002), "{frames:?}");
    assert!(frames.iter().any(|f| f["type"] == "error" && f["code"] == "replaced"), "{frames:?}");
    let mut ticks = 0;
    while ticks < 5 {
        ticks += usize::from(second.next_json().await["type"] == "tick");
    }
    // The log says the first connection left as replaced.
    let left = eventually("the first connection's player_left", || async {
        crate::support::log_events(&server, "game-events")
            .await
            .into_iter()
            .find(|e| e["type"] == "player_left" && e["reason"] == "replaced")
    })
    .await;
    assert_eq!(left["userId"], "twin");
}

/// A player kicked from a session cannot rejoin it with its ticket (`kicked`, close 4003).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_player_cannot_rejoin_with_its_ticket() {
    let server = Server::start();
    let ticket = server.start_game(serde_json::json!({"userId":"slow","countdownMs":0})).await;
    let proxy = crate::support::latency_proxy(server.addr, Duration::from_millis(200)).await;
    let mut player = Player::join(&ticket, "slow", Some(proxy)).await;
    let (_, code) = player.until_closed().await;
    assert_eq!(code, Some(4001), "kicked for its round trip");
    let mut again = Player::join(&ticket, "slow", None).await;
    let (frames, code) = again.until_closed().await;
    assert_eq!(code, Some(4003), "{frames:?}");
    assert!(frames.iter().any(|f| f["code"] == "kicked"), "{frames:?}");
}

/// After a rotation, tickets signed with the previous secret still open games until the
/// previous secret's retirement, and are refused after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_of_a_rotated_out_key_are_refused_after_the_grace_period() {
    use tickcast_schemas::token::{Claims, TokenSigner};

    const OLD: &str = "the secret before the rotation";
    let rfc3339 = |offset_s: i64| {
        let now = std::time::SystemTime::now();
        let at = if offset_s >= 0 {
            now + Duration::from_secs(offset_s.unsigned_abs())
        } else {
            now - Duration::from_secs(offset_s.unsigned_abs())
        };
        humantime::format_rfc3339_seconds(at).to_string()
    };
    for (until, opens) in [(rfc3339(3600), true), (rfc3339(-1), false)] {
        let server =
            Server::start_with(&["--previous-token-secrets", OLD, "--previous-token-secrets-until", &until]);
        let ticket = server.start_game(serde_json::json!({"userId":"a","countdownMs":60000})).await;
        let claims = Claims {
            session_id: ticket["gameId"].as_str().unwrap().to_owned(),
            user_id: "a".into(),
            region: ticket["region"].as_str().unwrap().to_owned(),
            expires_at: i64::MAX / 2,
        };
        let old_ticket = serde_json::json!({
            "wsEndpoint": ticket["wsEndpoint"], "gameId": ticket["gameId"],
            "token": TokenSigner::new(OLD.as_bytes()).sign(&claims),
        });
        let mut player = Player::join(&old_ticket, "a", None).await;
        let first = player.next_json().await;
        if opens {
            assert_eq!(first["type"], "session_joined", "until {until}: {first}");
        } else {
            assert_eq!(first["code"], "invalid_token", "after {until}: {first}");
            assert!(first["message"].as_str().unwrap().contains("retired"), "{first}");
            assert_eq!(player.until_closed().await.1, Some(4003));
        }
        // The edge signs with the current key: not the old one's id.
        let old_id = TokenSigner::new(OLD.as_bytes()).key_id().to_owned();
        assert!(!ticket["token"].as_str().unwrap().starts_with(&old_id));
    }
}

/// `--admin-listen` moves `/metrics` off the public listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_move_to_an_admin_listener() {
    let server = Server::start_with(&["--admin-listen", "127.0.0.1:0"]);
    let admin = server.admin.expect("the admin listener's address is printed");
    let public = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(public.status().as_u16(), 404, "no metrics on the public listener");
    server.start_game(serde_json::json!({"userId":"a"})).await;
    let text = reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.contains("tickcast_edge_sessions_created_total"), "{text}");
    assert_eq!(reqwest::get(format!("http://{admin}/healthz")).await.unwrap().status().as_u16(), 200);
}

/// Behind a trusted proxy that says the client used HTTPS, tickets point at `wss://`; the same
/// header from anyone else changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_say_wss_behind_a_trusted_tls_proxy() {
    let start = |server: &Server| {
        reqwest::Client::new()
            .post(server.url("/edge/game/start"))
            .header("x-forwarded-proto", "https")
            .json(&serde_json::json!({"userId":"a"}))
            .send()
    };
    let behind_proxy = Server::start_with(&["--trusted-proxies", "127.0.0.1"]);
    let ticket: serde_json::Value = start(&behind_proxy).await.unwrap().json().await.unwrap();
    assert!(ticket["wsEndpoint"].as_str().unwrap().starts_with("wss://"), "{ticket}");
    let direct = Server::start();
    let ticket: serde_json::Value = start(&direct).await.unwrap().json().await.unwrap();
    assert!(ticket["wsEndpoint"].as_str().unwrap().starts_with("ws://"), "{ticket}");
}
