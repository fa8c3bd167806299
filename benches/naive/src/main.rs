//! The baseline tickcast is measured against: a tick broadcaster as a competent engineer writes
//! it in an afternoon — axum WebSockets, a tokio broadcast channel per session, a task per
//! player — with no log, no engine, no tokens and no latency policy. It speaks as much of
//! tickcast's edge API and client protocol as `tickcast bots` uses, so the same load client
//! drives both.
//!
//! Each session's ticker serializes a tick once and broadcasts the text to every player's task;
//! ticks run on absolute deadlines from `startAt`, and a player whose task falls more than the
//! channel's capacity behind skips what it missed (as `broadcast` does), which the bots count.
//!
//! Usage: `naive-broadcaster [ADDR]` (default 127.0.0.1:8090).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// Ticks a slow player may fall behind before it skips some.
const CHANNEL_CAPACITY: usize = 256;

/// The sessions: each one's broadcast sender, which its ticker feeds.
type Sessions = Arc<Mutex<HashMap<String, Session>>>;

#[derive(Clone)]
struct Session {
    start_at: i64,
    tick_ms: i64,
    ticks: broadcast::Sender<Utf8Bytes>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".into());
    let sessions: Sessions = Arc::default();
    let app = Router::new()
        .route("/edge/game/start", post(start))
        .route("/edge/game/{id}/join", post(join))
        .route("/ws/{id}", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(sessions);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("cannot listen");
    println!("naive broadcaster listening on http://{}", listener.local_addr().expect("bound"));
    axum::serve(listener, app).await.expect("server failed");
}

fn ticket(headers: &HeaderMap, id: &str, session: &Session) -> Json<Value> {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1:8090");
    Json(json!({
        "gameId": id, "region": "local", "wsEndpoint": format!("ws://{host}/ws/{id}"), "token": "-",
        "startAt": session.start_at, "tickMs": session.tick_ms,
    }))
}

async fn start(State(sessions): State<Sessions>, headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
    let tick_ms = body["tickMs"].as_i64().unwrap_or(100).max(1);
    let start_at = now_ms() + body["countdownMs"].as_i64().unwrap_or(3000);
    let id = uuid::Uuid::now_v7().to_string();
    let (ticks, _) = broadcast::channel(CHANNEL_CAPACITY);
    let session = Session { start_at, tick_ms, ticks: ticks.clone() };
    sessions.lock().unwrap().insert(id.clone(), session.clone());
    tokio::spawn(run_ticker(session.clone()));
    ticket(&headers, &id, &session)
}

async fn join(State(sessions): State<Sessions>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let session = sessions.lock().unwrap().get(&id).cloned();
    match session {
        Some(session) => ticket(&headers, &id, &session).into_response(),
        None => (axum::http::StatusCode::NOT_FOUND, "no such game").into_response(),
    }
}

/// Ticks at `startAt + step·tickMs`, forever (the bots leave when they have measured).
async fn run_ticker(session: Session) {
    let start = tokio::time::Instant::now()
        + Duration::from_millis((session.start_at - now_ms()).max(0).unsigned_abs());
    let mut every = tokio::time::interval_at(start, Duration::from_millis(session.tick_ms.unsigned_abs()));
    for step in 0i64.. {
        every.tick().await;
        let scheduled_at = session.start_at + step * session.tick_ms;
        let tick = json!({
            "type": "tick", "step": step, "value": step + 1, "round": 0, "broken": false,
            "scheduledAt": scheduled_at, "serverTimestamp": now_ms(),
        });
        let _ = session.ticks.send(Utf8Bytes::from(tick.to_string()));
    }
}

async fn upgrade(State(sessions): State<Sessions>, Path(id): Path<String>, ws: WebSocketUpgrade) -> Response {
    let session = sessions.lock().unwrap().get(&id).cloned();
    match session {
        Some(session) => ws.on_upgrade(move |socket| play(socket, session)),
        None => (axum::http::StatusCode::NOT_FOUND, "no such game").into_response(),
    }
}

/// One player: after its first message (the join), every tick of the session. As in axum's
/// own chat example, the socket is split: one task forwards ticks, one reads until the close.
async fn play(mut socket: WebSocket, session: Session) {
    if !matches!(socket.recv().await, Some(Ok(Message::Text(_)))) {
        return;
    }
    let mut ticks = session.ticks.subscribe();
    let joined = json!({"type": "session_joined", "startAt": session.start_at, "tickMs": session.tick_ms});
    if socket.send(Message::Text(joined.to_string().into())).await.is_err() {
        return;
    }
    let (mut sender, mut receiver) = socket.split();
    let mut send_task = tokio::spawn(async move {
        loop {
            match ticks.recv().await {
                Ok(text) => {
                    if sender.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let mut recv_task = tokio::spawn(async move {
        while let Some(Ok(message)) = receiver.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    });
    tokio::select! {
        _ = &mut send_task => recv_task.abort(),
        _ = &mut recv_task => send_task.abort(),
    }
}
