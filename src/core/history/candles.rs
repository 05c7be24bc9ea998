//! One symbol's closed candles of one interval, as the leader keeps them: the last
//! `CANDLE_HISTORY` of them, one per open time, from two sources that overlap (Binance's REST
//! klines backfill the past, the stream's closed candles extend it), with what is missing
//! between them computed rather than guessed.
//!
//! Each candle is kept encoded, as every wire carries it (`{"t","o","h","l","c","v",
//! "closed"}`): encoded once where it is read, joined as it is into `/api/candles` and into
//! storage. Pure: the caller says what time it is.

use std::rc::Rc;

use crate::core::market::candle_json;

/// One closed candle: its open time (ms) and its encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candle {
    /// Open time, ms since the epoch.
    pub t: i64,
    /// `{"t","o","h","l","c","v","closed":true}`, the exchange's decimal strings as they came.
    pub json: Rc<str>,
}

impl Candle {
    /// A closed candle of open time `t` and its open, high, low, close and volume.
    pub fn new(t: i64, ohlcv: [&str; 5]) -> Candle {
        Candle {
            t,
            json: candle_json(t, ohlcv, true).into(),
        }
    }
}

/// What to ask the REST klines endpoint for: `limit` candles starting at `start_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backfill {
    /// The first open time wanted.
    pub start_ms: i64,
    /// How many candles.
    pub limit: usize,
}

/// The closed candles of one symbol and interval, oldest first, one per open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandleSeries {
    interval_ms: i64,
    cap: usize,
    closed: Vec<Candle>,
}

impl CandleSeries {
    /// An empty series keeping at most `cap` candles of `interval_ms`.
    pub fn new(interval_ms: i64, cap: usize) -> CandleSeries {
        CandleSeries {
            interval_ms: interval_ms.max(1),
            cap: cap.max(1),
            closed: Vec::new(),
        }
    }

    /// The open time of the candle open at `now_ms`.
    pub fn open_at(&self, now_ms: i64) -> i64 {
        now_ms - now_ms.rem_euclid(self.interval_ms)
    }

    /// True for an open time on the interval's grid (Binance's candles always are).
    fn on_grid(&self, t: i64) -> bool {
        t.rem_euclid(self.interval_ms) == 0
    }

    /// Where a candle of open time `t` is, or would go.
    fn find(&self, t: i64) -> Result<usize, usize> {
        self.closed.binary_search_by_key(&t, |c| c.t)
    }

    /// A closed candle from the stream: kept (replacing one of the same open time); returns
    /// true when it was not held yet. One off the interval's grid is not a candle of it.
    pub fn closed(&mut self, candle: Candle) -> bool {
        if !self.on_grid(candle.t) {
            return false;
        }
        let fresh = match self.find(candle.t) {
            Ok(i) => {
                if let Some(held) = self.closed.get_mut(i) {
                    *held = candle;
                }
                false
            }
            Err(i) => {
                self.closed.insert(i, candle);
                true
            }
        };
        self.trim();
        fresh
    }

    /// Candles from the REST backfill: those closed by `now_ms` are kept (the last one the
    /// endpoint returns is usually the open candle, which the stream owns), each open time
    /// once, a candle already held from the stream left as it is (both say the same; the
    /// stream's came first). Returns the candles it added (to be stored).
    pub fn backfill(&mut self, candles: Vec<Candle>, now_ms: i64) -> Vec<Candle> {
        let open = self.open_at(now_ms);
        let mut added = Vec::new();
        for c in candles.into_iter().filter(|c| c.t < open) {
            if !self.on_grid(c.t) {
                continue;
            }
            if let Err(i) = self.find(c.t) {
                self.closed.insert(i, c.clone());
                added.push(c);
            }
        }
        self.trim();
        let oldest = self.oldest().unwrap_or(i64::MIN);
        added.retain(|c| c.t >= oldest);
        added
    }

    /// Candles taken back from storage (on the grid, the cap kept).
    pub fn restore(&mut self, candles: Vec<Candle>) {
        for c in candles {
            self.closed(c);
        }
    }

    /// The open time of the oldest candle held.
    pub fn oldest(&self) -> Option<i64> {
        self.closed.first().map(|c| c.t)
    }

    /// The interval's length in ms.
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// What is missing at `now_ms`, when anything is: the whole history when none is held,
    /// else the candles between the newest held one and the open one (a restart, a stream
    /// gap). `None` when the series is complete up to the open candle.
    pub fn missing(&self, now_ms: i64) -> Option<Backfill> {
        let open = self.open_at(now_ms);
        let cap = self.cap as i64;
        let start = match self.closed.last() {
            None => open - cap * self.interval_ms,
            Some(last) => (last.t + self.interval_ms).max(open - cap * self.interval_ms),
        };
        let count = (open - start) / self.interval_ms;
        (count > 0).then_some(Backfill {
            start_ms: start,
            limit: count as usize,
        })
    }

    /// The newest `limit` closed candles, oldest first.
    pub fn last(&self, limit: usize) -> &[Candle] {
        let skip = self.closed.len().saturating_sub(limit);
        self.closed.get(skip..).unwrap_or_default()
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
        let over = self.closed.len().saturating_sub(self.cap);
        self.closed.drain(..over);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn candle(t: i64, close: &str) -> Candle {
        Candle::new(t, ["1.0", "2.0", "0.5", close, "10"])
    }

    fn close_of(c: &Candle) -> String {
        let v: serde_json::Value = serde_json::from_str(&c.json).unwrap();
        v["c"].as_str().unwrap().to_string()
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
            s.backfill(rest, now).len(),
            4,
            "5, 6, 7, 9: 8 was held, 10 is open"
        );
        assert_eq!(times(&s), [5, 6, 7, 8, 9]);
        assert_eq!(close_of(&s.last(1)[0]), "rest");
        assert_eq!(
            close_of(&s.last(5)[3]),
            "stream",
            "the stream's candle is kept"
        );
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
        assert_eq!(s.backfill(rest, now).len(), 5);
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
        assert!(s
            .backfill(vec![candle(10 * MIN + 7, "odd")], 1_000 * MIN)
            .is_empty());
        assert!(!s.closed(candle(11 * MIN + 7, "odd")));
        assert_eq!(s.last(2).len(), 2);
        // Backfilled candles older than the ones kept are not reported as added.
        let old = (0..3).map(|m| candle(m * MIN, "old")).collect();
        assert!(s.backfill(old, 1_000 * MIN).is_empty());
        assert_eq!(times(&s), [7, 8, 9]);
    }
}
