//! Market channels end to end, through two fan-out shards: trades in order with no gap in
//! their aggregate ids, a candle that updates and closes once, a book of ten levels a side,
//! SSE named events, and the upstream following what clients hold within Binance's request
//! budget.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;
use crate::*;

fn market_service() -> (Exchange, Service) {
    let ex = Exchange::start(&["--rate", "60"]);
    let svc = Service::start(
        "market",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT"),
            ("FANOUT_SHARDS", "2"),
        ],
    );
    wait_connected(&svc);
    (ex, svc)
}

fn subscribe_to(c: &mut Client, channels: &[&str]) -> Value {
    c.send_json(json!({"action": "subscribe", "channels": channels, "id": 1}));
    let (ack, _) = c.wait_for("subscribed", T, |v| v["type"] == "subscribed");
    ack
}

fn of_type(c: &mut Client, kind: &str) -> Value {
    c.wait_for(kind, T, |v| v["type"] == kind).0
}

/// The exchange's subscribed streams (its one connection's).
fn upstream_streams(ex: &Exchange) -> Vec<String> {
    let s = ex.state();
    s["conns"][0]["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn trades_arrive_in_order_with_no_gap_and_the_book_has_ten_levels(_ctx: &mut Ctx) {
    let (ex, svc) = market_service();
    let mut c = svc.ws();
    let ack = subscribe_to(&mut c, &["trades:btc-usdt", "book:BTCUSDT"]);
    assert_eq!(ack["channels"], json!(["trades:BTCUSDT", "book:BTCUSDT"]));
    let mut ids: Vec<u64> = Vec::new();
    while ids.len() < 30 {
        let f = of_type(&mut c, "trades");
        assert_eq!(f["channel"], "trades:BTCUSDT");
        for t in f["trades"].as_array().cloned().unwrap_or_default() {
            assert!(
                t["price"].is_string() && t["qty"].is_string(),
                "decimal strings: {t}"
            );
            assert!(t["side"] == "buy" || t["side"] == "sell");
            ids.push(t["id"].as_u64().unwrap_or(0));
        }
    }
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gap: {ids:?}"
    );
    let book = of_type(&mut c, "book");
    let side = |k: &str| -> Vec<f64> {
        book[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l[0].as_str().unwrap().parse::<f64>().unwrap())
            .collect()
    };
    let (bids, asks) = (side("bids"), side("asks"));
    assert_eq!((bids.len(), asks.len()), (10, 10), "{book}");
    assert!(bids.windows(2).all(|w| w[0] > w[1]) && asks.windows(2).all(|w| w[0] < w[1]));
    assert!(bids[0] < asks[0], "the book is not crossed");
    // A late subscriber gets the book at once, from the shard's own state.
    let mut late = svc.ws();
    late.send_json(json!({"action": "subscribe", "channels": ["book:BTCUSDT"]}));
    let (_, early) = late.wait_for("the book's state", T, |v| v["type"] == "book");
    assert!(early.iter().any(|v| v["type"] == "subscribed"));
    drop(ex);
}

pub fn a_candle_updates_and_its_close_arrives_once(_ctx: &mut Ctx) {
    let (ex, svc) = market_service();
    let mut c = svc.ws();
    subscribe_to(&mut c, &["candles:BTCUSDT:1m"]);
    let first = of_type(&mut c, "candle");
    assert_eq!(first["channel"], "candles:BTCUSDT:1m");
    let t0 = first["candle"]["t"].as_i64().unwrap_or(0);
    let (second, _) = c.wait_for("the open candle to move", T, |v| {
        v["type"] == "candle" && v["candle"]["closed"] == false && v["candle"]["c"].is_string()
    });
    assert_eq!(second["candle"]["t"].as_i64(), Some(t0));
    ex.control("candle-close?symbol=BTCUSDT");
    let (closed, _) = c.wait_for("the close", T, |v| {
        v["type"] == "candle" && v["candle"]["closed"] == true
    });
    let closed_t = closed["candle"]["t"].as_i64();
    let (next, _) = c.wait_for("the next candle", T, |v| {
        v["type"] == "candle" && v["candle"]["t"].as_i64() != closed_t
    });
    assert_eq!(next["candle"]["closed"], false);
    // Further updates never repeat the close.
    let mut after = Vec::new();
    while after.len() < 5 {
        let f = of_type(&mut c, "candle");
        after.push(f["candle"]["closed"] == true && f["candle"]["t"].as_i64() == closed_t);
    }
    assert!(!after.contains(&true), "the close arrived once");
}

pub fn market_channels_stream_over_sse_and_the_upstream_follows_them(_ctx: &mut Ctx) {
    let (ex, svc) = market_service();
    let mut sse = svc
        .sse("/api/stream?channels=book:ETHUSDT,trades:ETHUSDT", &[])
        .expect("an SSE stream of market channels");
    sse.wait_for("subscribed", T);
    let book = sse.wait_for("book", T).json();
    assert_eq!(book["channel"], "book:ETHUSDT");
    let trades = sse.wait_for("trades", T).json();
    assert_eq!(trades["channel"], "trades:ETHUSDT");
    wait_until("the upstream to carry ETHUSDT's trades", T, || {
        upstream_streams(&ex)
            .contains(&"ethusdt@aggTrade".to_string())
            .then_some(())
    });
    drop(sse);
    wait_until(
        "ETHUSDT's market streams unsubscribed upstream",
        Duration::from_secs(15),
        || {
            let s = upstream_streams(&ex);
            (!s.is_empty()
                && !s
                    .iter()
                    .any(|x| x.contains("aggTrade") || x.contains("depth")))
            .then_some(())
        },
    );
    let state = ex.state();
    let times: Vec<i64> = state["stats"]["requests"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["at_ms"].as_i64()).collect())
        .unwrap_or_default();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] >= 200),
        "at most 5 requests a second: {times:?}"
    );
    assert_eq!(state["connections"], 1, "never cut for too many requests");
}
