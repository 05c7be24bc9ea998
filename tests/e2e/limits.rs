//! Limits and security end to end: tokens, origins, every limit's code, flow control, caps
//! before content, connection bursts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;
use crate::*;

/// A service with small limits, a token and an origin list, on its own exchange.
struct Limits {
    /// Held so the exchange lives as long as the service that uses it.
    _ex: Exchange,
    svc: Service,
}

impl Limits {
    /// A WebSocket client that presents the token.
    fn ws(&self) -> Client {
        self.svc
            .ws_with(&format!("/ws?token={TOKEN}"), &[])
            .expect("an authorised client")
    }
}

const TOKEN: &str = "s3cret-token";

fn limits_service() -> Limits {
    let ex = Exchange::start(&["--rate", "40"]);
    let svc = Service::start(
        "limits",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
            ("MAX_CONNECTIONS", "3"),
            ("MAX_SYMBOLS_PER_CONNECTION", "2"),
            ("CLIENT_MESSAGES_PER_SECOND", "5"),
            ("AUTH_TOKEN", TOKEN),
            ("ALLOWED_ORIGINS", ALLOWED_ORIGIN),
        ],
    );
    wait_connected(&svc);
    Limits { _ex: ex, svc }
}

pub fn tokens_and_origins_guard_the_streams(_ctx: &mut Ctx) {
    let l = limits_service();
    let svc = &l.svc;
    let token_q = format!("/ws?token={TOKEN}");
    assert_eq!(svc.ws_with("/ws", &[]).err(), Some(401), "no token");
    assert_eq!(
        svc.ws_with("/ws?token=wrong", &[]).err(),
        Some(401),
        "wrong token"
    );
    let bearer = format!("Bearer {TOKEN}");
    let mut by_header = svc
        .ws_with("/ws", &[("Authorization", &bearer)])
        .expect("Bearer token");
    subscribe(&mut by_header, &["BTCUSDT"], 1);
    by_header.wait_for("prices with a Bearer token", T, is_prices);
    let mut by_query = svc
        .ws_with(&token_q, &[("Origin", ALLOWED_ORIGIN)])
        .expect("?token= and a listed origin");
    subscribe(&mut by_query, &["ETHUSDT"], 1);
    by_query.wait_for("prices with ?token=", T, is_prices);
    assert_eq!(
        svc.ws_with(&token_q, &[("Origin", "https://evil.example")])
            .err(),
        Some(403),
        "origin refused"
    );
    let refused = svc
        .sse("/api/stream?symbols=BTCUSDT", &[])
        .err()
        .expect("no token");
    assert_eq!(
        (refused.status, refused.json()["error"].as_str()),
        (401, Some("UNAUTHORIZED"))
    );
    let sse_evil = svc
        .sse(
            &format!("/api/stream?symbols=BTCUSDT&token={TOKEN}"),
            &[("Origin", "https://evil.example")],
        )
        .err()
        .expect("origin refused");
    assert_eq!(
        (sse_evil.status, sse_evil.json()["error"].as_str()),
        (403, Some("ORIGIN_NOT_ALLOWED"))
    );
    let mut sse = svc
        .sse(
            &format!("/api/stream?symbols=BTCUSDT&token={TOKEN}"),
            &[("Origin", ALLOWED_ORIGIN)],
        )
        .expect("token and origin");
    assert_eq!(sse.header("access-control-allow-origin"), ALLOWED_ORIGIN);
    sse.wait_for("snapshot", T);
    assert_eq!(
        get(&svc.url("/api/prices")).status,
        200,
        "REST needs no token"
    );
    let m = get(&svc.url("/metrics")).body;
    assert!(metric(&m, "edgetick_edge_refused_total{reason=\"unauthorized\"} ") >= 3.0);
    assert!(metric(&m, "edgetick_edge_refused_total{reason=\"origin\"} ") >= 2.0);
    let log = std::fs::read_to_string(
        support::log_dir().join(format!("wrangler-limits-{}.log", svc.port)),
    )
    .unwrap_or_default();
    assert!(!log.contains(TOKEN), "the token must never be logged");
    // Both authorised clients kept receiving throughout.
    by_header.wait_for("more prices", T, is_prices);
    by_query.wait_for("more prices", T, is_prices);
    drop(l);
}

pub fn every_limit_has_its_code_and_spares_a_bystander(_ctx: &mut Ctx) {
    let l = limits_service();
    let svc = &l.svc;
    let mut bystander = l.ws();
    subscribe(&mut bystander, &["BTCUSDT"], 1);
    let mut last = next_price_of(&mut bystander, "BTCUSDT", 0, T);
    // MAX_SYMBOLS_PER_CONNECTION = 2
    let mut greedy = l.ws();
    greedy.send_json(
        json!({"action": "subscribe", "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"], "id": 1}),
    );
    let e = greedy.next_json(T);
    assert_eq!(
        (e["code"].as_str(), e["id"].as_i64()),
        (Some("TOO_MANY_SYMBOLS"), Some(1))
    );
    let sse = svc
        .sse(
            &format!("/api/stream?symbols=BTCUSDT,ETHUSDT,SOLUSDT&token={TOKEN}"),
            &[],
        )
        .err()
        .unwrap();
    assert_eq!(
        (sse.status, sse.json()["error"].as_str()),
        (400, Some("TOO_MANY_SYMBOLS"))
    );
    // CLIENT_MESSAGES_PER_SECOND = 5: RATE_LIMITED, then 4008 when it persists.
    for i in 0..40 {
        greedy.send_json(json!({"action": "ping", "id": i}));
    }
    let (limited, _) = greedy.wait_for("RATE_LIMITED", T, |v| v["code"] == "RATE_LIMITED");
    assert_eq!(limited["type"], "error");
    assert_eq!(greedy.wait_closed(T), 4008);
    last = next_price_of(&mut bystander, "BTCUSDT", last, T);
    // MAX_FRAME_BYTES = 4096: 1009.
    let mut big = l.ws();
    big.send_text(&format!(
        r#"{{"action":"list","pad":"{}"}}"#,
        "x".repeat(5000)
    ));
    assert_eq!(big.wait_closed(T), 1009);
    // Binary frames: BAD_REQUEST, connection kept.
    let mut bin = l.ws();
    bin.send_binary(vec![0, 1, 2]);
    assert_eq!(bin.next_json(T)["code"], "BAD_REQUEST");
    // MAX_CONNECTIONS = 3: bystander + bin + one more; the next gets 4290 / 503.
    wait_until("closed clients to be forgotten", T, || {
        let h = health(svc);
        (h["clients"]["websocket"].as_u64() == Some(2)).then_some(())
    });
    let third = l.ws();
    let mut fourth = svc
        .ws_with(&format!("/ws?token={TOKEN}"), &[])
        .expect("the upgrade itself succeeds");
    assert_eq!(fourth.wait_closed(T), 4290, "at capacity");
    let full = svc
        .sse(&format!("/api/stream?symbols=BTCUSDT&token={TOKEN}"), &[])
        .err()
        .unwrap();
    assert_eq!(
        (full.status, full.json()["error"].as_str()),
        (503, Some("AT_CAPACITY"))
    );
    assert!(full.retry_after.is_some());
    next_price_of(&mut bystander, "BTCUSDT", last, T);
    assert_eq!(bystander.closed, None);
    let m = get(&svc.url("/metrics")).body;
    assert!(
        metric(
            &m,
            "edgetick_clients_closed_total{reason=\"rate_limited\"} "
        ) >= 1.0
    );
    assert!(metric(&m, "edgetick_rate_limited_messages_total ") >= 1.0);
    assert!(
        metric(
            &m,
            "edgetick_clients_refused_total{reason=\"at_capacity\"} "
        ) >= 2.0
    );
    drop((third, bin, big));
    drop(l);
}

pub fn a_websocket_client_that_stops_acking_is_warned_then_closed_4009(_ctx: &mut Ctx) {
    let l = limits_service();
    let svc = &l.svc;
    let mut bystander = l.ws();
    subscribe(&mut bystander, &["BTCUSDT"], 1);
    let mut slow = l.ws();
    subscribe(&mut slow, &["BTCUSDT", "ETHUSDT"], 1);
    slow.send_json(json!({"action": "ack", "seq": 0}));
    l._ex.control("rate?value=2000");
    // It reads, but never acknowledges again: to the server it is a reader that fell behind.
    let t0 = Instant::now();
    let mut bytes = 0usize;
    let (warning, _) = slow.wait_for("SLOW_CONSUMER", Duration::from_secs(40), |v| {
        bytes += v.to_string().len();
        v["type"] == "warning"
    });
    assert_eq!(warning["code"], "SLOW_CONSUMER");
    eprintln!("    warned after {bytes} bytes and {:?}", t0.elapsed());
    assert!(bytes >= 1 << 20, "held only past the 1 MiB window: {bytes}");
    let mut last = next_price_of(&mut bystander, "BTCUSDT", 0, T);
    assert_eq!(slow.wait_closed(Duration::from_secs(40)), 4009);
    eprintln!("    closed 4009 after {:?}", t0.elapsed());
    last = next_price_of(&mut bystander, "BTCUSDT", last, T);
    assert!(last > 0);
    l._ex.control("rate?value=40");
    let m = get(&svc.url("/metrics")).body;
    assert!(metric(&m, "edgetick_slow_consumers_total ") >= 1.0);
    assert!(
        metric(
            &m,
            "edgetick_clients_closed_total{reason=\"slow_consumer\"} "
        ) >= 1.0
    );
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
