//! Any text frame a client sends: the parser answers with a message or an error code and a
//! message that says what to fix — never a panic — and the message it answers with echoes only
//! a bounded part of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast_schemas::protocol::{MAX_ERROR_MESSAGE_LEN, parse_client_message};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err((_, message)) = parse_client_message(text) {
        assert!(!message.is_empty());
        assert!(message.len() <= MAX_ERROR_MESSAGE_LEN, "an error echoes at most a bounded part of the frame");
    }
});
