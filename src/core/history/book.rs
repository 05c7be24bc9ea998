//! The leader's candle book: a [`CandleSeries`] per symbol and interval someone asked for,
//! and the REST backfill that fills them, one request at a time, with the same discipline as
//! the stream: capped exponential backoff with jitter, a refusal's `Retry-After` honoured
//! (429 and 418 both), the next endpoint after 3 failures or at once on a 451.
//!
//! Pure: the caller asks what to fetch ([`CandleBook::next_fetch`]), carries the request out,
//! and hands the answer back ([`CandleBook::answered`]). Not run by the leader yet.

use std::collections::BTreeMap;

use super::candles::{interval_ms, Candle, CandleSeries};
use super::klines;
use crate::core::backoff;

/// Failures on one endpoint before the next one is tried.
const FAILURES_PER_ENDPOINT: u32 = 3;

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
        /// The body.
        body: String,
    },
    /// The request did not complete.
    Failed,
}

/// The book.
#[derive(Debug, Clone)]
pub struct CandleBook {
    urls: Vec<String>,
    cap: usize,
    series: BTreeMap<SeriesKey, CandleSeries>,
    inflight: Option<(u64, SeriesKey)>,
    next_id: u64,
    retry_at: i64,
    failures: u32,
    endpoint: usize,
    endpoint_failures: u32,
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
        }
    }

    /// Starts keeping `symbol`'s candles of `interval` (true when new; false for an interval
    /// that is not one, or one already kept).
    pub fn follow(&mut self, symbol: &str, interval: &str) -> bool {
        let Some(ms) = interval_ms(interval) else {
            return false;
        };
        let key = (symbol.to_string(), interval.to_string());
        if self.series.contains_key(&key) {
            return false;
        }
        self.series.insert(key, CandleSeries::new(ms, self.cap));
        true
    }

    /// A closed candle from the stream.
    pub fn closed(&mut self, symbol: &str, interval: &str, candle: Candle) {
        let key = (symbol.to_string(), interval.to_string());
        if let Some(s) = self.series.get_mut(&key) {
            s.closed(candle);
        }
    }

    /// The series of `symbol` and `interval`, when it is kept.
    pub fn series(&self, symbol: &str, interval: &str) -> Option<&CandleSeries> {
        self.series.get(&(symbol.to_string(), interval.to_string()))
    }

    /// The next request, when one is due at `now_ms`: one at a time, for the first series
    /// missing something, never before the backoff allows.
    pub fn next_fetch(&mut self, now_ms: i64) -> Option<Fetch> {
        if self.inflight.is_some() || now_ms < self.retry_at {
            return None;
        }
        let (key, want) = self
            .series
            .iter()
            .find_map(|(k, s)| s.missing(now_ms).map(|m| (k.clone(), m)))?;
        let base = self.urls.get(self.endpoint).or(self.urls.first())?;
        let path = klines::request_path(&key.0, &key.1, want.start_ms, want.limit);
        let id = self.next_id;
        self.next_id += 1;
        self.inflight = Some((id, key));
        Some(Fetch {
            id,
            url: format!("{base}{path}"),
        })
    }

    /// The answer to request `id` at `now_ms`: merged into its series (returns how many
    /// candles it added), or a failure backed off. A stale `id` is ignored.
    pub fn answered(&mut self, id: u64, answer: Answer, now_ms: i64, jitter: f64) -> usize {
        let key = match &self.inflight {
            Some((i, key)) if *i == id => key.clone(),
            _ => return 0,
        };
        self.inflight = None;
        let parsed = match answer {
            Answer::Reply {
                status: 200, body, ..
            } => klines::parse(&body).map_err(|_| (0, None)),
            Answer::Reply {
                status,
                retry_after_ms,
                ..
            } => Err((status, retry_after_ms)),
            Answer::Failed => Err((0, None)),
        };
        match parsed {
            Ok(candles) => {
                (self.failures, self.endpoint_failures) = (0, 0);
                self.series
                    .get_mut(&key)
                    .map_or(0, |s| s.backfill(candles, now_ms))
            }
            Err((status, retry_after)) => {
                self.back_off(status, retry_after, now_ms, jitter);
                0
            }
        }
    }

    /// Backoff with jitter, never sooner than a `Retry-After`; the next endpoint after
    /// [`FAILURES_PER_ENDPOINT`] failures, or at once when this one refuses the region (451).
    fn back_off(&mut self, status: u16, retry_after: Option<i64>, now_ms: i64, jitter: f64) {
        self.failures += 1;
        self.endpoint_failures += 1;
        if status == 451 || self.endpoint_failures >= FAILURES_PER_ENDPOINT {
            self.endpoint = (self.endpoint + 1) % self.urls.len().max(1);
            self.endpoint_failures = 0;
        }
        let delay = backoff::delay_ms(self.failures, jitter).max(retry_after.unwrap_or(0));
        self.retry_at = now_ms + delay;
    }

    /// When [`CandleBook::next_fetch`] may next have something to do while a series misses
    /// candles: the backoff's end.
    pub fn retry_at(&self) -> i64 {
        self.retry_at
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

    fn ok(body: String) -> Answer {
        Answer::Reply {
            status: 200,
            retry_after_ms: None,
            body,
        }
    }

    #[test]
    fn a_followed_series_is_backfilled_once_then_kept_by_the_stream() {
        let mut b = book();
        assert!(b.follow("BTCUSDT", "1m") && !b.follow("BTCUSDT", "1m"));
        assert!(!b.follow("BTCUSDT", "2m"));
        let now = 100 * MIN + 10;
        let f = b.next_fetch(now).unwrap();
        assert!(f
            .url
            .starts_with("https://a/api/v3/klines?symbol=BTCUSDT&interval=1m"));
        assert!(f.url.contains(&format!("startTime={}&limit=3", 97 * MIN)));
        assert_eq!(b.next_fetch(now), None, "one request at a time");
        assert_eq!(b.answered(f.id, ok(rows(97, 4)), now + 5, 0.5), 3);
        assert_eq!(b.next_fetch(now + 6), None, "complete");
        b.closed(
            "BTCUSDT",
            "1m",
            super::super::candles::Candle {
                t: 100 * MIN,
                o: "1".into(),
                h: "1".into(),
                l: "1".into(),
                c: "1".into(),
                v: "1".into(),
            },
        );
        assert_eq!(b.next_fetch(101 * MIN + 1), None, "the stream closed it");
        assert_eq!(b.series("BTCUSDT", "1m").map(CandleSeries::len), Some(3));
    }

    #[test]
    fn refusals_back_off_honour_retry_after_and_move_endpoints() {
        let mut b = book();
        b.follow("ETHUSDT", "5m");
        let now = 1_000 * MIN;
        let f = b.next_fetch(now).unwrap();
        let refused = Answer::Reply {
            status: 429,
            retry_after_ms: Some(120_000),
            body: String::new(),
        };
        assert_eq!(b.answered(f.id, refused, now, 0.0), 0);
        assert_eq!(
            b.retry_at(),
            now + 120_000,
            "Retry-After is longer than the backoff"
        );
        assert_eq!(b.next_fetch(now + 60_000), None);
        let f = b.next_fetch(now + 120_000).unwrap();
        assert!(f.url.starts_with("https://a"));
        let region = Answer::Reply {
            status: 451,
            retry_after_ms: None,
            body: String::new(),
        };
        b.answered(f.id, region, now + 120_000, 0.0);
        let f = b.next_fetch(b.retry_at()).unwrap();
        assert!(
            f.url.starts_with("https://b"),
            "451 moves to the next endpoint at once"
        );
        assert_eq!(
            b.answered(f.id + 7, Answer::Failed, now, 0.0),
            0,
            "a stale id"
        );
        b.answered(f.id, ok("not json".into()), b.retry_at(), 0.5);
        assert!(
            b.retry_at() > now + 120_000,
            "a broken answer is a failure too"
        );
    }
}
