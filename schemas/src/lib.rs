//! The shared language of tickcast: the event envelope and every event type written to the log,
//! the topics they go to, the client WebSocket protocol, join tokens and the region table.
//!
//! This crate owns wire formats, and the pure projections every role derives from them. It must
//! not do I/O or anything async: its functions are transformations between Rust values and
//! bytes, so every role (and every backend) agrees on one encoding. The one function that reads
//! the clock and the RNG is [`Event::new`], which draws the new event's id (a UUIDv7); decoding,
//! encoding and the projections are pure. Field names are camelCase; seeds are u64 written as
//! decimal strings, because JSON readers in other languages lose precision above 2^53.
//!
//! # Layout
//! - `arrow` (feature `arrow`): Arrow schemas of the analytics feed.
//! - [`event`]: the envelope [`Event`] and [`EventBody`], one variant per event type.
//! - [`topics`]: topic names.
//! - [`protocol`]: client ↔ gateway messages.
//! - [`token`]: HMAC-signed join tokens issued by the edge and checked by gateways.
//! - [`regions`]: the region table and the eight default regions; [`region_events`]: regions
//!   drained and restored, sessions moved, and the states they fold into.
//! - [`match_events`]: matchmaking's tickets, the events they live in and the states they fold
//!   into ([`match_events::TicketDirectory`]).
//! - [`pace`]: which step is due when ([`pace::PaceSchedule`]), and the event that changes it.
//! - [`sessions`]: the session directory, the one projection several roles keep in memory.
//! - [`health`]: whether a role can do its work now ([`health::Readiness`], `/readyz`).
//! - [`load`]: how late a process runs ([`load::LagGauge`], [`load::ProcessLoad`]), shared by the roles that measure it
//!   and the edge that refuses games while it is saturated.

#[cfg(feature = "arrow")]
pub mod arrow;
pub mod event;
pub mod health;
pub mod load;
pub mod match_events;
pub mod pace;
pub mod protocol;
pub mod region_events;
pub mod regions;
mod session_created;
pub mod sessions;
pub mod token;
pub mod topics;

pub use event::{Event, EventBody};

/// Serde adapter writing a u64 as a decimal string (seeds), and accepting a string or a number.
pub mod u64_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum StringOrNumber<'a> {
            Str(&'a str),
            String(String),
            Number(u64),
        }
        match StringOrNumber::deserialize(deserializer)? {
            StringOrNumber::Str(s) => s.parse().map_err(D::Error::custom),
            StringOrNumber::String(s) => s.parse().map_err(D::Error::custom),
            StringOrNumber::Number(n) => Ok(n),
        }
    }
}
