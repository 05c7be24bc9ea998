//! The fan-out's own latest value per symbol, kept from the feed's batches: snapshots and
//! catch-up frames are assembled from these encodings, never re-encoded and never asked of
//! the feed (which, for a fan-out shard, is another object).

use std::rc::Rc;

use crate::core::batch::{Batch, Change};
use crate::core::fastmap::FastMap;
use crate::core::wire::body;

/// One latest price.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    encoded: Rc<str>,
    seq: u64,
    received_at: i64,
}

/// Latest prices with their TTL, and the highest `seq` seen.
#[derive(Debug, Default)]
pub struct Latest {
    items: FastMap<String, Item>,
    seq: u64,
    ttl_ms: i64,
}

impl Latest {
    /// Empty, with prices living `ttl_ms` after they were received.
    pub fn new(ttl_ms: i64) -> Latest {
        Latest {
            items: FastMap::default(),
            seq: 0,
            ttl_ms,
        }
    }

    /// Takes in a batch's prices (those newer than the ones held) and expiries; returns the
    /// symbols whose price was new, in batch order.
    pub fn apply<'b>(&mut self, batch: &'b Batch) -> Vec<&'b String> {
        let mut fresh = Vec::new();
        for c in &batch.prices {
            if self.is_new(c) {
                self.put(c);
                fresh.push(&c.symbol);
            }
        }
        for s in &batch.expired {
            self.items.remove(s);
        }
        self.seq = self.seq.max(batch.seq);
        fresh
    }

    /// True when `c` is newer than the price held for its symbol: a shard that catches up
    /// from a snapshot after a broken link gets prices it already has again, and must not
    /// hand them to its clients a second time (nor an older one after a newer).
    pub fn is_new(&self, c: &Change) -> bool {
        self.items.get(&c.symbol).is_none_or(|i| c.seq > i.seq)
    }

    fn put(&mut self, c: &Change) {
        self.seq = self.seq.max(c.seq);
        let item = Item {
            encoded: c.encoded.clone(),
            seq: c.seq,
            received_at: c.received_at,
        };
        self.items.insert(c.symbol.clone(), item);
    }

    /// The highest `seq` seen.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn live(&self, symbol: &str, now_ms: i64) -> Option<&Item> {
        self.items
            .get(symbol)
            .filter(|i| now_ms - i.received_at <= self.ttl_ms)
    }

    /// The encodings of the live prices of `symbols` newer than `after`, in `symbols` order.
    pub fn parts<'a>(
        &self,
        symbols: impl IntoIterator<Item = &'a String>,
        after: u64,
        now_ms: i64,
    ) -> Vec<Rc<str>> {
        symbols
            .into_iter()
            .filter_map(|s| self.live(s, now_ms))
            .filter(|i| i.seq > after)
            .map(|i| i.encoded.clone())
            .collect()
    }

    /// The live prices of `symbols` newer than `after` as one `prices` body, with the highest
    /// `seq` in it; `None` when there is nothing to send.
    pub fn body<'a>(
        &self,
        symbols: impl IntoIterator<Item = &'a String>,
        after: u64,
        now_ms: i64,
    ) -> Option<(String, u64)> {
        let items: Vec<&Item> = symbols
            .into_iter()
            .filter_map(|s| self.live(s, now_ms))
            .filter(|i| i.seq > after)
            .collect();
        let max_seq = items.iter().map(|i| i.seq).max()?;
        let parts: Vec<&str> = items.iter().map(|i| &*i.encoded).collect();
        Some((body::prices(&parts), max_seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(symbol: &str, seq: u64, at: i64) -> Change {
        Change {
            symbol: symbol.into(),
            encoded: format!(r#"{{"symbol":"{symbol}","seq":{seq}}}"#).into(),
            seq,
            received_at: at,
        }
    }

    #[test]
    fn keeps_the_newest_encoding_and_forgets_what_expired() {
        let mut l = Latest::new(1_000);
        let batch = Batch {
            prices: vec![change("BTCUSDT", 1, 0), change("ETHUSDT", 2, 0)],
            seq: 7,
            ..Batch::default()
        };
        l.apply(&batch);
        l.apply(&Batch {
            prices: vec![change("BTCUSDT", 8, 500)],
            ..Batch::default()
        });
        assert_eq!(l.seq(), 8);
        let syms = ["BTCUSDT".to_string(), "ETHUSDT".to_string()];
        let (frame, max) = l.body(&syms, 0, 600).unwrap();
        assert_eq!(max, 8);
        assert!(frame.contains(r#""seq":8"#) && frame.contains(r#""seq":2"#));
        assert_eq!(l.parts(&syms, 2, 600).len(), 1, "only newer than `after`");
        assert_eq!(l.parts(&syms, 0, 1_200).len(), 1, "ETHUSDT is past its TTL");
        l.apply(&Batch {
            expired: vec!["BTCUSDT".into()],
            ..Batch::default()
        });
        assert!(l.body(&syms, 0, 600).is_some_and(|(_, m)| m == 2));
        assert!(l.body(&syms, 2, 600).is_none());
    }

    #[test]
    fn a_price_at_or_below_the_one_held_is_not_new() {
        let mut l = Latest::new(1_000);
        l.apply(&Batch {
            prices: vec![change("BTCUSDT", 5, 0)],
            ..Batch::default()
        });
        assert!(!l.is_new(&change("BTCUSDT", 5, 0)), "a repeat");
        assert!(!l.is_new(&change("BTCUSDT", 4, 0)), "older");
        assert!(l.is_new(&change("BTCUSDT", 6, 0)));
        assert!(l.is_new(&change("ETHUSDT", 1, 0)), "a symbol not held");
        l.apply(&Batch {
            prices: vec![change("BTCUSDT", 3, 0)],
            ..Batch::default()
        });
        let syms = ["BTCUSDT".to_string()];
        assert_eq!(
            l.body(&syms, 0, 10).map(|(_, m)| m),
            Some(5),
            "never backwards"
        );
    }
}
