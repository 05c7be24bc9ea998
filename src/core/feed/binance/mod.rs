//! Binance's spot market streams as a [`Source`]: the combined-stream endpoint with the
//! streams in its URL, live `SUBSCRIBE`/`UNSUBSCRIBE` requests spaced under its 5 incoming
//! messages a second, 1,024 streams a connection, the 24 h tickers' one-second cadence as
//! proof of life, lower-case stream names (`btcusdt@ticker`).
//!
//! # Layout
//! [`frames`] reads its frames (prices; `fast` the common ones without a tree); [`market`] its market streams (trades, klines,
//! depth); this module names its streams and speaks for it to the feed.

use std::collections::BTreeSet;

use serde_json::json;

use super::source::{Order, Source, SourceFrame, StreamChange, Update};
use crate::core::channel::Market;
use crate::core::error::UpstreamError;
use crate::core::ids::SourceId;

mod fast;
pub mod frames;
pub mod market;

use frames::{parse_tree, StreamKind, StreamUpdate, UpstreamFrame};
pub use market::{market_of_stream, market_stream};

/// Streams subscribed per symbol: 24 h statistics and the real-time best bid/ask.
pub const STREAM_KINDS: [StreamKind; 2] = [StreamKind::Ticker, StreamKind::BookTicker];
/// Minimum time between our own requests on one connection: at most 2.5 per second, which
/// leaves room for pongs under Binance's 5 per second.
pub const MIN_REQUEST_SPACING_MS: i64 = 400;
/// Streams one connection carries at most.
pub const MAX_STREAMS: usize = 1024;

/// The Binance source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Binance;

/// Parses one text frame of the combined-stream endpoint: a price the quick way when it is
/// one (see [`fast`]), anything else through a JSON tree.
pub fn parse_frame(text: &str) -> Result<UpstreamFrame, UpstreamError> {
    fast::price_frame(text).unwrap_or_else(|| parse_tree(text))
}

/// Binance's stream name for a canonical symbol, e.g. `btcusdt@ticker`.
pub fn stream_name(symbol: &str, kind: StreamKind) -> String {
    format!("{}@{}", symbol.to_ascii_lowercase(), kind.suffix())
}

/// A stream's price update as the feed takes it: each stream kind in its own ordering lane,
/// book tickers ordered by their update id (they carry no event time), the rest by event time.
fn neutral(u: StreamUpdate) -> Update {
    let order = match (u.kind, u.book_update_id, u.fields.event_time) {
        (StreamKind::BookTicker, Some(id), _) => Order::Sequence(id as i64),
        (StreamKind::BookTicker, None, _) | (_, _, None) => Order::None,
        (_, _, Some(t)) => Order::EventTime(t),
    };
    Update {
        symbol: u.symbol,
        lane: u.kind.index(),
        order,
        fields: u.fields,
    }
}

impl Source for Binance {
    fn id(&self) -> SourceId {
        SourceId::Binance
    }

    fn connect_url(&self, endpoint: &str, streams: &BTreeSet<String>) -> String {
        let list: Vec<&str> = streams.iter().map(String::as_str).collect();
        format!("{endpoint}?streams={}", list.join("/"))
    }

    fn request(&self, change: StreamChange, streams: &[String], id: u64) -> String {
        let method = match change {
            StreamChange::Subscribe => "SUBSCRIBE",
            StreamChange::Unsubscribe => "UNSUBSCRIBE",
        };
        json!({"method": method, "params": streams, "id": id}).to_string()
    }

    fn request_spacing_ms(&self) -> i64 {
        MIN_REQUEST_SPACING_MS
    }

    fn max_streams(&self) -> usize {
        MAX_STREAMS
    }

    fn cadence_ms(&self, stream: &str) -> Option<i64> {
        frames::promised_cadence_ms(stream)
    }

    fn price_streams(&self, symbol: &str) -> Vec<String> {
        STREAM_KINDS
            .iter()
            .map(|k| stream_name(symbol, *k))
            .collect()
    }

    fn market_stream(&self, market: &Market) -> Option<String> {
        market_stream(market)
    }

    fn parse(&self, text: &str) -> Result<SourceFrame, UpstreamError> {
        Ok(match parse_frame(text)? {
            UpstreamFrame::Update(u) => SourceFrame::Price(neutral(u)),
            UpstreamFrame::Market(m) => SourceFrame::Market(m),
            UpstreamFrame::ServerShutdown { .. } => SourceFrame::Closing,
            UpstreamFrame::Ack { .. } => SourceFrame::Control,
            UpstreamFrame::Refusal { code, msg } => SourceFrame::Refusal { code, msg },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_speaks_for_itself_to_the_feed() {
        let b = Binance;
        let streams: BTreeSet<String> = ["btcusdt@ticker".into(), "ethusdt@ticker".into()].into();
        assert_eq!(
            b.connect_url("wss://x/stream", &streams),
            "wss://x/stream?streams=btcusdt@ticker/ethusdt@ticker"
        );
        assert_eq!(
            b.request(StreamChange::Unsubscribe, &["btcusdt@ticker".into()], 7),
            r#"{"id":7,"method":"UNSUBSCRIBE","params":["btcusdt@ticker"]}"#
        );
        assert_eq!(
            b.price_streams("BTCUSDT"),
            ["btcusdt@ticker", "btcusdt@bookTicker"]
        );
        assert_eq!(b.cadence_ms("btcusdt@ticker"), Some(1_000));
        assert_eq!(b.cadence_ms("btcusdt@bookTicker"), None);
        for key in ["trades:BTCUSDT", "candles:BTCUSDT:1m", "book:BTCUSDT"] {
            let m = Market::of(key).unwrap();
            let stream = market_stream(&m).unwrap();
            assert_eq!(market_of_stream(&stream), Some(m), "{key}");
        }
        let heatmap = Market::of("heatmap:BTCUSDT").unwrap();
        assert_eq!(b.market_stream(&heatmap), None, "the leader computes it");
    }

    #[test]
    fn a_book_ticker_is_ordered_by_its_update_id_and_a_ticker_by_event_time() {
        let book = r#"{"stream":"btcusdt@bookTicker","data":{"u":9,"s":"BTCUSDT","b":"1.0","B":"1","a":"1.1","A":"1"}}"#;
        let SourceFrame::Price(u) = Binance.parse(book).unwrap() else {
            panic!("a price");
        };
        assert_eq!(
            (u.lane, u.order),
            (StreamKind::BookTicker.index(), Order::Sequence(9))
        );
        let shutdown = r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}"#;
        assert_eq!(Binance.parse(shutdown).unwrap(), SourceFrame::Closing);
    }
}
