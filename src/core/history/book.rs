//! The leader's candle book: a [`CandleSeries`] per symbol and interval someone asked for,
//! and the REST backfill that fills them, one request at a time, with the same discipline as
//! the stream: capped exponential backoff with jitter, a refusal's `Retry-After` honoured
//! (429 and 418 both), the next endpoint after 3 failures or at once on a 451, and a pause
//! to the next minute when the answers say the IP's request weight is nearly spent.
//!
//! Which series are fetched: a *live* one (its `candles:` channel is followed upstream, so
//! the stream closes its candles) when something is missing a grace period after its close
//! (the stream's close usually arrives first), and an *asked* one (read through
//! `/api/candles` while missing something) at once. A series nobody follows or asks for is
//! kept as it is and never fetched for.
//!
//! Pure: the caller asks what to fetch ([`CandleBook::poll`]), carries the request out,
//! and hands the answer back ([`CandleBook::answered`]).

use std::collections::{BTreeMap, BTreeSet};

use super::candles::{Backfill, Candle, CandleSeries};
use super::klines;
use crate::core::backoff;
use crate::core::channel::{interval_ms, Market};

/// Failures on one endpoint before the next one is tried.
const FAILURES_PER_ENDPOINT: u32 = 3;

/// How long after a close the stream has to deliver it before the REST endpoint is asked.
pub const GRACE_MS: i64 = 5_000;

/// Binance's request weight per IP and minute is 6,000: at this much used, wait for the
/// next minute (the IP is shared with whoever else runs there).
const WEIGHT_CEILING: u32 = 5_000;

/// A symbol and an interval.
pub type SeriesKey = (String, String);

/// A request to make: `url`, answered with `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// Names the answer.
    pub id: u64,
    /// The URL to GET.
    pub url: String,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A status and its body (and `Retry-After`, in ms, when given).
    Reply {
        /// HTTP status.
        status: u16,
        /// `Retry-After`, in ms.
        retry_after_ms: Option<i64>,
        /// `X-MBX-USED-WEIGHT-1M`: the IP's request weight used this minute.
        used_weight: Option<u32>,
        /// The body.
        body: String,
    },
    /// The request did not complete.
    Failed,
}

/// Candles to store: what a series gained, and the oldest open time it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gained {
    /// The series' symbol.
    pub symbol: String,
    /// Its interval.
    pub interval: String,
    /// The new candles.
    pub candles: Vec<Candle>,
    /// Candles older than this are no longer kept.
    pub keep_from: i64,
}

/// The backfill's outcomes so far, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchCounts {
    /// Answers merged.
    pub ok: u64,
    /// Refusals (429, 418, 451, other statuses).
    pub refused: u64,
    /// Requests that did not complete, or answers that were not klines.
    pub failed: u64,
}

/// One kept series and why it is fetched for.
#[derive(Debug, Clone)]
struct Kept {
    series: CandleSeries,
    live: bool,
    asked: bool,
    /// An answer gained nothing while candles were missing (the exchange has none for
    /// them): not asked again before its next candle is due.
    quiet_until: i64,
}

impl Kept {
    /// The time its completeness is judged at: a live series gives the stream a grace
    /// period to deliver each close.
    fn judged_at(&self, now_ms: i64) -> i64 {
        if self.live {
            now_ms - GRACE_MS
        } else {
            now_ms
        }
    }

    /// What to fetch for it at `now_ms`, if anything (see the module's rules).
    fn wants(&self, now_ms: i64) -> Option<Backfill> {
        (now_ms >= self.quiet_until && (self.live || self.asked))
            .then(|| self.series.missing(self.judged_at(now_ms)))
            .flatten()
    }
}

/// The book.
#[derive(Debug, Clone)]
pub struct CandleBook {
    urls: Vec<String>,
    cap: usize,
    series: BTreeMap<SeriesKey, Kept>,
    inflight: Option<(u64, SeriesKey)>,
    next_id: u64,
    retry_at: i64,
    failures: u32,
    endpoint: usize,
    endpoint_failures: u32,
    /// When [`CandleBook::poll`] next has something to check.
    due: Option<i64>,
    counts: FetchCounts,
}

impl CandleBook {
    /// A book fetching from `urls` (tried in order), keeping `cap` candles a series.
    pub fn new(urls: Vec<String>, cap: usize) -> CandleBook {
        CandleBook {
            urls,
            cap: cap.max(1),
            series: BTreeMap::new(),
            inflight: None,
            next_id: 1,
            retry_at: 0,
            failures: 0,
            endpoint: 0,
            endpoint_failures: 0,
            due: None,
            counts: FetchCounts::default(),
        }
    }

    /// The kept series of `symbol` and `interval`, created when new (`None` for an interval
    /// that is not one).
    fn kept(&mut self, symbol: &str, interval: &str) -> Option<&mut Kept> {
        let ms = interval_ms(interval)?;
        let cap = self.cap;
        let key = (symbol.to_string(), interval.to_string());
        Some(self.series.entry(key).or_insert_with(|| Kept {
            series: CandleSeries::new(ms, cap),
            live: false,
            asked: false,
            quiet_until: 0,
        }))
    }

    /// The `candles:` channels followed upstream are `interest`'s: their series are kept and
    /// live, every other one is not live.
    pub fn set_live(&mut self, interest: &BTreeSet<String>, now_ms: i64) {
        for k in self.series.values_mut() {
            k.live = false;
        }
        for key in interest {
            if let Some(Market::Candles(symbol, interval)) = Market::of(key) {
                if let Some(k) = self.kept(&symbol, &interval) {
                    k.live = true;
                }
            }
        }
        self.plan(now_ms);
    }

    /// A read of the series: kept from now on, and fetched for at once while it misses
    /// something (a live one: something the stream should have closed by now). True when
    /// it is complete.
    pub fn ask(&mut self, symbol: &str, interval: &str, now_ms: i64) -> bool {
        let Some(k) = self.kept(symbol, interval) else {
            return false;
        };
        k.asked = k.series.missing(k.judged_at(now_ms)).is_some();
        let complete = !k.asked || now_ms < k.quiet_until;
        self.plan(now_ms);
        complete
    }

    /// A closed candle from the stream: what to store when it is new.
    pub fn closed(
        &mut self,
        symbol: &str,
        interval: &str,
        candle: Candle,
        now_ms: i64,
    ) -> Option<Gained> {
        let key = (symbol.to_string(), interval.to_string());
        let k = self.series.get_mut(&key)?;
        let fresh = k.series.closed(candle.clone()).then_some(Gained {
            symbol: key.0,
            interval: key.1,
            candles: vec![candle],
            keep_from: k.series.oldest().unwrap_or_default(),
        });
        self.plan(now_ms);
        fresh
    }

    /// Candles taken back from storage.
    pub fn restore(&mut self, symbol: &str, interval: &str, candles: Vec<Candle>) {
        if let Some(k) = self.kept(symbol, interval) {
            k.series.restore(candles);
        }
        self.due = Some(0);
    }

    /// The series of `symbol` and `interval`, when it is kept.
    pub fn series(&self, symbol: &str, interval: &str) -> Option<&CandleSeries> {
        let key = (symbol.to_string(), interval.to_string());
        self.series.get(&key).map(|k| &k.series)
    }

    /// How many series are kept.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The backfill's outcomes so far.
    pub fn counts(&self) -> FetchCounts {
        self.counts
    }

    /// When [`CandleBook::poll`] should next be called (a timer), if ever.
    pub fn due(&self) -> Option<i64> {
        self.due
    }

    /// The next request, when one is due at `now_ms`: one at a time, for the first series
    /// that wants something, never before the backoff allows.
    pub fn poll(&mut self, now_ms: i64) -> Option<Fetch> {
        if self.due.is_none_or(|d| d > now_ms) {
            return None;
        }
        let fetch = self.next_fetch(now_ms);
        if fetch.is_none() {
            self.plan(now_ms);
        }
        fetch
    }

    fn next_fetch(&mut self, now_ms: i64) -> Option<Fetch> {
        if self.inflight.is_some() || now_ms < self.retry_at {
            return None;
        }
        let (key, want) = self
            .series
            .iter()
            .find_map(|(key, k)| k.wants(now_ms).map(|m| (key.clone(), m)))?;
        let base = self.urls.get(self.endpoint).or(self.urls.first())?;
        let path = klines::request_path(&key.0, &key.1, want.start_ms, want.limit);
        let id = self.next_id;
        self.next_id += 1;
        self.inflight = Some((id, key));
        self.due = None;
        Some(Fetch {
            id,
            url: format!("{base}{path}"),
        })
    }

    /// The answer to request `id` at `now_ms`: merged into its series (returns what it
    /// gained, to store), or a failure backed off. A stale `id` is ignored.
    pub fn answered(
        &mut self,
        id: u64,
        answer: Answer,
        now_ms: i64,
        jitter: f64,
    ) -> Option<Gained> {
        let key = match &self.inflight {
            Some((i, key)) if *i == id => key.clone(),
            _ => return None,
        };
        self.inflight = None;
        let gained = self.merge(key, answer, now_ms, jitter);
        self.plan(now_ms);
        gained
    }

    fn merge(
        &mut self,
        key: SeriesKey,
        answer: Answer,
        now_ms: i64,
        jitter: f64,
    ) -> Option<Gained> {
        let (status, retry_after, weight, body) = match answer {
            Answer::Reply {
                status,
                retry_after_ms,
                used_weight,
                body,
            } => (status, retry_after_ms, used_weight, body),
            Answer::Failed => (0, None, None, String::new()),
        };
        let candles = match (status, klines::parse(&body)) {
            (200, Ok(candles)) => candles,
            (200 | 0, _) => {
                self.counts.failed += 1;
                return self.back_off(0, None, now_ms, jitter);
            }
            _ => {
                self.counts.refused += 1;
                return self.back_off(status, retry_after, now_ms, jitter);
            }
        };
        self.counts.ok += 1;
        (self.failures, self.endpoint_failures) = (0, 0);
        if weight.is_some_and(|w| w >= WEIGHT_CEILING) {
            self.retry_at = now_ms - now_ms.rem_euclid(60_000) + 60_000;
        }
        let k = self.series.get_mut(&key)?;
        let candles = k.series.backfill(candles, now_ms);
        let missing = k.series.missing(k.judged_at(now_ms)).is_some();
        k.asked &= missing;
        if missing && candles.is_empty() {
            k.quiet_until = k.series.open_at(now_ms) + k.series.interval_ms();
        }
        let keep_from = k.series.oldest().unwrap_or_default();
        (!candles.is_empty()).then_some(Gained {
            symbol: key.0,
            interval: key.1,
            candles,
            keep_from,
        })
    }

    /// Backoff with jitter, never sooner than a `Retry-After`; the next endpoint after
    /// [`FAILURES_PER_ENDPOINT`] failures, or at once when this one refuses the region (451).
    fn back_off(
        &mut self,
        status: u16,
        retry_after: Option<i64>,
        now_ms: i64,
        jitter: f64,
    ) -> Option<Gained> {
        self.failures += 1;
        self.endpoint_failures += 1;
        if status == 451 || self.endpoint_failures >= FAILURES_PER_ENDPOINT {
            self.endpoint = (self.endpoint + 1) % self.urls.len().max(1);
            self.endpoint_failures = 0;
        }
        let delay = backoff::delay_ms(self.failures, jitter).max(retry_after.unwrap_or(0));
        self.retry_at = now_ms + delay;
        None
    }

    /// When the backoff ends.
    pub fn retry_at(&self) -> i64 {
        self.retry_at
    }

    /// Works out when [`CandleBook::poll`] next has something to check: nothing while a
    /// request is out; the backoff's end when a series wants something; else the earliest
    /// moment a live series' next candle is due from the stream (plus the grace).
    fn plan(&mut self, now_ms: i64) {
        if self.inflight.is_some() {
            self.due = None;
            return;
        }
        let mut due: Option<i64> = None;
        for k in self.series.values() {
            let at = if k.wants(now_ms).is_some() {
                Some(self.retry_at.max(now_ms))
            } else if now_ms < k.quiet_until {
                Some(k.quiet_until)
            } else if k.live {
                let s = &k.series;
                Some(s.open_at(now_ms) + s.interval_ms() + GRACE_MS)
            } else {
                None
            };
            due = match (due, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.due = due;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn book() -> CandleBook {
        let urls = vec!["https://a".to_string(), "https://b".to_string()];
        CandleBook::new(urls, 3)
    }

    fn rows(from_min: i64, n: i64) -> String {
        let row = |m: i64| {
            format!(
                r#"[{},"1.0","2.0","0.5","1.5","10",0,"0",0,"0","0","0"]"#,
                m * MIN
            )
        };
        let all: Vec<String> = (from_min..from_min + n).map(row).collect();
        format!("[{}]", all.join(","))
    }

    fn reply(status: u16, retry_after_ms: Option<i64>, body: String) -> Answer {
        Answer::Reply {
            status,
            retry_after_ms,
            used_weight: Some(10),
            body,
        }
    }

    fn ok(body: String) -> Answer {
        reply(200, None, body)
    }

    fn candle(m: i64) -> Candle {
        Candle::new(m * MIN, ["1"; 5])
    }

    fn live(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn an_asked_series_is_backfilled_once_then_kept_by_the_stream() {
        let mut b = book();
        // Kept (from storage, empty here), neither live nor asked for.
        b.restore("BTCUSDT", "1m", Vec::new());
        b.restore("BTCUSDT", "1m", Vec::new());
        b.restore("BTCUSDT", "2m", Vec::new());
        assert_eq!(
            b.len(),
            1,
            "one series, and no series of an interval that is not one"
        );
        let now = 100 * MIN + 10;
        assert_eq!(b.poll(now), None, "kept, but nobody asked or listens");
        assert!(!b.ask("BTCUSDT", "1m", now), "incomplete");
        let f = b.poll(now).unwrap();
        assert!(f
            .url
            .starts_with("https://a/api/v3/klines?symbol=BTCUSDT&interval=1m"));
        assert!(f.url.contains(&format!("startTime={}&limit=3", 97 * MIN)));
        assert_eq!(b.poll(now), None, "one request at a time");
        assert_eq!(b.due(), None);
        let gained = b.answered(f.id, ok(rows(97, 4)), now + 5, 0.5).unwrap();
        assert_eq!(gained.candles.len(), 3, "the open candle is the stream's");
        assert_eq!(gained.keep_from, 97 * MIN);
        assert!(b.ask("BTCUSDT", "1m", now + 6), "complete");
        assert_eq!(b.poll(now + 6), None);
        assert!(b.closed("BTCUSDT", "1m", candle(100), now).is_some());
        assert!(b.closed("BTCUSDT", "1m", candle(100), now).is_none());
        assert_eq!(b.poll(101 * MIN + 1), None, "the stream closed it");
        assert_eq!(b.series("BTCUSDT", "1m").map(CandleSeries::len), Some(3));
        assert_eq!(b.counts().ok, 1);
    }

    #[test]
    fn a_live_series_gives_the_stream_a_grace_period_then_fills_the_gap() {
        let mut b = book();
        let now = 100 * MIN + 10;
        b.set_live(&live(&["candles:ETHUSDT:1m", "trades:ETHUSDT"]), now);
        let f = b.poll(now).expect("a new live series is backfilled");
        b.answered(f.id, ok(rows(97, 4)), now, 0.5);
        assert_eq!(
            b.due(),
            Some(101 * MIN + GRACE_MS),
            "the next close's grace"
        );
        assert_eq!(
            b.poll(101 * MIN + 10),
            None,
            "the stream may still deliver it"
        );
        // The stream missed the close of minute 100: after the grace it is fetched.
        let f = b.poll(101 * MIN + GRACE_MS).expect("the gap is fetched");
        assert!(f.url.contains(&format!("startTime={}&limit=1", 100 * MIN)));
        b.answered(f.id, ok(rows(100, 2)), 101 * MIN + GRACE_MS, 0.5);
        assert_eq!(b.series("ETHUSDT", "1m").unwrap().last(1)[0].t, 100 * MIN);
        // No longer live: nothing is fetched for it.
        b.set_live(&live(&[]), 101 * MIN + GRACE_MS);
        assert_eq!(b.due(), None);
        assert_eq!(b.poll(200 * MIN), None);
    }

    #[test]
    fn refusals_back_off_honour_retry_after_and_move_endpoints() {
        let mut b = book();
        let now = 1_000 * MIN;
        b.ask("ETHUSDT", "5m", now);
        let f = b.poll(now).unwrap();
        let refused = reply(429, Some(120_000), String::new());
        assert_eq!(b.answered(f.id, refused, now, 0.0), None);
        assert_eq!(
            b.retry_at(),
            now + 120_000,
            "Retry-After is longer than the backoff"
        );
        assert_eq!(b.due(), Some(now + 120_000));
        assert_eq!(b.poll(now + 60_000), None);
        let f = b.poll(now + 120_000).unwrap();
        assert!(f.url.starts_with("https://a"));
        b.answered(f.id, reply(451, None, String::new()), now + 120_000, 0.0);
        let f = b.poll(b.retry_at()).unwrap();
        assert!(
            f.url.starts_with("https://b"),
            "451 moves to the next endpoint at once"
        );
        assert_eq!(
            b.answered(f.id + 7, Answer::Failed, now, 0.0),
            None,
            "stale"
        );
        b.answered(f.id, ok("not json".into()), b.retry_at(), 0.5);
        assert!(
            b.retry_at() > now + 120_000,
            "a broken answer is a failure too"
        );
        let counts = b.counts();
        assert_eq!((counts.ok, counts.refused, counts.failed), (0, 2, 1));
    }

    #[test]
    fn a_spent_request_weight_waits_for_the_next_minute() {
        let mut b = book();
        let now = 1_000 * MIN + 7_000;
        b.ask("BTCUSDT", "1m", now);
        b.ask("ETHUSDT", "1m", now);
        let f = b.poll(now).unwrap();
        let heavy = Answer::Reply {
            status: 200,
            retry_after_ms: None,
            used_weight: Some(5_500),
            body: rows(997, 3),
        };
        assert!(b.answered(f.id, heavy, now, 0.5).is_some());
        assert_eq!(b.poll(now + 1), None);
        assert!(b.poll(1_001 * MIN).is_some(), "the next minute");
    }

    #[test]
    fn an_answer_that_gains_nothing_is_not_asked_again_before_the_next_candle() {
        let mut b = book();
        let now = 100 * MIN + 10;
        b.set_live(&live(&["candles:BTCUSDT:1m"]), now);
        let f = b.poll(now).unwrap();
        assert!(b.answered(f.id, ok("[]".into()), now + 1, 0.5).is_none());
        assert_eq!(b.poll(now + 2), None, "no loop of empty answers");
        assert_eq!(b.due(), Some(101 * MIN));
        assert!(
            b.ask("BTCUSDT", "1m", now + 3),
            "a read answers what is held"
        );
        assert!(b.poll(101 * MIN + GRACE_MS).is_some(), "asked again later");
    }

    #[test]
    fn restored_candles_leave_only_the_gap_to_fetch() {
        let mut b = book();
        b.restore("BTCUSDT", "1m", (95..98).map(candle).collect());
        let now = 100 * MIN + 1;
        b.ask("BTCUSDT", "1m", now);
        let f = b.poll(now).unwrap();
        assert!(f.url.contains(&format!("startTime={}&limit=2", 98 * MIN)));
    }
}
