//! The latency policy through real sockets, with latency injected by a TCP proxy.

use std::time::Duration;

use serde_json::json;

use crate::support::{Player, Seen, Server, eventually, latency_proxy, log_events};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_players_are_warned_or_kicked_and_fast_ones_never_warned() {
    let server = Server::start();
    let ticket = server.start_game(json!({"userId":"fast","countdownMs":0})).await;
    let game_id = ticket["gameId"].as_str().unwrap().to_owned();
    let warned_ticket = server.join_game(&game_id, "warned").await;
    let kicked_ticket = server.join_game(&game_id, "kicked").await;
    let warn_proxy = latency_proxy(server.addr, Duration::from_millis(60)).await;
    let kick_proxy = latency_proxy(server.addr, Duration::from_millis(200)).await;

    let mut fast = Player::join(&ticket, "fast", None).await;
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
    let mut fast_ticks = 0;
    while fast_ticks < 20 {
        let frame = fast.next_json().await;
        assert_ne!(frame["type"], "latency_status", "an unhindered player is never warned: {frame}");
        fast_ticks += usize::from(frame["type"] == "tick");
    }

    let (kicked_connection, sampled) = eventually("player_kicked and its samples in the log", || {
        let (server, game_id) = (&server, game_id.clone());
        async move {
            let events = log_events(server, "game-events").await;
            let kick = events.iter().find(|e| {
                e["type"] == "player_kicked" && e["sessionId"] == game_id.as_str() && e["userId"] == "kicked"
            })?;
            let connection = kick["connectionId"].clone();
            let sampled = events
                .iter()
                .filter(|e| e["type"] == "latency_sampled" && e["connectionId"] == connection)
                .count();
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
