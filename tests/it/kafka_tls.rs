//! Kafka over TLS: the split roles reach their broker through TLS alone and check its
//! certificate against `--kafka-ca`. tansu 0.6 cannot serve TLS from its command line (its
//! `--cert` and `--key` exclude each other), so a TLS front sits before it, and tansu tells
//! clients to connect to the front.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::kafka::{Cluster, REGION, assert_every_step_once_in_order, own_broker_on};
use crate::support::Player;
use crate::tls::self_signed;

/// Accepts TLS on `front` and forwards the plain bytes to `upstream`; counts handshakes.
fn tls_front(front: TcpListener, upstream: String, config: Arc<rustls::ServerConfig>) -> Arc<AtomicUsize> {
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&handshakes);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((client, _)) = front.accept().await {
            let (acceptor, upstream, counted) = (acceptor.clone(), upstream.clone(), Arc::clone(&counted));
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(client).await else { return };
                counted.fetch_add(1, Ordering::Relaxed);
                let Ok(mut broker) = TcpStream::connect(&upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
            });
        }
    });
    handshakes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_play_a_game_through_a_tls_broker_they_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path());
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_port = front.local_addr().unwrap().port();
    let broker_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_broker, upstream) = own_broker_on(broker_port, front_port);
    let config = tickcast_gateways::tls::server_config(cert.as_ref(), key.as_ref()).unwrap();
    let handshakes = tls_front(front, upstream, config);
    let address = format!("127.0.0.1:{front_port}");

    // A client that does not trust the broker's certificate (the system's CAs) is refused,
    // and says why.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["topics", "create", "--log", &format!("kafka://{address}?prefix=untrusted-")])
        .args(["--kafka-security-protocol", "ssl"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "an untrusted broker was used");
    assert!(stderr.contains("certificate"), "the refusal names the certificate: {stderr}");

    let cluster =
        Cluster::start_on(&address, &["--kafka-security-protocol", "ssl", "--kafka-ca", &cert], 1, 1, &[]);
    let ticket = cluster
        .post(
            "/edge/game/start",
            json!({"userId":"tess","tickMs":50,"countdownMs":1500,"maxRounds":2,"preferredRegion":REGION}),
        )
        .await;
    let mut player = Player::join(&ticket, "tess", None).await;
    let (frames, ended) = player.until("session_ended").await;
    let steps: Vec<i64> =
        frames.iter().filter(|f| f["type"] == "tick").map(|f| f["step"].as_i64().unwrap()).collect();
    assert_every_step_once_in_order("tess", &steps);
    assert_eq!(ended["reason"], "max_rounds", "{ended}");
    assert!(handshakes.load(Ordering::Relaxed) > 0, "the roles went through TLS");
}
