//! The latest price per symbol, the hub-wide `seq`, TTL and freshness (see docs/protocol.md).
//!
//! Each price is JSON-encoded once, when it changes; every reader (fan-out, snapshots, REST)
//! reuses those bytes.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Deserialize;

use super::source::{Update, LANES};
use crate::core::price::Price;

/// Below this age (ms) a price is `fresh`.
pub const FRESH_MS: i64 = 5_000;
/// Below this age (ms) a price is `acceptable`; beyond it, `stale`.
pub const ACCEPTABLE_MS: i64 = 60_000;

/// How much a reader can trust a cached price, by its age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Younger than 5 s.
    Fresh,
    /// Younger than 60 s.
    Acceptable,
    /// Older than that (but within the TTL).
    Stale,
}

impl Freshness {
    /// Classifies an age in milliseconds.
    pub fn of_age(age_ms: i64) -> Freshness {
        if age_ms < FRESH_MS {
            Freshness::Fresh
        } else if age_ms < ACCEPTABLE_MS {
            Freshness::Acceptable
        } else {
            Freshness::Stale
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Acceptable => "acceptable",
            Freshness::Stale => "stale",
        }
    }
}

/// Per ordering lane, the key of the last update applied.
pub type Lanes = [Option<i64>; LANES];

/// A price as storage gives it back: the price and its lanes' keys.
pub type StoredPrice = (Price, Lanes);

/// What storage keeps of a price beside its JSON: the keys of its lanes.
#[derive(Deserialize)]
struct StoredLanes {
    #[serde(default)]
    lanes: Lanes,
}

/// A stored price record (see [`Entry::stored`]) read back: the price and its lanes' keys
/// (none for a record written before they were kept). `None` when it does not parse.
pub fn read_stored(json: &str) -> Option<StoredPrice> {
    let price = serde_json::from_str(json).ok()?;
    let lanes =
        serde_json::from_str::<StoredLanes>(json).map_or_else(|_| Lanes::default(), |l| l.lanes);
    Some((price, lanes))
}

/// Marks `price` as changed by `update` at `now_ms`: the next `seq`, its receive time, and
/// the receive time as its event time when the update carries none.
fn stamp(seq: &mut u64, price: &mut Price, update: &Update, now_ms: i64) {
    if update.fields.event_time.is_none() {
        price.event_time = Some(now_ms);
    }
    *seq += 1;
    price.seq = *seq;
    price.received_at = now_ms;
}

/// One cached price with its encoding.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The structured value.
    pub price: Price,
    /// `serde_json` encoding of `price`, shared by every frame that carries it.
    pub encoded: Rc<str>,
    /// Per ordering lane, the key of the last update applied (see
    /// [`crate::core::feed::source::Order`]): a late update is dropped.
    order: Lanes,
}

impl Entry {
    fn new(price: Price, order: Lanes) -> Entry {
        let mut e = Entry {
            price,
            encoded: Rc::from(""),
            order,
        };
        e.encode();
        e
    }

    /// Encodes the price again, after it changed.
    fn encode(&mut self) {
        // Invariant: `Price` holds only strings and integers, which always serialise.
        self.encoded = serde_json::to_string(&self.price)
            .unwrap_or_default()
            .into();
    }

    /// The record storage keeps: the price's JSON with the keys of its lanes under `lanes`,
    /// so a restarted hub still drops an update older than one this instance applied (a
    /// stale frame must not take the latest price's place after a restart).
    pub fn stored(&self) -> Rc<str> {
        let base = self.encoded.strip_suffix('}').unwrap_or(&self.encoded);
        let keys: Vec<String> = self
            .order
            .iter()
            .map(|k| k.map_or("null".into(), |k| k.to_string()))
            .collect();
        format!(r#"{base},"lanes":[{}]}}"#, keys.join(",")).into()
    }

    /// Age at `now`, never negative (clocks may disagree by a little).
    pub fn age_ms(&self, now_ms: i64) -> i64 {
        (now_ms - self.price.received_at).max(0)
    }

    /// The price with `age_ms` and `freshness` appended, as REST answers carry it.
    pub fn with_age(&self, now_ms: i64) -> String {
        let age = self.age_ms(now_ms);
        let base = self.encoded.strip_suffix('}').unwrap_or(&self.encoded);
        format!(
            r#"{base},"age_ms":{age},"freshness":"{}"}}"#,
            Freshness::of_age(age).as_str()
        )
    }
}

/// The price cache.
#[derive(Debug)]
pub struct PriceCache {
    entries: BTreeMap<String, Entry>,
    seq: u64,
    ttl_ms: i64,
}

impl PriceCache {
    /// An empty cache whose entries live `ttl_ms` after their last update.
    pub fn new(ttl_ms: i64) -> PriceCache {
        PriceCache {
            entries: BTreeMap::new(),
            seq: 0,
            ttl_ms,
        }
    }

    /// Loads persisted prices after a restart. `seq_floor` is the highest `seq` ever handed
    /// out (persisted separately, because TTL may have dropped the entry that carried it), so
    /// numbering continues above everything a client may have seen. Expired entries are skipped.
    pub fn restore(
        &mut self,
        prices: impl IntoIterator<Item = StoredPrice>,
        seq_floor: u64,
        now_ms: i64,
    ) {
        self.seq = self.seq.max(seq_floor);
        for (price, lanes) in prices {
            self.seq = self.seq.max(price.seq);
            if now_ms - price.received_at <= self.ttl_ms {
                self.entries
                    .insert(price.symbol.clone(), Entry::new(price, lanes));
            }
        }
    }

    /// Applies an update received at `now_ms`. Returns the new entry when a client-visible
    /// field changed (with a fresh `seq`), `None` when the update changed nothing or arrived
    /// out of order for its stream.
    ///
    /// An update without an event time (Binance's book ticker) sets `event_time` to the
    /// receive time when it changes something.
    pub fn apply(&mut self, update: &Update, now_ms: i64) -> Option<&Entry> {
        let ttl = self.ttl_ms;
        let live = |e: &Entry| now_ms - e.price.received_at <= ttl;
        if self.entries.get(&update.symbol).is_some_and(live) {
            return self.apply_live(update, now_ms);
        }
        // No live entry: the update starts a fresh one (nothing held, so it is never late).
        let mut order = Lanes::default();
        if let (Some(key), Some(slot)) = (update.order.key(), order.get_mut(update.lane)) {
            *slot = Some(key);
        }
        let mut price = Price {
            symbol: update.symbol.clone(),
            ..Price::default()
        };
        if !update.fields.merge_into(&mut price) {
            if let Some(e) = self.entries.get_mut(&update.symbol) {
                e.order = order;
            }
            return None;
        }
        stamp(&mut self.seq, &mut price, update, now_ms);
        self.entries
            .insert(update.symbol.clone(), Entry::new(price, order));
        self.entries.get(&update.symbol)
    }

    /// [`PriceCache::apply`] to a live entry, in place: nearly every update, so it neither
    /// copies the price nor its key (a profile of the leader put that copy, the old entry's
    /// drop and the key's at about a third of applying a price).
    fn apply_live(&mut self, update: &Update, now_ms: i64) -> Option<&Entry> {
        let e = self.entries.get_mut(&update.symbol)?;
        let held = e.order.get(update.lane).copied().flatten();
        if held.is_some_and(|held| update.order.is_late(held)) {
            return None;
        }
        if let (Some(key), Some(slot)) = (update.order.key(), e.order.get_mut(update.lane)) {
            *slot = Some(key);
        }
        if !update.fields.merge_into(&mut e.price) {
            return None;
        }
        stamp(&mut self.seq, &mut e.price, update, now_ms);
        e.encode();
        Some(e)
    }

    /// The live entry for `symbol` (expired entries count as absent).
    pub fn get(&self, symbol: &str, now_ms: i64) -> Option<&Entry> {
        self.entries
            .get(symbol)
            .filter(|e| now_ms - e.price.received_at <= self.ttl_ms)
    }

    /// Live entries, in symbol order.
    pub fn live(&self, now_ms: i64) -> impl Iterator<Item = &Entry> {
        self.entries
            .values()
            .filter(move |e| now_ms - e.price.received_at <= self.ttl_ms)
    }

    /// Live entries by freshness at `now_ms`: (fresh, acceptable, stale).
    pub fn freshness_counts(&self, now_ms: i64) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for e in self.live(now_ms) {
            match Freshness::of_age(e.age_ms(now_ms)) {
                Freshness::Fresh => counts.0 += 1,
                Freshness::Acceptable => counts.1 += 1,
                Freshness::Stale => counts.2 += 1,
            }
        }
        counts
    }

    /// Drops entries older than the TTL; returns their symbols so storage can follow.
    pub fn sweep(&mut self, now_ms: i64) -> Vec<String> {
        let ttl = self.ttl_ms;
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| now_ms - e.price.received_at > ttl)
            .map(|(s, _)| s.clone())
            .collect();
        for s in &expired {
            self.entries.remove(s);
        }
        expired
    }

    /// When the next entry will expire, so the hub can set its alarm no earlier than needed.
    pub fn next_expiry(&self) -> Option<i64> {
        self.entries
            .values()
            .map(|e| e.price.received_at + self.ttl_ms + 1)
            .min()
    }

    /// The highest `seq` handed out so far.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of entries held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::core::feed::source::Order;
    use crate::core::price::PriceFields;

    /// Source-neutral updates: lane 0 ordered by event time, lane 1 by a sequence number
    /// (a source's stream that carries no event time).
    fn px(symbol: &str, p: &str, t: i64) -> Update {
        Update {
            symbol: symbol.into(),
            lane: 0,
            order: Order::EventTime(t),
            fields: PriceFields {
                price: Some(p.into()),
                event_time: Some(t),
                ..PriceFields::default()
            },
        }
    }

    fn book(symbol: &str, bid: &str, u: u64) -> Update {
        Update {
            symbol: symbol.into(),
            lane: 1,
            order: Order::Sequence(u as i64),
            fields: PriceFields {
                bid: Some(bid.into()),
                ask: Some("999".into()),
                ..PriceFields::default()
            },
        }
    }

    #[test]
    fn freshness_thresholds_at_explicit_ages() {
        assert_eq!(Freshness::of_age(0), Freshness::Fresh);
        assert_eq!(Freshness::of_age(4_999), Freshness::Fresh);
        assert_eq!(Freshness::of_age(5_000), Freshness::Acceptable);
        assert_eq!(Freshness::of_age(59_999), Freshness::Acceptable);
        assert_eq!(Freshness::of_age(60_000), Freshness::Stale);
    }

    #[test]
    fn seq_only_grows_and_unchanged_updates_get_none() {
        let mut c = PriceCache::new(300_000);
        let a = c.apply(&px("BTCUSDT", "1", 1), 1_000).unwrap().price.seq;
        let b = c.apply(&px("ETHUSDT", "2", 1), 1_001).unwrap().price.seq;
        assert!(b > a);
        assert!(
            c.apply(&px("ETHUSDT", "2", 1), 1_002).is_none(),
            "no change, no seq"
        );
        let d = c.apply(&px("BTCUSDT", "3", 2), 1_003).unwrap().price.seq;
        assert!(d > b);
        assert_eq!(c.seq(), d);
    }

    #[test]
    fn late_frames_are_dropped_per_stream_and_book_uses_receive_time() {
        let mut c = PriceCache::new(300_000);
        c.apply(&px("BTCUSDT", "10", 500), 1_000).unwrap();
        assert!(
            c.apply(&px("BTCUSDT", "9", 499), 1_001).is_none(),
            "older ticker frame"
        );
        let e = c.apply(&book("BTCUSDT", "9.9", 7), 1_002).unwrap();
        assert_eq!(
            e.price.event_time,
            Some(1_002),
            "book changes carry the receive time"
        );
        assert_eq!(
            e.price.price.as_deref(),
            Some("10"),
            "book frames keep the last price"
        );
        assert!(
            c.apply(&book("BTCUSDT", "9.8", 7), 1_003).is_none(),
            "same update id"
        );
        assert!(
            c.apply(&book("BTCUSDT", "9.8", 6), 1_003).is_none(),
            "older update id"
        );
        // A ticker frame stamped before the book's receive time still applies: ordering is
        // per stream, not across the exchange's and the hub's clocks.
        let e = c.apply(&px("BTCUSDT", "11", 501), 1_004).unwrap();
        assert_eq!(e.price.price.as_deref(), Some("11"));
        assert_eq!(e.price.bid.as_deref(), Some("9.9"));
    }

    /// Found by the simulation: a restarted hub took its prices back without their lanes'
    /// keys, so a stale ticker (older than the stored one) took the latest price's place.
    #[test]
    fn a_restored_price_keeps_its_lanes_so_a_stale_frame_is_still_late() {
        let mut c = PriceCache::new(300_000);
        c.apply(&px("BTCUSDT", "10", 500), 1_000).unwrap();
        let record = c.get("BTCUSDT", 1_000).unwrap().stored();
        let (price, lanes) = read_stored(&record).unwrap();
        assert_eq!(price.price.as_deref(), Some("10"));
        let mut again = PriceCache::new(300_000);
        again.restore([(price, lanes)], 0, 1_001);
        assert!(
            again.apply(&px("BTCUSDT", "9", 499), 1_002).is_none(),
            "older than the stored price"
        );
        assert!(again.apply(&px("BTCUSDT", "11", 501), 1_003).is_some());
        let plain = r#"{"symbol":"BTCUSDT","price":"10","seq":1,"received_at":1000}"#;
        let (_, none) = read_stored(plain).expect("a record from before the lanes were kept");
        assert_eq!(none, Lanes::default());
    }

    #[test]
    fn ttl_drops_old_entries_at_explicit_times() {
        let mut c = PriceCache::new(300_000);
        c.apply(&px("BTCUSDT", "1", 1), 0);
        c.apply(&px("ETHUSDT", "1", 1), 100_000);
        assert!(
            c.get("BTCUSDT", 300_000).is_some(),
            "exactly at the TTL it still lives"
        );
        assert!(c.get("BTCUSDT", 300_001).is_none());
        assert_eq!(c.live(300_001).count(), 1);
        assert_eq!(c.next_expiry(), Some(300_001));
        assert_eq!(c.sweep(300_001), ["BTCUSDT"]);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn restore_continues_seq_above_everything_seen_and_skips_expired() {
        let mut c = PriceCache::new(1_000);
        let old = Price {
            symbol: "BTCUSDT".into(),
            price: Some("1".into()),
            received_at: 0,
            seq: 7,
            ..Price::default()
        };
        let live = Price {
            symbol: "ETHUSDT".into(),
            price: Some("2".into()),
            received_at: 9_500,
            seq: 5,
            ..Price::default()
        };
        c.restore(
            [(old, Lanes::default()), (live, Lanes::default())],
            12,
            10_000,
        );
        assert!(c.get("BTCUSDT", 10_000).is_none());
        assert_eq!(c.get("ETHUSDT", 10_000).unwrap().price.seq, 5);
        assert_eq!(
            c.apply(&px("ETHUSDT", "3", 2), 10_001).unwrap().price.seq,
            13
        );
    }

    #[test]
    fn rest_form_appends_age_and_freshness_to_the_encoding() {
        let mut c = PriceCache::new(300_000);
        let e = c.apply(&px("BTCUSDT", "1.50", 9), 1_000).unwrap().clone();
        let v: serde_json::Value = serde_json::from_str(&e.with_age(7_000)).unwrap();
        assert_eq!(v["price"], "1.50");
        assert_eq!(v["age_ms"], 6_000);
        assert_eq!(v["freshness"], "acceptable");
        assert_eq!(v["seq"], 1);
    }
}
