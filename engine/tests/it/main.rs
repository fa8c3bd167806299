//! Engine v1 against the golden vectors and against the original O(step) loop.

use proptest::prelude::*;
use serde_json::Value;
use tickcast_engine::{Params, State, Stepper, break_interval, reference, splitmix64, state_at, step_at};

fn vectors() -> Value {
    serde_json::from_str(include_str!("../vectors/engine-v1.json")).unwrap()
}

fn u64_of(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        other => other.as_u64().unwrap(),
    }
}

fn params_of(case: &Value) -> Params {
    Params {
        seed: u64_of(&case["seed"]),
        min_break_steps: u64_of(&case["minBreakSteps"]),
        max_break_steps: u64_of(&case["maxBreakSteps"]),
    }
}

#[test]
fn golden_splitmix64() {
    let v = vectors();
    let cases = v["splitmix64"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        assert_eq!(splitmix64(u64_of(&case["x"])), u64_of(&case["out"]), "{case}");
    }
}

#[test]
fn golden_break_interval() {
    let v = vectors();
    for case in v["break_interval"].as_array().unwrap() {
        let p = params_of(case);
        let got = break_interval(p.seed, u64_of(&case["round"]), p.min_break_steps, p.max_break_steps);
        assert_eq!(got, u64_of(&case["out"]), "{case}");
    }
}

#[test]
fn golden_step_at() {
    let v = vectors();
    for case in v["step_at"].as_array().unwrap() {
        let got = step_at(
            case["startAt"].as_i64().unwrap(),
            case["tickMs"].as_i64().unwrap(),
            case["now"].as_i64().unwrap(),
        );
        assert_eq!(got, case["step"].as_i64().unwrap(), "{case}");
    }
}

#[test]
fn golden_state_at_by_random_access_stepper_and_loop() {
    let v = vectors();
    let cases = v["state_at_step"].as_array().unwrap();
    assert!(cases.len() > 100);
    for case in cases {
        let p = params_of(case);
        let step = case["step"].as_i64().unwrap();
        let want = State {
            value: u64_of(&case["value"]),
            round: u64_of(&case["round"]),
            broken: case["broken"].as_bool().unwrap(),
        };
        assert_eq!(state_at(&p, step), want, "state_at {case}");
        if step >= 0 {
            let (got_step, got) = Stepper::starting_at(p, step).advance();
            assert_eq!((got_step, got), (step, want), "stepper {case}");
        }
        if step < 20_000 {
            assert_eq!(reference::state_at_by_loop(&p, step), want, "loop {case}");
        }
    }
}

fn bounds() -> impl Strategy<Value = (u64, u64)> {
    (1u64..200).prop_flat_map(|min| (Just(min), min..min + 300))
}

proptest! {
    #[test]
    fn random_access_equals_the_original_loop(seed in any::<u64>(), (min, max) in bounds(), step in -5i64..5_000) {
        let p = Params { seed, min_break_steps: min, max_break_steps: max };
        prop_assert_eq!(state_at(&p, step), reference::state_at_by_loop(&p, step));
    }

    #[test]
    fn stepper_equals_random_access(seed in any::<u64>(), (min, max) in bounds(), start in 0i64..3_000) {
        let p = Params { seed, min_break_steps: min, max_break_steps: max };
        let mut stepper = Stepper::starting_at(p, start);
        for _ in 0..500 {
            let (step, state) = stepper.advance();
            prop_assert_eq!(state, state_at(&p, step));
        }
    }
}
