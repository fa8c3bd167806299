//! Games that ended long before a restart or a hand-over: their `session_created` and
//! `session_ended` lie more than one read batch (4,096 records) apart in `game-events`, so
//! re-reading the log meets the end several batches after the start. A churning client (join and
//! leave, again and again) writes the records between them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Player, Seen, eventually};

/// Records `game-events` are read in per batch.
const READ_BATCH: usize = 4_096;

/// Join-and-leave cycles per try: two `game-events` records each, comfortably past a batch.
const CHURN_CYCLES: usize = 2_300;

/// The max_rounds game's break, in 20 ms steps, at the first try (8 s); doubled at each further try.
const FIRST_BREAK_STEPS: u64 = 400;

/// Tries before giving up: the last one's max_rounds game lasts 32 s.
const TRIES: u32 = 3;

/// A deployment the test drives: `tickcast up`, or roles on a shared log.
pub(crate) trait Games {
    /// Starts a game (`POST /edge/game/start` with `request`); the ticket.
    async fn start(&self, request: Value) -> Value;
    /// Joins `game_id` as `user_id`; the ticket.
    async fn join(&self, game_id: &str, user_id: &str) -> Value;
    /// Every event of `game-events`, in log order.
    async fn game_events(&self) -> Vec<Value>;
}

/// Two ended games: one by max_rounds (its ticket) and one idle (its id), each with more than a
/// read batch of records between its start and its end, written while `long_id` runs.
///
/// The idle game is held open by a player for the whole churn, so its end always comes after
/// it. The max_rounds game's end is set by its clock: when the machine churns slower than that
/// game plays, the pair is made again with a game twice as long, so a slow machine makes the
/// test longer, not wrong.
pub(crate) async fn games_ended_far_apart(games: &impl Games, long_id: &str) -> (Value, String) {
    let mut break_steps = FIRST_BREAK_STEPS;
    for _ in 0..TRIES {
        let rounds = games
            .start(json!({"userId":"m","tickMs":20,"countdownMs":0,"maxRounds":1,"minBreakSteps":break_steps,"maxBreakSteps":break_steps}))
            .await;
        let rounds_done = tokio::spawn(collect_steps(Player::join(&rounds, "m", None).await));
        let idle = games.start(json!({"userId":"i","tickMs":50,"countdownMs":0})).await;
        let idle_id = idle["gameId"].as_str().unwrap().to_owned();
        let release = hold(Player::join(&idle, "i", None).await).await;

        churn(&games.join(long_id, "churn").await, "churn", CHURN_CYCLES).await;
        release.send(()).unwrap();
        let (_, ended) = rounds_done.await.unwrap();
        assert!(ended, "the max_rounds game ended");
        let events = eventually("the idle game's end", || async {
            let events = games.game_events().await;
            events
                .iter()
                .any(|e| e["sessionId"] == idle_id.as_str() && e["type"] == "session_ended")
                .then_some(events)
        })
        .await;

        let (idle_apart, reason) = records_between_start_and_end(&events, &idle_id);
        assert_eq!(reason, "idle");
        assert!(idle_apart > READ_BATCH, "the idle game's start and end are {idle_apart} records apart");
        let (rounds_apart, reason) =
            records_between_start_and_end(&events, rounds["gameId"].as_str().unwrap());
        assert_eq!(reason, "max_rounds");
        if rounds_apart > READ_BATCH {
            return (rounds, idle_id);
        }
        eprintln!("the max_rounds game ended {rounds_apart} records after its start: again, twice as long");
        break_steps *= 2;
    }
    panic!("no max_rounds game lasted {READ_BATCH} records in {TRIES} tries");
}

/// Keeps `player` in its game (reading its frames, so it answers pings) until the returned
/// sender fires, then closes it.
async fn hold(mut player: Player) -> tokio::sync::oneshot::Sender<()> {
    player.until("session_joined").await;
    let (release, mut released) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut released => break,
                seen = player.next() => {
                    if let Seen::Closed(code) = seen {
                        panic!("the player holding the idle game open was closed ({code:?})");
                    }
                }
            }
        }
        player.send_raw(Message::Close(None)).await;
    });
    release
}

/// Reads ticks until the connection closes; returns the steps seen and whether the session ended.
pub(crate) async fn collect_steps(mut player: Player) -> (Vec<i64>, bool) {
    let mut steps = Vec::new();
    loop {
        match player.next().await {
            Seen::Json(frame) if frame["type"] == "tick" => steps.push(frame["step"].as_i64().unwrap()),
            Seen::Json(frame) if frame["type"] == "session_ended" => return (steps, true),
            Seen::Json(frame) if frame["type"] == "error" => panic!("error frame: {frame}"),
            Seen::Json(_) => {}
            Seen::Closed(_) => return (steps, false),
        }
    }
}

/// Join-and-leave cycles with `ticket` by a few clients at once: two game-events records each.
async fn churn(ticket: &Value, user_id: &str, cycles: usize) {
    let ticket = Arc::new(ticket.clone());
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (ticket, done, user_id) = (Arc::clone(&ticket), Arc::clone(&done), user_id.to_owned());
        clients.spawn(async move {
            while done.fetch_add(1, Ordering::Relaxed) < cycles {
                let mut player = Player::join(&ticket, &user_id, None).await;
                player.until("session_joined").await;
                player.send_raw(Message::Close(None)).await;
                while !matches!(player.next().await, Seen::Closed(_)) {}
            }
        });
    }
    clients.join_all().await;
}

/// The records of `events` between `session`'s `session_created` and `session_ended`, and the
/// end's reason.
fn records_between_start_and_end(events: &[Value], session: &str) -> (usize, String) {
    let created =
        events.iter().position(|e| e["sessionId"] == session && e["type"] == "session_created").unwrap();
    let ended =
        events.iter().position(|e| e["sessionId"] == session && e["type"] == "session_ended").unwrap();
    (ended - created, events[ended]["reason"].as_str().unwrap().to_owned())
}

/// No tick of `session` follows its `session_ended` in the tick topic's `events`, nor goes past
/// its last step.
pub(crate) fn assert_no_tick_after_the_end(events: &[Value], session: &str) {
    let mine: Vec<&Value> = events.iter().filter(|e| e["sessionId"] == session).collect();
    let end = mine.iter().position(|e| e["type"] == "session_ended").expect("its end is in the tick topic");
    let last_step = mine[end]["lastStep"].as_i64().unwrap();
    let late: Vec<&&Value> = mine[end..].iter().filter(|e| e["type"] == "tick").collect();
    assert!(late.is_empty(), "session {session} ticked after its end: {late:?}");
    assert!(
        mine.iter().filter(|e| e["type"] == "tick").all(|e| e["step"].as_i64().unwrap() <= last_step),
        "session {session} ticked past its last step {last_step}"
    );
}

impl Games for crate::support::Server {
    async fn start(&self, request: Value) -> Value {
        self.start_game(request).await
    }

    async fn join(&self, game_id: &str, user_id: &str) -> Value {
        self.join_game(game_id, user_id).await
    }

    async fn game_events(&self) -> Vec<Value> {
        crate::support::log_events(self, "game-events").await
    }
}

impl Games for crate::cluster::Cluster {
    /// In the cluster's one region.
    async fn start(&self, mut request: Value) -> Value {
        request["preferredRegion"] = crate::cluster::REGION.into();
        self.post("/edge/game/start", request).await
    }

    async fn join(&self, game_id: &str, user_id: &str) -> Value {
        self.post(&format!("/edge/game/{game_id}/join"), json!({"userId": user_id})).await
    }

    async fn game_events(&self) -> Vec<Value> {
        let log = tickcast_eventlog::open_read_only(&self.log).unwrap();
        crate::support::topic_events(log.as_ref(), "game-events").await
    }
}
