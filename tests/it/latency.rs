//! The latency policy through real sockets, with latency injected by a TCP proxy.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    Player, Seen, Server, eventually, latency_proxy, log_events, players_reading, rtt_samples,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_players_are_warned_or_kicked_and_fast_ones_never_warned() {
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"fast","countdownMs":0})).await;
    let game_id = ticket["gameId"].as_str().unwrap().to_owned();
    let warned_ticket = server.join_game(&game_id, "warned").await;
    let kicked_ticket = server.join_game(&game_id, "kicked").await;
    let warn_proxy = latency_proxy(server.addr, Duration::from_millis(60)).await;
    let kick_proxy = latency_proxy(server.addr, Duration::from_millis(200)).await;

    // A real client answers pings as they come: the fast player reads all along.
    let mut fast = Player::join(&ticket, "fast", None).await;
    let fast_task = tokio::spawn(async move {
        let mut frames = Vec::new();
        while frames.iter().filter(|f: &&serde_json::Value| f["type"] == "tick").count() < 80 {
            frames.push(fast.next_json().await);
        }
        frames
    });
    let mut warned = Player::join(&warned_ticket, "warned", Some(warn_proxy)).await;
    let mut kicked = Player::join(&kicked_ticket, "kicked", Some(kick_proxy)).await;

    let kicked_task = tokio::spawn(async move { kicked.until_closed().await });
    let warned_task = tokio::spawn(async move {
        let (_, status) = warned.until("latency_status").await;
        // Still playing after the warning: ticks keep coming.
        let mut ticks = 0;
        while ticks < 10 {
            if let Seen::Json(frame) = warned.next().await {
                assert_ne!(frame["type"], "kicked", "a warned player is not kicked");
                ticks += usize::from(frame["type"] == "tick");
            } else {
                panic!("warned player was disconnected");
            }
        }
        status
    });

    let (frames, code) = kicked_task.await.unwrap();
    assert_eq!(code, Some(4001), "kicked players are closed with 4001");
    let kick = frames.iter().find(|f| f["type"] == "kicked").expect("a kicked frame before the close");
    assert!(kick["reason"].as_str().unwrap().contains("latency"));

    let status = warned_task.await.unwrap();
    assert_eq!(status["status"], "warning");
    let avg = status["avgRttMs"].as_u64().unwrap();
    assert!((100..=150).contains(&avg), "avg RTT {avg} ms is between the warning and the kick thresholds");

    // The fast player saw ticks all along and never a latency warning.
    for frame in fast_task.await.unwrap() {
        assert_ne!(frame["type"], "latency_status", "an unhindered player is never warned: {frame}");
    }

    let (kicked_connection, sampled) = eventually("player_kicked and its samples in the log", || {
        let (server, game_id) = (&server, game_id.clone());
        async move {
            let events = log_events(server, "game-events").await;
            let kick = events.iter().find(|e| {
                e["type"] == "player_kicked" && e["sessionId"] == game_id.as_str() && e["userId"] == "kicked"
            })?;
            let connection = kick["connectionId"].clone();
            let sampled = rtt_samples(&events).iter().filter(|s| s["connectionId"] == connection).count();
            let left = events.iter().any(|e| {
                e["type"] == "player_left" && e["connectionId"] == connection && e["reason"] == "kicked"
            });
            (left && sampled > 0).then_some((connection, sampled))
        }
    })
    .await;
    assert!(sampled >= 5, "{sampled} latency samples logged for {kicked_connection}");
    let events = log_events(&server, "game-events").await;
    assert!(
        events.iter().any(|e| e["type"] == "latency_warned" && e["status"] == "warning"),
        "the warning is logged"
    );
    assert!(!events.iter().any(|e| e["type"] == "player_kicked" && e["userId"] != "kicked"));
}

/// A modified client behind a 500 ms round trip that answers its pings late but sends "fresh"
/// pongs of its own, ten a second: only answers to pings count, so it is kicked; its forged
/// pongs are ignored and never logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_forges_its_pongs_is_kicked() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"forger","countdownMs":0})).await;
    let proxy = latency_proxy(server.addr, Duration::from_millis(250)).await;
    let player = Player::join(&ticket, "forger", Some(proxy)).await;
    let (mut sink, mut stream) = player.ws.split();
    let forge = tokio::spawn(async move {
        for n in 0u64.. {
            let now_us =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()
                    as u64;
            let payload = (now_us ^ n).to_be_bytes().to_vec();
            if sink.send(Message::Pong(payload.into())).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut code = None;
    while let Some(message) =
        tokio::time::timeout(crate::support::WAIT, stream.next()).await.expect("kicked in time")
    {
        if let Ok(Message::Close(frame)) = message {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    forge.abort();
    assert_eq!(code, Some(4001), "a client whose real round trip is 500 ms is kicked, forged pongs or not");
    let events = log_events(&server, "game-events").await;
    let kick = events.iter().find(|e| e["type"] == "player_kicked").expect("the kick is logged");
    let samples: Vec<u64> = rtt_samples(&events)
        .iter()
        .filter(|s| s["connectionId"] == kick["connectionId"])
        .map(|s| s["rttMs"].as_u64().unwrap())
        .collect();
    assert!(samples.len() <= 10, "only answers to pings are samples, not the forged pongs: {samples:?}");
    assert!(samples.iter().all(|rtt| *rtt >= 450), "every sample is the real round trip: {samples:?}");
}

/// A client that never answers a ping is judged like a slow one: kicked with 4001.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_pings_is_kicked() {
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"mute","countdownMs":0})).await;
    let player = Player::join(&ticket, "mute", None).await;
    // From here the test reads the raw socket and answers nothing: no WebSocket library to
    // reply to pings on its behalf.
    let mut socket = match player.ws.into_inner() {
        tokio_tungstenite::MaybeTlsStream::Plain(socket) => socket,
        _ => unreachable!("a plain ws:// connection"),
    };
    let code = tokio::time::timeout(crate::support::WAIT, close_code_of_raw_frames(&mut socket))
        .await
        .expect("kicked in time");
    assert_eq!(code, Some(4001));
}

/// Reads server frames off a raw socket until the close frame; its code.
async fn close_code_of_raw_frames(socket: &mut tokio::net::TcpStream) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while buf.len() >= 2 {
            let (opcode, short) = (buf[0] & 0x0f, usize::from(buf[1] & 0x7f));
            let (header, len) = match short {
                126 if buf.len() >= 4 => (4, usize::from(u16::from_be_bytes([buf[2], buf[3]]))),
                127 if buf.len() >= 10 => (10, u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize),
                126 | 127 => break,
                n => (2, n),
            };
            if buf.len() < header + len {
                break;
            }
            if opcode == 0x8 {
                return (len >= 2).then(|| u16::from_be_bytes([buf[header], buf[header + 1]]));
            }
            buf.drain(..header + len);
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The whole gateway process stopped for 600 ms, several times, during a game: its own pause is
/// not the players' latency, so players with no added latency are neither warned nor kicked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_of_the_gateway_process_warn_and_kick_nobody() {
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"a","countdownMs":0,"tickMs":50})).await;
    let readers = players_reading(&server, &ticket, &["a", "b", "c"], usize::MAX).await;
    for _ in 0..6 {
        // The pauses are what the test does to the server, not a wait for something to happen.
        tokio::time::sleep(Duration::from_millis(1_400)).await;
        server.signal("STOP");
        tokio::time::sleep(Duration::from_millis(600)).await;
        server.signal("CONT");
    }
    // Judged again after the last pause: every player sampled (a kick would have come with it).
    let resumed_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    eventually("three samples of every player after the last pause", || async {
        let events = log_events(&server, "game-events").await;
        let mut per_connection = std::collections::HashMap::new();
        for s in rtt_samples(&events).iter().filter(|s| s["at"].as_i64() > Some(resumed_ms)) {
            *per_connection.entry(s["connectionId"].to_string()).or_insert(0) += 1;
        }
        (per_connection.len() == 3 && per_connection.values().all(|n| *n >= 3)).then_some(())
    })
    .await;
    for reader in &readers {
        assert!(!reader.is_finished(), "a player was disconnected");
    }
    for reader in readers {
        reader.abort();
    }
    let events = log_events(&server, "game-events").await;
    let judged: Vec<_> =
        events.iter().filter(|e| e["type"] == "player_kicked" || e["type"] == "latency_warned").collect();
    assert!(judged.is_empty(), "nobody is warned or kicked for the gateway's own pauses: {judged:?}");
}

/// A gateway made slow from inside (each fan-out shard blocks 80 ms per batch of ticks): it
/// reports its lag, and warns and kicks nobody for it.
#[cfg(feature = "test-hooks")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_gateway_reports_its_lag_and_warns_nobody() {
    let server = Server::start_with(&["--debug-write-delay-ms", "80"]);
    let ticket = server.start_game(json!({"userId":"a","countdownMs":0,"tickMs":100})).await;
    let readers = players_reading(&server, &ticket, &["a", "b"], 80).await;
    let lag = eventually("the gateway's lag on /metrics", || async {
        let text = server.metrics().await;
        text.lines()
            .filter(|l| l.starts_with("tickcast_gateway_lag_ms"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .find(|lag| *lag > 50.0)
    })
    .await;
    for reader in readers {
        let (frames, closed) = reader.await.unwrap();
        assert_eq!(closed, None, "a player was disconnected: {frames:?}");
        assert!(!frames.iter().any(|f| f["type"] == "latency_status" || f["type"] == "kicked"), "{frames:?}");
    }
    let events = log_events(&server, "game-events").await;
    assert!(
        !events.iter().any(|e| e["type"] == "player_kicked" || e["type"] == "latency_warned"),
        "lag {lag} ms"
    );
    assert!(
        server.metrics().await.contains("tickcast_gateway_latency_samples_not_judged_total"),
        "samples taken while it lagged are not judged"
    );
}
