//! Scenarios of the platform-floor work: a silent upstream noticed in seconds with the
//! default configuration, caps judged before content, a connection burst that leaves a
//! connected client's prices and pings flowing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{wait_until, Frame};
use crate::{health, is_prices, next_price_of, prices_of, subscribe, Ctx, T};

/// The main service runs with the default `UPSTREAM_WATCHDOG_SECONDS`: its ticker streams
/// promise a frame a second, so a stream that goes silent without closing is replaced within
/// seconds, not after the 30 s ceiling.
pub fn a_silent_upstream_is_replaced_within_10_s_by_default(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let mut c = ctx.svc.ws();
    subscribe(&mut c, &["BTCUSDT"], 1);
    next_price_of(&mut c, "BTCUSDT", 0, T);
    let before = health(&ctx.svc)["upstream"]["last_failure"]["at"].clone();
    let t0 = Instant::now();
    assert_eq!(ctx.ex.control("stall")["connections"], 1);
    let h = wait_until(
        "the default watchdog to replace the silent connection",
        Duration::from_secs(10),
        || {
            let h = health(&ctx.svc);
            let u = &h["upstream"];
            (u["last_failure"]["at"] != before
                && u["last_failure"]["kind"] == "silent"
                && u["state"] == "connected")
                .then_some(h)
        },
    );
    eprintln!("    silent upstream replaced after {:?}", t0.elapsed());
    let seq = h["seq"].as_u64().unwrap_or(0);
    next_price_of(&mut c, "BTCUSDT", seq, T);
}

/// A request over the symbol cap is refused for its size, whatever the names in it.
pub fn caps_are_checked_before_symbols(ctx: &mut Ctx) {
    let unknown: Vec<String> = (0..101).map(|i| format!("NOPE{i}USDT")).collect();
    let mut c = ctx.svc.ws();
    c.send_json(json!({"action": "subscribe", "symbols": unknown, "id": 5}));
    let e = c.next_json(T);
    assert_eq!(e["code"], "TOO_MANY_SYMBOLS", "{e}");
    assert_eq!(e["id"], 5);
    // The connection stays usable.
    let (ack, _) = subscribe(&mut c, &["BTCUSDT"], 6);
    assert_eq!(ack["type"], "subscribed");
    let query = unknown.join(",");
    let refused = ctx
        .svc
        .sse(&format!("/api/stream?symbols={query}"), &[])
        .err()
        .expect("an SSE stream over the cap is refused");
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error"], "TOO_MANY_SYMBOLS");
}

/// Opens one connection, subscribes to `symbol` and returns the socket once its snapshot
/// arrived (or `None`).
fn admitted(
    port: u16,
    symbol: &str,
) -> Option<tungstenite::WebSocket<impl std::io::Read + std::io::Write>> {
    let (mut ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}/ws")).ok()?;
    let sub = json!({"action": "subscribe", "symbols": [symbol]}).to_string();
    ws.send(tungstenite::Message::text(sub)).ok()?;
    loop {
        let msg = ws.read().ok()?;
        if msg
            .to_text()
            .is_ok_and(|t| t.starts_with("{\"type\":\"snapshot\""))
        {
            return Some(ws);
        }
    }
}

/// A few hundred connections opened at once are admitted while an already connected client
/// keeps getting prices and answers to its pings.
pub fn a_burst_of_connections_leaves_a_connected_client_flowing(ctx: &mut Ctx) {
    const BURST: usize = 300;
    ctx.ex.control("pause?on=0");
    let mut watcher = ctx.svc.ws();
    subscribe(
        &mut watcher,
        &["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"],
        1,
    );
    let mut last = next_price_of(&mut watcher, "BTCUSDT", 0, T);
    let port = ctx.svc.port;
    let done = AtomicUsize::new(0);
    let in_count = AtomicUsize::new(0);
    let (mut prices_during, mut pongs_during) = (0, 0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..BURST)
            .map(|i| {
                let (done, in_count) = (&done, &in_count);
                s.spawn(move || {
                    let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"];
                    let ws = admitted(port, symbols[i % symbols.len()]);
                    if ws.is_some() {
                        in_count.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    ws
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut ping_in_flight = false;
        let mut id = 100;
        while done.load(Ordering::Relaxed) < BURST && Instant::now() < deadline {
            if !ping_in_flight {
                id += 1;
                watcher.send_json(json!({"action": "ping", "id": id}));
                ping_in_flight = true;
            }
            match watcher.next(Duration::from_millis(200)) {
                Some(Frame::Json(v)) if is_prices(&v) => {
                    let newest = prices_of(&v).iter().map(|(_, q)| *q).max().unwrap_or(0);
                    if newest > last {
                        last = newest;
                        prices_during += 1;
                    }
                }
                Some(Frame::Json(v)) if v["type"] == "pong" && v["id"] == id => {
                    pongs_during += 1;
                    ping_in_flight = false;
                }
                _ => {}
            }
        }
        let sockets: Vec<_> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
        drop(sockets);
    });
    eprintln!(
        "    burst of {BURST}: {} admitted; meanwhile the watcher got {prices_during} price frames and {pongs_during} pongs",
        in_count.load(Ordering::Relaxed)
    );
    assert_eq!(
        in_count.load(Ordering::Relaxed),
        BURST,
        "every connection admitted"
    );
    assert!(prices_during > 0, "prices kept flowing during the burst");
    assert!(pongs_during > 0, "pings were answered during the burst");
    let (f, _): (Value, _) = watcher.wait_for("prices after the burst", T, is_prices);
    assert!(prices_of(&f).iter().all(|(_, q)| *q > 0));
}
