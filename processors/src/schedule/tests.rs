//! The schedule's behaviour: countdowns, absolute deadlines, late calls, ends, and paces.
use super::*;
use tickcast_engine::state_at;

fn created(start_at: i64, max_rounds: u64) -> SessionCreated {
    SessionCreated {
        region: "r".into(),
        seed: 42,
        seed_hash: String::new(),
        start_at,
        tick_ms: 100,
        countdown_ms: 3000,
        min_break_steps: 2,
        max_break_steps: 5,
        max_rounds,
        engine: 1,
        created_by: "u".into(),
        max_tick_ms: None,
    }
}

#[test]
fn countdowns_each_whole_second_then_ticks_on_absolute_deadlines() {
    let mut s = SessionSchedule::new(created(10_000, 1000), 7_000, 30_000);
    s.player_joined();
    let mut out = Vec::new();
    for now in [7_000, 8_000, 8_500, 9_000, 10_000, 10_099, 10_100] {
        s.emit_due(now, &mut out);
    }
    let steps: Vec<_> = out
        .iter()
        .map(|e| match e {
            Emission::Countdown { remaining_ms } => format!("c{remaining_ms}"),
            Emission::Tick { step, .. } => format!("t{step}"),
            Emission::Ended { .. } => "end".into(),
            Emission::RoundStarts { .. } => "round".into(),
        })
        .collect();
    assert_eq!(steps, ["c3000", "c2000", "c1000", "t0", "t1"]);
    assert_eq!(s.next_deadline(), Some(Deadline::At(10_200)));
}

#[test]
fn a_late_call_emits_every_missed_step_once_in_order() {
    let params = created(0, 1000).engine_params();
    let mut s = SessionSchedule::new(created(0, 1000), 0, i64::MAX / 4);
    s.player_joined();
    let mut out = Vec::new();
    s.emit_due(250, &mut out);
    s.emit_due(250, &mut out);
    s.emit_due(1_000, &mut out);
    let ticks: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Emission::Tick { step, state, scheduled_at } => Some((*step, *state, *scheduled_at)),
            _ => None,
        })
        .collect();
    assert_eq!(ticks.len(), 11);
    for (i, (step, state, at)) in ticks.into_iter().enumerate() {
        assert_eq!((step, state, at), (i as i64, state_at(&params, i as i64), i as i64 * 100));
    }
}

#[test]
fn ends_right_after_the_tick_of_the_last_break() {
    let mut s = SessionSchedule::new(created(0, 3), 0, i64::MAX / 4);
    s.player_joined();
    let mut out = Vec::new();
    s.emit_due(100_000, &mut out);
    let Some(Emission::Ended { reason, last_step }) = out.last().cloned() else {
        panic!("not ended: {out:?}")
    };
    assert_eq!(reason, EndReason::MaxRounds);
    let Emission::Tick { step, state, .. } = out[out.len() - 2] else { panic!() };
    assert_eq!((step, state.round, state.broken), (last_step, 3, true));
    assert!(s.is_ended() && s.next_deadline().is_none());
}

#[test]
fn a_session_resumed_after_its_last_tick_ends_at_once() {
    let mut whole = SessionSchedule::new(created(0, 2), 0, i64::MAX / 4);
    let mut out = Vec::new();
    whole.emit_due(100_000, &mut out);
    let last_step = whole.last_step();
    let mut resumed = SessionSchedule::new(created(0, 2), 0, i64::MAX / 4);
    resumed.resume_at(last_step + 1);
    assert_eq!(resumed.next_deadline(), Some(Deadline::EndNow));
    assert!(Deadline::EndNow < Deadline::At(i64::MIN), "an end that is due sorts first");
    assert_eq!(Deadline::EndNow.wait_from(i64::MAX), std::time::Duration::ZERO);
    out.clear();
    resumed.emit_due(200_000, &mut out);
    assert_eq!(out, [Emission::Ended { reason: EndReason::MaxRounds, last_step }]);
    assert_eq!(resumed.next_deadline(), None);
}

#[test]
fn waits_never_overflow() {
    assert_eq!(Deadline::At(i64::MIN).wait_from(i64::MAX), std::time::Duration::ZERO);
    assert_eq!(Deadline::At(i64::MAX).wait_from(i64::MIN), std::time::Duration::from_millis(i64::MAX as u64));
    assert!(Deadline::At(5).is_due(5) && !Deadline::At(6).is_due(5) && Deadline::EndNow.is_due(i64::MIN));
}

#[test]
fn a_late_call_on_an_idle_session_ticks_only_up_to_its_idle_end() {
    // Nobody connected: start 1000, idle after 500 ms, so the end is at 1500 with step 5.
    let mut s = SessionSchedule::new(created(1_000, 1000), 0, 500);
    let mut out = Vec::new();
    s.emit_due(60_000, &mut out);
    assert_eq!(out.last(), Some(&Emission::Ended { reason: EndReason::Idle, last_step: 5 }));
    assert_eq!(out.iter().filter(|e| matches!(e, Emission::Tick { .. })).count(), 6);
}

#[test]
fn a_resumed_session_that_had_gone_idle_ends_without_a_tick() {
    // Ticked to step 5 and ended idle at 1500; resumed much later from its tick topic.
    let mut s = SessionSchedule::new(created(1_000, 1000), 0, 500);
    s.resume_at(6);
    let mut out = Vec::new();
    s.emit_due(600_000, &mut out);
    assert_eq!(out, [Emission::Ended { reason: EndReason::Idle, last_step: 5 }]);
}

#[test]
fn a_player_who_left_starts_the_idle_clock_at_their_leaving() {
    let mut s = SessionSchedule::new(created(0, 1000), 0, 1_000);
    s.player_joined();
    s.player_left(2_050);
    let mut out = Vec::new();
    s.emit_due(10_000, &mut out);
    // Ticks up to 3050 (the idle end) only: steps 0..=30.
    assert_eq!(out.last(), Some(&Emission::Ended { reason: EndReason::Idle, last_step: 30 }));
}

#[test]
fn a_late_call_capped_to_a_few_ticks_emits_the_same_over_several_calls() {
    let late = |s: &mut SessionSchedule| {
        s.player_joined();
        s.player_left(2_050);
    };
    let (mut whole, mut capped) =
        (SessionSchedule::new(created(0, 1000), 0, 1_000), SessionSchedule::new(created(0, 1000), 0, 1_000));
    late(&mut whole);
    late(&mut capped);
    let (mut at_once, mut in_parts) = (Vec::new(), Vec::new());
    whole.emit_due(10_000, &mut at_once);
    let mut calls = 0;
    while !capped.is_ended() {
        let before = in_parts.len();
        capped.emit_due_at_most(10_000, 8, &mut in_parts);
        assert!(in_parts.len() - before <= 9, "8 ticks, and the end");
        assert!(capped.is_ended() || capped.next_deadline().is_some_and(|d| d.is_due(10_000)));
        calls += 1;
    }
    assert_eq!(in_parts, at_once, "steps 0..=30 and the idle end, not an early end");
    assert_eq!(calls, 4);
}

/// A session of rounds of 2 to 5 steps (the test's `created`) whose pace may go to 400 ms.
fn adaptive() -> SessionSchedule {
    let mut s =
        SessionSchedule::new(SessionCreated { max_tick_ms: Some(400), ..created(0, 1000) }, 0, i64::MAX / 4);
    s.player_joined();
    s
}

#[test]
fn an_adaptive_session_asks_for_each_rounds_pace_right_after_its_break() {
    let params = created(0, 1000).engine_params();
    let first_break = (0..).find(|&step| state_at(&params, step).broken).unwrap();
    let mut s = adaptive();
    let mut out = Vec::new();
    s.emit_due(first_break * 100, &mut out);
    assert_eq!(out.last(), Some(&Emission::RoundStarts { from_step: first_break + 1 }));
    assert_eq!(s.next_deadline(), Some(Deadline::At(i64::MIN)), "due at once, whatever the clock");
    let pace = s.decide_pace(first_break + 1, Some(250)).expect("a change");
    assert_eq!(pace.scheduled_at, first_break * 100 + 250, "one step of the new pace after the break");
    assert_eq!(s.decide_pace(first_break + 1, Some(250)), None, "decided once");
    assert_eq!(s.next_deadline(), Some(Deadline::At(first_break * 100 + 250)));
    out.clear();
    s.emit_due(first_break * 100 + 500, &mut out);
    let Emission::Tick { step, scheduled_at, .. } = out[1] else { panic!("{out:?}") };
    assert_eq!((step, scheduled_at), (first_break + 2, first_break * 100 + 500));
    let mut fixed = SessionSchedule::new(created(0, 1000), 0, i64::MAX / 4);
    fixed.player_joined();
    out.clear();
    fixed.emit_due(100_000, &mut out);
    assert!(!out.iter().any(|e| matches!(e, Emission::RoundStarts { .. })), "a fixed pace never asks");
}

#[test]
fn a_resumed_adaptive_session_keeps_its_logged_paces_and_decides_a_pending_round_first() {
    let params = created(0, 1000).engine_params();
    let breaks: Vec<i64> = (0..200).filter(|&step| state_at(&params, step).broken).take(2).collect();
    let mut s = adaptive();
    s.record_pace(Pace { from_step: breaks[0] + 1, scheduled_at: breaks[0] * 100 + 300, tick_ms: 300 });
    s.resume_at(breaks[1] + 1);
    let mut out = Vec::new();
    s.emit_due(0, &mut out);
    assert_eq!(
        out,
        [Emission::RoundStarts { from_step: breaks[1] + 1 }],
        "the crash came before its decision"
    );
    assert_eq!(s.decide_pace(breaks[1] + 1, None), None, "kept");
    let due = breaks[0] * 100 + 300 * (breaks[1] + 1 - breaks[0]);
    assert_eq!(s.next_deadline(), Some(Deadline::At(due)), "at the logged pace");
}

#[test]
fn ends_idle_when_nobody_is_connected_for_the_idle_time_after_start() {
    let mut s = SessionSchedule::new(created(1_000, 1000), 0, 500);
    let mut out = Vec::new();
    s.emit_due(1_499, &mut out);
    assert!(!s.is_ended());
    s.emit_due(1_500, &mut out);
    assert_eq!(out.last(), Some(&Emission::Ended { reason: EndReason::Idle, last_step: 5 }));

    let mut s = SessionSchedule::new(created(1_000, 1000), 0, 500);
    s.player_joined();
    s.emit_due(5_000, &mut out);
    assert!(!s.is_ended(), "a connected player keeps the session alive");
    s.player_left(5_000);
    s.emit_due(5_499, &mut out);
    assert!(!s.is_ended());
    s.emit_due(5_500, &mut out);
    assert!(s.is_ended());
}
