//! The roles as separate processes on a shared log (Kafka by default: a real broker,
//! `TICKCAST_TEST_KAFKA`): `Role` runs one, `Cluster` an edge, a gateway and tick generators.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::support::{Player, Process, Seen, TOKEN_SECRET, relax_limits};

pub(crate) fn broker() -> String {
    std::env::var("TICKCAST_TEST_KAFKA")
        .unwrap_or_else(|_| panic!("set TICKCAST_TEST_KAFKA (a Kafka-API broker, HOST:PORT) or run ./scripts/test.sh, which provides it"))
}

/// One tickcast role as a child process; killed on drop.
pub(crate) struct Role {
    pub(crate) process: Process,
    /// What it printed as its address (edge, gateway).
    pub(crate) url: Option<String>,
    /// Everything it printed, stdout and stderr (stderr is also passed on to the test's).
    pub(crate) output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Role {
    /// Starts `tickcast ARGS` with the tests' secret; waits for a stdout line starting with
    /// `listening` (then keeps the rest of the line as its URL).
    pub(crate) fn start(args: &[&str], listening: Option<&str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tickcast"));
        command.env("TICKCAST_TOKEN_SECRET", TOKEN_SECRET);
        Self::spawn(command.args(args), listening)
    }

    /// Starts `command` as a role; everything it prints (stdout and stderr) is kept in `output`.
    pub(crate) fn spawn(command: &mut Command, listening: Option<&str>) -> Self {
        let mut child = relax_limits(command)
            .env("RUST_LOG", std::env::var("TICKCAST_TEST_ROLE_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let keep = std::sync::Arc::clone(&output);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
                keep.lock().unwrap().push_str(&line);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut url = None;
        if let Some(prefix) = listening {
            for line in lines.by_ref() {
                let line = line.unwrap();
                output.lock().unwrap().push_str(&line);
                if let Some(rest) = line.strip_prefix(prefix) {
                    url = Some(rest.trim().to_owned());
                    break;
                }
            }
            assert!(url.is_some(), "a role exited before it listened: {}", output.lock().unwrap());
        }
        let keep = std::sync::Arc::clone(&output);
        std::thread::spawn(move || {
            lines.map_while(Result::ok).for_each(|l| keep.lock().unwrap().push_str(&l))
        });
        Self { process: Process(child), url, output }
    }
}

/// Topics under a fresh prefix, one gateway (eu-west-1), the edge, and tick generators.
pub(crate) struct Cluster {
    pub(crate) log: String,
    /// Flags every role and `topics create` get beside `--log` (how to reach the broker).
    pub(crate) log_flags: Vec<String>,
    pub(crate) edge: Role,
    pub(crate) gateway: Role,
    pub(crate) generators: Vec<Role>,
    pub(crate) generator_flags: Vec<String>,
    pub(crate) http: reqwest::Client,
}

impl Cluster {
    pub(crate) fn start(generators: usize) -> Self {
        Self::start_with(generators, 6, &[])
    }

    /// `partitions` per topic; `generator_flags` for every tick generator.
    pub(crate) fn start_with(generators: usize, partitions: u32, generator_flags: &[&str]) -> Self {
        Self::start_on(&broker(), &[], generators, partitions, generator_flags)
    }

    /// The same on the broker at `broker` (HOST:PORT), reached with `log_flags`.
    pub(crate) fn start_on(
        broker: &str,
        log_flags: &[&str],
        generators: usize,
        partitions: u32,
        generator_flags: &[&str],
    ) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let log = format!("kafka://{broker}?prefix=it{}-{}-", std::process::id(), nanos % 1_000_000_000);
        let output = Command::new(env!("CARGO_BIN_EXE_tickcast"))
            .args(["topics", "create", "--log", &log, "--partitions", &partitions.to_string()])
            .args(log_flags)
            .output()
            .unwrap();
        assert!(output.status.success(), "topics create failed: {}", String::from_utf8_lossy(&output.stderr));
        Self::on_log(log, log_flags, generators, generator_flags)
    }

    /// The roles on the log at `log` (its topics made), reached with `log_flags`.
    pub(crate) fn on_log(
        log: String,
        log_flags: &[&str],
        generators: usize,
        generator_flags: &[&str],
    ) -> Self {
        let role = |args: &[&str], listening| {
            let mut args = args.to_vec();
            args.extend(["--log", &log]);
            args.extend(log_flags);
            Role::start(&args, listening)
        };
        let gateway =
            role(&["gateway", "--region", REGION, "--listen", "127.0.0.1:0"], Some("gateway listening on "));
        let gateway_url = gateway.url.clone().unwrap();
        let edge = role(
            &["edge", "--listen", "127.0.0.1:0", "--gateway", &format!("{REGION}={gateway_url}")],
            Some("edge listening on "),
        );
        let generator_flags = generator_flags.iter().map(|f| (*f).to_owned()).collect();
        let mut cluster = Self {
            log,
            log_flags: log_flags.iter().map(|f| (*f).to_owned()).collect(),
            edge,
            gateway,
            generators: Vec::new(),
            generator_flags,
            http: crate::support::http_client(),
        };
        for _ in 0..generators {
            cluster.add_generator();
        }
        cluster
    }

    /// Starts one more tick generator, `gen-N`.
    pub(crate) fn add_generator(&mut self) {
        let instance = format!("gen-{}", self.generators.len() + 1);
        let mut args = vec!["tick-generator", "--log", &self.log, "--instance-id", &instance];
        args.extend(self.log_flags.iter().map(String::as_str));
        args.extend(self.generator_flags.iter().map(String::as_str));
        self.generators.push(Role::start(&args, None));
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.edge.url.as_deref().unwrap());
        let response = self.http.post(url).json(&body).send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{path}: {answer}");
        answer
    }
}

pub(crate) const REGION: &str = "eu-west-1";

/// Every tick step a player saw, with when it arrived.
pub(crate) type Received = Arc<Mutex<Vec<(i64, Instant)>>>;

/// Reads a player's frames until `stop`, recording ticks; returns the close code if it closed.
pub(crate) fn record_ticks(
    mut player: Player,
    stop: Instant,
) -> (Received, tokio::task::JoinHandle<Option<u16>>) {
    let received: Received = Arc::default();
    let sink = Arc::clone(&received);
    let task = tokio::spawn(async move {
        while Instant::now() < stop {
            let frame = tokio::time::timeout_at(stop, player.next()).await;
            match frame {
                Err(_) => return None,
                Ok(Seen::Json(value)) if value["type"] == "tick" => {
                    sink.lock().unwrap().push((value["step"].as_i64().unwrap(), Instant::now()));
                }
                Ok(Seen::Json(value)) if value["type"] == "error" => panic!("error frame: {value}"),
                Ok(Seen::Json(_)) => {}
                Ok(Seen::Closed(code)) => return code,
            }
        }
        None
    });
    (received, task)
}

pub(crate) fn assert_every_step_once_in_order(who: &str, steps: &[i64]) {
    assert!(!steps.is_empty(), "{who} received no tick");
    for (expected, step) in (0..).zip(steps) {
        assert_eq!(*step, expected, "{who}: step {expected} missing, doubled or out of order (got {step})");
    }
}

/// A broker of this test's own (tansu, `TICKCAST_TEST_TANSU`), so pausing it stalls no other test.
pub(crate) fn own_broker() -> (Process, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    own_broker_on(port, port, &[])
}

/// tansu listening on `port` and telling clients to connect to `advertised` (a proxy in front),
/// with `extra` flags (e.g. `--authentication`).
pub(crate) fn own_broker_on(port: u16, advertised: u16, extra: &[&str]) -> (Process, String) {
    let bin = std::env::var("TICKCAST_TEST_TANSU").unwrap_or_else(|_| {
        panic!("set TICKCAST_TEST_TANSU (the tansu binary) or run ./scripts/test.sh, which provides it")
    });
    let child = Command::new(bin)
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
            "--storage-engine",
            "memory://tansu/",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&broker).is_err() {
        assert!(std::time::Instant::now() < deadline, "tansu did not listen on {broker}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Process(child), broker)
}

/// A gateway of `REGION` on `log`, on a free port, as `instance` (each gateway of a region needs
/// its own: players are counted by the gateway id they joined through).
pub(crate) fn gateway_on(log: &str, instance: &str) -> Role {
    Role::start(
        &["gateway", "--log", log, "--region", REGION, "--listen", "127.0.0.1:0", "--instance", instance],
        Some("gateway listening on "),
    )
}

/// An edge on `log` that sends players to these (region, gateway URL) pairs.
pub(crate) fn edge_with_gateways(log: &str, gateways: &[(&str, &str)]) -> Role {
    let mut args =
        vec!["edge".to_owned(), "--log".into(), log.into(), "--listen".into(), "127.0.0.1:0".into()];
    for (region, url) in gateways {
        args.extend(["--gateway".to_owned(), format!("{region}={url}")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Role::start(&args, Some("edge listening on "))
}

/// A free port on 127.0.0.1, for a process that must come back where it was.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
