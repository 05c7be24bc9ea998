//! The common frame read without a tree: a price on a named stream (`@ticker`,
//! `@miniTicker`, `@bookTicker`, `@trade`), its fields as slices of the frame itself.
//!
//! Why: reading every frame into a `serde_json::Value` built a map with a `String` per key
//! and per value and dropped it again; a profile of the leader put that at about a twelfth
//! of its time. Here only the fields a price uses are looked at, the rest are skipped
//! unread. Anything else (a market stream, a control answer, a frame this cannot read,
//! such as one with a key twice) is left to the general reader in [`super::frames`], which
//! decides it as before: the answer is the same either way (a property test holds them
//! equal).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::frames::{price_update, Fields, StreamKind, UpstreamFrame};
use super::market::market_of_stream;
use crate::core::error::UpstreamError;

/// The two keys of a combined-stream frame; the rest is skipped.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// The fields of a price frame's payload that a price uses, unread until asked for.
#[derive(Deserialize)]
pub(super) struct Data<'a> {
    #[serde(borrow)]
    s: Option<&'a RawValue>,
    #[serde(borrow)]
    c: Option<&'a RawValue>,
    #[serde(borrow)]
    o: Option<&'a RawValue>,
    #[serde(borrow)]
    h: Option<&'a RawValue>,
    #[serde(borrow)]
    l: Option<&'a RawValue>,
    #[serde(borrow)]
    v: Option<&'a RawValue>,
    #[serde(borrow)]
    q: Option<&'a RawValue>,
    #[serde(borrow, rename = "P")]
    change: Option<&'a RawValue>,
    #[serde(borrow)]
    b: Option<&'a RawValue>,
    #[serde(borrow)]
    a: Option<&'a RawValue>,
    #[serde(borrow)]
    p: Option<&'a RawValue>,
    #[serde(borrow, rename = "E")]
    event_time: Option<&'a RawValue>,
    #[serde(borrow)]
    u: Option<&'a RawValue>,
}

impl<'a> Data<'a> {
    fn raw(&self, name: &str) -> Option<&'a RawValue> {
        match name {
            "s" => self.s,
            "c" => self.c,
            "o" => self.o,
            "h" => self.h,
            "l" => self.l,
            "v" => self.v,
            "q" => self.q,
            "P" => self.change,
            "b" => self.b,
            "a" => self.a,
            "p" => self.p,
            "E" => self.event_time,
            "u" => self.u,
            _ => None,
        }
    }
}

impl Fields for Data<'_> {
    fn text(&self, name: &'static str) -> Option<Cow<'_, str>> {
        let raw = self.raw(name)?.get();
        let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
        if inner.contains('\\') {
            serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    }

    fn int(&self, name: &'static str) -> Option<i64> {
        serde_json::from_str(self.raw(name)?.get()).ok()
    }

    fn uint(&self, name: &'static str) -> Option<u64> {
        serde_json::from_str(self.raw(name)?.get()).ok()
    }

    fn kline_close(&self) -> Result<Cow<'_, str>, UpstreamError> {
        // Never asked: klines are left to the general reader.
        Err(UpstreamError::MissingField("k"))
    }
}

/// The frame, when it is a price this reads; `None` leaves it to the general reader.
pub(super) fn price_frame(text: &str) -> Option<Result<UpstreamFrame, UpstreamError>> {
    let envelope: Envelope = serde_json::from_str(text).ok()?;
    let stream: &str = serde_json::from_str(envelope.stream?.get()).ok()?;
    if market_of_stream(stream).is_some() {
        return None;
    }
    let (sym, suffix) = stream.split_once('@')?;
    let kind = match suffix {
        "ticker" => StreamKind::Ticker,
        "miniTicker" => StreamKind::MiniTicker,
        "bookTicker" => StreamKind::BookTicker,
        "trade" => StreamKind::Trade,
        _ => return None,
    };
    let symbol = crate::core::symbol::canonical(sym)?;
    let data: Data = serde_json::from_str(envelope.data?.get()).ok()?;
    Some(price_update(stream, symbol, kind, &data))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::super::frames::{parse_tree, UpstreamFrame};
    use crate::core::error::UpstreamError;

    fn parse_frame(text: &str) -> Result<UpstreamFrame, UpstreamError> {
        super::price_frame(text).unwrap_or_else(|| parse_tree(text))
    }

    const FIXTURES: &str =
        include_str!("../../../../tests/fixtures/binance/combined-stream-samples.jsonl");

    /// The price frames among the fixtures, as trees to change.
    fn prices() -> Vec<Map<String, Value>> {
        FIXTURES
            .lines()
            .filter(|l| {
                ["@ticker", "@miniTicker", "@bookTicker", "@trade\""]
                    .iter()
                    .any(|k| l.contains(k))
            })
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// What a field may become: the values Binance sends and the ones it should not.
    fn value() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(json!("1.5"))),
            Just(Some(json!("-2.25"))),
            Just(Some(json!("\u{31}\u{2e}5"))),
            Just(Some(json!("BTCUSDT"))),
            Just(Some(json!("ETHUSDT"))),
            Just(Some(json!(1.5))),
            Just(Some(json!(-7))),
            Just(Some(json!(18446744073709551615u64))),
            Just(Some(json!({"c": "1"}))),
            Just(Some(json!(["1"]))),
            any::<String>().prop_map(|s| Some(json!(s))),
        ]
    }

    proptest! {
        /// The quick reader answers exactly what the general one does, for the fixtures'
        /// price frames with any field changed, removed or given twice, and any stream name.
        #[test]
        fn the_quick_reader_agrees_with_the_tree(
            which in 0usize..4,
            key in prop::sample::select(vec!["s", "c", "o", "h", "l", "v", "q", "P", "b", "a", "p", "E", "u", "e", "x"]),
            to in value(),
            stream in prop::option::of(prop::sample::select(vec![
                "btcusdt@ticker", "BTCUSDT@ticker", "ethusdt@trade", "bnbbtc@miniTicker",
                "btcusdt@bookTicker", "btcusdt@kline_1m", "btcusdt@aggTrade", "!serverShutdown",
                "btcusdt@depth", "btc usdt@ticker",
            ])),
            twice in any::<bool>(),
            spaced in any::<bool>(),
        ) {
            let mut frame = prices()[which % prices().len()].clone();
            if let Some(stream) = stream {
                frame.insert("stream".into(), json!(stream));
            }
            let data = frame.get_mut("data").and_then(Value::as_object_mut).unwrap();
            match to {
                Some(v) => { data.insert(key.into(), v); }
                None => { data.remove(key); }
            }
            let mut text = if spaced {
                serde_json::to_string_pretty(&frame).unwrap()
            } else {
                serde_json::to_string(&frame).unwrap()
            };
            if twice {
                text = text.replacen("\"data\":{", &format!("\"data\":{{\"{key}\":\"9\","), 1);
            }
            prop_assert_eq!(parse_frame(&text), parse_tree(&text), "{}", text);
        }
    }

    #[test]
    fn escaped_strings_are_read_as_the_tree_reads_them() {
        let text = r#"{"stream":"btcusdt@trade","data":{"E":1,"s":"BTC\u0055SDT","p":"\u0031.5"}}"#;
        assert!(super::price_frame(text).is_some(), "read the quick way");
        assert_eq!(parse_frame(text), parse_tree(text));
        assert!(parse_frame(text).is_ok(), "{:?}", parse_frame(text));
        for frame in prices() {
            let text = serde_json::to_string(&frame).unwrap();
            assert!(super::price_frame(&text).is_some(), "{text}");
        }
    }
}
