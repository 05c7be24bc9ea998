//! A source for the tests of the feed, the hub and the shards: frames are small JSON
//! objects that say what they mean (`{"price":{...}}`, `{"market":{...}}`, `{"closing":{}}`),
//! streams are the symbol (its price, promising a 1 s cadence), the symbol with `.book` (its
//! book, no cadence) and a market channel's own key. What those tests check is the hub's
//! behaviour, not any exchange's format (each source tests its own frames).

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::source::{Order, Source, SourceFrame, StreamChange, Update};
use crate::core::channel::Market;
use crate::core::error::UpstreamError;
use crate::core::ids::SourceId;
use crate::core::market::{MarketKind, MarketUpdate};
use crate::core::price::{is_decimal, PriceFields};

/// The test source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Neutral;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Frame<'a> {
    Price(Box<PriceFrame>),
    Market {
        channel: String,
        kind: String,
        #[serde(borrow)]
        body: &'a RawValue,
    },
    Closing {},
    Control {},
    Refusal {
        code: i64,
        msg: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PriceFrame {
    symbol: String,
    #[serde(default)]
    lane: usize,
    at: Option<i64>,
    seq: Option<i64>,
    price: Option<String>,
    open: Option<String>,
    high: Option<String>,
    low: Option<String>,
    volume: Option<String>,
    quote_volume: Option<String>,
    change_pct: Option<String>,
    bid: Option<String>,
    ask: Option<String>,
}

fn decimal(v: Option<String>, field: &'static str) -> Result<Option<String>, UpstreamError> {
    match v {
        Some(s) if !is_decimal(&s, true) => Err(UpstreamError::BadDecimal { field, value: s }),
        v => Ok(v),
    }
}

fn update(p: PriceFrame) -> Result<Update, UpstreamError> {
    let order = match (p.seq, p.at) {
        (Some(s), _) => Order::Sequence(s),
        (None, Some(t)) => Order::EventTime(t),
        (None, None) => Order::None,
    };
    let fields = PriceFields {
        price: decimal(p.price, "price")?,
        open: decimal(p.open, "open")?,
        high: decimal(p.high, "high")?,
        low: decimal(p.low, "low")?,
        volume: decimal(p.volume, "volume")?,
        quote_volume: decimal(p.quote_volume, "quote_volume")?,
        change_pct: decimal(p.change_pct, "change_pct")?,
        bid: decimal(p.bid, "bid")?,
        ask: decimal(p.ask, "ask")?,
        event_time: p.at,
        ..PriceFields::default()
    };
    Ok(Update {
        symbol: p.symbol,
        lane: p.lane,
        order,
        fields,
    })
}

impl Source for Neutral {
    fn id(&self) -> SourceId {
        SourceId::Neutral
    }

    fn connect_url(&self, endpoint: &str, streams: &BTreeSet<String>) -> String {
        let list: Vec<&str> = streams.iter().map(String::as_str).collect();
        format!("{endpoint}?streams={}", list.join("/"))
    }

    fn request(&self, change: StreamChange, streams: &[String], id: u64) -> String {
        let verb = match change {
            StreamChange::Subscribe => "add",
            StreamChange::Unsubscribe => "remove",
        };
        serde_json::json!({ verb: streams, "id": id }).to_string()
    }

    fn request_spacing_ms(&self) -> i64 {
        400
    }

    fn max_streams(&self) -> usize {
        1024
    }

    fn cadence_ms(&self, stream: &str) -> Option<i64> {
        (!stream.contains('.') && !stream.contains(':')).then_some(1_000)
    }

    fn price_streams(&self, symbol: &str) -> Vec<String> {
        vec![symbol.to_string(), format!("{symbol}.book")]
    }

    fn market_stream(&self, market: &Market) -> Option<String> {
        Some(market.key())
    }

    fn parse(&self, text: &str) -> Result<SourceFrame, UpstreamError> {
        let frame: Frame<'_> =
            serde_json::from_str(text).map_err(|e| UpstreamError::BadJson(e.to_string()))?;
        Ok(match frame {
            Frame::Price(p) => SourceFrame::Price(update(*p)?),
            Frame::Market {
                channel,
                kind,
                body,
            } => SourceFrame::Market(MarketUpdate {
                channel,
                kind: MarketKind::of_code(&kind).ok_or(UpstreamError::MissingField("kind"))?,
                encoded: body.get().into(),
            }),
            Frame::Closing {} => SourceFrame::Closing,
            Frame::Control {} => SourceFrame::Control,
            Frame::Refusal { code, msg } => SourceFrame::Refusal { code, msg },
        })
    }
}

/// A full price of `symbol` at `at` (lane 0, ordered by event time).
pub fn ticker(symbol: &str, price: &str, at: i64) -> String {
    format!(
        r#"{{"price":{{"symbol":"{symbol}","at":{at},"price":"{price}","open":"100","high":"101","low":"99","volume":"10","quote_volume":"1000","change_pct":"0.10","bid":"100.4","ask":"100.6"}}}}"#
    )
}

/// The best bid and ask of `symbol` (lane 1, ordered by `seq`, no event time).
pub fn book(symbol: &str, bid: &str, ask: &str, seq: i64) -> String {
    format!(
        r#"{{"price":{{"symbol":"{symbol}","lane":1,"seq":{seq},"bid":"{bid}","ask":"{ask}"}}}}"#
    )
}

/// A market channel update: `kind` is its code (`t` trade, `c` open candle, `x` closed
/// candle, `b` book) and `body` its encoding.
pub fn market(channel: &str, kind: &str, body: &str) -> String {
    format!(r#"{{"market":{{"channel":"{channel}","kind":"{kind}","body":{body}}}}}"#)
}

/// The source will close the connection soon.
pub const CLOSING: &str = r#"{"closing":{}}"#;
