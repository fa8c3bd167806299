//! Kafka over TLS and SASL: the split roles reach their broker through TLS alone and check its
//! certificate against `--kafka-ca`. tansu 0.6 cannot serve TLS from its command line (its
//! `--cert` and `--key` exclude each other), so a TLS front sits before it, and tansu tells
//! clients to connect to the front. A broker that requires a login (`--authentication`)
//! refuses clients that do not log in, and a SASL client says what the broker answered (for
//! SCRAM, its verdict on the user); a login that succeeds is not shown: tansu's users cannot be
//! created on a broker that requires a login (`user create` does not log in), and on its S3
//! storage (moto) a user created before a restart with `--authentication` is unknown after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::cluster::{Cluster, REGION, assert_every_step_once_in_order, own_broker_on};
use crate::support::{Player, Process};
use crate::tls::self_signed;

/// A password no message should ever quote.
const PASSWORD: &str = "never-printed-7f3a";

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

/// `tickcast topics create` on the broker at `address` with `flags`: whether it worked, and
/// what it printed on stderr.
fn topics_create(address: &str, flags: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["topics", "create", "--log", &format!("kafka://{address}?prefix=refused-")])
        .args(flags)
        .env_remove("TICKCAST_KAFKA_SASL_PASSWORD")
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A tansu with `extra` flags behind a TLS front with the certificate in `dir`: the broker, the
/// front's address, and how many TLS handshakes the front completed.
async fn tls_broker(dir: &std::path::Path, extra: &[&str]) -> (Process, String, Arc<AtomicUsize>) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_port = front.local_addr().unwrap().port();
    let broker_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (broker, upstream) = own_broker_on(broker_port, front_port, extra);
    let config = tickcast_http::tls::server_config(&cert, &key).unwrap();
    (broker, format!("127.0.0.1:{front_port}"), tls_front(front, upstream, config))
}

/// Clients that cannot trust the broker, or do not log in to one that requires it, are
/// refused and say why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_broker_or_a_missing_login_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = self_signed(dir.path());
    let (_broker, address, _) = tls_broker(dir.path(), &["--authentication"]).await;
    let (created, stderr) = topics_create(&address, &["--kafka-security-protocol", "ssl"]);
    assert!(!created, "an untrusted broker was used");
    assert!(stderr.contains("certificate"), "the refusal names the certificate: {stderr}");
    let (created, stderr) =
        topics_create(&address, &["--kafka-security-protocol", "ssl", "--kafka-ca", &cert]);
    assert!(!created, "a broker that requires a login let a client in without one: {stderr}");
    let (created, stderr) = topics_create(
        &address,
        &[
            "--kafka-ca",
            &cert,
            "--kafka-sasl-mechanism",
            "PLAIN",
            "--kafka-sasl-username",
            "ops",
            "--kafka-sasl-password",
            PASSWORD,
        ],
    );
    assert!(!created, "tansu does not take PLAIN: {stderr}");
    assert!(stderr.contains("SASL PLAIN"), "the refusal says which login failed: {stderr}");
    assert!(!stderr.contains(PASSWORD), "the password is not printed: {stderr}");
    // SCRAM, which it takes: the exchange runs to the broker's verdict on the user.
    let (created, stderr) = topics_create(
        &address,
        &[
            "--kafka-ca",
            &cert,
            "--kafka-sasl-mechanism",
            "SCRAM-SHA-512",
            "--kafka-sasl-username",
            "ops",
            "--kafka-sasl-password",
            PASSWORD,
        ],
    );
    assert!(!created, "tansu knows no user: {stderr}");
    assert!(!stderr.contains(PASSWORD), "the password is not printed: {stderr}");
    assert!(stderr.contains("unknown-user"), "the broker's verdict reaches the operator: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("SCRAM"), "the error itself says why the brokers could not be reached: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_play_a_game_through_a_tls_broker_they_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = self_signed(dir.path());
    let (_broker, address, handshakes) = tls_broker(dir.path(), &[]).await;
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
