//! Twelve Data's frames, read into plain values, and its requests, written.
//!
//! Prices arrive as JSON numbers, and a price must reach clients as the exact text the source
//! sent (`342.0157`, never `342.01570000000004`), so numbers are read as raw text and never
//! through a float. Where its published documentation is silent, the reader is lenient in
//! one documented way each: a number sent as a string is read as its text, a number in
//! exponent form (`1.2e-05`, as some JSON writers put small floats) is written out as the
//! plain decimal it denotes, and a `timestamp` with a fraction of a second keeps the
//! milliseconds.

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::core::error::UpstreamError;
use crate::core::price::is_decimal;

/// How often the client must send `{"action":"heartbeat"}`: the server closes a connection
/// that stays quiet longer, and a closed market sends no prices, so the heartbeat's answer is
/// also the proof that the connection lives.
pub const HEARTBEAT_MS: i64 = 10_000;
/// Symbols one connection carries at most (Twelve Data's plans allow far fewer; the key's
/// own limit is reported by the server as failed symbols).
pub const MAX_STREAMS: usize = 500;
/// Connections one API key may hold at once (a fourth closes an older one).
pub const MAX_CONNECTIONS_PER_KEY: usize = 3;
/// The longest symbol accepted (the longest in Twelve Data's lists is far shorter).
const MAX_SYMBOL_LEN: usize = 32;

/// One price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The symbol in Twelve Data's spelling (`AAPL`, `EUR/USD`).
    pub symbol: String,
    /// The price, as the decimal text the source sent.
    pub price: String,
    /// The best bid, when the frame carries one.
    pub bid: Option<String>,
    /// The best ask, when the frame carries one.
    pub ask: Option<String>,
    /// The day's volume, when the frame carries one.
    pub day_volume: Option<String>,
    /// When the price was made, in ms (the source sends seconds).
    pub event_time_ms: i64,
    /// Where it trades (`NASDAQ`), when given.
    pub exchange: Option<String>,
    /// Its currency (`USD`), when given.
    pub currency: Option<String>,
    /// Its asset type (`Common Stock`, `Physical Currency`, `Digital Currency`), when given.
    pub asset_type: Option<String>,
}

/// A symbol the server took in a subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The symbol.
    pub symbol: String,
    /// Where it trades, when given.
    pub exchange: Option<String>,
    /// Its asset type, when given.
    pub asset_type: Option<String>,
}

/// Everything a Twelve Data frame can say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A price.
    Price(Quote),
    /// The answer to a subscribe: the symbols taken and those that failed (reported, never
    /// asked again in a loop).
    SubscribeStatus {
        /// `status` was `ok`.
        ok: bool,
        /// Symbols taken.
        success: Vec<Listing>,
        /// Symbols refused.
        fails: Vec<String>,
    },
    /// The answer to a heartbeat.
    Heartbeat {
        /// `status` was `ok`.
        ok: bool,
    },
    /// An error the server reported (a refused key, a malformed request).
    Error {
        /// Its message, or the event's name when it gave none.
        message: String,
    },
    /// An event this reader does not know: proof of life, nothing to apply.
    Other {
        /// Its `event`.
        event: String,
    },
}

#[derive(Deserialize)]
struct RawFrame<'a> {
    event: Option<String>,
    status: Option<String>,
    symbol: Option<String>,
    #[serde(borrow)]
    price: Option<&'a RawValue>,
    #[serde(borrow)]
    bid: Option<&'a RawValue>,
    #[serde(borrow)]
    ask: Option<&'a RawValue>,
    #[serde(borrow)]
    day_volume: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    exchange: Option<String>,
    currency: Option<String>,
    #[serde(rename = "type")]
    asset_type: Option<String>,
    success: Option<Vec<RawListing>>,
    fails: Option<Vec<RawListing>>,
    message: Option<String>,
    messages: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawListing {
    symbol: Option<String>,
    exchange: Option<String>,
    #[serde(rename = "type")]
    asset_type: Option<String>,
}

/// Reads one text frame.
pub fn parse(text: &str) -> Result<Frame, UpstreamError> {
    let raw: RawFrame<'_> =
        serde_json::from_str(text).map_err(|e| UpstreamError::BadJson(e.to_string()))?;
    let event = raw
        .event
        .clone()
        .ok_or(UpstreamError::MissingField("event"))?;
    let ok = raw.status.as_deref() == Some("ok");
    match event.as_str() {
        "price" => quote(raw).map(Frame::Price),
        "subscribe-status" => Ok(Frame::SubscribeStatus {
            ok,
            success: listings(raw.success),
            fails: listings(raw.fails).into_iter().map(|l| l.symbol).collect(),
        }),
        "heartbeat" => Ok(Frame::Heartbeat { ok }),
        _ if raw.status.as_deref() == Some("error") => Ok(Frame::Error {
            message: raw
                .message
                .or_else(|| raw.messages.map(|m| m.join("; ")))
                .unwrap_or(event),
        }),
        _ => Ok(Frame::Other { event }),
    }
}

fn quote(raw: RawFrame<'_>) -> Result<Quote, UpstreamError> {
    let symbol = raw
        .symbol
        .as_deref()
        .and_then(symbol)
        .ok_or(UpstreamError::MissingField("symbol"))?;
    let price = raw.price.ok_or(UpstreamError::MissingField("price"))?;
    let stamp = raw
        .timestamp
        .ok_or(UpstreamError::MissingField("timestamp"))?;
    Ok(Quote {
        symbol,
        price: decimal(price, "price")?,
        bid: raw.bid.map(|v| decimal(v, "bid")).transpose()?,
        ask: raw.ask.map(|v| decimal(v, "ask")).transpose()?,
        day_volume: raw
            .day_volume
            .map(|v| decimal(v, "day_volume"))
            .transpose()?,
        event_time_ms: seconds_to_ms(stamp)?,
        exchange: raw.exchange,
        currency: raw.currency,
        asset_type: raw.asset_type,
    })
}

fn listings(raw: Option<Vec<RawListing>>) -> Vec<Listing> {
    raw.unwrap_or_default()
        .into_iter()
        .filter_map(|l| {
            Some(Listing {
                symbol: symbol(l.symbol.as_deref()?)?,
                exchange: l.exchange,
                asset_type: l.asset_type,
            })
        })
        .collect()
}

/// Twelve Data's spelling of a symbol, upper-cased: letters, digits and `/ . : -`
/// (`EUR/USD`, `BRK.B`), up to 32 characters; `None` for anything else.
pub fn symbol(s: &str) -> Option<String> {
    let s = s.trim();
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b':' | b'-');
    let edges_ok = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let ok = !s.is_empty()
        && s.len() <= MAX_SYMBOL_LEN
        && s.bytes().all(allowed)
        && edges_ok(s.as_bytes().first())
        && edges_ok(s.as_bytes().last());
    ok.then(|| s.to_ascii_uppercase())
}

/// The decimal text of a JSON number (or of a string holding one), exactly as sent, with an
/// exponent written out.
fn decimal(v: &RawValue, field: &'static str) -> Result<String, UpstreamError> {
    let text = number_text(v);
    let bad = || UpstreamError::BadDecimal {
        field,
        value: text.clone(),
    };
    let plain = expand_exponent(&text).ok_or_else(bad)?;
    if is_decimal(&plain, false) {
        Ok(plain)
    } else {
        Err(bad())
    }
}

/// The text of a JSON number, or of the string that holds one.
fn number_text(v: &RawValue) -> String {
    serde_json::from_str::<String>(v.get()).unwrap_or_else(|_| v.get().to_string())
}

/// `1.2e-05` → `0.000012`, `3E2` → `300`, by moving the point in the text; a number without
/// an exponent is returned as it is. `None` when the exponent is not a small integer.
fn expand_exponent(text: &str) -> Option<String> {
    let Some((mantissa, exp)) = text.split_once(['e', 'E']) else {
        return Some(text.to_string());
    };
    let exp: i32 = exp.strip_prefix('+').unwrap_or(exp).parse().ok()?;
    if exp.unsigned_abs() > 30 || !is_decimal(mantissa, false) {
        return None;
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let point = int.len() as i32 + exp;
    let out = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point as usize >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{a}.{b}")
    };
    Some(out)
}

/// A `timestamp` in seconds (an integer, or with a fraction) as ms, without a float.
fn seconds_to_ms(v: &RawValue) -> Result<i64, UpstreamError> {
    let text = number_text(v);
    let bad = || UpstreamError::BadDecimal {
        field: "timestamp",
        value: text.clone(),
    };
    if !is_decimal(&text, false) {
        return Err(bad());
    }
    let (secs, frac) = text.split_once('.').unwrap_or((&text, ""));
    let ms: String = frac.chars().chain("000".chars()).take(3).collect();
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    secs.checked_mul(1000)
        .and_then(|s| s.checked_add(ms))
        .ok_or_else(bad)
}

/// `{"action":"subscribe","params":{"symbols":"AAPL,EUR/USD"}}`.
pub fn subscribe(symbols: &[String]) -> String {
    json!({"action": "subscribe", "params": {"symbols": symbols.join(",")}}).to_string()
}

/// `{"action":"unsubscribe","params":{"symbols":"AAPL"}}`.
pub fn unsubscribe(symbols: &[String]) -> String {
    json!({"action": "unsubscribe", "params": {"symbols": symbols.join(",")}}).to_string()
}

/// `{"action":"reset"}`: drops every subscription of the connection.
pub fn reset() -> String {
    json!({"action": "reset"}).to_string()
}

/// `{"action":"heartbeat"}`, every [`HEARTBEAT_MS`].
pub fn heartbeat() -> String {
    json!({"action": "heartbeat"}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price_frame(extra: &str) -> String {
        format!(
            r#"{{"event":"price","symbol":"AAPL","currency":"USD","exchange":"NASDAQ","type":"Common Stock","timestamp":1592249566,"price":342.0157,"day_volume":27631112{extra}}}"#
        )
    }

    #[test]
    fn a_price_keeps_the_exact_text_of_its_numbers() {
        let Frame::Price(q) = parse(&price_frame("")).unwrap() else {
            panic!("a price")
        };
        assert_eq!(q.symbol, "AAPL");
        assert_eq!(q.price, "342.0157");
        assert_eq!(q.day_volume.as_deref(), Some("27631112"));
        assert_eq!(q.event_time_ms, 1_592_249_566_000);
        assert_eq!(q.exchange.as_deref(), Some("NASDAQ"));
        assert_eq!(q.currency.as_deref(), Some("USD"));
        assert_eq!(q.asset_type.as_deref(), Some("Common Stock"));
        assert_eq!((q.bid, q.ask), (None, None));
    }

    #[test]
    fn bid_and_ask_come_when_the_frame_has_them() {
        let text = r#"{"event":"price","symbol":"EUR/USD","currency_base":"Euro","type":"Physical Currency","timestamp":1703520000,"price":1.10250,"bid":1.10248,"ask":1.10252}"#;
        let Frame::Price(q) = parse(text).unwrap() else {
            panic!("a price")
        };
        assert_eq!(q.symbol, "EUR/USD");
        assert_eq!(q.price, "1.10250", "trailing zeros are kept");
        assert_eq!(q.bid.as_deref(), Some("1.10248"));
        assert_eq!(q.ask.as_deref(), Some("1.10252"));
        assert_eq!(q.day_volume, None);
    }

    #[test]
    fn undocumented_number_forms_are_read_without_a_float() {
        let text = r#"{"event":"price","symbol":"shib/usd","timestamp":"1703520000.25","price":1.2e-05,"bid":"0.0000119"}"#;
        let Frame::Price(q) = parse(text).unwrap() else {
            panic!("a price")
        };
        assert_eq!(q.symbol, "SHIB/USD");
        assert_eq!(q.price, "0.000012");
        assert_eq!(q.bid.as_deref(), Some("0.0000119"));
        assert_eq!(q.event_time_ms, 1_703_520_000_250);
        assert_eq!(expand_exponent("3E2").as_deref(), Some("300"));
        assert_eq!(expand_exponent("1.5e+1").as_deref(), Some("15"));
        assert_eq!(expand_exponent("2e400"), None);
        assert_eq!(expand_exponent("e5"), None);
    }

    #[test]
    fn a_price_that_is_not_a_plain_decimal_is_refused() {
        for bad in [r#""-1""#, "-1", "null", r#""abc""#, "true", r#""""#] {
            let text = price_frame("").replace("342.0157", bad);
            assert!(
                matches!(
                    parse(&text),
                    Err(UpstreamError::BadDecimal { .. } | UpstreamError::MissingField(_))
                ),
                "{bad}"
            );
        }
        let no_stamp = price_frame("").replace(r#""timestamp":1592249566,"#, "");
        assert_eq!(
            parse(&no_stamp),
            Err(UpstreamError::MissingField("timestamp"))
        );
        let bad_symbol = price_frame("").replace("AAPL", "AA PL");
        assert_eq!(
            parse(&bad_symbol),
            Err(UpstreamError::MissingField("symbol"))
        );
    }

    #[test]
    fn the_fake_exchanges_frames_read() {
        let text = r#"{"event":"price","symbol":"EUR/USD","currency":"USD","exchange":"PHYSICAL CURRENCY","type":"Physical Currency","timestamp":1796362556,"price":1.0001573,"bid":1.0001572,"ask":1.0001574}"#;
        let Frame::Price(q) = parse(text).unwrap() else {
            panic!("a price")
        };
        assert_eq!(
            (q.price.as_str(), q.bid.as_deref()),
            ("1.0001573", Some("1.0001572"))
        );
        assert_eq!(q.event_time_ms, 1_796_362_556_000);
    }

    #[test]
    fn subscribe_status_lists_what_was_taken_and_what_failed() {
        let text = r#"{"event":"subscribe-status","status":"error","success":[{"symbol":"AAPL","exchange":"NASDAQ","mic_code":"XNGS","country":"United States","type":"Common Stock"}],"fails":[{"symbol":"NOPE"},{"symbol":"EUR/XYZ"}]}"#;
        assert_eq!(
            parse(text).unwrap(),
            Frame::SubscribeStatus {
                ok: false,
                success: vec![Listing {
                    symbol: "AAPL".into(),
                    exchange: Some("NASDAQ".into()),
                    asset_type: Some("Common Stock".into()),
                }],
                fails: vec!["NOPE".into(), "EUR/XYZ".into()],
            }
        );
        let all_ok = r#"{"event":"subscribe-status","status":"ok","success":[],"fails":null}"#;
        assert_eq!(
            parse(all_ok).unwrap(),
            Frame::SubscribeStatus {
                ok: true,
                success: vec![],
                fails: vec![]
            }
        );
    }

    #[test]
    fn heartbeats_errors_and_unknown_events() {
        let hb = r#"{"event":"heartbeat","status":"ok"}"#;
        assert_eq!(parse(hb).unwrap(), Frame::Heartbeat { ok: true });
        let refused = r#"{"event":"subscribe","status":"error","messages":["apikey is invalid"]}"#;
        assert_eq!(
            parse(refused).unwrap(),
            Frame::Error {
                message: "apikey is invalid".into()
            }
        );
        let other = r#"{"event":"unsubscribe-status","status":"ok"}"#;
        assert_eq!(
            parse(other).unwrap(),
            Frame::Other {
                event: "unsubscribe-status".into()
            }
        );
        assert!(matches!(parse("not json"), Err(UpstreamError::BadJson(_))));
        assert!(matches!(parse("[1,2]"), Err(UpstreamError::BadJson(_))));
        assert_eq!(parse("{}"), Err(UpstreamError::MissingField("event")));
    }

    #[test]
    fn requests_are_the_documented_json() {
        let syms = vec!["AAPL".to_string(), "EUR/USD".to_string()];
        let sub: serde_json::Value = serde_json::from_str(&subscribe(&syms)).unwrap();
        assert_eq!(
            sub,
            json!({"action": "subscribe", "params": {"symbols": "AAPL,EUR/USD"}})
        );
        let unsub: serde_json::Value = serde_json::from_str(&unsubscribe(&syms[..1])).unwrap();
        assert_eq!(
            unsub,
            json!({"action": "unsubscribe", "params": {"symbols": "AAPL"}})
        );
        assert_eq!(reset(), r#"{"action":"reset"}"#);
        assert_eq!(heartbeat(), r#"{"action":"heartbeat"}"#);
    }

    #[test]
    fn symbols_keep_their_spelling() {
        assert_eq!(symbol(" eur/usd ").as_deref(), Some("EUR/USD"));
        assert_eq!(symbol("BRK.B").as_deref(), Some("BRK.B"));
        for bad in ["", "/USD", "EUR/", "A B", "ÄPL", &"X".repeat(33)] {
            assert_eq!(symbol(bad), None, "{bad:?}");
        }
    }
}
