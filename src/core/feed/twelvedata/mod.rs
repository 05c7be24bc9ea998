//! Twelve Data's price WebSocket (stocks, ETFs, forex, crypto) as a [`Source`]: the API key
//! in the connect URL (and nowhere else: the link logs endpoints, never URLs), streams
//! subscribed once a connection is open (the URL cannot carry them), a client-sent heartbeat
//! every 10 s whose answers prove the connection alive while a closed market sends nothing,
//! one stream per symbol in Twelve Data's own spelling (`AAPL`, `EUR/USD`).
//!
//! # Layout
//! [`frames`] reads what the server sends (prices, subscribe status, heartbeats, errors) and
//! writes what the client asks (subscribe, unsubscribe, reset, heartbeat); this module
//! speaks for it to the feed.

use std::collections::BTreeSet;

use super::source::{Order, Source, SourceFrame, StreamChange, Update};
use crate::core::channel::Market;
use crate::core::error::UpstreamError;
use crate::core::ids::SourceId;
use crate::core::price::PriceFields;

pub mod frames;

use frames::{Frame, Quote};

pub use frames::MAX_STREAMS;
/// The least time between two requests on one connection: Twelve Data says its server takes
/// "up to 100 events" from a client without saying over what period, so requests (batched:
/// one carries every symbol added meanwhile) go at most once a second, which with the
/// heartbeat stays under 100 a minute.
pub const REQUEST_SPACING_MS: i64 = 1_000;

/// The Twelve Data source, with the API key its connections present.
#[derive(Clone)]
pub struct TwelveData {
    api_key: String,
    heartbeat_ms: i64,
}

impl std::fmt::Debug for TwelveData {
    /// The key is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TwelveData")
    }
}

impl TwelveData {
    /// The source, presenting `api_key`, sending its heartbeat every `heartbeat_ms`.
    pub fn new(api_key: &str, heartbeat_ms: i64) -> TwelveData {
        TwelveData {
            api_key: api_key.to_string(),
            heartbeat_ms,
        }
    }
}

/// A quote as the feed takes it: one lane, ordered by event time.
fn update(q: Quote) -> Update {
    Update {
        symbol: q.symbol,
        lane: 0,
        order: Order::EventTime(q.event_time_ms),
        fields: PriceFields {
            price: Some(q.price),
            volume: q.day_volume,
            bid: q.bid,
            ask: q.ask,
            event_time: Some(q.event_time_ms),
            exchange: q.exchange,
            currency: q.currency,
            asset_type: q.asset_type,
            ..PriceFields::default()
        },
    }
}

impl Source for TwelveData {
    fn id(&self) -> SourceId {
        SourceId::TwelveData
    }

    fn connect_url(&self, endpoint: &str, _streams: &BTreeSet<String>) -> String {
        let key: String = self
            .api_key
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        format!("{endpoint}?apikey={key}")
    }

    fn request(&self, change: StreamChange, streams: &[String], _id: u64) -> String {
        match change {
            StreamChange::Subscribe => frames::subscribe(streams),
            StreamChange::Unsubscribe => frames::unsubscribe(streams),
        }
    }

    fn request_spacing_ms(&self) -> i64 {
        REQUEST_SPACING_MS
    }

    fn max_streams(&self) -> usize {
        MAX_STREAMS
    }

    fn cadence_ms(&self, _stream: &str) -> Option<i64> {
        None
    }

    fn price_streams(&self, symbol: &str) -> Vec<String> {
        vec![symbol.to_string()]
    }

    fn market_stream(&self, _market: &Market) -> Option<String> {
        None
    }

    fn parse(&self, text: &str) -> Result<SourceFrame, UpstreamError> {
        Ok(match frames::parse(text)? {
            Frame::Price(q) => SourceFrame::Price(update(q)),
            Frame::SubscribeStatus { fails, .. } if !fails.is_empty() => SourceFrame::Failed(fails),
            Frame::SubscribeStatus { .. } | Frame::Heartbeat { .. } | Frame::Other { .. } => {
                SourceFrame::Control
            }
            Frame::Error { message } => SourceFrame::Refusal {
                code: 0,
                msg: message,
            },
        })
    }

    fn streams_in_url(&self) -> bool {
        false
    }

    fn heartbeat(&self) -> Option<(i64, String)> {
        Some((self.heartbeat_ms, frames::heartbeat()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_data_speaks_for_itself_to_the_feed() {
        let td = TwelveData::new("k&y 1", frames::HEARTBEAT_MS);
        assert_eq!(
            td.connect_url("wss://ws.example/v1/quotes/price", &BTreeSet::new()),
            "wss://ws.example/v1/quotes/price?apikey=k%26y%201"
        );
        assert!(
            !format!("{td:?}").contains("k&y"),
            "the key is never printed"
        );
        assert_eq!(td.price_streams("EUR/USD"), ["EUR/USD"]);
        assert!(!td.streams_in_url());
        assert_eq!(td.heartbeat().map(|(ms, _)| ms), Some(10_000));
        let sub = td.request(
            StreamChange::Subscribe,
            &["AAPL".into(), "EUR/USD".into()],
            1,
        );
        let v: serde_json::Value = serde_json::from_str(&sub).unwrap();
        assert_eq!(v["action"], "subscribe");
        assert_eq!(v["params"]["symbols"], "AAPL,EUR/USD");
    }

    #[test]
    fn frames_become_updates_failures_and_control() {
        let td = TwelveData::new("k", frames::HEARTBEAT_MS);
        let price = r#"{"event":"price","symbol":"AAPL","price":189.9800,"timestamp":1700000000,"bid":189.97,"ask":189.99}"#;
        let SourceFrame::Price(u) = td.parse(price).unwrap() else {
            panic!("a price")
        };
        assert_eq!(u.symbol, "AAPL");
        assert_eq!(u.order, Order::EventTime(1_700_000_000_000));
        assert_eq!(u.fields.price.as_deref(), Some("189.9800"));
        assert_eq!(u.fields.bid.as_deref(), Some("189.97"));
        let status = r#"{"event":"subscribe-status","status":"error","success":[],"fails":[{"symbol":"NOPE"}]}"#;
        assert_eq!(
            td.parse(status).unwrap(),
            SourceFrame::Failed(vec!["NOPE".into()])
        );
        let beat = r#"{"event":"heartbeat","status":"ok"}"#;
        assert_eq!(td.parse(beat).unwrap(), SourceFrame::Control);
    }
}
