//! TLS on tickcast's own listener: a game end to end over https and wss with a self-signed
//! certificate, as a deployment without a proxy in front runs it.

use std::sync::Arc;

use serde_json::json;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Player, Server, assert_every_step_once_from};

/// One HTTP/1.1 request over TLS (`Connection: close`): the status and the body.
async fn https(server: &Server, client: &Arc<rustls::ClientConfig>, request: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(server.addr.ip().into());
    let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(client)).connect(name, tcp).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    // A server that closes without close_notify ends the read with an error after the body.
    let _ = tls.read_to_string(&mut response).await;
    let (head, body) = response.split_once("\r\n\r\n").expect("a whole HTTP response");
    (head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_owned())
}

async fn https_post(server: &Server, client: &Arc<rustls::ClientConfig>, path: &str, body: &Value) -> Value {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let (status, answer) = https(server, client, &request).await;
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

/// A self-signed certificate for 127.0.0.1 written as PEM files, and a client configuration
/// that trusts it (and nothing else).
pub(crate) fn self_signed(dir: &std::path::Path) -> (String, String, Arc<rustls::ClientConfig>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    (cert.display().to_string(), key.display().to_string(), Arc::new(client))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_plays_end_to_end_over_https_and_wss() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, client) = self_signed(dir.path());
    let server = Server::start_with(&["--tls-cert", &cert, "--tls-key", &key]);
    assert!(server.url("/").starts_with("https://"), "the banner says https: {}", server.url("/"));

    let start = json!({"userId":"tia","tickMs":20,"countdownMs":1500,"maxRounds":2});
    let ticket = https_post(&server, &client, "/edge/game/start", &start).await;
    let endpoint = ticket["wsEndpoint"].as_str().unwrap();
    assert!(endpoint.starts_with("wss://"), "a ticket from a TLS listener says wss: {endpoint}");

    let mut player = Player::connect_tls(endpoint, Arc::clone(&client)).await;
    // A message of several TLS records (60 KiB; a record carries 16) is read whole.
    player.send_raw(tokio_tungstenite::tungstenite::Message::text(format!("{{{}", "x".repeat(60_000)))).await;
    assert_eq!(player.next_json().await["code"], "malformed_json");
    player
        .send(json!({"action":"join","sessionId":ticket["gameId"],"userId":"tia","token":ticket["token"]}))
        .await;
    player.send(json!({"action":"ping","clientTimestamp":5})).await;
    let (frames, ended) = player.until("session_ended").await;
    assert!(
        frames.iter().any(|f| f["type"] == "pong" && f["clientTimestamp"] == 5),
        "a pong over TLS: {frames:?}"
    );
    assert_eq!(frames[0]["type"], "session_joined");
    let steps: Vec<i64> =
        frames.iter().filter(|f| f["type"] == "tick").map(|f| f["step"].as_i64().unwrap()).collect();
    assert!(!steps.is_empty(), "ticks arrived over TLS");
    assert_every_step_once_from("tia", &steps, 0);
    assert_eq!(ended["lastStep"].as_i64(), steps.last().copied(), "{ended}");
    // Pings go through the same TLS session as the ticks: the player answered them, and was
    // measured, without ever being warned (a warning is a `latency_status` frame).
    assert!(frames.iter().all(|f| f["type"] != "latency_status"), "{frames:?}");

    // The page and /metrics are served over TLS too; a plain-text client gets no answer.
    let request = format!("GET /metrics HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n", server.addr);
    let (status, metrics) = https(&server, &client, &request).await;
    assert!(status == 200 && metrics.contains("tickcast_"), "metrics over https: {status}");
    let plain = reqwest::get(format!("http://{}/healthz", server.addr)).await;
    assert!(plain.is_err(), "a TLS listener does not answer plain HTTP: {plain:?}");
}

/// A client that opens a TLS connection and never says hello is closed by the header read
/// timeout, as a half-sent request is in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tls_client_is_closed_by_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path());
    let server = Server::start_with(&["--tls-cert", &cert, "--tls-key", &key, "--header-read-timeout", "1s"]);
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), silent.read(&mut byte))
        .await
        .expect("the server closed the silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "closed, not answered: {read:?}");
}
