//! Test support: a `tickcast up` child process, a WebSocket player, and a latency proxy.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub(crate) const TOKEN_SECRET: &str = "tickcast-test-secret-0123456789";
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// A child process, killed when dropped.
pub(crate) struct Process(pub(crate) Child);

impl Process {
    /// SIGKILL: no destructor, no flush.
    pub(crate) fn kill9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// SIGTERM, then its exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.0.wait().unwrap()
    }

    /// Sends signal `name` (e.g. "STOP", "CONT").
    pub(crate) fn signal(&self, name: &str) {
        let status =
            Command::new("kill").args([&format!("-{name}"), &self.0.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Python with pyarrow and duckdb that `scripts/test.sh` installs: independent readers of
/// the Parquet files tickcast writes.
pub(crate) fn test_python() -> String {
    std::env::var("TICKCAST_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("set TICKCAST_TEST_PYTHON (a python with pyarrow and duckdb) or run ./scripts/test.sh, which provides it"))
}

/// `tickcast up` on a fresh data directory and a free port; killed on drop.
pub(crate) struct Server {
    child: Process,
    pub(crate) addr: SocketAddr,
    /// The admin listener (`--admin-listen`), if it has one.
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) data_dir: std::path::PathBuf,
    /// `https` when it serves TLS (`--tls-cert`), else `http`.
    scheme: &'static str,
    /// Removes the data directory when the last server using it is dropped.
    _owner: Option<std::sync::Arc<tempfile::TempDir>>,
    pub(crate) http: reqwest::Client,
}

/// An HTTP client for a test's whole run: it lets a pooled connection go after 5 s idle, before
/// the server closes it (its keep-alive idle limit is the header read timeout, 10 s), so no
/// request is sent on a connection the server is closing at that moment.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5)).build().unwrap()
}

/// Turns off the limits the tests trip by design, each of which has a test of its own that turns
/// it on with its flag (a flag beats the environment): admission control (debug builds side by
/// side on two cores lag for reasons that say nothing about capacity, and the players admitted
/// are not counted against a capacity) and the limits per client
/// address (every test is one client, 127.0.0.1) and per user.
pub(crate) fn relax_limits(command: &mut Command) -> &mut Command {
    command
        .env("TICKCAST_SATURATION_LAG_MS", "0")
        .env("TICKCAST_MAX_PLAYERS", "0")
        .env("TICKCAST_GAME_RATE_PER_IP", "0")
        .env("TICKCAST_MAX_CONNECTIONS_PER_IP", "0")
        .env("TICKCAST_MAX_GAMES_PER_USER", "0")
}

impl Server {
    pub(crate) fn start() -> Self {
        Self::start_with(&[])
    }

    pub(crate) fn start_with(extra: &[&str]) -> Self {
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let mut server = Self::start_in(dir.path(), extra);
        server._owner = Some(dir);
        server
    }

    /// A server on an existing data directory (to restart on the same log).
    pub(crate) fn start_in(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::spawn(data_dir, extra, Some(TOKEN_SECRET), &[])
    }

    /// A server on an existing data directory with `env` set in its environment.
    pub(crate) fn start_in_with_env(
        data_dir: &std::path::Path,
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Self {
        Self::spawn(data_dir, extra, Some(TOKEN_SECRET), env)
    }

    /// A server on a new data directory with `env` set in its environment.
    pub(crate) fn start_with_env(env: &[(&str, &str)], extra: &[&str]) -> Self {
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let mut server = Self::spawn(dir.path(), extra, Some(TOKEN_SECRET), env);
        server._owner = Some(dir);
        server
    }

    /// A server on an existing data directory with no token secret configured, as a newcomer
    /// runs it: it keeps its own in the data directory.
    pub(crate) fn start_unconfigured(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::spawn(data_dir, extra, None, &[])
    }

    fn spawn(data_dir: &std::path::Path, extra: &[&str], secret: Option<&str>, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tickcast"));
        command.args(["up", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir).args(extra);
        match secret {
            Some(secret) => command.env("TICKCAST_TOKEN_SECRET", secret),
            None => command.env_remove("TICKCAST_TOKEN_SECRET"),
        };
        relax_limits(&mut command);
        command.envs(env.iter().copied());
        let mut child = command.env("RUST_LOG", "warn").stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut addr, mut admin) = (None, None);
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.trim().strip_prefix("admin (/metrics, /healthz, /readyz) on http://") {
                admin = Some(rest.parse().unwrap());
            }
            if let Some(rest) = line.trim().strip_prefix("open        ") {
                let (scheme, rest) = rest.split_once("://").unwrap();
                addr = Some((
                    if scheme == "https" { "https" } else { "http" },
                    rest.trim_end_matches('/').to_owned(),
                ));
                break;
            }
        }
        let (scheme, addr) = addr.expect("tickcast up printed its address");
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child: Process(child),
            addr: addr.parse().unwrap(),
            admin,
            data_dir: data_dir.to_owned(),
            scheme,
            _owner: None,
            http: http_client(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// POSTs a JSON body; returns the status and the JSON answer.
    pub(crate) async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// GETs `path`; returns the status and the JSON answer.
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    pub(crate) async fn start_game(&self, body: Value) -> Value {
        let (status, ticket) = self.post("/edge/game/start", &body.to_string()).await;
        assert_eq!(status, 200, "{ticket}");
        ticket
    }

    pub(crate) async fn join_game(&self, game_id: &str, user_id: &str) -> Value {
        let (status, ticket) =
            self.post(&format!("/edge/game/{game_id}/join"), &json!({ "userId": user_id }).to_string()).await;
        assert_eq!(status, 200, "{ticket}");
        ticket
    }

    /// SIGKILL: no destructor, no flush.
    pub(crate) fn kill9(&mut self) {
        self.child.kill9();
    }

    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        self.child.terminate()
    }

    /// Sends signal `name` (e.g. "STOP", "CONT") to the server.
    pub(crate) fn signal(&self, name: &str) {
        self.child.signal(name);
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The server's Prometheus text.
    pub(crate) async fn metrics(&self) -> String {
        self.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap()
    }
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A player's WebSocket.
pub(crate) struct Player {
    pub(crate) ws: Ws,
}

/// What a player saw.
#[derive(Debug)]
pub(crate) enum Seen {
    Json(Value),
    Closed(Option<u16>),
}

impl Player {
    pub(crate) async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { ws }
    }

    /// Connects, or `None` when the server refuses (a stopping gateway answers 503) or is gone.
    pub(crate) async fn try_connect(url: &str) -> Option<Self> {
        tokio_tungstenite::connect_async(url).await.ok().map(|(ws, _)| Self { ws })
    }

    /// Connects over TLS with `config` (which trusts the server's certificate).
    pub(crate) async fn connect_tls(url: &str, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        let connector = tokio_tungstenite::Connector::Rustls(config);
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
            .await
            .unwrap();
        Self { ws }
    }

    /// Connects to the ticket's endpoint (or `via`, a proxy in front of it) and sends `join`.
    pub(crate) async fn join(ticket: &Value, user_id: &str, via: Option<SocketAddr>) -> Self {
        let mut url = ticket["wsEndpoint"].as_str().unwrap().to_owned();
        if let Some(proxy) = via {
            let path = url.split_once("/ws/").unwrap().1.to_owned();
            url = format!("ws://{proxy}/ws/{path}");
        }
        let mut player = Self::connect(&url).await;
        player.send(json!({"action":"join","sessionId":ticket["gameId"],"userId":user_id,"token":ticket["token"]})).await;
        player
    }

    pub(crate) async fn send(&mut self, value: Value) {
        self.ws.send(Message::text(value.to_string())).await.unwrap();
    }

    pub(crate) async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.unwrap();
    }

    /// The next JSON frame or the close, within `WAIT`.
    pub(crate) async fn next(&mut self) -> Seen {
        loop {
            let message =
                tokio::time::timeout(WAIT, self.ws.next()).await.expect("no frame within the deadline");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Seen::Json(serde_json::from_str(&text).unwrap());
                }
                Some(Ok(Message::Close(frame))) => {
                    return Seen::Closed(frame.map(|f| f.code.into()));
                }
                None | Some(Err(_)) => return Seen::Closed(None),
                Some(Ok(_)) => {}
            }
        }
    }

    pub(crate) async fn next_json(&mut self) -> Value {
        match self.next().await {
            Seen::Json(value) => value,
            Seen::Closed(code) => panic!("connection closed ({code:?}) while a frame was expected"),
        }
    }

    /// Frames until one of type `kind` (returned with those before it).
    pub(crate) async fn until(&mut self, kind: &str) -> (Vec<Value>, Value) {
        let mut before = Vec::new();
        loop {
            let value = self.next_json().await;
            if value["type"] == kind {
                return (before, value);
            }
            before.push(value);
        }
    }

    /// Reads until the connection closes; returns the frames and the close code.
    pub(crate) async fn until_closed(&mut self) -> (Vec<Value>, Option<u16>) {
        let mut frames = Vec::new();
        loop {
            match self.next().await {
                Seen::Json(value) => frames.push(value),
                Seen::Closed(code) => return (frames, code),
            }
        }
    }
}

/// A TCP proxy that delays every chunk by `delay` in each direction, keeping order.
pub(crate) async fn latency_proxy(upstream: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(upstream).await.unwrap();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(delayed_pipe(client_read, server_write, delay));
            tokio::spawn(delayed_pipe(server_read, client_write, delay));
        }
    });
    addr
}

async fn delayed_pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (chunks, mut delayed) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((due, chunk)) = delayed.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 || chunks.send((Instant::now() + delay, buffer[..n].to_vec())).is_err() {
            break;
        }
    }
}

/// Every event in the server's log topic, decoded as JSON.
pub(crate) async fn log_events(server: &Server, topic: &str) -> Vec<Value> {
    let log = tickcast_eventlog::embedded::EmbeddedLog::open_read_only(&server.data_dir).unwrap();
    topic_events(&log, topic).await
}

/// Every event in `topic` of `log` (all partitions), decoded as JSON.
pub(crate) async fn topic_events(log: &dyn tickcast_eventlog::EventLog, topic: &str) -> Vec<Value> {
    let mut scan = log.scan(topic, tickcast_eventlog::StartFrom::Beginning).await.unwrap();
    let mut events = Vec::new();
    while let Some(batch) = scan.next_batch().await.unwrap() {
        events.extend(batch.iter().map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap()));
    }
    events
}

/// `steps` are `first`, `first + 1`, … without a hole or a repeat.
pub(crate) fn assert_every_step_once_from(who: &str, steps: &[i64], first: i64) {
    assert!(!steps.is_empty(), "{who} received no tick");
    for (expected, step) in (first..).zip(steps) {
        assert_eq!(*step, expected, "{who}: step {expected} missing, doubled or out of order (got {step})");
    }
}

/// Polls `check` until it returns `Some`, or panics after `WAIT`.
pub(crate) async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The players `users` of the game `ticket` started (its starter first, the others joining it),
/// each read by `keep_reading` until `ticks` ticks.
pub(crate) async fn players_reading(
    server: &Server,
    ticket: &Value,
    users: &[&str],
    ticks: usize,
) -> Vec<tokio::task::JoinHandle<(Vec<Value>, Option<u16>)>> {
    let game_id = ticket["gameId"].as_str().unwrap();
    let mut readers = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let ticket = if i == 0 { ticket.clone() } else { server.join_game(game_id, user).await };
        readers.push(keep_reading(Player::join(&ticket, user, None).await, ticks));
    }
    readers
}

/// Reads a player's frames in a task of its own, as a real client does (answering pings as they
/// come), until `ticks` ticks arrived or the connection closed; returns the frames and the close
/// code if it closed.
pub(crate) fn keep_reading(
    mut player: Player,
    ticks: usize,
) -> tokio::task::JoinHandle<(Vec<serde_json::Value>, Option<u16>)> {
    tokio::spawn(async move {
        let mut frames = Vec::new();
        while frames.iter().filter(|f: &&serde_json::Value| f["type"] == "tick").count() < ticks {
            match player.next().await {
                Seen::Json(frame) => frames.push(frame),
                Seen::Closed(code) => return (frames, code),
            }
        }
        (frames, None)
    })
}

/// Taken by the tests that load the machine most (tick generators scaled and killed under
/// hundreds of players): they take turns rather than starve each other of the two cores, which
/// would make their hand-over stalls the other test's doing.
pub(crate) static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every RTT sample in `events` (`game-events` as JSON), as `{sessionId, connectionId, rttMs,
/// at}`: each of a `latency_samples`'s, and a `latency_sampled` as one.
pub(crate) fn rtt_samples(events: &[Value]) -> Vec<Value> {
    let mut samples = Vec::new();
    for event in events {
        match event["type"].as_str() {
            Some("latency_samples") => {
                for sample in event["samples"].as_array().into_iter().flatten() {
                    let mut sample = sample.clone();
                    sample["sessionId"] = event["sessionId"].clone();
                    samples.push(sample);
                }
            }
            Some("latency_sampled") => samples.push(json!({
                "sessionId": event["sessionId"], "connectionId": event["connectionId"],
                "rttMs": event["rttMs"], "at": event["at"],
            })),
            _ => {}
        }
    }
    samples
}
