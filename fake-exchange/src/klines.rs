//! Binance's REST history for the fake: the klines of `GET /api/v3/klines` (the candles the
//! stream closed, kept; made-up ones before them, the same every time; the open candle last)
//! and the open interest of `GET /fapi/v1/openInterest`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::market::{fmt_units, Candle, Market, SymbolState, INTERVALS};

/// Closed candles kept per symbol and interval.
const KEEP: usize = 1_000;
/// The most klines one request returns (Binance's cap), and its default.
const MAX_LIMIT: usize = 1_000;
const DEFAULT_LIMIT: usize = 500;

/// The candles the stream closed, by symbol and interval, by open time.
#[derive(Debug, Default)]
pub struct History {
    closed: HashMap<(String, usize), BTreeMap<i64, Candle>>,
}

/// What a klines request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlinesQuery {
    /// The symbol (upper case).
    pub symbol: String,
    /// The interval's name (`1m` …).
    pub interval: String,
    /// `startTime`.
    pub start: Option<i64>,
    /// `endTime`.
    pub end: Option<i64>,
    /// `limit`.
    pub limit: Option<usize>,
}

impl History {
    /// Keeps the candles a step or a close of `state` closed.
    pub fn record(&mut self, state: &SymbolState) {
        for (i, c) in &state.closed {
            let series = self.closed.entry((state.symbol.clone(), *i)).or_default();
            series.insert(c.start(), c.clone());
            while series.len() > KEEP {
                series.pop_first();
            }
        }
    }

    /// The klines of `q` at `now_ms`, oldest first; `None` for an interval that is not one.
    pub fn klines(&self, market: &Market, q: &KlinesQuery, now_ms: i64) -> Option<Vec<Value>> {
        let (i, (_, ms)) = INTERVALS
            .iter()
            .enumerate()
            .find(|(_, (name, _))| *name == q.interval)?;
        let ms = *ms;
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as i64;
        let open = market.get(&q.symbol).and_then(|s| s.open_candle(i));
        // Binance's klines run up to the candle open now. A symbol that has not ticked since
        // (a paused or quiet market) still holds an older candle: it is past, and the
        // minutes after it are made up, as they would be in a market with no trades.
        let now_open = now_ms - now_ms.rem_euclid(ms);
        let open_start = open.map_or(now_open, |o| o.start().max(now_open));
        let last = q.end.map_or(open_start, |e| e.min(open_start));
        let first = match q.start {
            Some(s) => s + (ms - s.rem_euclid(ms)) % ms,
            None => last - last.rem_euclid(ms) - (limit - 1) * ms,
        };
        let kept = self.closed.get(&(q.symbol.clone(), i));
        let mut rows = Vec::new();
        let mut t = first;
        while t <= last && (rows.len() as i64) < limit {
            let row = match (open, kept.and_then(|k| k.get(&t))) {
                (Some(o), _) if o.start() == t => o.rest_row(ms),
                (_, Some(c)) => c.rest_row(ms),
                _ => Candle::synthetic(&q.symbol, t).rest_row(ms),
            };
            rows.push(row);
            t += ms;
        }
        Some(rows)
    }
}

/// The open interest of `symbol`'s perpetual at `now_ms`: it drifts with the clock, so a
/// poller sees it change (10,000 contracts ± 5% over a few minutes).
pub fn open_interest(symbol: &str, now_ms: i64) -> Value {
    let phase = (now_ms / 1_000) as f64 / 180.0;
    let units = (10_000.0 * (1.0 + 0.05 * phase.sin()) * 1e8) as u64;
    let text = fmt_units(units - units % 1_000_000);
    let text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    json!({"openInterest": text, "symbol": symbol, "time": now_ms})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(start: Option<i64>, limit: usize) -> KlinesQuery {
        KlinesQuery {
            symbol: "BTCUSDT".into(),
            interval: "1m".into(),
            start,
            end: None,
            limit: Some(limit),
        }
    }

    #[test]
    fn klines_end_with_the_open_candle_and_keep_what_the_stream_closed() {
        let mut m = Market::new(1);
        let mut h = History::default();
        let now = 100 * 60_000 + 5_000;
        m.step("BTCUSDT", 99 * 60_000 + 10);
        h.record(&m.step_taking_closed("BTCUSDT", now));
        let rows = h.klines(&m, &q(None, 5), now).unwrap();
        let times: Vec<i64> = rows
            .iter()
            .map(|r| r[0].as_i64().unwrap() / 60_000)
            .collect();
        assert_eq!(times, [96, 97, 98, 99, 100]);
        let again = h.klines(&m, &q(None, 5), now).unwrap();
        assert_eq!(rows, again, "made-up candles are the same every time");
        assert!(rows.iter().all(|r| r[4].as_str().unwrap().contains('.')));
        let from = h.klines(&m, &q(Some(98 * 60_000 + 1), 10), now).unwrap();
        assert_eq!(
            from[0][0].as_i64(),
            Some(99 * 60_000),
            "startTime rounds up to a candle"
        );
        assert!(h
            .klines(
                &m,
                &KlinesQuery {
                    interval: "2m".into(),
                    ..q(None, 1)
                },
                now
            )
            .is_none());
    }

    #[test]
    fn klines_run_up_to_now_when_the_symbol_has_not_ticked() {
        let mut m = Market::new(1);
        let h = History::default();
        m.step("BTCUSDT", 90 * 60_000 + 10);
        let rows = h.klines(&m, &q(None, 12), 100 * 60_000 + 5).unwrap();
        let times: Vec<i64> = rows
            .iter()
            .map(|r| r[0].as_i64().unwrap() / 60_000)
            .collect();
        assert_eq!(times, (89..=100).collect::<Vec<_>>());
    }

    #[test]
    fn open_interest_moves_with_time() {
        let a = open_interest("BTCUSDT", 0);
        let b = open_interest("BTCUSDT", 60_000);
        assert_eq!(a["symbol"], "BTCUSDT");
        assert_ne!(a["openInterest"], b["openInterest"]);
    }
}
