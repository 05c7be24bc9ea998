//! One symbol's closed candles of one interval, as the leader keeps them: the last
//! `CANDLE_HISTORY` of them, one per open time, from two sources that overlap (Binance's REST
//! klines backfill the past, the stream's closed candles extend it), with what is missing
//! between them computed rather than guessed.
//!
//! Pure: the caller says what time it is. Prices stay the exchange's decimal strings.

use std::collections::BTreeMap;

/// One candle: open time (ms) and the exchange's decimal strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candle {
    /// Open time, ms since the epoch.
    pub t: i64,
    /// Open.
    pub o: String,
    /// High.
    pub h: String,
    /// Low.
    pub l: String,
    /// Close.
    pub c: String,
    /// Base-asset volume.
    pub v: String,
}

/// An interval's length in ms (`1m` … `1d`, the intervals the candle channels serve).
pub fn interval_ms(interval: &str) -> Option<i64> {
    Some(match interval {
        "1m" => 60_000,
        "5m" => 300_000,
        "15m" => 900_000,
        "1h" => 3_600_000,
        "4h" => 14_400_000,
        "1d" => 86_400_000,
        _ => return None,
    })
}

/// What to ask the REST klines endpoint for: `limit` candles starting at `start_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backfill {
    /// The first open time wanted.
    pub start_ms: i64,
    /// How many candles.
    pub limit: usize,
}

/// The closed candles of one symbol and interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandleSeries {
    interval_ms: i64,
    cap: usize,
    closed: BTreeMap<i64, Candle>,
}

impl CandleSeries {
    /// An empty series keeping at most `cap` candles of `interval_ms`.
    pub fn new(interval_ms: i64, cap: usize) -> CandleSeries {
        CandleSeries {
            interval_ms: interval_ms.max(1),
            cap: cap.max(1),
            closed: BTreeMap::new(),
        }
    }

    /// The open time of the candle open at `now_ms`.
    pub fn open_at(&self, now_ms: i64) -> i64 {
        now_ms - now_ms.rem_euclid(self.interval_ms)
    }

    /// A closed candle from the stream: kept (replacing one of the same open time); returns
    /// true when it was not held yet.
    pub fn closed(&mut self, candle: Candle) -> bool {
        let fresh = self.closed.insert(candle.t, candle).is_none();
        self.trim();
        fresh
    }

    /// Candles from the REST backfill: those closed by `now_ms` are kept (the last one the
    /// endpoint returns is usually the open candle, which the stream owns), each open time
    /// once, a candle already held from the stream left as it is (both say the same; the
    /// stream's came first).
    pub fn backfill(&mut self, candles: Vec<Candle>, now_ms: i64) -> usize {
        let open = self.open_at(now_ms);
        let mut added = 0;
        for c in candles.into_iter().filter(|c| c.t < open) {
            if c.t.rem_euclid(self.interval_ms) != 0 || self.closed.contains_key(&c.t) {
                continue;
            }
            self.closed.insert(c.t, c);
            added += 1;
        }
        self.trim();
        added
    }

    /// What is missing at `now_ms`, when anything is: the whole history when none is held,
    /// else the candles between the newest held one and the open one (a restart, a stream
    /// gap). `None` when the series is complete up to the open candle.
    pub fn missing(&self, now_ms: i64) -> Option<Backfill> {
        let open = self.open_at(now_ms);
        let cap = self.cap as i64;
        let start = match self.closed.keys().next_back() {
            None => open - cap * self.interval_ms,
            Some(&last) => (last + self.interval_ms).max(open - cap * self.interval_ms),
        };
        let count = (open - start) / self.interval_ms;
        (count > 0).then_some(Backfill {
            start_ms: start,
            limit: count as usize,
        })
    }

    /// The newest `limit` closed candles, oldest first.
    pub fn last(&self, limit: usize) -> Vec<&Candle> {
        let skip = self.closed.len().saturating_sub(limit);
        self.closed.values().skip(skip).collect()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.closed.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.closed.is_empty()
    }

    /// Drops the oldest beyond the cap.
    fn trim(&mut self) {
        while self.closed.len() > self.cap {
            self.closed.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn candle(t: i64, close: &str) -> Candle {
        Candle {
            t,
            o: "1.0".into(),
            h: "2.0".into(),
            l: "0.5".into(),
            c: close.into(),
            v: "10".into(),
        }
    }

    fn times(s: &CandleSeries) -> Vec<i64> {
        s.last(usize::MAX).iter().map(|c| c.t / MIN).collect()
    }

    #[test]
    fn an_empty_series_asks_for_its_whole_history_up_to_the_open_candle() {
        let s = CandleSeries::new(MIN, 500);
        let now = 1_000 * MIN + 30_000;
        assert_eq!(
            s.missing(now),
            Some(Backfill {
                start_ms: 500 * MIN,
                limit: 500
            })
        );
        assert_eq!(interval_ms("5m"), Some(5 * MIN));
        assert_eq!(interval_ms("2m"), None);
    }

    #[test]
    fn backfill_and_stream_overlap_into_one_candle_per_open_time() {
        let mut s = CandleSeries::new(MIN, 500);
        let now = 10 * MIN + 5_000;
        // The stream closed candle 8 before the backfill answered.
        assert!(s.closed(candle(8 * MIN, "stream")));
        // The REST answer: candles 5..=10, 10 being the open one.
        let rest: Vec<Candle> = (5..=10).map(|m| candle(m * MIN, "rest")).collect();
        assert_eq!(
            s.backfill(rest, now),
            4,
            "5, 6, 7, 9: 8 was held, 10 is open"
        );
        assert_eq!(times(&s), [5, 6, 7, 8, 9]);
        assert_eq!(s.last(1)[0].c, "rest");
        assert_eq!(s.last(5)[3].c, "stream", "the stream's candle is kept");
        assert_eq!(s.missing(now), None, "complete up to the open candle");
        assert!(!s.closed(candle(9 * MIN, "again")), "a repeat is not new");
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn a_gap_after_a_restart_is_exactly_what_is_asked_for() {
        let mut s = CandleSeries::new(MIN, 500);
        for m in 100..110 {
            s.closed(candle(m * MIN, "x"));
        }
        // Restarted at minute 115 (the candle of 115 open): 110..=114 are missing.
        let now = 115 * MIN + 1;
        let want = s.missing(now).unwrap();
        assert_eq!((want.start_ms / MIN, want.limit), (110, 5));
        let rest = (110..=115).map(|m| candle(m * MIN, "r")).collect();
        assert_eq!(s.backfill(rest, now), 5);
        assert_eq!(s.missing(now), None);
        assert_eq!(times(&s).len(), 15);
    }

    #[test]
    fn only_the_last_cap_candles_are_kept_and_asked_for() {
        let mut s = CandleSeries::new(MIN, 3);
        for m in 0..10 {
            s.closed(candle(m * MIN, "x"));
        }
        assert_eq!(times(&s), [7, 8, 9]);
        // A long outage asks for the cap's worth, not everything since.
        let want = s.missing(1_000 * MIN).unwrap();
        assert_eq!((want.start_ms / MIN, want.limit), (997, 3));
        // Candles not on the interval's grid are not candles of it.
        assert_eq!(
            s.backfill(vec![candle(10 * MIN + 7, "odd")], 1_000 * MIN),
            0
        );
        assert_eq!(s.last(2).len(), 2);
    }
}
