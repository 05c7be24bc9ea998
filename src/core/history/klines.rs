//! Binance's REST klines (`GET /api/v3/klines?symbol=&interval=&startTime=&limit=`) read
//! into candles. Each kline is an array: open time, open, high, low, close, volume, close
//! time, then figures the history does not keep. Prices stay the exchange's decimal strings;
//! a kline that is not one (a float, a missing field) refuses the whole answer, so a broken
//! reply never leaves holes in a history that looks complete.

use serde_json::Value;

use super::candles::Candle;
use crate::core::error::UpstreamError;
use crate::core::price::is_decimal;

/// The most klines one request returns (Binance's cap).
pub const MAX_LIMIT: usize = 1_000;

/// The path and query that ask for `limit` klines of `symbol` from `start_ms`.
pub fn request_path(symbol: &str, interval: &str, start_ms: i64, limit: usize) -> String {
    let limit = limit.clamp(1, MAX_LIMIT);
    format!("/api/v3/klines?symbol={symbol}&interval={interval}&startTime={start_ms}&limit={limit}")
}

/// Reads a klines answer.
pub fn parse(body: &str) -> Result<Vec<Candle>, UpstreamError> {
    let v: Value = serde_json::from_str(body).map_err(|e| UpstreamError::BadJson(e.to_string()))?;
    let rows = v.as_array().ok_or(UpstreamError::MissingField("klines"))?;
    rows.iter().map(kline).collect()
}

fn kline(row: &Value) -> Result<Candle, UpstreamError> {
    let cell = |i: usize, name: &'static str| -> Result<&str, UpstreamError> {
        row.get(i)
            .and_then(Value::as_str)
            .filter(|s| is_decimal(s, false))
            .ok_or(UpstreamError::MissingField(name))
    };
    let t = row
        .get(0)
        .and_then(Value::as_i64)
        .ok_or(UpstreamError::MissingField("open time"))?;
    let ohlcv = [
        cell(1, "open")?,
        cell(2, "high")?,
        cell(3, "low")?,
        cell(4, "close")?,
        cell(5, "volume")?,
    ];
    Ok(Candle::new(t, ohlcv))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two klines in the documented shape (values illustrative).
    const ANSWER: &str = r#"[
      [1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"],
      [1499040060000,"0.01577100","0.01600000","0.01570000","0.01590000","100.5",1499040119999,"1.6",3,"50.0","0.8","0"]
    ]"#;

    #[test]
    fn klines_are_read_with_their_decimal_text() {
        let candles = parse(ANSWER).unwrap();
        assert_eq!(candles.len(), 2);
        assert_eq!(candles[0].t, 1_499_040_000_000);
        assert_eq!(
            &*candles[1].json,
            r#"{"t":1499040060000,"o":"0.01577100","h":"0.01600000","l":"0.01570000","c":"0.01590000","v":"100.5","closed":true}"#,
            "the exchange's decimal text, encoded as every wire carries a candle"
        );
        assert_eq!(parse("[]").unwrap(), vec![]);
    }

    #[test]
    fn a_broken_answer_is_refused_whole() {
        for bad in [
            "{}",
            "not json",
            r#"[[1499040000000,0.1,"1","1","1","1"]]"#,
            r#"[[1499040000000,"1","1","1"]]"#,
            r#"[["x","1","1","1","1","1"]]"#,
            r#"[[1,"1","1","1","1e5","1"]]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_stay_within_the_endpoint_s_cap() {
        assert_eq!(
            request_path("BTCUSDT", "1m", 60_000, 5_000),
            "/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=60000&limit=1000"
        );
    }
}
