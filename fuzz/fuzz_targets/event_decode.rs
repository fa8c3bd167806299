//! Any record of the log: decoding gives an event or an error, never a panic; a decoded event
//! encodes to bytes that decode to the same event; and the cheap type peek that consumers use
//! to skip events agrees with the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast_schemas::event::{Event, EventBody};

fuzz_target!(|data: &[u8]| {
    let peeked = Event::peek_type(data);
    let Ok(event) = Event::from_bytes(data) else { return };
    let again = Event::from_bytes(&event.to_bytes()).expect("an encoded event decodes");
    assert_eq!(again, event, "encode then decode gives the same event");
    if !matches!(event.body, EventBody::Unknown) {
        assert_eq!(peeked, Some(event.kind()), "peek_type agrees with the decoder");
    }
});
