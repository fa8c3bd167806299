//! Maps keyed by connection id, hashed cheaply. A gateway numbers its connections itself, one
//! after another, so no client chooses a key: the DoS-resistant SipHash of the standard maps
//! buys nothing here, and the fan-out looks a socket up for every tick it delivers.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from connection id.
pub(crate) type ConnMap<V> = HashMap<u64, V, BuildHasherDefault<ConnHasher>>;

/// Fibonacci hashing of a `u64`: one multiplication spreads sequential ids over the table.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnHasher(u64);

impl Hasher for ConnHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for connection ids; anything else still hashes, slowly.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread_over_the_table() {
        let mut map: ConnMap<u64> = ConnMap::default();
        for id in 0..10_000 {
            map.insert(id, id * 2);
        }
        assert!((0..10_000).all(|id| map[&id] == id * 2));
        let buckets: std::collections::HashSet<u64> = (0..1024u64)
            .map(|id| {
                let mut h = ConnHasher::default();
                h.write_u64(id);
                h.finish() >> 57 // the top 7 bits pick among 128 groups
            })
            .collect();
        assert!(buckets.len() > 100, "1,024 sequential ids land in {} of 128 top-bit groups", buckets.len());
    }
}
