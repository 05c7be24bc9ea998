//! Binance's market streams (`@aggTrade`, `@kline_<i>`, `@depth10@100ms`) in, market channel
//! updates out, each encoded once. Every decimal is checked as a decimal string and kept
//! exactly; the payload's symbol (where it has one) must match its stream.

use std::fmt::Write;

use serde_json::{Map, Value};

use crate::core::channel::{Market, INTERVALS};
use crate::core::error::UpstreamError;
use crate::core::market::{candle_body, candle_json, MarketKind, MarketUpdate};
use crate::core::price::is_decimal;

/// The stream that feeds a market channel, e.g. `btcusdt@kline_1m` (none feeds the heat map).
pub fn market_stream(market: &Market) -> Option<String> {
    Some(match market {
        Market::Trades(s) => format!("{}@aggTrade", s.to_ascii_lowercase()),
        Market::Candles(s, i) => format!("{}@kline_{i}", s.to_ascii_lowercase()),
        Market::Book(s) => format!("{}@depth10@100ms", s.to_ascii_lowercase()),
        Market::Heatmap(_) => return None,
    })
}

/// The market channel a stream feeds (the inverse of [`market_stream`]).
pub fn market_of_stream(stream: &str) -> Option<Market> {
    let (sym, suffix) = stream.split_once('@')?;
    let symbol = crate::core::symbol::canonical(sym)?;
    Some(match suffix {
        "aggTrade" => Market::Trades(symbol),
        "depth10@100ms" => Market::Book(symbol),
        s => {
            let i = s.strip_prefix("kline_").filter(|i| INTERVALS.contains(i))?;
            Market::Candles(symbol, i.to_string())
        }
    })
}

/// Levels a side a book frame keeps.
pub const BOOK_LEVELS: usize = 10;

/// Reads the payload of `market`'s stream.
pub fn parse(market: &Market, data: &Map<String, Value>) -> Result<MarketUpdate, UpstreamError> {
    let channel = market.key();
    let (kind, encoded) = match market {
        Market::Trades(s) => {
            same_symbol(s, data)?;
            (MarketKind::Trade, trade(data)?)
        }
        Market::Candles(s, _) => {
            same_symbol(s, data)?;
            candle(&channel, data)?
        }
        Market::Book(_) => (MarketKind::Book, book(&channel, data)?),
        Market::Heatmap(_) => return Err(UpstreamError::MissingField("stream")),
    };
    Ok(MarketUpdate {
        channel,
        kind,
        encoded: encoded.into(),
    })
}

fn same_symbol(symbol: &str, data: &Map<String, Value>) -> Result<(), UpstreamError> {
    let s = data.get("s").and_then(Value::as_str);
    match s {
        Some(s) if s == symbol => Ok(()),
        Some(s) => Err(UpstreamError::SymbolMismatch {
            stream: symbol.to_string(),
            data: s.to_string(),
        }),
        None => Err(UpstreamError::MissingField("s")),
    }
}

fn num(data: &Map<String, Value>, name: &'static str) -> Result<u64, UpstreamError> {
    data.get(name)
        .and_then(Value::as_u64)
        .ok_or(UpstreamError::MissingField(name))
}

fn dec<'a>(data: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, UpstreamError> {
    let v = data
        .get(name)
        .and_then(Value::as_str)
        .ok_or(UpstreamError::MissingField(name))?;
    if is_decimal(v, false) {
        Ok(v)
    } else {
        Err(UpstreamError::BadDecimal {
            field: name,
            value: v.chars().take(40).collect(),
        })
    }
}

/// `{"id","price","qty","side","time"}`: `side` is the taker's (`m`, buyer is maker, means
/// the taker sold).
fn trade(data: &Map<String, Value>) -> Result<String, UpstreamError> {
    let maker_buys = data
        .get("m")
        .and_then(Value::as_bool)
        .ok_or(UpstreamError::MissingField("m"))?;
    let side = if maker_buys { "sell" } else { "buy" };
    Ok(format!(
        r#"{{"id":{},"price":"{}","qty":"{}","side":"{side}","time":{}}}"#,
        num(data, "a")?,
        dec(data, "p")?,
        dec(data, "q")?,
        num(data, "T")?
    ))
}

/// The `candle` frame, and whether the candle closed.
fn candle(channel: &str, data: &Map<String, Value>) -> Result<(MarketKind, String), UpstreamError> {
    let k = data
        .get("k")
        .and_then(Value::as_object)
        .ok_or(UpstreamError::MissingField("k"))?;
    let closed = k
        .get("x")
        .and_then(Value::as_bool)
        .ok_or(UpstreamError::MissingField("x"))?;
    let ohlcv = [
        dec(k, "o")?,
        dec(k, "h")?,
        dec(k, "l")?,
        dec(k, "c")?,
        dec(k, "v")?,
    ];
    // Open times are milliseconds since 1970: far inside i64.
    let t = num(k, "t")? as i64;
    let frame = candle_body(channel, &candle_json(t, ohlcv, closed));
    let kind = if closed {
        MarketKind::ClosedCandle
    } else {
        MarketKind::Candle
    };
    Ok((kind, frame))
}

/// The `book` body: up to [`BOOK_LEVELS`] `[price, qty]` a side, and `u`, Binance's
/// `lastUpdateId`.
fn book(channel: &str, data: &Map<String, Value>) -> Result<String, UpstreamError> {
    let mut out = format!(r#"{{"channel":"{channel}""#);
    for side in ["bids", "asks"] {
        let levels = data
            .get(side)
            .and_then(Value::as_array)
            .ok_or(UpstreamError::MissingField(side))?;
        let _ = write!(out, r#","{side}":["#);
        for (i, level) in levels.iter().take(BOOK_LEVELS).enumerate() {
            let pair = level
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or(UpstreamError::MissingField("level"))?;
            let mut strings = pair.iter().map(|v| v.as_str().unwrap_or_default());
            let (p, q) = (strings.next().unwrap_or(""), strings.next().unwrap_or(""));
            if !is_decimal(p, false) || !is_decimal(q, false) {
                return Err(UpstreamError::BadDecimal {
                    field: "level",
                    value: format!("{p} {q}").chars().take(40).collect(),
                });
            }
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, r#"{comma}["{p}","{q}"]"#);
        }
        out.push(']');
    }
    let _ = write!(out, r#","u":{}}}"#, num(data, "lastUpdateId")?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURES: &str =
        include_str!("../../../../tests/fixtures/binance/combined-stream-samples.jsonl");
    const DEPTH: &str = include_str!("../../../../tests/fixtures/binance/depth-samples.jsonl");

    fn fixture(all: &str, stream: &str) -> (Market, Map<String, Value>) {
        let line = all
            .lines()
            .find(|l| l.contains(&format!("\"stream\":\"{stream}\"")))
            .unwrap();
        let v: Value = serde_json::from_str(line).unwrap();
        let data = v["data"].as_object().unwrap().clone();
        (market_of_stream(stream).unwrap(), data)
    }

    fn frame(u: &MarketUpdate) -> Value {
        serde_json::from_str(&u.encoded).unwrap()
    }

    #[test]
    fn an_aggregate_trade_keeps_its_id_decimals_and_taker_side() {
        let (m, data) = fixture(FIXTURES, "btcusdt@aggTrade");
        let u = parse(&m, &data).unwrap();
        assert_eq!(
            (u.channel.as_str(), u.kind),
            ("trades:BTCUSDT", MarketKind::Trade)
        );
        assert_eq!(
            frame(&u),
            json!({"id":3821253461u64,"price":"89879.78000000","qty":"0.00068000","side":"sell","time":1769224657583u64})
        );
    }

    #[test]
    fn a_kline_is_the_open_candle_until_it_closes() {
        let (m, mut data) = fixture(FIXTURES, "btcusdt@kline_1m");
        let u = parse(&m, &data).unwrap();
        assert_eq!(u.kind, MarketKind::Candle);
        let f = frame(&u);
        assert_eq!(
            (f.get("type"), f["channel"].clone()),
            (None, json!("candles:BTCUSDT:1m"))
        );
        assert_eq!(
            f["candle"],
            json!({"t":1601630220000u64,"o":"10437.32000000","h":"10441.80000000","l":"10437.32000000","c":"10441.80000000","v":"20.63957400","closed":false})
        );
        data["k"]["x"] = json!(true);
        let u = parse(&m, &data).unwrap();
        assert_eq!(u.kind, MarketKind::ClosedCandle);
        assert_eq!(frame(&u)["candle"]["closed"], true);
    }

    #[test]
    fn a_depth_frame_is_ten_levels_a_side() {
        let (m, data) = fixture(DEPTH, "btcusdt@depth10@100ms");
        let u = parse(&m, &data).unwrap();
        let f = frame(&u);
        assert_eq!((f.get("type"), u.kind), (None, MarketKind::Book));
        assert_eq!(f["bids"].as_array().unwrap().len(), 10);
        assert_eq!(f["asks"].as_array().unwrap().len(), 10);
        assert_eq!(f["bids"][0], json!(["89879.78000000", "0.50000000"]));
        assert_eq!(f["u"], 85592068563u64);
    }

    #[test]
    fn bad_payloads_are_refused() {
        let (m, mut data) = fixture(FIXTURES, "btcusdt@aggTrade");
        data["p"] = json!("1e5");
        assert!(matches!(
            parse(&m, &data),
            Err(UpstreamError::BadDecimal { .. })
        ));
        data["p"] = json!("1.0");
        data["s"] = json!("ETHUSDT");
        assert!(matches!(
            parse(&m, &data),
            Err(UpstreamError::SymbolMismatch { .. })
        ));
        let (m, mut data) = fixture(DEPTH, "btcusdt@depth10@100ms");
        data["bids"] = json!([["1.0"]]);
        assert!(parse(&m, &data).is_err());
    }
}
