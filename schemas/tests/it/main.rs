//! Round trips of every event type and protocol message through their JSON form.

use serde_json::{Value, json};
use tickcast_schemas::event::*;
use tickcast_schemas::protocol::{ClientMessage, ErrorCode, ServerMessage, parse_client_message};

fn every_body() -> Vec<EventBody> {
    vec![
        EventBody::SessionCreated(SessionCreated {
            region: "eu-west-1".into(),
            seed: u64::MAX,
            seed_hash: tickcast_engine::seed_hash(u64::MAX),
            start_at: 1_732_400_000_000,
            tick_ms: 100,
            countdown_ms: 3000,
            min_break_steps: 10,
            max_break_steps: 100,
            max_rounds: 1000,
            engine: 1,
            created_by: "alice".into(),
            max_tick_ms: None,
        }),
        EventBody::PlayerJoined(PlayerJoined {
            user_id: "alice".into(),
            connection_id: "c1".into(),
            gateway_id: "gw".into(),
            region: "eu-west-1".into(),
        }),
        EventBody::LatencySampled(LatencySampled { connection_id: "c1".into(), rtt_ms: 12 }),
        EventBody::LatencySamples(LatencySamples {
            samples: vec![
                RttSample { connection_id: "c1".into(), rtt_ms: 12, at: 4 },
                RttSample { connection_id: "c2".into(), rtt_ms: 30, at: 5 },
            ],
        }),
        EventBody::LatencyWarned(LatencyWarned {
            connection_id: "c1".into(),
            avg_rtt_ms: 120,
            jitter_ms: 3,
            status: LatencyStatus::Warning,
        }),
        EventBody::PlayerKicked(PlayerKicked {
            connection_id: "c1".into(),
            user_id: "alice".into(),
            reason: "latency".into(),
            avg_rtt_ms: 400,
            jitter_ms: 2,
        }),
        EventBody::PlayerLeft(PlayerLeft {
            connection_id: "c1".into(),
            user_id: "alice".into(),
            reason: LeaveReason::GatewayShutdown,
        }),
        EventBody::SessionEnded(SessionEnded { reason: EndReason::MaxRounds, last_step: 420, seed: 7 }),
        EventBody::Countdown(Countdown { remaining_ms: 2000 }),
        EventBody::SessionCreated(SessionCreated {
            region: "eu-west-1".into(),
            seed: 1,
            seed_hash: tickcast_engine::seed_hash(1),
            start_at: 1_732_400_000_000,
            tick_ms: 100,
            countdown_ms: 0,
            min_break_steps: 10,
            max_break_steps: 20,
            max_rounds: 10,
            engine: 1,
            created_by: "bo".into(),
            max_tick_ms: Some(400),
        }),
        EventBody::MatchRequested(MatchRequested {
            ticket_id: "t1".into(),
            user_id: "alice".into(),
            latencies: [("eu-west-1".to_owned(), 23), ("us-east-1".to_owned(), 96)].into(),
            preferred_region: Some("eu-west-1".into()),
        }),
        EventBody::MatchFormed(MatchFormed {
            ticket_ids: vec!["t1".into(), "t2".into()],
            region: "eu-west-1".into(),
        }),
        EventBody::MatchCancelled(MatchCancelled { ticket_id: "t3".into() }),
        EventBody::MatchExpired(MatchExpired { ticket_id: "t4".into() }),
        EventBody::TickRateChanged(TickRateChanged {
            from_step: 12,
            scheduled_at: 1_732_400_001_350,
            tick_ms: 250,
            reason: PaceReason::Latency,
            worst_rtt_ms: 121,
        }),
        EventBody::Tick(Tick {
            step: 3,
            value: 4,
            round: 0,
            broken: false,
            scheduled_at: 10,
            emitted_at: 11,
        }),
    ]
}

#[test]
fn every_event_type_round_trips() {
    for body in every_body() {
        let event = Event::new("s1", 5, "edge@a", body);
        let bytes = event.to_bytes();
        assert_eq!(Event::from_bytes(&bytes).unwrap(), event);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["type"], event.kind());
        assert_eq!(value["v"], 1);
        assert_eq!(value["sessionId"], "s1");
        assert_eq!(Event::peek_type(&bytes), Some(event.kind()));
    }
    assert_eq!(Event::peek_type(b"not json"), None);
    // Nested objects and other key orders go through the parser and still answer right.
    assert_eq!(Event::peek_type(br#"{"x":{"type":"tick"},"type":"countdown"}"#), Some("countdown"));
    assert_eq!(
        Event::peek_type(br#"{"userId":"a{\"type\":\"tick\"}","type":"player_joined"}"#),
        Some("player_joined")
    );
    assert_eq!(Event::peek_type(br#"{"type":"session_created","v":1}"#), Some("session_created"));
}

/// Both forms of a latency sample read as the same facts: a batch's samples keep their own
/// times, a single sample takes its event's.
#[test]
fn rtt_samples_read_alike_from_both_forms() {
    let one = Event::new(
        "s1",
        9,
        "gw",
        EventBody::LatencySampled(LatencySampled { connection_id: "c1".into(), rtt_ms: 12 }),
    );
    assert_eq!(one.rtt_samples().collect::<Vec<_>>(), vec![("c1", 12, 9)]);
    let batch = Event::new("s1", 9, "gw", every_body().remove(3));
    assert_eq!(batch.kind(), "latency_samples");
    assert_eq!(batch.rtt_samples().collect::<Vec<_>>(), vec![("c1", 12, 4), ("c2", 30, 5)]);
    let value: Value = serde_json::from_slice(&batch.to_bytes()).unwrap();
    assert_eq!(value["samples"][1], json!({"connectionId":"c2","rttMs":30,"at":5}));
    assert_eq!(Event::new("s1", 9, "gw", every_body().remove(0)).rtt_samples().count(), 0);
}

#[test]
fn wire_form_is_camel_case_with_seeds_as_decimal_strings() {
    let event = Event::new("s1", 5, "edge@a", every_body().remove(0));
    let value: Value = serde_json::from_slice(&event.to_bytes()).unwrap();
    assert_eq!(value["seed"], "18446744073709551615");
    assert_eq!(value["startAt"], 1_732_400_000_000i64);
    assert_eq!(value["maxBreakSteps"], 100);
    assert_eq!(value["createdBy"], "alice");
    let ended = Event::new(
        "s1",
        5,
        "tg@a",
        EventBody::SessionEnded(SessionEnded { reason: EndReason::Idle, last_step: -1, seed: 9 }),
    );
    let value: Value = serde_json::from_slice(&ended.to_bytes()).unwrap();
    assert_eq!(value["reason"], "idle");
    assert_eq!(value["seed"], "9");
}

/// Ticks take a faster decoding path; it must read exactly what the generic one reads, also
/// with fields in another order and escaped strings.
#[test]
fn ticks_decode_alike_on_the_fast_and_the_generic_path() {
    let tick = Event::new(
        "s\"1",
        5,
        "tick-generator@0",
        EventBody::Tick(Tick { step: 7, value: 9, round: 1, broken: true, scheduled_at: 3, emitted_at: 4 }),
    );
    let bytes = tick.to_bytes();
    assert_eq!(Event::from_bytes(&bytes).unwrap(), tick);
    let reordered = json!({"emittedAt":4,"scheduledAt":3,"broken":true,"round":1,"value":9,"step":7,
        "source":"tick-generator@0","at":5,"sessionId":"s\"1","type":"tick","id":tick.id,"v":1});
    assert_eq!(Event::from_bytes(reordered.to_string().as_bytes()).unwrap(), tick);
    let generic: Event = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(generic, tick);
}

#[test]
fn a_type_that_is_not_a_string_is_no_event() {
    // serde would read the number as a variant index: the fuzzer found `"type":12` decoding as
    // region_restored.
    let numbered = br#"{"v":1,"id":"01a20d30-9133-7649-808d-e29024f656e6","sessionId":"s","at":1,"source":"x","type":12,"region":"r"}"#;
    assert!(Event::from_bytes(numbered).is_err());
    assert_eq!(Event::peek_type(numbered), None);
}

#[test]
fn unknown_types_and_versions_decode_as_unknown() {
    let unknown_type = json!({"v":1,"id":"0190a0a0-0000-7000-8000-000000000000","type":"meteor_strike",
        "sessionId":"s","at":1,"source":"x","size":3});
    let event = Event::from_bytes(unknown_type.to_string().as_bytes()).unwrap();
    assert_eq!(event.body, EventBody::Unknown);
    let future_version = json!({"v":2,"id":"0190a0a0-0000-7000-8000-000000000000","type":"tick",
        "sessionId":"s","at":1,"source":"x","step":"not a number any more"});
    let event = Event::from_bytes(future_version.to_string().as_bytes()).unwrap();
    assert_eq!((event.v, event.body), (2, EventBody::Unknown));
    assert!(Event::from_bytes(b"not json").is_err());
}

#[test]
fn client_messages_round_trip_and_bad_frames_say_what_is_wrong() {
    let cases = [
        (
            r#"{"action":"join","sessionId":"s","userId":"u","token":"t"}"#,
            ClientMessage::Join { session_id: "s".into(), user_id: "u".into(), token: "t".into() },
        ),
        (
            r#"{"action":"resume","sessionId":"s","userId":"u","token":"t","lastStep":41}"#,
            ClientMessage::Resume {
                session_id: "s".into(),
                user_id: "u".into(),
                token: "t".into(),
                last_step: 41,
            },
        ),
        (r#"{"action":"ping","clientTimestamp":12}"#, ClientMessage::Ping { client_timestamp: 12 }),
        (r#"{"action":"leave"}"#, ClientMessage::Leave),
    ];
    for (text, want) in cases {
        assert_eq!(parse_client_message(text).unwrap(), want);
        let back: Value = serde_json::to_value(&want).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
    }
    assert_eq!(parse_client_message("{nope").unwrap_err().0, ErrorCode::MalformedJson);
    assert_eq!(parse_client_message("[1,2]").unwrap_err().0, ErrorCode::InvalidMessage);
    assert_eq!(parse_client_message(r#"{"action":"dance"}"#).unwrap_err().0, ErrorCode::UnknownAction);
    assert_eq!(parse_client_message(r#"{"action":"join"}"#).unwrap_err().0, ErrorCode::InvalidMessage);
}

/// Found by the `client_message` fuzz target: a decoder's message quoted the client's value
/// whole (`invalid type: string "[[[[9999…"`), so a 64 KiB frame came back in its error.
#[test]
fn an_error_message_never_echoes_more_than_a_bounded_part_of_the_frame() {
    use tickcast_schemas::protocol::MAX_ERROR_MESSAGE_LEN;
    let found = include_bytes!("fuzz-regressions/client_message-long-echo");
    let huge = format!(
        r#"{{"action":"resume","sessionId":"s","userId":"u","token":"t","lastStep":"{}"}}"#,
        "é".repeat(30_000)
    );
    for text in [std::str::from_utf8(found).unwrap(), &huge] {
        let (_, message) = parse_client_message(text).unwrap_err();
        assert!(message.len() <= MAX_ERROR_MESSAGE_LEN, "{} bytes: {message}", message.len());
        assert!(
            message.starts_with("invalid resume frame") || message.starts_with("frame is not valid JSON"),
            "{message}"
        );
    }
}

#[test]
fn server_messages_use_the_protocol_field_names() {
    let tick = ServerMessage::Tick {
        step: 1,
        value: 2,
        round: 0,
        broken: false,
        scheduled_at: 3,
        server_timestamp: 4,
    };
    let value: Value = serde_json::from_str(&tick.to_json()).unwrap();
    assert_eq!(
        value,
        json!({"type":"tick","step":1,"value":2,"round":0,"broken":false,"scheduledAt":3,"serverTimestamp":4})
    );
    let err = ServerMessage::Error { code: ErrorCode::UnknownAction, message: "m".into() };
    assert_eq!(serde_json::from_str::<Value>(&err.to_json()).unwrap()["code"], "unknown_action");
    let ended = ServerMessage::SessionEnded { reason: EndReason::MaxRounds, last_step: 9, seed: 5 };
    let value: Value = serde_json::from_str(&ended.to_json()).unwrap();
    assert_eq!(value["seed"], "5");
    assert_eq!(value["reason"], "max_rounds");
    assert_eq!(serde_json::from_value::<ServerMessage>(value).unwrap(), ended);
    let pace =
        ServerMessage::TickRate { from_step: 12, scheduled_at: 1350, tick_ms: 250, reason: PaceReason::Load };
    assert_eq!(
        serde_json::from_str::<Value>(&pace.to_json()).unwrap(),
        json!({"type":"tick_rate","fromStep":12,"scheduledAt":1350,"tickMs":250,"reason":"load"})
    );
}

#[test]
fn a_fixed_pace_session_is_written_as_before_and_an_adaptive_one_names_its_slowest_pace() {
    let bodies = every_body();
    let created: Vec<&SessionCreated> = bodies
        .iter()
        .filter_map(|b| match b {
            EventBody::SessionCreated(c) => Some(c),
            _ => None,
        })
        .collect();
    let (fixed, adaptive) = (created[0], created[1]);
    let fixed_json = serde_json::to_value(EventBody::SessionCreated(fixed.clone())).unwrap();
    assert!(fixed_json.get("maxTickMs").is_none(), "{fixed_json}");
    assert!(!fixed.is_adaptive() && fixed.slowest_tick_ms() == 100);
    let adaptive_json = serde_json::to_value(EventBody::SessionCreated(adaptive.clone())).unwrap();
    assert_eq!(adaptive_json["maxTickMs"], 400);
    assert!(adaptive.is_adaptive() && adaptive.check().is_ok());
    let below = SessionCreated { max_tick_ms: Some(99), ..adaptive.clone() };
    assert!(below.check().unwrap_err().contains("maxTickMs"));
}
