//! The seed stays secret until `session_ended` everywhere outside the log itself: no HTTP
//! answer, no WebSocket frame and no archive file of a running game holds it.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::archive::replay_archive;
use crate::support::{Player, Seen, Server, eventually, test_python};

/// Every value of every row of every Parquet file under `dir`, as JSON text.
fn dump_archive(dir: &Path) -> String {
    let script = r#"
import glob, json, sys, pyarrow.parquet as pq
rows = []
for path in sorted(glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True)):
    rows.extend(pq.read_table(path).to_pylist())
print(json.dumps(rows, default=str))
"#;
    let output = Command::new(test_python()).args(["-c", script]).arg(dir).output().unwrap();
    assert!(output.status.success(), "pyarrow: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.path().extension().is_some_and(|e| e == "parquet") {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_frame_or_archive_of_a_running_game_holds_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(dir.path(), &["--archive-roll-age", "1s"]);
    let mut http_answers = Vec::new();
    let (status, ticket) = server
        .post(
            "/edge/game/start",
            &json!({"userId":"a","tickMs":20,"countdownMs":500,"maxRounds":3,"minBreakSteps":100,"maxBreakSteps":120})
                .to_string(),
        )
        .await;
    assert_eq!(status, 200);
    http_answers.push(ticket.to_string());
    let game_id = ticket["gameId"].as_str().unwrap().to_owned();
    let (status, joined) =
        server.post(&format!("/edge/game/{game_id}/join"), &json!({"userId":"b"}).to_string()).await;
    assert_eq!(status, 200);
    http_answers.push(joined.to_string());

    let mut readers = Vec::new();
    for (user, ticket) in [("a", ticket.clone()), ("b", joined)] {
        let mut player = Player::join(&ticket, user, None).await;
        readers.push(tokio::spawn(async move {
            let mut frames = Vec::new();
            loop {
                match player.next().await {
                    Seen::Json(frame) if frame["type"] == "session_ended" => return (frames, frame),
                    Seen::Json(frame) => frames.push(frame.to_string()),
                    Seen::Closed(code) => panic!("closed ({code:?}) before the end: {frames:?}"),
                }
            }
        }));
    }

    // While the game runs, its session_created is in a closed archive file (files roll every
    // second here): take a copy of the archive as it is then.
    let archive = dir.path().join("archive");
    let snapshot = tempfile::tempdir().unwrap();
    eventually("a closed archive file with the game's session_created", || {
        let (archive, snapshot) = (archive.clone(), snapshot.path().to_owned());
        let game_id = game_id.clone();
        async move {
            if !archive.join("kind=events").is_dir() {
                return None;
            }
            copy_dir(&archive, &snapshot);
            // Its session_created row itself, not just a row of the game in another kind's file.
            let dump = dump_archive(&snapshot);
            (dump.contains(&game_id) && dump.contains("\"session_created\"")).then_some(())
        }
    })
    .await;

    let mut seed = None;
    for reader in readers {
        let (frames, ended) = reader.await.unwrap();
        let revealed = ended["seed"].as_str().unwrap().to_owned();
        for frame in &frames {
            assert!(!frame.contains(&revealed), "a frame before the end holds the seed: {frame}");
        }
        seed = Some(revealed);
    }
    let seed = seed.unwrap();
    assert!(seed.len() > 4, "a seed long enough not to appear by chance: {seed}");
    for answer in &http_answers {
        assert!(!answer.contains(&seed), "an HTTP answer holds the seed: {answer}");
    }
    let running = dump_archive(snapshot.path());
    assert!(!running.contains(&seed), "the archive of the running game holds its seed");

    // The replay tools read the running game's archive without pretending to know its seed.
    let (ok, out) = replay_archive(snapshot.path(), &["verify", "--all"]);
    assert!(ok && out.contains("still running in the archive"), "{out}");

    // Once the game is over, the seed reaches the archive with session_ended: the scan above
    // would have found it.
    assert!(server.terminate().success());
    assert!(dump_archive(&archive).contains(&seed), "session_ended brings the seed to the archive");
    let (ok, out) = replay_archive(&archive, &["verify", "--all"]);
    assert!(ok && out.contains("verified 1 session(s)"), "{out}");
}
