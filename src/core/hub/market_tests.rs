//! Market channels through the leader: the upstream follows the channels clients hold,
//! trades gather per flush, a closed candle arrives once, states greet new subscribers.

use std::collections::HashMap;

use serde_json::Value;

use super::tests::frames;
use super::*;
use crate::core::feed::neutral::{self, Neutral};
use crate::core::host::ClientHost;
use crate::core::hub::tests::Drive;
use crate::core::ids::SourceId;
use crate::core::input::UpstreamEvent;
use crate::core::wire::Wire;
use std::rc::Rc;

fn hub() -> Hub {
    let map: HashMap<&str, &str> = [
        ("SYMBOLS", "BTCUSDT,ETHUSDT"),
        ("UPSTREAM_URL", "ws://127.0.0.1:1/stream"),
        ("FLUSH_MS", "5"),
    ]
    .into_iter()
    .collect();
    let mut h = Hub::with_source(
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap(),
        Rc::new(Neutral),
    );
    h.start(0);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    h
}

fn requests(fx: &[Effect]) -> Vec<Value> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SendUpstream { text, .. } => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

fn trade(id: u64, price: &str) -> String {
    let body = format!(r#"{{"id":{id},"price":"{price}","qty":"0.5","side":"buy","time":{id}}}"#);
    neutral::market("trades:BTCUSDT", "t", &body)
}

fn kline(close: &str, closed: bool) -> String {
    let body = format!(
        r#"{{"channel":"candles:BTCUSDT:1m","candle":{{"t":60000,"o":"1.0","h":"2.0","l":"0.5","c":"{close}","v":"3.0","closed":{closed}}}}}"#
    );
    neutral::market("candles:BTCUSDT:1m", if closed { "x" } else { "c" }, &body)
}

fn book() -> String {
    let body = r#"{"channel":"book:BTCUSDT","bids":[["1.0","2.0"]],"asks":[["1.1","3.0"]],"u":7}"#;
    neutral::market("book:BTCUSDT", "b", body)
}

/// A hub with client `c` following BTCUSDT's trades and book; returns the upstream
/// requests that made.
fn following(h: &mut Hub) -> (ConnId, Vec<Value>) {
    let (c, _) = h.client_open(Wire::Json, None, 1);
    let sub = r#"{"action":"subscribe","channels":["trades:BTCUSDT","book:BTCUSDT"]}"#;
    let mut fx = h.client_says(c, sub, 2);
    fx.extend(h.timer(2));
    fx.extend(h.timer(1_000));
    (c, requests(&fx))
}

/// The streams the requests `verb` (`add` or `remove`).
fn params(requests: &[Value], verb: &str) -> Vec<String> {
    requests
        .iter()
        .flat_map(|r| r[verb].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_upstream_follows_the_market_channels_clients_hold() {
    let mut h = hub();
    let (c, asked) = following(&mut h);
    let added = params(&asked, "add");
    assert!(added.contains(&"trades:BTCUSDT".into()), "{asked:?}");
    assert!(added.contains(&"book:BTCUSDT".into()), "{asked:?}");
    let unsub = r#"{"action":"unsubscribe","channels":["trades:BTCUSDT"]}"#;
    let mut fx = h.client_says(c, unsub, 2_300);
    fx.extend(h.timer(2_300));
    let removed = params(&requests(&fx), "remove");
    assert_eq!(removed, ["trades:BTCUSDT"], "only the channel nobody holds");
}

#[test]
fn trades_gather_per_flush_and_states_greet_new_subscribers() {
    let mut h = hub();
    let (c, _) = following(&mut h);
    let mut fx = h.exchange_sends(1, &trade(41, "1.50"), 2_000);
    fx.extend(h.exchange_sends(1, &trade(42, "1.60"), 2_000));
    fx.extend(h.timer(2_000));
    let got: Vec<Value> = frames(&fx, c)
        .into_iter()
        .filter(|f| f["type"] == "trades")
        .collect();
    assert_eq!(got.len(), 1, "one frame for what arrived together: {got:?}");
    let ids: Vec<u64> = got[0]["trades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [41, 42]);
    assert_eq!(got[0]["trades"][0]["price"], "1.50");
    assert_eq!(got[0]["trades"][0]["side"], "buy");
    let mut fx = h.exchange_sends(1, &book(), 2_100);
    fx.extend(h.timer(2_100));
    let book = frames(&fx, c);
    assert!(book
        .iter()
        .any(|f| f["type"] == "book" && f["bids"][0][0] == "1.0"));
    let (d, _) = h.client_open(Wire::Json, None, 2_200);
    let sub = r#"{"action":"subscribe","channels":["book:BTCUSDT"]}"#;
    let fx = h.client_says(d, sub, 2_200);
    let first = frames(&fx, d);
    assert!(
        first.iter().any(|f| f["type"] == "book" && f["u"] == 7),
        "{first:?}"
    );
}

#[test]
fn a_closed_candle_arrives_once_beside_the_newest_open_one() {
    let mut h = hub();
    let (c, _) = h.client_open(Wire::Json, None, 1);
    h.client_says(
        c,
        r#"{"action":"subscribe","channels":["candles:BTCUSDT:1m"]}"#,
        2,
    );
    let mut fx = h.exchange_sends(1, &kline("1.1", false), 100);
    fx.extend(h.exchange_sends(1, &kline("1.2", true), 100));
    fx.extend(h.exchange_sends(1, &kline("1.3", false), 100));
    fx.extend(h.timer(100));
    let candles: Vec<Value> = frames(&fx, c)
        .into_iter()
        .filter(|f| f["type"] == "candle")
        .collect();
    let seen: Vec<(String, bool)> = candles
        .iter()
        .map(|f| {
            (
                f["candle"]["c"].as_str().unwrap().to_string(),
                f["candle"]["closed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("1.2".to_string(), true), ("1.3".to_string(), false)],
        "the close once, then the newest"
    );
    let mut fx = h.exchange_sends(1, &kline("1.4", false), 200);
    fx.extend(h.timer(200));
    let again: Vec<Value> = frames(&fx, c)
        .into_iter()
        .filter(|f| f["type"] == "candle")
        .collect();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0]["candle"]["closed"], false,
        "the close is not repeated"
    );
}

#[test]
fn market_streams_take_only_the_room_price_streams_leave() {
    let symbols: Vec<String> = (0..511).map(|i| format!("S{i}USDT")).collect();
    let list = symbols.join(",");
    let map: HashMap<&str, &str> = [
        ("SYMBOLS", list.as_str()),
        ("UPSTREAM_URL", "ws://127.0.0.1:1/stream"),
        ("MAX_SYMBOLS_PER_CONNECTION", "10"),
    ]
    .into_iter()
    .collect();
    let mut h = Hub::with_source(
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap(),
        Rc::new(Neutral),
    );
    h.start(0);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    let (c, _) = h.client_open(Wire::Json, None, 1);
    let sub = r#"{"action":"subscribe","channels":["trades:S1USDT","book:S1USDT","book:S2USDT"]}"#;
    let mut fx = h.client_says(c, sub, 2);
    fx.extend(h.timer(2));
    let added = params(&requests(&fx), "add");
    assert_eq!(
        added,
        ["book:S1USDT", "book:S2USDT"],
        "1,022 price streams leave room for two, in key order"
    );
}
