//! Any body POSTed to the edge: it parses or is refused, and a parsed game request gives rules
//! or a message naming what is out of range — never a panic, whatever the numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast_producers::rules::{GameDefaults, JoinRequest, StartRequest, check_user_id};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<StartRequest>(data) {
        for defaults in [GameDefaults::default(), GameDefaults { max_game_ms: 0, ..GameDefaults::default() }] {
            match request.rules(&defaults) {
                Ok(rules) => {
                    assert!(rules.min_break_steps >= 1 && rules.min_break_steps <= rules.max_break_steps);
                    assert!((10..=10_000).contains(&rules.tick_ms));
                }
                Err(message) => assert!(!message.is_empty()),
            }
        }
    }
    if let Ok(request) = serde_json::from_slice::<JoinRequest>(data) {
        let _ = check_user_id(&request.user_id);
    }
});
