//! Bad input gets a clear answer: JSON 4xx from the edge, error frames from the gateway.

use base64::Engine as _;
use serde_json::{Value, json};
use tickcast_schemas::token::{Claims, TokenSigner};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::support::{Player, Seen, Server, TOKEN_SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_answers_bad_requests_with_json_4xx() {
    let server = Server::start();
    let cases: &[(&str, &str, u16, &str)] = &[
        ("/edge/game/start", "{not json", 400, "invalid_body"),
        ("/edge/game/start", "", 400, "invalid_body"),
        ("/edge/game/start", "[1]", 400, "invalid_body"),
        ("/edge/game/start", r#"{"user":"typo"}"#, 400, "invalid_body"),
        ("/edge/game/start", r#"{"userId":"a","tickMs":9}"#, 400, "invalid_parameter"),
        ("/edge/game/start", r#"{"userId":"a","tickMs":10001}"#, 400, "invalid_parameter"),
        ("/edge/game/start", r#"{"userId":"a","countdownMs":60001}"#, 400, "invalid_parameter"),
        ("/edge/game/start", r#"{"userId":"a","countdownMs":-1}"#, 400, "invalid_parameter"),
        ("/edge/game/start", r#"{"userId":"a","maxRounds":0}"#, 400, "invalid_parameter"),
        ("/edge/game/start", r#"{"userId":"a","maxRounds":100001}"#, 400, "invalid_parameter"),
        ("/edge/game/start", r#"{"userId":"a","minBreakSteps":0}"#, 400, "invalid_parameter"),
        ("/edge/game/start", r#"{"userId":"a","maxBreakSteps":1000001}"#, 400, "invalid_parameter"),
        (
            "/edge/game/start",
            r#"{"userId":"a","tickMs":10000,"maxRounds":100000,"maxBreakSteps":1000}"#,
            400,
            "invalid_parameter",
        ),
        (
            "/edge/game/start",
            r#"{"userId":"a","minBreakSteps":50,"maxBreakSteps":40}"#,
            400,
            "invalid_parameter",
        ),
        ("/edge/game/start", r#"{"userId":"a","tickMs":"fast"}"#, 400, "invalid_body"),
        ("/edge/game/start", r#"{"userId":""}"#, 400, "invalid_parameter"),
        ("/edge/game/start", r#"{"userId":"a","preferredRegion":"mars-1"}"#, 400, "unknown_region"),
        ("/edge/game/01890000-0000-7000-8000-000000000000/join", r#"{"userId":"a"}"#, 404, "unknown_game"),
        ("/edge/game/whatever/join", "{}", 400, "invalid_body"),
        ("/edge/nothing", "{}", 404, "not_found"),
    ];
    for (path, body, status, code) in cases {
        let (got_status, answer) = server.post(path, body).await;
        assert_eq!((got_status, answer["error"].as_str()), (*status, Some(*code)), "{path} {body}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
    }
    // The error names the field to fix.
    let (_, answer) = server.post("/edge/game/start", r#"{"userId":"a","countdownMs":60001}"#).await;
    assert!(answer["message"].as_str().unwrap().contains("countdownMs"));
    // Region priority through headers.
    let response = reqwest::Client::new()
        .post(server.url("/edge/game/start"))
        .header("cf-ipcountry", "JP")
        .header("content-type", "application/json")
        .body(r#"{"userId":"a"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["region"], "ap-northeast-1");
    let response = reqwest::Client::new()
        .post(server.url("/edge/game/start"))
        .header("cf-ipcountry", "JP")
        .header("x-user-region", "sa-east-1")
        .header("content-type", "application/json")
        .body(r#"{"userId":"a"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["region"], "sa-east-1");
    // Only JSON is read: a form or a text/plain fetch from another site gets 415.
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut request =
            reqwest::Client::new().post(server.url("/edge/game/start")).body(r#"{"userId":"a"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 415, "{content_type:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "unsupported_media_type", "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("application/json"), "{answer}");
    }
    let preferred = server.start_game(json!({"userId":"a","preferredRegion":"eu-west-1"})).await;
    assert_eq!(preferred["region"], "eu-west-1");
    assert!(
        preferred["wsEndpoint"].as_str().unwrap().starts_with("ws://")
            && preferred["wsEndpoint"].as_str().unwrap().ends_with("/ws/eu-west-1")
    );
}

/// The next frame that is not part of the game's stream (countdowns and ticks may come at any
/// time once joined) must be an error with `code`.
async fn expect_error(player: &mut Player, code: &str) -> Value {
    let mut seen = player.next().await;
    while let Seen::Json(frame) = &seen
        && (frame["type"] == "countdown" || frame["type"] == "tick")
    {
        seen = player.next().await;
    }
    match seen {
        Seen::Json(frame) => {
            assert_eq!(
                (frame["type"].as_str(), frame["code"].as_str()),
                (Some("error"), Some(code)),
                "{frame}"
            );
            assert!(!frame["message"].as_str().unwrap().is_empty());
            frame
        }
        Seen::Closed(code_seen) => panic!("closed ({code_seen:?}) instead of an error {code}"),
    }
}

async fn still_usable(player: &mut Player) {
    player.send(json!({"action":"ping","clientTimestamp":7})).await;
    let (_, pong) = player.until("pong").await;
    assert_eq!(pong["clientTimestamp"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_the_connection_stays_usable() {
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"a","countdownMs":60000})).await;
    let mut player = Player::connect(ticket["wsEndpoint"].as_str().unwrap()).await;
    for (frame, code) in [
        (Message::text("{nope"), "malformed_json"),
        (Message::text("[1,2,3]"), "invalid_message"),
        (Message::text("42"), "invalid_message"),
        (Message::text(r#"{"action":"dance"}"#), "unknown_action"),
        (Message::text(r#"{"action":7}"#), "invalid_message"),
        (Message::text(r#"{"action":"join","sessionId":"s"}"#), "invalid_message"),
        (Message::text(r#"{"action":"leave"}"#), "not_joined"),
    ] {
        player.send_raw(frame).await;
        expect_error(&mut player, code).await;
        still_usable(&mut player).await;
    }
    // After all that, a proper join works on the same connection; a second join does not.
    player
        .send(json!({"action":"join","sessionId":ticket["gameId"],"userId":"a","token":ticket["token"]}))
        .await;
    let joined = player.next_json().await;
    assert_eq!(joined["type"], "session_joined");
    let countdown = player.next_json().await;
    assert_eq!(
        countdown["type"], "countdown",
        "a player who joins before the start gets the countdown at once"
    );
    assert!(countdown["remainingMs"].as_i64().unwrap() > 50_000);
    player
        .send(json!({"action":"join","sessionId":ticket["gameId"],"userId":"a","token":ticket["token"]}))
        .await;
    expect_error(&mut player, "already_joined").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_are_refused() {
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"a"})).await;
    for frame in [Message::text("x".repeat(70 * 1024)), Message::Binary(vec![0u8; 100 * 1024].into())] {
        let mut player = Player::connect(ticket["wsEndpoint"].as_str().unwrap()).await;
        player.send_raw(frame).await;
        expect_error(&mut player, "frame_too_large").await;
        let (_, code) = player.until_closed().await;
        assert_eq!(code, Some(1009));
    }
}

/// A joined client that keeps sending 1 MiB frames still reads the close code: the gateway
/// drains what the client sends after its close frame instead of resetting the socket under it.
/// Both refusals: an oversized frame (1009), and binary frames of any size (1003).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_flooding_frames_reads_the_close_code() {
    use futures_util::{SinkExt, StreamExt};
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"a","countdownMs":60000})).await;
    for (flood, expected) in [
        (Message::Binary(vec![7u8; 1 << 20].into()), 1009),
        (Message::Binary(Bytes::from_static(b"\x00")), 1003),
    ] {
        let (ws, _) = tokio_tungstenite::connect_async(ticket["wsEndpoint"].as_str().unwrap()).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let join = json!({"action":"join","sessionId":ticket["gameId"],"userId":"a","token":ticket["token"]});
        sink.send(Message::text(join.to_string())).await.unwrap();
        // Joined: the flood starts once session_joined is in.
        loop {
            let message = stream.next().await.expect("an answer to the join").unwrap();
            if message.to_text().is_ok_and(|t| t.contains("session_joined")) {
                break;
            }
        }
        let writer = tokio::spawn(async move {
            // Until the server stops taking them; the error that ends it is expected.
            while sink.send(flood.clone()).await.is_ok() {}
        });
        let code = loop {
            match stream.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("the connection failed before its close frame was read: {error}"),
                None => panic!("the connection ended without a close frame"),
            }
        };
        assert_eq!(code, Some(expected));
        writer.abort();
    }
}

/// Binary frames are not part of the protocol: an error frame, then close 1003.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_are_closed_with_1003() {
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"a","countdownMs":60000})).await;
    let mut player = Player::connect(ticket["wsEndpoint"].as_str().unwrap()).await;
    player.send_raw(Message::Binary(Bytes::from_static(b"\x00\x01"))).await;
    expect_error(&mut player, "unsupported_frame").await;
    let (_, code) = player.until_closed().await;
    assert_eq!(code, Some(1003));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_an_error_then_a_close() {
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"a","countdownMs":60000})).await;
    let other =
        server.start_game(json!({"userId":"b","countdownMs":60000,"preferredRegion":ticket["region"]})).await;
    let (game, endpoint) = (ticket["gameId"].as_str().unwrap(), ticket["wsEndpoint"].as_str().unwrap());
    let region = ticket["region"].as_str().unwrap();
    let signer = TokenSigner::new(TOKEN_SECRET.as_bytes());
    let claims = |session: &str, user: &str, region: &str, expires_at: i64| Claims {
        session_id: session.into(),
        user_id: user.into(),
        region: region.into(),
        expires_at,
    };
    let far = i64::MAX / 2;
    let forged = TokenSigner::new(b"not-the-server-secret").sign(&claims(game, "a", region, far));
    let tampered = {
        // The ticket's key id and signature over other claims.
        let token = ticket["token"].as_str().unwrap();
        let (kid, signature) = (token.split('.').next().unwrap(), token.rsplit('.').next().unwrap());
        let payload = serde_json::to_vec(&claims(game, "mallory", region, far)).unwrap();
        format!("{kid}.{}.{signature}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload))
    };
    let other_region = if region == "us-east-1" { "eu-west-1" } else { "us-east-1" };
    let cases = [
        (game.to_owned(), "a", forged, "invalid_token"),
        (game.to_owned(), "mallory", tampered, "invalid_token"),
        (game.to_owned(), "a", "garbage".to_owned(), "invalid_token"),
        (game.to_owned(), "a", signer.sign(&claims(game, "a", region, 1)), "expired_token"),
        (game.to_owned(), "a", other["token"].as_str().unwrap().to_owned(), "token_mismatch"),
        (game.to_owned(), "b", signer.sign(&claims(game, "a", region, far)), "token_mismatch"),
        (game.to_owned(), "a", signer.sign(&claims(game, "a", other_region, far)), "token_mismatch"),
        (
            "no-such-session".to_owned(),
            "a",
            signer.sign(&claims("no-such-session", "a", region, far)),
            "unknown_session",
        ),
    ];
    for (session, user, token, code) in cases {
        let mut player = Player::connect(endpoint).await;
        player.send(json!({"action":"join","sessionId":session,"userId":user,"token":token})).await;
        expect_error(&mut player, code).await;
        let (_, close) = player.until_closed().await;
        assert_eq!(close, Some(4003), "{code}: refused joins are closed");
    }
    // Unknown regions and plain HTTP on the WebSocket path get JSON errors.
    let response = reqwest::get(server.url("/ws/mars-1")).await.unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let response = reqwest::get(server.url(&format!("/ws/{region}"))).await.unwrap();
    assert_eq!(response.status().as_u16(), 426);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "websocket_required");
}
