//! `GET /api/candles`'s answer: the body, its ETag, and how long the edge may keep it
//! (until the series' next candle is due, or a second while it misses one).

use std::fmt::Write;

use super::candles::{Candle, CandleSeries};
use crate::core::rest;

/// A `/api/candles` read as the edge asks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandlesRead<'a> {
    /// Canonical, served by Binance.
    pub symbol: &'a str,
    /// A candle channel's interval.
    pub interval: &'a str,
    /// How many.
    pub limit: usize,
    /// The read has waited as long as it may: answer what is held.
    pub last_chance: bool,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandlesAnswer {
    /// `{"symbol","interval","candles":[{"t","o","h","l","c","v","closed"}]}`.
    pub body: String,
    /// Its weak ETag.
    pub etag: String,
    /// Seconds the edge may keep it.
    pub max_age_s: u32,
}

/// The body of `candles` (oldest first; every one closed), their encodings joined.
pub fn body(symbol: &str, interval: &str, candles: &[Candle]) -> String {
    let size: usize = candles.iter().map(|c| c.json.len() + 1).sum();
    let mut out = String::with_capacity(64 + size);
    let _ = write!(
        out,
        r#"{{"symbol":"{symbol}","interval":"{interval}","candles":["#
    );
    for (i, c) in candles.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&c.json);
    }
    out.push_str("]}");
    out
}

/// The answer for the newest `limit` candles of `series` at `now_ms`. A complete series
/// changes next when its open candle closes: the edge keeps the answer until then. One that
/// misses a candle (a backfill under way, a close not yet delivered) is kept a second.
pub fn answer(
    symbol: &str,
    interval: &str,
    series: Option<&CandleSeries>,
    limit: usize,
    now_ms: i64,
) -> CandlesAnswer {
    let candles = series.map_or(&[][..], |s| s.last(limit));
    let body = body(symbol, interval, candles);
    let etag = rest::etag([(body.as_str(), 0)]);
    let max_age_s = match series {
        Some(s) if s.missing(now_ms).is_none() => {
            let next_close = s.open_at(now_ms) + s.interval_ms();
            u32::try_from((next_close - now_ms + 999) / 1000).unwrap_or(u32::MAX)
        }
        _ => 1,
    };
    CandlesAnswer {
        body,
        etag,
        max_age_s: max_age_s.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn series(upto_min: i64) -> CandleSeries {
        let mut s = CandleSeries::new(MIN, 3);
        for m in upto_min - 2..=upto_min {
            s.closed(Candle::new(m * MIN, ["1.5", "2", "1", "1.75", "12.5"]));
        }
        s
    }

    #[test]
    fn a_complete_series_is_kept_until_its_next_close() {
        let s = series(9);
        let a = answer("BTCUSDT", "1m", Some(&s), 2, 10 * MIN + 15_000);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["symbol"], "BTCUSDT");
        let candles = v["candles"].as_array().unwrap();
        assert_eq!(candles.len(), 2);
        assert_eq!(candles[1]["t"], 9 * MIN);
        assert_eq!(candles[1]["c"], "1.75");
        assert_eq!(candles[1]["closed"], true);
        assert_eq!(a.max_age_s, 45);
        let again = answer("BTCUSDT", "1m", Some(&s), 2, 10 * MIN + 16_000);
        assert_eq!(a.etag, again.etag);
        let longer = answer("BTCUSDT", "1m", Some(&s), 3, 10 * MIN + 16_000);
        assert_ne!(a.etag, longer.etag);
    }

    #[test]
    fn a_series_missing_a_candle_is_kept_a_second() {
        let s = series(9);
        assert_eq!(
            answer("BTCUSDT", "1m", Some(&s), 3, 11 * MIN + 1).max_age_s,
            1
        );
        let none = answer("ETHUSDT", "5m", None, 3, 0);
        assert_eq!(
            none.body,
            r#"{"symbol":"ETHUSDT","interval":"5m","candles":[]}"#
        );
        assert_eq!(none.max_age_s, 1);
    }
}
