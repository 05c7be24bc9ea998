//! The heat map of `heatmap:<SYMBOL>` channels (docs/history.md#the-heat-map): for each
//! symbol someone listens to, open interest polled every `HEATMAP_INTERVAL_SECONDS` from
//! Binance's USDⓈ-M REST endpoint, the map computed by [`model`] at that cadence and sent
//! only when it changed.
//!
//! Pure: the caller says what time it is, carries the polls out and hands their answers back.
//!
//! # Layout
//! [`model`] the computation; this module the polling, the window of samples, and the body.

pub mod model;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write;

use serde_json::Value;

use crate::core::backoff;
use crate::core::channel::Market;
use crate::core::histogram::Histogram;
use crate::core::history::book::Answer;
use crate::core::text::iso8601;
use model::{Bar, HeatMap, Sample, WINDOW_MS};

/// Samples kept per symbol at most (a 15-minute window at one a second).
const MAX_SAMPLES: usize = 1_000;

/// A poll to make: `url`, answered with `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// Names the answer.
    pub id: u64,
    /// The URL to GET.
    pub url: String,
}

/// One listened symbol.
#[derive(Debug, Default)]
struct Tracker {
    samples: VecDeque<Sample>,
    /// The data of the last map sent (without its timestamp).
    sent: Option<String>,
    /// The next computation.
    next_at: i64,
    /// The poll under way.
    inflight: Option<u64>,
    failures: u32,
    retry_at: i64,
}

/// The symbols listened to and their windows.
#[derive(Debug)]
pub struct HeatBook {
    url: String,
    interval_ms: i64,
    trackers: BTreeMap<String, Tracker>,
    next_id: u64,
    /// Maps sent (changed ones).
    pub sent: u64,
    /// Polls that failed or were refused.
    pub failed_polls: u64,
    /// What an open-interest answer costs the object (the map computed and fanned out), as
    /// the edge measures it.
    pub timing: Histogram,
}

impl HeatBook {
    /// A book polling `futures_url`, computing every `interval_ms`.
    pub fn new(futures_url: String, interval_ms: i64) -> HeatBook {
        HeatBook {
            url: futures_url,
            interval_ms: interval_ms.max(1_000),
            trackers: BTreeMap::new(),
            next_id: 1,
            sent: 0,
            failed_polls: 0,
            timing: Histogram::default(),
        }
    }

    /// Follows the `heatmap:` channels of `interest`: a new one is computed at once, one no
    /// longer listened to stops being polled. Returns its symbols.
    pub fn set_listened(&mut self, interest: &BTreeSet<String>, now_ms: i64) -> Vec<String> {
        let listened: BTreeSet<String> = interest
            .iter()
            .filter_map(|k| match Market::of(k) {
                Some(Market::Heatmap(s)) => Some(s),
                _ => None,
            })
            .collect();
        self.trackers.retain(|s, _| listened.contains(s));
        for s in &listened {
            self.trackers.entry(s.clone()).or_insert_with(|| Tracker {
                next_at: now_ms,
                ..Tracker::default()
            });
        }
        listened.into_iter().collect()
    }

    /// How many symbols are listened to.
    pub fn len(&self) -> usize {
        self.trackers.len()
    }

    /// True when none is.
    pub fn is_empty(&self) -> bool {
        self.trackers.is_empty()
    }

    /// When something is next due.
    pub fn due(&self) -> Option<i64> {
        self.trackers.values().map(|t| t.next_at).min()
    }

    /// The symbols due at `now_ms`, each with the poll to make for it when one may go now
    /// (the map is computed when its answer is in), or none (computed now).
    pub fn due_now(&mut self, now_ms: i64) -> Vec<(String, Option<Poll>)> {
        let mut out = Vec::new();
        for (symbol, t) in self
            .trackers
            .iter_mut()
            .filter(|(_, t)| t.next_at <= now_ms)
        {
            t.next_at = now_ms + self.interval_ms;
            let poll = (t.inflight.is_none() && now_ms >= t.retry_at).then(|| {
                let id = self.next_id;
                self.next_id += 1;
                t.inflight = Some(id);
                let url = format!("{}/fapi/v1/openInterest?symbol={symbol}", self.url);
                Poll { id, url }
            });
            out.push((symbol.clone(), poll));
        }
        out
    }

    /// The symbol poll `id` is for, while it is under way.
    pub fn symbol_of(&self, id: u64) -> Option<String> {
        let (symbol, _) = self.trackers.iter().find(|(_, t)| t.inflight == Some(id))?;
        Some(symbol.clone())
    }

    /// The answer to poll `id` and the price at `now_ms`: a sample, or a failure backed off
    /// (never sooner than a `Retry-After`). Returns its symbol, whose map is due.
    pub fn answered(
        &mut self,
        id: u64,
        answer: &Answer,
        price: Option<f64>,
        now_ms: i64,
        jitter: f64,
    ) -> Option<String> {
        let (symbol, t) = self
            .trackers
            .iter_mut()
            .find(|(_, t)| t.inflight == Some(id))?;
        t.inflight = None;
        let (oi, retry_after) = match answer {
            Answer::Reply {
                status: 200, body, ..
            } => (open_interest(body), None),
            Answer::Reply { retry_after_ms, .. } => (None, *retry_after_ms),
            Answer::Failed => (None, None),
        };
        match (oi, price) {
            (Some(oi), Some(price)) => {
                t.failures = 0;
                t.samples.push_back(Sample {
                    at_ms: now_ms,
                    oi,
                    price,
                });
                while t.samples.len() > MAX_SAMPLES
                    || t.samples
                        .front()
                        .is_some_and(|s| s.at_ms < now_ms - WINDOW_MS)
                {
                    t.samples.pop_front();
                }
            }
            (None, _) => {
                self.failed_polls += 1;
                t.failures += 1;
                let delay = backoff::delay_ms(t.failures, jitter).max(retry_after.unwrap_or(0));
                t.retry_at = now_ms + delay;
            }
            (Some(_), None) => {}
        }
        Some(symbol.clone())
    }

    /// The map of `symbol` at `price`, as the channel's body, when it differs from the last
    /// one sent.
    pub fn map_if_changed(
        &mut self,
        symbol: &str,
        price: (f64, &str),
        bars: &[Bar],
        now_ms: i64,
    ) -> Option<String> {
        let t = self.trackers.get_mut(symbol)?;
        let samples: Vec<Sample> = t.samples.iter().copied().collect();
        let map = model::compute(price.0, &samples, bars);
        let data = data(&map, price.1);
        if t.sent.as_deref() == Some(data.as_str()) {
            return None;
        }
        let body = format!(
            r#"{{"channel":"heatmap:{symbol}","timestamp":"{}","data":{data}}}"#,
            iso8601(now_ms)
        );
        t.sent = Some(data);
        self.sent += 1;
        Some(body)
    }
}

/// `openInterest` of Binance's `{"openInterest":"10659.509","symbol":…,"time":…}`.
fn open_interest(body: &str) -> Option<f64> {
    let v: Value = serde_json::from_str(body).ok()?;
    let oi: f64 = v.get("openInterest")?.as_str()?.parse().ok()?;
    (oi.is_finite() && oi >= 0.0).then_some(oi)
}

/// A count of contracts as a short decimal string.
fn contracts(n: f64) -> String {
    let text = format!("{n:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

/// The `data` of a heat-map frame.
fn data(map: &HeatMap, current_price: &str) -> String {
    let mut out = String::from(r#"{"levels":["#);
    for (i, l) in map.levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"price":"{}","long_density":{},"short_density":{}}}"#,
            map.step.price_text(l.k),
            l.long,
            l.short
        );
    }
    let _ = write!(
        out,
        r#"],"current_price":"{current_price}","positions_created":"{}","positions_consumed":"{}"}}"#,
        contracts(map.created),
        contracts(map.consumed)
    );
    out
}
