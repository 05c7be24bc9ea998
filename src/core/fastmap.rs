//! A fast, deterministic hasher for the hub's maps keyed by connection ids and symbols.
//!
//! std's default SipHash resists hash flooding, which these maps do not need (their keys are
//! ids the hub hands out and whitelisted symbols), and costs several times more per lookup on
//! the fan-out path, where every frame looks a connection up more than once. Its random seed
//! also makes iteration order, and so the order of effects, differ between runs; with this
//! hasher the same inputs give the same effects in the same order.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Multiply-rotate hashing (the scheme of rustc's FxHash): one multiplication per word,
/// which spreads sequential ids over the high bits the table probes with.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_order_is_the_same_every_run() {
        let build = || {
            let mut m: FastMap<u64, u64> = FastMap::default();
            for i in 0..1_000 {
                m.insert(i * 7, i);
            }
            m.keys().copied().collect::<Vec<_>>()
        };
        assert_eq!(build(), build());
        let mut s: FastMap<String, u8> = FastMap::default();
        s.insert("BTCUSDT".into(), 1);
        assert_eq!(s.get("BTCUSDT"), Some(&1));
        assert_eq!(s.get("ETHUSDT"), None);
    }
}
