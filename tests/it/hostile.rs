//! Clients that hold what they should not: half-sent requests, idle connections, sockets that
//! never join. Each is closed by a timer, never left to hold a file descriptor forever.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Player, Server};

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
