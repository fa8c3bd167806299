//! What readers and group members share once a message is polled: turning it into a
//! [`Record`], and handing each offset out once.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rdkafka::message::Message;

use crate::{Position, Record};

/// Records handed to the async side at once.
pub(super) const BATCH: usize = 4096;

/// The record of a polled message; `names` caches each topic's name without the prefix, so a
/// record costs no allocation for its topic.
pub(super) fn to_record<M: Message>(
    message: &M,
    prefix: &str,
    names: &mut HashMap<String, Arc<str>>,
) -> Record {
    let full = message.topic();
    let topic = match names.get(full) {
        Some(name) => Arc::clone(name),
        None => {
            let name: Arc<str> = Arc::from(full.strip_prefix(prefix).unwrap_or(full));
            names.insert(full.to_owned(), Arc::clone(&name));
            name
        }
    };
    Record {
        topic,
        partition: message.partition() as u32,
        position: Position::Offset(message.offset() as u64),
        key: String::from_utf8_lossy(message.key().unwrap_or_default()).into(),
        timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
        payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
    }
}

/// Per (topic, partition), the next offset a consumer hands out. Offsets only move forward: a
/// broker asked for an offset inside a batch may hand the next batch out once per offset it
/// skipped (tansu), and a member that starts before its committed offset skips up to it.
#[derive(Debug, Default)]
pub(super) struct NextOffsets(HashMap<String, HashMap<i32, i64>>);

impl NextOffsets {
    pub(super) fn set(&mut self, topic: &str, partition: i32, next: i64) {
        self.0.entry(topic.to_owned()).or_default().insert(partition, next);
    }

    pub(super) fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.get(topic)?.get(&partition).copied()
    }

    pub(super) fn remove(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.0.get_mut(topic) {
            partitions.remove(&partition);
        }
    }

    /// Whether the record at `offset` is new; if so, what follows it is next.
    pub(super) fn admit(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        // Looked up by `&str` first: no allocation per record once a topic is known.
        let next = match self.0.get_mut(topic) {
            Some(partitions) => partitions.entry(partition).or_insert(0),
            None => self.0.entry(topic.to_owned()).or_default().entry(partition).or_insert(0),
        };
        if offset < *next {
            return false;
        }
        *next = offset + 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_handed_out_once_and_only_forward() {
        let mut next = NextOffsets::default();
        assert!(next.admit("t", 0, 0));
        assert!(next.admit("t", 0, 1));
        assert!(!next.admit("t", 0, 1), "a batch served again is skipped");
        next.set("t", 1, 10);
        assert!(!next.admit("t", 1, 9), "what lies before a committed offset is skipped");
        assert!(next.admit("t", 1, 10));
        next.remove("t", 1);
        assert_eq!(next.get("t", 1), None);
    }
}
