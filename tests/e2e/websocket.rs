//! The WebSocket protocol end to end: subscribe, snapshot, live prices, errors, 1009.

use serde_json::json;

use crate::support::*;
use crate::*;

pub fn subscribe_gets_subscribed_then_snapshot_then_live_prices(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    wait_until("BTCUSDT cached", T, || {
        (get(&ctx.svc.url("/api/prices/BTCUSDT")).status == 200).then_some(())
    });
    let mut c = ctx.svc.ws();
    let (ack, snap) = subscribe(&mut c, &["btcusdt", "ETH/USDT"], 1);
    assert_eq!(
        ack,
        json!({"type": "subscribed", "symbols": ["BTCUSDT", "ETHUSDT"], "id": 1})
    );
    assert_eq!(snap["type"], "snapshot");
    let snap_prices = prices_of(&snap);
    assert!(snap_prices.iter().any(|(s, _)| s == "BTCUSDT"), "{snap}");
    let max_seq = snap_prices.iter().map(|(_, q)| *q).max().unwrap_or(0);
    let (live, _) = c.wait_for("a live prices frame", T, is_prices);
    for (symbol, seq) in prices_of(&live) {
        assert!(symbol == "BTCUSDT" || symbol == "ETHUSDT", "{symbol}");
        assert!(seq > max_seq, "live seq {seq} not above snapshot {max_seq}");
    }
    let p = &live["prices"][0];
    for field in [
        "price",
        "open",
        "high",
        "low",
        "volume",
        "quote_volume",
        "change_pct",
        "bid",
        "ask",
    ] {
        assert!(
            p[field].is_string(),
            "{field} should be a decimal string: {p}"
        );
    }
    assert!(p["event_time"].is_i64() && p["received_at"].is_i64());
}

pub fn clients_get_only_their_symbols(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let mut a = ctx.svc.ws();
    let mut b = ctx.svc.ws();
    subscribe(&mut a, &["BTCUSDT"], 1);
    subscribe(&mut b, &["SOL-USDT"], 1);
    for (client, want) in [(&mut a, "BTCUSDT"), (&mut b, "SOLUSDT")] {
        let mut seen = 0;
        let deadline = Instant::now() + T;
        while seen < 3 {
            assert!(Instant::now() < deadline, "fewer than 3 updates of {want}");
            let (f, _) = client.wait_for("prices", T, is_prices);
            for (symbol, _) in prices_of(&f) {
                assert_eq!(
                    symbol, want,
                    "a client received a symbol it did not subscribe to"
                );
            }
            seen += 1;
        }
    }
}

pub fn bad_frames_get_errors_and_the_connection_keeps_working(ctx: &mut Ctx) {
    let mut c = ctx.svc.ws();
    c.send_json(json!({"action": "subscribe", "symbols": ["DOGEUSDT"], "id": 5}));
    let e = c.next_json(T);
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str(), e["id"].as_i64()),
        (Some("error"), Some("UNKNOWN_SYMBOL"), Some(5))
    );
    c.send_text("{not json");
    assert_eq!(c.next_json(T)["code"], "BAD_JSON");
    c.send_json(json!({"action": "dance", "id": 6}));
    let e = c.next_json(T);
    assert_eq!(
        (e["code"].as_str(), e["id"].as_i64()),
        (Some("UNKNOWN_ACTION"), Some(6))
    );
    c.send_binary(vec![1, 2, 3]);
    assert_eq!(c.next_json(T)["code"], "BAD_REQUEST");
    c.send_json(json!({"action": "list", "id": 7}));
    assert_eq!(
        c.next_json(T),
        json!({"type": "subscriptions", "symbols": [], "channels": [], "id": 7})
    );
    c.send_json(json!({"action": "ping", "id": 8}));
    let pong = c.next_json(T);
    assert_eq!(
        (pong["type"].as_str(), pong["id"].as_i64()),
        (Some("pong"), Some(8))
    );
    assert!(pong["ts"].as_i64().is_some());
    c.send_text("ping");
    assert_eq!(
        c.next(T),
        Some(Frame::Text("pong".into())),
        "bare ping is auto-answered"
    );
    let (ack, _) = subscribe(&mut c, &["BTC-USDT"], 9);
    assert_eq!(ack["symbols"], json!(["BTCUSDT"]));
    c.wait_for("prices after the errors", T, is_prices);
    assert_eq!(c.closed, None);
}

pub fn oversized_frame_closes_1009_and_a_bystander_keeps_receiving(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let mut bystander = ctx.svc.ws();
    subscribe(&mut bystander, &["BTCUSDT"], 1);
    let mut c = ctx.svc.ws();
    c.send_text(&format!(
        r#"{{"action":"list","pad":"{}"}}"#,
        "x".repeat(5000)
    ));
    assert_eq!(c.wait_closed(T), 1009);
    bystander.wait_for("prices at the bystander", T, is_prices);
    let (f, _) = bystander.wait_for("more prices at the bystander", T, is_prices);
    assert_eq!(prices_of(&f)[0].0, "BTCUSDT");
}
