//! The heat map end to end, through two fan-out shards: a `heatmap:` subscriber on the JSON
//! WebSocket gets a map at once, a reader of the SSE stream and a Socket.IO client get the
//! same map as soon as they join; while open interest and the price hold still the leader
//! keeps polling (the fake counts the requests) and sends nothing; a change reaches every wire.

use std::time::Duration;

use serde_json::{json, Value};

use crate::socketio::SioClient;
use crate::support::*;
use crate::*;

fn polls(ex: &Exchange) -> u64 {
    ex.state()["stats"]["open_interest_requests"]
        .as_u64()
        .unwrap_or(0)
}

fn is_map(v: &Value) -> bool {
    v["type"] == "heatmap" && v["channel"] == "heatmap:BTCUSDT"
}

pub fn heatmap_subscribers_get_a_map_at_once_and_updates_only_on_change(_ctx: &mut Ctx) {
    let ex = Exchange::start(&["--rate", "20"]);
    let svc = Service::start(
        "heatmap",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT"),
            ("FANOUT_SHARDS", "2"),
            ("HEATMAP_INTERVAL_SECONDS", "1"),
        ],
    );
    wait_connected(&svc);
    // Everything held still: the price (one tick, then paused) and the open interest.
    ex.control("pause?on=1");
    ex.control("tick?symbol=BTCUSDT");
    ex.control("open-interest?symbol=BTCUSDT&value=1000");
    let price = ex.latest("BTCUSDT").unwrap();
    wait_until("the service to have the price", T, || {
        let v = get(&svc.url("/api/prices/BTCUSDT")).json();
        (v["price"] == price.as_str()).then_some(())
    });
    let mut ws = svc.ws();
    ws.send_json(json!({"action": "subscribe", "channels": ["heatmap:btc-usdt"], "id": 1}));
    ws.wait_for("subscribed", T, |v| v["type"] == "subscribed");
    let (first, _) = ws.wait_for("the first map", T, is_map);
    let data = &first["data"];
    assert_eq!(data["current_price"], price.as_str());
    let levels = data["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 41);
    assert!(levels
        .iter()
        .all(|l| l["price"].is_string() && l["long_density"].is_number()));
    assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
    // The other wires get it at once: it is the channel's state.
    let mut sse = svc
        .sse("/api/stream?channels=heatmap:BTCUSDT", &[])
        .expect("a stream");
    let got = sse.wait_for("heatmap", T).json();
    assert_eq!(got["data"], *data);
    let mut sio = SioClient::start(&svc, &["channel", "heatmap:BTCUSDT"]);
    let map = sio.wait("a heatmap event", |v| v["ev"] == "heatmap");
    assert_eq!(map["data"]["data"], *data);
    // Three polls with nothing changed: nothing sent.
    let asked = polls(&ex);
    wait_until("three more polls", Duration::from_secs(15), || {
        (polls(&ex) >= asked + 3).then_some(())
    });
    while let Some(f) = ws.next(Duration::from_millis(200)) {
        assert!(
            !matches!(&f, Frame::Json(v) if is_map(v)),
            "sent only on change: {f:?}"
        );
    }
    // Open interest rises and the price moves: a new map, on every wire.
    ex.control("open-interest?symbol=BTCUSDT&value=1100");
    ex.control("tick?symbol=BTCUSDT");
    let (next, _) = ws.wait_for("the next map", T, |v| {
        is_map(v) && v["data"]["positions_created"] == "100"
    });
    assert_ne!(next["data"], *data);
    let got = loop {
        let e = sse.wait_for("heatmap", T).json();
        if e["data"]["positions_created"] == "100" {
            break e;
        }
    };
    assert_eq!(got["data"], next["data"]);
    sio.wait("the next heatmap event", |v| {
        v["ev"] == "heatmap" && v["data"]["data"]["positions_created"] == "100"
    });
}
