//! Binance combined-stream frames in, typed updates out (see docs/upstream.md); the source
//! ([`super::Binance`]) turns them into the feed's source-neutral frames.
//!
//! Every frame is validated before it can touch the cache: decimal fields must be decimal
//! strings and the payload's symbol must match its stream name.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::market::market_of_stream;
use crate::core::error::UpstreamError;
use crate::core::market::MarketUpdate;
use crate::core::price::{is_decimal, PriceFields};

/// Which Binance stream a frame came from; decides which fields it may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// `@ticker`: full 24 h statistics plus best bid/ask.
    Ticker,
    /// `@miniTicker`: 24 h statistics without change percent or book.
    MiniTicker,
    /// `@bookTicker`: best bid/ask in real time; carries no event time.
    BookTicker,
    /// `@aggTrade`: last price from aggregated trades.
    AggTrade,
    /// `@trade`: last price from raw trades.
    Trade,
    /// `@kline_<interval>`: only the close is used, as the last price; the candle's
    /// open/high/low are not 24 h values and would be wrong in those fields.
    Kline,
}

impl StreamKind {
    /// Number of kinds, for per-kind tables.
    pub const COUNT: usize = 6;

    /// A dense index, for per-kind tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stream-name suffix, as Binance spells it.
    pub fn suffix(self) -> &'static str {
        match self {
            StreamKind::Ticker => "ticker",
            StreamKind::MiniTicker => "miniTicker",
            StreamKind::BookTicker => "bookTicker",
            StreamKind::AggTrade => "aggTrade",
            StreamKind::Trade => "trade",
            StreamKind::Kline => "kline_1m",
        }
    }

    /// How often Binance sends this stream whatever the market does, when it promises a
    /// cadence: the 24 h tickers every second, klines (the open candle) every 2 s. Trades and
    /// the best bid/ask arrive only when something happens, so a quiet market silences them.
    pub fn cadence_ms(self) -> Option<i64> {
        match self {
            StreamKind::Ticker | StreamKind::MiniTicker => Some(1_000),
            StreamKind::Kline => Some(2_000),
            StreamKind::BookTicker | StreamKind::AggTrade | StreamKind::Trade => None,
        }
    }

    fn from_suffix(suffix: &str) -> Option<StreamKind> {
        Some(match suffix {
            "ticker" => StreamKind::Ticker,
            "miniTicker" => StreamKind::MiniTicker,
            "bookTicker" => StreamKind::BookTicker,
            "aggTrade" => StreamKind::AggTrade,
            "trade" => StreamKind::Trade,
            s if s.starts_with("kline_") => StreamKind::Kline,
            _ => return None,
        })
    }
}

/// The cadence a stream named like `btcusdt@ticker` promises (see [`StreamKind::cadence_ms`]).
pub fn promised_cadence_ms(stream: &str) -> Option<i64> {
    let (_, suffix) = stream.split_once('@')?;
    StreamKind::from_suffix(suffix)?.cadence_ms()
}

/// One price-bearing frame, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamUpdate {
    /// Canonical symbol.
    pub symbol: String,
    /// The stream it came from.
    pub kind: StreamKind,
    /// What it says.
    pub fields: PriceFields,
    /// `@bookTicker`'s order book update id `u`, which orders book frames (they carry no
    /// event time).
    pub book_update_id: Option<u64>,
}

/// Everything the upstream can send on a combined stream.
///
/// `Update` is nearly every frame, so it is kept inline: boxing it would add an allocation
/// per frame to save stack space on the rare control frames.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamFrame {
    /// A price update.
    Update(StreamUpdate),
    /// An update of a market channel (trades, a candle, the book).
    Market(MarketUpdate),
    /// `!serverShutdown`: Binance will cut this connection soon.
    ServerShutdown {
        /// When Binance announced it.
        event_time: Option<i64>,
    },
    /// Answer to a `SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS` request.
    Ack {
        /// The request id it answers.
        id: Option<i64>,
        /// `null`, or the list of subscriptions.
        result: Value,
    },
    /// An error answer (`{"code":..,"msg":..}`), e.g. to a malformed request.
    Refusal {
        /// Binance's error code.
        code: i64,
        /// Binance's message.
        msg: String,
    },
}

/// Parses one frame through a JSON tree: every kind of frame, and every error (the common
/// price frames are read without one first: see [`super::parse_frame`]).
pub(super) fn parse_tree(text: &str) -> Result<UpstreamFrame, UpstreamError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| UpstreamError::BadJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(UpstreamError::BadJson("frame is not a JSON object".into()));
    };
    if let Some(stream) = obj.get("stream") {
        let stream = stream
            .as_str()
            .ok_or(UpstreamError::MissingField("stream"))?;
        let data = obj
            .get("data")
            .and_then(Value::as_object)
            .ok_or(UpstreamError::MissingField("data"))?;
        return parse_stream(stream, data);
    }
    if obj.contains_key("result") {
        return Ok(UpstreamFrame::Ack {
            id: obj.get("id").and_then(Value::as_i64),
            result: obj.get("result").cloned().unwrap_or(Value::Null),
        });
    }
    if let Some(code) = obj.get("code").and_then(Value::as_i64) {
        let msg = obj
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return Ok(UpstreamFrame::Refusal { code, msg });
    }
    Err(UpstreamError::MissingField("stream"))
}

fn parse_stream(stream: &str, data: &Map<String, Value>) -> Result<UpstreamFrame, UpstreamError> {
    if stream == "!serverShutdown" {
        return Ok(UpstreamFrame::ServerShutdown {
            event_time: data.get("E").and_then(Value::as_i64),
        });
    }
    if let Some(market) = market_of_stream(stream) {
        return super::market::parse(&market, data).map(UpstreamFrame::Market);
    }
    let unknown = || UpstreamError::UnknownStream(stream.to_string());
    let (sym, suffix) = stream.split_once('@').ok_or_else(unknown)?;
    let kind = StreamKind::from_suffix(suffix).ok_or_else(unknown)?;
    let symbol = crate::core::symbol::canonical(sym).ok_or_else(unknown)?;
    price_update(stream, symbol, kind, data)
}

/// The update a price stream's payload makes, once its payload names the stream's symbol.
pub(super) fn price_update(
    stream: &str,
    symbol: String,
    kind: StreamKind,
    data: &impl Fields,
) -> Result<UpstreamFrame, UpstreamError> {
    let data_symbol = data.text("s").ok_or(UpstreamError::MissingField("s"))?;
    if data_symbol != symbol {
        return Err(UpstreamError::SymbolMismatch {
            stream: stream.to_string(),
            data: data_symbol.into_owned(),
        });
    }
    let fields = fields_of(kind, data)?;
    let book_update_id = match kind {
        StreamKind::BookTicker => data.uint("u"),
        _ => None,
    };
    Ok(UpstreamFrame::Update(StreamUpdate {
        symbol,
        kind,
        fields,
        book_update_id,
    }))
}

/// Read access to a frame's payload, however it was read.
pub(super) trait Fields {
    /// The string field `name`.
    fn text(&self, name: &'static str) -> Option<Cow<'_, str>>;
    /// The integer field `name`, when it fits an `i64`.
    fn int(&self, name: &'static str) -> Option<i64>;
    /// The integer field `name`, when it fits a `u64`.
    fn uint(&self, name: &'static str) -> Option<u64>;
    /// A kline's close (`k.c`), or which of the two is missing.
    fn kline_close(&self) -> Result<Cow<'_, str>, UpstreamError>;
}

impl Fields for Map<String, Value> {
    fn text(&self, name: &'static str) -> Option<Cow<'_, str>> {
        self.get(name).and_then(Value::as_str).map(Cow::Borrowed)
    }

    fn int(&self, name: &'static str) -> Option<i64> {
        self.get(name).and_then(Value::as_i64)
    }

    fn uint(&self, name: &'static str) -> Option<u64> {
        self.get(name).and_then(Value::as_u64)
    }

    fn kline_close(&self) -> Result<Cow<'_, str>, UpstreamError> {
        let k = self.get("k").and_then(Value::as_object);
        let k = k.ok_or(UpstreamError::MissingField("k"))?;
        k.text("c").ok_or(UpstreamError::MissingField("c"))
    }
}

/// The price fields a stream kind carries (decimal strings checked, never parsed to floats).
fn fields_of(kind: StreamKind, data: &impl Fields) -> Result<PriceFields, UpstreamError> {
    let event_time = data.int("E");
    Ok(match kind {
        StreamKind::Ticker => PriceFields {
            price: Some(dec(data, "c")?),
            open: Some(dec(data, "o")?),
            high: Some(dec(data, "h")?),
            low: Some(dec(data, "l")?),
            volume: Some(dec(data, "v")?),
            quote_volume: Some(dec(data, "q")?),
            change_pct: Some(signed_dec(data, "P")?),
            bid: Some(dec(data, "b")?),
            ask: Some(dec(data, "a")?),
            event_time: Some(event_time.ok_or(UpstreamError::MissingField("E"))?),
            ..PriceFields::default()
        },
        StreamKind::MiniTicker => PriceFields {
            price: Some(dec(data, "c")?),
            open: Some(dec(data, "o")?),
            high: Some(dec(data, "h")?),
            low: Some(dec(data, "l")?),
            volume: Some(dec(data, "v")?),
            quote_volume: Some(dec(data, "q")?),
            event_time: Some(event_time.ok_or(UpstreamError::MissingField("E"))?),
            ..PriceFields::default()
        },
        StreamKind::BookTicker => PriceFields {
            bid: Some(dec(data, "b")?),
            ask: Some(dec(data, "a")?),
            ..PriceFields::default()
        },
        StreamKind::AggTrade | StreamKind::Trade => PriceFields {
            price: Some(dec(data, "p")?),
            event_time: Some(event_time.ok_or(UpstreamError::MissingField("E"))?),
            ..PriceFields::default()
        },
        StreamKind::Kline => PriceFields {
            price: Some(checked(&data.kline_close()?, "c", false)?),
            event_time: Some(event_time.ok_or(UpstreamError::MissingField("E"))?),
            ..PriceFields::default()
        },
    })
}

fn field<'a>(data: &'a impl Fields, name: &'static str) -> Result<Cow<'a, str>, UpstreamError> {
    data.text(name).ok_or(UpstreamError::MissingField(name))
}

fn checked(value: &str, name: &'static str, signed: bool) -> Result<String, UpstreamError> {
    if is_decimal(value, signed) {
        Ok(value.to_string())
    } else {
        Err(UpstreamError::BadDecimal {
            field: name,
            value: value.chars().take(40).collect(),
        })
    }
}

fn dec(data: &impl Fields, name: &'static str) -> Result<String, UpstreamError> {
    checked(&field(data, name)?, name, false)
}

fn signed_dec(data: &impl Fields, name: &'static str) -> Result<String, UpstreamError> {
    checked(&field(data, name)?, name, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str =
        include_str!("../../../../tests/fixtures/binance/combined-stream-samples.jsonl");

    fn fixture(stream_prefix: &str) -> &'static str {
        FIXTURES
            .lines()
            .find(|l| l.contains(stream_prefix))
            .unwrap_or_else(|| panic!("no fixture line contains {stream_prefix}"))
    }

    fn update(line: &str) -> StreamUpdate {
        match parse_tree(line).unwrap() {
            UpstreamFrame::Update(u) => u,
            other => panic!("expected an update, got {other:?}"),
        }
    }

    #[test]
    fn every_fixture_line_is_classified() {
        let mut kinds = Vec::new();
        for line in FIXTURES.lines().filter(|l| !l.trim().is_empty()) {
            let frame = parse_tree(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            kinds.push(match frame {
                UpstreamFrame::Update(u) => u.kind.suffix(),
                UpstreamFrame::Market(m) => m.kind.code(),
                UpstreamFrame::ServerShutdown { .. } => "shutdown",
                UpstreamFrame::Ack { .. } => "ack",
                UpstreamFrame::Refusal { .. } => "refusal",
            });
        }
        assert_eq!(
            kinds,
            [
                "miniTicker",
                "ticker",
                "bookTicker",
                "t",
                "trade",
                "c",
                "shutdown",
                "ack",
                "refusal"
            ]
        );
    }

    #[test]
    fn mini_ticker_keeps_decimal_strings_exactly() {
        let u = update(fixture("btcusdt@miniTicker"));
        assert_eq!(u.symbol, "BTCUSDT");
        assert_eq!(u.fields.price.as_deref(), Some("10456.56000000"));
        assert_eq!(u.fields.open.as_deref(), Some("10884.90000000"));
        assert_eq!(u.fields.high.as_deref(), Some("10912.83000000"));
        assert_eq!(u.fields.low.as_deref(), Some("10385.02000000"));
        assert_eq!(u.fields.volume.as_deref(), Some("64483.09756200"));
        assert_eq!(u.fields.quote_volume.as_deref(), Some("685180788.34970800"));
        assert_eq!(u.fields.event_time, Some(1601628771865));
        assert_eq!(u.fields.change_pct, None);
        assert_eq!(u.fields.bid, None);
    }

    #[test]
    fn ticker_carries_change_and_book() {
        let u = update(fixture("bnbbtc@ticker"));
        assert_eq!(u.symbol, "BNBBTC");
        assert_eq!(u.fields.price.as_deref(), Some("0.0025"));
        assert_eq!(u.fields.change_pct.as_deref(), Some("250.00"));
        assert_eq!(u.fields.bid.as_deref(), Some("0.0024"));
        assert_eq!(u.fields.ask.as_deref(), Some("0.0026"));
        assert_eq!(u.fields.event_time, Some(1672515782136));
    }

    #[test]
    fn book_ticker_has_no_event_time_and_no_price() {
        let u = update(fixture("btcusdt@bookTicker"));
        assert_eq!(u.fields.bid.as_deref(), Some("89879.78000000"));
        assert_eq!(u.fields.ask.as_deref(), Some("89879.79000000"));
        assert_eq!(u.fields.event_time, None);
        assert_eq!(u.fields.price, None);
        assert_eq!(u.book_update_id, Some(85592068563));
    }

    #[test]
    fn raw_trades_set_only_the_last_price_and_market_streams_feed_channels() {
        let trade = update(fixture("bnbbtc@trade"));
        assert_eq!(trade.fields.price.as_deref(), Some("0.001"));
        assert_eq!(trade.fields.event_time, Some(1672515782136));
        let Ok(UpstreamFrame::Market(agg)) = parse_tree(fixture("btcusdt@aggTrade")) else {
            panic!("an aggregate trade feeds trades:BTCUSDT");
        };
        assert_eq!(agg.channel, "trades:BTCUSDT");
        let Ok(UpstreamFrame::Market(k)) = parse_tree(fixture("btcusdt@kline_1m")) else {
            panic!("a kline feeds candles:BTCUSDT:1m");
        };
        assert_eq!(k.channel, "candles:BTCUSDT:1m");
    }

    #[test]
    fn control_answers_are_recognised() {
        assert_eq!(
            parse_tree(fixture("\"result\"")).unwrap(),
            UpstreamFrame::Ack {
                id: Some(1),
                result: Value::Null
            }
        );
        assert!(matches!(
            parse_tree(fixture("\"code\"")).unwrap(),
            UpstreamFrame::Refusal { code: 3, .. }
        ));
        assert_eq!(
            parse_tree(fixture("serverShutdown")).unwrap(),
            UpstreamFrame::ServerShutdown {
                event_time: Some(1770123456789)
            }
        );
    }

    #[test]
    fn bad_frames_are_rejected_with_their_reason() {
        assert!(matches!(
            parse_tree("not json"),
            Err(UpstreamError::BadJson(_))
        ));
        assert!(matches!(
            parse_tree("[1,2]"),
            Err(UpstreamError::BadJson(_))
        ));
        assert!(matches!(
            parse_tree(r#"{"stream":"btcusdt@depth","data":{"s":"BTCUSDT"}}"#),
            Err(UpstreamError::UnknownStream(_))
        ));
        assert!(matches!(
            parse_tree(
                r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"ETHUSDT","p":"1"}}"#
            ),
            Err(UpstreamError::SymbolMismatch { .. })
        ));
        assert!(matches!(
            parse_tree(
                r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","p":1.5}}"#
            ),
            Err(UpstreamError::MissingField("p"))
        ));
        assert!(matches!(
            parse_tree(
                r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","p":"1e9"}}"#
            ),
            Err(UpstreamError::BadDecimal { field: "p", .. })
        ));
        assert!(matches!(
            parse_tree(r#"{"stream":"btcusdt@miniTicker","data":{"s":"BTCUSDT"}}"#),
            Err(UpstreamError::MissingField(_))
        ));
    }

    #[test]
    fn stream_names_are_lower_case() {
        assert_eq!(
            super::super::stream_name("BTCUSDT", StreamKind::Ticker),
            "btcusdt@ticker"
        );
    }
}
