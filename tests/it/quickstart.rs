//! The README's commands as a newcomer pastes them: the Kafka quick-start block is read from
//! README.md and run as written (against the test broker, on ports of its own), and a game is
//! played through it.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::{Player, eventually};

/// The first ```sh block after `heading` in README.md.
fn readme_block(heading: &str) -> String {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme.split_once(heading).unwrap_or_else(|| panic!("README.md has no {heading:?}")).1;
    let block = section.split_once("```sh\n").expect("a shell block").1;
    block.split_once("```").expect("the block ends").0.to_owned()
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The shell that runs the block, and every role it started (its process group), killed on drop.
struct Shell(std::process::Child);

impl Drop for Shell {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_kafka_quick_start_plays_a_game_as_written() {
    let broker = std::env::var("TICKCAST_TEST_KAFKA").unwrap_or_else(|_| {
        panic!("set TICKCAST_TEST_KAFKA (a Kafka-API broker, HOST:PORT) or run ./scripts/test.sh, which provides it")
    });
    let block = readme_block("## Scale out on Kafka");
    assert!(block.contains("TICKCAST_TOKEN_SECRET"), "the quick-start sets the ticket secret:\n{block}");
    // The README's text, on this test's broker (topics of its own) and ports.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let log = format!("kafka://{broker}?prefix=readme{}-{}-", std::process::id(), nanos % 1_000_000_000);
    let (edge, gateway) = (free_port(), free_port());
    let script = block
        .replace("kafka://127.0.0.1:9092", &log)
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{edge}"))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{gateway}"));
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_tickcast")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let _shell = Shell(
        Command::new("bash")
            .args(["-euc", &format!("{script}\nwait")])
            .env("PATH", path)
            .env_remove("TICKCAST_TOKEN_SECRET")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let http = crate::support::http_client();
    let start = format!("http://127.0.0.1:{edge}/edge/game/start");
    let ticket = eventually("the edge to start a game in the gateway's region", || {
        let (http, start) = (http.clone(), start.clone());
        async move {
            let response = http
                .post(start)
                .json(&json!({"userId":"newcomer","tickMs":20,"countdownMs":500,"maxRounds":2,"minBreakSteps":10,"maxBreakSteps":15}))
                .send()
                .await
                .ok()?;
            if response.status() != 200 {
                return None;
            }
            response.json::<serde_json::Value>().await.ok()
        }
    })
    .await;
    assert_eq!(ticket["region"], "eu-west-1", "{ticket}");
    let mut player = Player::join(&ticket, "newcomer", None).await;
    let (frames, code) = player.until_closed().await;
    assert_eq!(code, Some(1000), "the game ran to its end: {frames:?}");
    let steps: Vec<i64> =
        frames.iter().filter(|f| f["type"] == "tick").map(|f| f["step"].as_i64().unwrap()).collect();
    crate::support::assert_every_step_once_from("newcomer", &steps, 0);
    let ended = frames.iter().find(|f| f["type"] == "session_ended").expect("the end, with the seed");
    assert_eq!(ended["reason"], "max_rounds");
}
