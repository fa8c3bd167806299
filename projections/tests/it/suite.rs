//! The contract every store meets, as functions over `Arc<dyn ProjectionStore>`.

use std::sync::Arc;

use tickcast_projections::ProjectionStore;
use tickcast_projections::apply::{Fold, Positioned, SessionEnds};
use tickcast_projections::model::{ConnectionState, Phase, SessionState};
use tickcast_schemas::event::{
    EndReason, Event, EventBody, LatencySampled, LatencyStatus, LatencyWarned, LeaveReason, PaceReason,
    PlayerJoined, PlayerLeft, SessionCreated, SessionEnded, TickRateChanged,
};

const TTL_S: i64 = 7 * 24 * 3600;
const START: i64 = 1_800_000_000_000;

/// A log position as the projector gives it: any string whose byte order is the log's.
fn at(offset: u64) -> String {
    format!("{offset:020}")
}

fn event(session: &str, at: i64, body: EventBody) -> Event {
    Event {
        v: 1,
        id: uuid::Uuid::now_v7(),
        session_id: session.to_owned(),
        at,
        source: "test@1".into(),
        body,
    }
}

fn created(session: &str, at: i64) -> Event {
    event(
        session,
        at,
        EventBody::SessionCreated(SessionCreated {
            region: "eu-west-1".into(),
            seed: 42,
            seed_hash: "hash".into(),
            start_at: at + 3000,
            tick_ms: 100,
            countdown_ms: 3000,
            min_break_steps: 10,
            max_break_steps: 100,
            max_rounds: 3,
            engine: 1,
            created_by: "alice".into(),
            max_tick_ms: None,
        }),
    )
}

fn joined(session: &str, at: i64, connection: &str, user: &str) -> Event {
    event(
        session,
        at,
        EventBody::PlayerJoined(PlayerJoined {
            user_id: user.into(),
            connection_id: connection.into(),
            gateway_id: "gw-1".into(),
            region: "eu-west-1".into(),
        }),
    )
}

fn left(session: &str, at: i64, connection: &str, user: &str, reason: LeaveReason) -> Event {
    event(
        session,
        at,
        EventBody::PlayerLeft(PlayerLeft { connection_id: connection.into(), user_id: user.into(), reason }),
    )
}

fn sample(session: &str, at: i64, connection: &str, rtt_ms: u64) -> Event {
    event(session, at, EventBody::LatencySampled(LatencySampled { connection_id: connection.into(), rtt_ms }))
}

fn ended(session: &str, at: i64) -> Event {
    event(
        session,
        at,
        EventBody::SessionEnded(SessionEnded { reason: EndReason::MaxRounds, last_step: 250, seed: 42 }),
    )
}

/// A game of alice and bob: joins before the start, samples, a warning, bob leaves, the end,
/// alice's socket closes. Positions are log offsets, with gaps (other sessions' events).
fn recorded_game(session: &str) -> Vec<Positioned> {
    let events = vec![
        created(session, START),
        joined(session, START + 500, "c-alice", "alice"),
        joined(session, START + 600, "c-bob", "bob"),
        sample(session, START + 4000, "c-alice", 20),
        sample(session, START + 4000, "c-bob", 80),
        sample(session, START + 5000, "c-alice", 40),
        event(
            session,
            START + 5000,
            EventBody::LatencyWarned(LatencyWarned {
                connection_id: "c-bob".into(),
                avg_rtt_ms: 170,
                jitter_ms: 12,
                status: LatencyStatus::Warning,
            }),
        ),
        event(
            session,
            START + 5000,
            EventBody::TickRateChanged(TickRateChanged {
                from_step: 41,
                scheduled_at: START + 4200,
                tick_ms: 200,
                reason: PaceReason::Latency,
                worst_rtt_ms: 80,
            }),
        ),
        left(session, START + 6000, "c-bob", "bob", LeaveReason::Closed),
        ended(session, START + 30_000),
        left(session, START + 30_100, "c-alice", "alice", LeaveReason::Closed),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Positioned { position: at(10 + 3 * i as u64), event })
        .collect()
}

async fn apply(
    store: &Arc<dyn ProjectionStore>,
    events: &[Positioned],
) -> tickcast_projections::apply::Applied {
    Fold::new(store.as_ref(), TTL_S, &mut SessionEnds::default()).apply(events).await.unwrap()
}

pub(crate) async fn a_recorded_game_is_projected_once_however_often_it_is_applied(
    store: Arc<dyn ProjectionStore>,
) {
    let game = recorded_game("s-1");
    let first = apply(&store, &game).await;
    assert!(first.written > 0 && first.skipped == 0, "{first:?}");

    let session = store.session("s-1").await.unwrap().expect("the session is projected");
    assert_eq!(session.phase, Phase::Ended);
    assert_eq!(session.state(START), SessionState::Ended);
    assert_eq!((session.ended_at, session.last_step), (Some(START + 30_000), Some(250)));
    assert_eq!(session.seed.as_deref(), Some("42"), "the seed, once ended");
    assert!(session.players().is_empty(), "everyone left: {session:?}");
    assert_eq!((session.created_by.as_str(), session.max_rounds, session.tick_ms), ("alice", 3, 100));
    let pace = session.pace.expect("the pace in force");
    assert_eq!(
        (pace.from_step, pace.scheduled_at, pace.tick_ms),
        (41, START + 4200, 200),
        "the latest change"
    );
    assert_eq!(
        session.position,
        game.last().unwrap().position,
        "alice leaving after the end was its last event"
    );

    let connections = store.connections_of("s-1").await.unwrap();
    let users: Vec<&str> = connections.iter().map(|c| c.user_id.as_str()).collect();
    assert_eq!(users, ["alice", "bob"], "by joinedAt");
    let (alice, bob) = (&connections[0], &connections[1]);
    assert_eq!(alice.state, ConnectionState::Disconnected);
    assert_eq!(
        (alice.avg_rtt_ms, alice.jitter_ms),
        (None, None),
        "no policy figure: from the samples when read"
    );
    let measured = alice.clone().measured(&store.latency_of("c-alice", 10).await.unwrap());
    assert_eq!(measured.recent_rtt_ms, [20, 40]);
    assert_eq!((measured.avg_rtt_ms, measured.jitter_ms), (Some(30), Some(20)));
    assert_eq!(
        (bob.latency_status, bob.avg_rtt_ms, bob.jitter_ms),
        (LatencyStatus::Warning, Some(170), Some(12))
    );
    assert_eq!((bob.left_at, bob.leave_reason), (Some(START + 6000), Some(LeaveReason::Closed)));
    let samples = store.latency_of("c-alice", 10).await.unwrap();
    assert_eq!(
        samples.iter().map(|s| (s.at, s.rtt_ms)).collect::<Vec<_>>(),
        [(START + 5000, 40), (START + 4000, 20)]
    );

    // Everything again (a replay, a restarted projector): nothing changes.
    let again = apply(&store, &game).await;
    assert_eq!(again.written, 3, "only the latency samples are rewritten, as the same facts: {again:?}");
    assert_eq!(store.session("s-1").await.unwrap().unwrap(), session);
    assert_eq!(store.connections_of("s-1").await.unwrap(), connections);
    assert_eq!(store.latency_of("c-alice", 10).await.unwrap(), samples);

    // Cleared (a rebuild), then applied again: the same tables.
    store.clear().await.unwrap();
    assert!(
        store.session("s-1").await.unwrap().is_none()
            && store.connections_of("s-1").await.unwrap().is_empty()
    );
    apply(&store, &game).await;
    assert_eq!(store.session("s-1").await.unwrap().unwrap(), session);
    assert_eq!(store.connections_of("s-1").await.unwrap(), connections);
}

pub(crate) async fn events_out_of_order_never_take_an_item_backwards(store: Arc<dyn ProjectionStore>) {
    let game = recorded_game("s-2");
    apply(&store, &game).await;
    let session = store.session("s-2").await.unwrap().unwrap();
    let connections = store.connections_of("s-2").await.unwrap();
    // An old prefix again, each event alone, and backwards: the items stay where they are.
    apply(&store, &game[..4]).await;
    for positioned in game.iter().rev() {
        apply(&store, std::slice::from_ref(positioned)).await;
    }
    assert_eq!(store.session("s-2").await.unwrap().unwrap(), session);
    assert_eq!(store.connections_of("s-2").await.unwrap(), connections);

    // On a fresh session: the end before a join it follows in the log. The session stays
    // ended; the join (older) does not reopen it nor list the player as connected.
    let other = recorded_game("s-3");
    apply(&store, &[other[0].clone(), other[9].clone()]).await;
    apply(&store, &[other[1].clone()]).await;
    let session = store.session("s-3").await.unwrap().unwrap();
    assert_eq!(session.phase, Phase::Ended);
    assert!(session.connected.is_empty(), "{session:?}");
}

pub(crate) async fn items_expire_a_ttl_after_their_session_ends(store: Arc<dyn ProjectionStore>) {
    assert!(store.expiry_enabled().await.unwrap(), "expired items are deleted");
    let game = recorded_game("s-1");
    apply(&store, &game[..8]).await;
    let running = store.session("s-1").await.unwrap().unwrap();
    // Before the end: the latest the session could end, plus the TTL.
    assert_eq!(running.expires_at, running.latest_end_ms() / 1000 + TTL_S);
    apply(&store, &game).await;
    let session = store.session("s-1").await.unwrap().unwrap();
    assert_eq!(session.expires_at, (START + 30_000) / 1000 + TTL_S, "a TTL after the end");
    for connection in store.connections_of("s-1").await.unwrap() {
        assert!(connection.expires_at >= session.expires_at, "{connection:?}");
        for sample in store.latency_of(&connection.connection_id, 10).await.unwrap() {
            assert!(sample.expires_at >= session.expires_at, "{sample:?}");
        }
    }
}

pub(crate) async fn sessions_are_listed_newest_first_and_connections_by_session(
    store: Arc<dyn ProjectionStore>,
) {
    let mut position = 0;
    let mut next = |event: Event| {
        position += 1;
        Positioned { position: at(position), event }
    };
    let events = vec![
        next(created("old", START)),
        next(created("mid", START + 1000)),
        next(created("new", START + 2000)),
        next(joined("mid", START + 1500, "c-1", "ann")),
        next(joined("new", START + 2500, "c-2", "ben")),
        next(joined("mid", START + 1600, "c-3", "cal")),
        next(ended("old", START + 9000)),
    ];
    apply(&store, &events).await;
    let open: Vec<String> =
        store.sessions(Phase::Open, 10).await.unwrap().into_iter().map(|s| s.session_id).collect();
    assert_eq!(open, ["new", "mid"]);
    let newest: Vec<String> =
        store.sessions(Phase::Open, 1).await.unwrap().into_iter().map(|s| s.session_id).collect();
    assert_eq!(newest, ["new"], "a limit keeps the newest");
    let closed: Vec<String> =
        store.sessions(Phase::Ended, 10).await.unwrap().into_iter().map(|s| s.session_id).collect();
    assert_eq!(closed, ["old"]);
    let mid: Vec<String> =
        store.connections_of("mid").await.unwrap().into_iter().map(|c| c.user_id).collect();
    assert_eq!(mid, ["ann", "cal"]);
    assert_eq!(store.session("mid").await.unwrap().unwrap().players(), ["ann", "cal"]);
    assert!(store.connections_of("nobody").await.unwrap().is_empty());
    assert!(store.session("nobody").await.unwrap().is_none());
}

/// Two projectors applying overlapping stretches of the log at once (a hand-over: the old owner
/// still at its batch, the new one from the committed offset, before which everything was
/// written) end where one projector applying it all would.
pub(crate) async fn two_projectors_racing_end_where_one_would(
    store: Arc<dyn ProjectionStore>,
    alone: Arc<dyn ProjectionStore>,
) {
    let game = recorded_game("s-4");
    apply(&store, &game[..2]).await; // written, then committed
    let (early, late) = (&game[2..6], &game[2..]);
    let (mut ends_a, mut ends_b) = (SessionEnds::default(), SessionEnds::default());
    let (a, b) = tokio::join!(
        Fold::new(store.as_ref(), TTL_S, &mut ends_a).apply(early),
        Fold::new(store.as_ref(), TTL_S, &mut ends_b).apply(late)
    );
    a.unwrap();
    b.unwrap();
    // Whichever wrote last, what is missing is replayed (a restarted projector): the same tables.
    apply(&store, &game).await;
    apply(&alone, &game).await;
    assert_eq!(store.session("s-4").await.unwrap(), alone.session("s-4").await.unwrap());
    assert_eq!(store.connections_of("s-4").await.unwrap(), alone.connections_of("s-4").await.unwrap());
}

/// A rebuild fills new tables while the old ones serve, and switches at its end; one begun and
/// never finished changes nothing, and the next one drops what it left. `reader` is the same
/// store opened again (another process, the edge): it serves the rebuilt items within `follow`.
pub(crate) async fn a_rebuild_serves_the_old_items_until_it_switches(
    store: Arc<dyn ProjectionStore>,
    reader: Arc<dyn ProjectionStore>,
    follow: std::time::Duration,
) {
    let serves = |store: Arc<dyn ProjectionStore>, ids: [&'static str; 3]| async move {
        let mut found = Vec::new();
        for id in ids {
            found.push(store.session(id).await.unwrap().is_some());
        }
        found
    };
    apply(&store, &recorded_game("old")).await;
    let abandoned = store.begin_rebuild().await.unwrap();
    apply(&abandoned, &recorded_game("half")).await;
    drop(abandoned);

    let rebuild = store.begin_rebuild().await.unwrap();
    assert!(
        rebuild.session("half").await.unwrap().is_none(),
        "the next rebuild drops an unfinished one's items"
    );
    apply(&rebuild, &recorded_game("new")).await;
    for serving in [&store, &reader] {
        assert_eq!(
            serves(Arc::clone(serving), ["old", "half", "new"]).await,
            [true, false, false],
            "the old items serve until the rebuild switches"
        );
    }
    store.finish_rebuild().await.unwrap();
    assert_eq!(serves(Arc::clone(&store), ["old", "half", "new"]).await, [false, false, true], "switched");
    assert_eq!(store.connections_of("new").await.unwrap().len(), 2, "with its connections");
    let deadline = std::time::Instant::now() + follow + std::time::Duration::from_secs(5);
    while serves(Arc::clone(&reader), ["old", "half", "new"]).await != [false, false, true] {
        assert!(
            std::time::Instant::now() < deadline,
            "another opener of the store never followed the switch"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
