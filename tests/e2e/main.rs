//! End-to-end tests: the built worker under real `wrangler dev`, the fake exchange as a real
//! process, real WebSocket and HTTP clients. One exchange and one service are shared by the
//! scenarios, which run in order; each scenario sets up the state it needs.
//!
//! Run with `make test` (or `make e2e` after `make build`). `cargo test --features e2e
//! --test e2e -- NAME...` runs the scenarios whose name contains any NAME.

// A panic here is a failed test, not a failed service.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod floor;
mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{get, request, wait_until, Client, Exchange, Frame, Service};

const SYMBOLS: &str = "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT";
const T: Duration = Duration::from_secs(10);
/// The one browser origin the main service allows.
const ALLOWED_ORIGIN: &str = "https://app.example";

/// An exchange with the service that uses it.
struct Pair {
    ex: Exchange,
    svc: Service,
}

struct Ctx {
    ex: Exchange,
    svc: Service,
    /// Fault scenarios: a 3 s watchdog, its own exchange.
    res: Option<Pair>,
    /// On-demand scenarios: its own exchange, a 2 s idle close.
    od: Option<Pair>,
}

impl Ctx {
    fn resilience(&mut self) -> &mut Pair {
        self.res.get_or_insert_with(|| {
            let ex = Exchange::start(&[
                "--rate",
                "40",
                "--ping-interval-ms",
                "1000",
                "--pong-timeout-ms",
                "4000",
            ]);
            let svc = Service::start(
                "resilience",
                &[
                    ("UPSTREAM_URL", &ex.stream_url()),
                    ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
                    ("UPSTREAM_WATCHDOG_SECONDS", "3"),
                ],
            );
            wait_connected(&svc);
            Pair { ex, svc }
        })
    }

    fn on_demand(&mut self) -> &mut Pair {
        self.od.get_or_insert_with(|| {
            let ex = Exchange::start(&["--rate", "40"]);
            let svc = Service::start(
                "on-demand",
                &[
                    ("UPSTREAM_URL", &ex.stream_url()),
                    ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT"),
                    ("UPSTREAM_MODE", "on-demand"),
                    ("UPSTREAM_IDLE_CLOSE_SECONDS", "2"),
                ],
            );
            Pair { ex, svc }
        })
    }
}

fn health(svc: &Service) -> Value {
    get(&svc.url("/health")).json()
}

/// Reads prices frames until one carries `symbol` with a seq above `after`.
fn next_price_of(c: &mut Client, symbol: &str, after: u64, timeout: Duration) -> u64 {
    let (f, _) = c.wait_for(&format!("{symbol} above seq {after}"), timeout, |v| {
        is_prices(v) && prices_of(v).iter().any(|(s, q)| s == symbol && *q > after)
    });
    prices_of(&f)
        .into_iter()
        .find(|(s, _)| s == symbol)
        .map_or(0, |(_, q)| q)
}

fn prices_of(frame: &Value) -> Vec<(String, u64)> {
    frame["prices"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["symbol"].as_str().unwrap_or_default().to_string(),
                        p["seq"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_prices(v: &Value) -> bool {
    v["type"] == "prices"
}

fn subscribe(c: &mut Client, symbols: &[&str], id: i64) -> (Value, Value) {
    c.send_json(json!({"action": "subscribe", "symbols": symbols, "id": id}));
    let ack = c.next_json(T);
    let snap = c.next_json(T);
    (ack, snap)
}

fn wait_connected(svc: &Service) -> Value {
    wait_until(
        "/health to report the upstream connected",
        Duration::from_secs(20),
        || {
            let r = request("GET", &svc.url("/health")).ok()?;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            (v["upstream"]["state"] == "connected").then_some(v)
        },
    )
}

// ----- scenarios ---------------------------------------------------------------------------

fn no_data_yet_is_503_with_retry_after(ctx: &mut Ctx) {
    // The exchange starts paused, so the hub is connected but has no price yet.
    wait_connected(&ctx.svc);
    let r = get(&ctx.svc.url("/api/prices/BTCUSDT"));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "NO_DATA");
    assert!(r.retry_after.is_some(), "Retry-After header missing");
    let all = get(&ctx.svc.url("/api/prices")).json();
    assert_eq!(all["prices"], json!([]));
    ctx.ex.control("pause?on=0");
}

fn health_shows_upstream_connected(ctx: &mut Ctx) {
    wait_connected(&ctx.svc);
    let h = wait_until("a healthy status with fresh symbols", T, || {
        let v = get(&ctx.svc.url("/health")).json();
        (v["status"] == "healthy" && v["symbols"]["fresh"].as_u64() >= Some(1)).then_some(v)
    });
    assert_eq!(h["upstream"]["circuit_breaker"]["state"], "closed");
    assert!(h["upstream"]["connected_since"].as_i64().is_some());
    assert!(h["upstream"]["last_message_age_ms"].as_i64().is_some());
    assert_eq!(
        ctx.ex.state()["connections"],
        1,
        "exactly one upstream connection"
    );
}

fn subscribe_gets_subscribed_then_snapshot_then_live_prices(ctx: &mut Ctx) {
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

fn clients_get_only_their_symbols(ctx: &mut Ctx) {
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

fn bad_frames_get_errors_and_the_connection_keeps_working(ctx: &mut Ctx) {
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
        json!({"type": "subscriptions", "symbols": [], "id": 7})
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

fn oversized_frame_closes_1009_and_a_bystander_keeps_receiving(ctx: &mut Ctx) {
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

fn rest_price_equals_the_exchange_latest(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    ctx.ex.control("tick?symbol=BTCUSDT");
    let want = ctx
        .ex
        .latest("BTCUSDT")
        .expect("exchange has a BTCUSDT price");
    let got = wait_until("the hub to hold the exchange's latest BTCUSDT", T, || {
        let r = get(&ctx.svc.url("/api/prices/BTC-USDT"));
        let v = r.json();
        (v["price"] == want.as_str()).then_some(v)
    });
    assert_eq!(got["symbol"], "BTCUSDT");
    assert!(got["age_ms"].as_i64().is_some());
    assert!(["fresh", "acceptable"].contains(&got["freshness"].as_str().unwrap_or("")));
    for alias in ["btcusdt", "BTC%2FUSDT", "BTCUSDT"] {
        assert_eq!(
            get(&ctx.svc.url(&format!("/api/prices/{alias}"))).json()["price"],
            want.as_str(),
            "{alias}"
        );
    }
    let list = get(&ctx.svc.url("/api/prices?symbols=btc-usdt,ETHUSDT")).json();
    assert!(list["prices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["price"] == want.as_str()));
    ctx.ex.control("pause?on=0");
}

fn rest_errors_are_json_and_leak_nothing(ctx: &mut Ctx) {
    let cases = [
        ("GET", "/api/prices/DOGEUSDT", 404, "UNKNOWN_SYMBOL"),
        (
            "GET",
            "/api/prices?symbols=%3Cscript%3E",
            400,
            "BAD_REQUEST",
        ),
        ("GET", "/api/prices?symbols=DOGEUSDT", 404, "UNKNOWN_SYMBOL"),
        ("GET", "/ws", 426, "UPGRADE_REQUIRED"),
        ("POST", "/health", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/nope", 404, "NOT_FOUND"),
        ("GET", "/api/prices?symbol=BTCUSDT", 400, "BAD_REQUEST"),
        ("GET", "/api/prices/BTCUSDT?x=1", 400, "BAD_REQUEST"),
    ];
    for (method, path, status, code) in cases {
        let r = request(method, &ctx.svc.url(path)).expect("reachable");
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        assert!(
            r.content_type.starts_with("application/json"),
            "{path}: {}",
            r.content_type
        );
        let v = r.json();
        assert_eq!(v["error"], code, "{path}");
        assert!(v["message"].is_string());
        assert!(
            !r.body.contains("at ") && !r.body.contains(".rs"),
            "internal detail leaked: {}",
            r.body
        );
    }
    let page = get(&ctx.svc.url("/"));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>edgetick</title>"));
}

fn exchange_pings_are_answered(ctx: &mut Ctx) {
    let before = ctx.ex.state()["stats"]["pongs"].as_u64().unwrap_or(0);
    wait_until("two more pongs at the exchange", T, || {
        let s = ctx.ex.state();
        (s["stats"]["pongs"].as_u64().unwrap_or(0) >= before + 2).then_some(())
    });
    assert_eq!(ctx.ex.state()["stats"]["pong_timeouts"], 0);
}

fn hub_reconnects_after_the_exchange_restarts(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let mut c = ctx.svc.ws();
    subscribe(&mut c, &["ETHUSDT"], 1);
    let (f, _) = c.wait_for("prices before the outage", T, is_prices);
    let last = prices_of(&f)[0].1;
    ctx.ex.kill();
    let (s, _) = c.wait_for("status reconnecting", T, |v| v["type"] == "status");
    assert_eq!(s["upstream"], "reconnecting");
    let killed_at = Instant::now();
    ctx.ex.restart();
    c.wait_for("status connected", Duration::from_secs(30), |v| {
        v["type"] == "status" && v["upstream"] == "connected"
    });
    let (f, _) = c.wait_for("prices after the restart", T, is_prices);
    let seq = prices_of(&f)[0].1;
    assert!(seq > last, "seq went from {last} to {seq}");
    assert_eq!(c.closed, None, "the same client socket keeps working");
    eprintln!(
        "    recovered {:?} after the exchange came back",
        killed_at.elapsed()
    );
}

fn service_restart_serves_cached_prices_from_storage(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let before = wait_until("a cached BTCUSDT", T, || {
        let r = get(&ctx.svc.url("/api/prices/BTCUSDT"));
        (r.status == 200).then(|| r.json())
    });
    // Prices are written in batches, about once a second: wait until this one is stored.
    let seq = before["seq"].as_u64().unwrap_or(0);
    wait_until("the price to be written to storage", T, || {
        let saved = health(&ctx.svc)["storage"]["saved_seq"].as_u64()?;
        (saved >= seq).then_some(())
    });
    // Keep the exchange away so the restarted hub can only answer from storage.
    ctx.ex.kill();
    ctx.svc.restart();
    let r = get(&ctx.svc.url("/api/prices/BTCUSDT"));
    assert_eq!(r.status, 200, "{}", r.body);
    let after = r.json();
    assert!(
        after["seq"].as_u64() >= before["seq"].as_u64(),
        "{before} vs {after}"
    );
    assert!(after["price"].is_string());
    let h = get(&ctx.svc.url("/health")).json();
    assert_ne!(
        h["upstream"]["state"], "connected",
        "the exchange is down: {h}"
    );
    let restored_seq = get(&ctx.svc.url("/health")).json()["seq"]
        .as_u64()
        .unwrap_or(0);
    ctx.ex.restart();
    ctx.ex.control("pause?on=0");
    wait_connected(&ctx.svc);
    let mut c = ctx.svc.ws();
    subscribe(&mut c, &["BTCUSDT"], 1);
    let (f, _) = c.wait_for("prices after the service restart", T, is_prices);
    assert!(
        prices_of(&f)[0].1 > restored_seq,
        "seq continues above the restored high-water mark"
    );
}

// ----- upstream resilience (issue 3) ----------------------------------------------------

fn dropped_upstream_resumes_prices(ctx: &mut Ctx) {
    let p = ctx.resilience();
    let mut c = p.svc.ws();
    subscribe(&mut c, &["ETHUSDT"], 1);
    let last = next_price_of(&mut c, "ETHUSDT", 0, T);
    let t0 = Instant::now();
    p.ex.control("drop");
    let (s, _) = c.wait_for("status reconnecting", T, |v| v["type"] == "status");
    assert_eq!(s["upstream"], "reconnecting");
    c.wait_for("status connected", T, |v| {
        v["type"] == "status" && v["upstream"] == "connected"
    });
    next_price_of(&mut c, "ETHUSDT", last, T);
    eprintln!("    drop -> prices again after {:?}", t0.elapsed());
    assert_eq!(health(&p.svc)["upstream"]["last_failure"]["kind"], "closed");
}

fn stalled_upstream_is_replaced_by_the_watchdog(ctx: &mut Ctx) {
    let p = ctx.resilience();
    let mut c = p.svc.ws();
    subscribe(&mut c, &["SOLUSDT"], 1);
    next_price_of(&mut c, "SOLUSDT", 0, T);
    let attempts = p.ex.state()["stats"]["attempts"].as_u64().unwrap_or(0);
    let before = health(&p.svc)["upstream"]["last_failure"]["at"].clone();
    let t0 = Instant::now();
    let stalled = p.ex.control("stall");
    assert_eq!(stalled["connections"], 1);
    // Watchdog (3 s) + backoff + connect: well inside 15 s.
    let h = wait_until(
        "the watchdog to replace the silent connection",
        Duration::from_secs(15),
        || {
            let h = health(&p.svc);
            let u = &h["upstream"];
            (u["last_failure"]["at"] != before
                && u["last_failure"]["kind"] == "silent"
                && u["state"] == "connected")
                .then_some(h)
        },
    );
    let replaced = t0.elapsed();
    let seq = h["seq"].as_u64().unwrap_or(0);
    next_price_of(&mut c, "SOLUSDT", seq, T);
    eprintln!(
        "    stall -> replaced after {replaced:?}, prices again after {:?}",
        t0.elapsed()
    );
    let s = p.ex.state();
    assert!(
        s["stats"]["attempts"].as_u64().unwrap_or(0) > attempts,
        "a new connection was made"
    );
    assert_eq!(
        s["connections"], 1,
        "the silent connection was closed, not leaked"
    );
}

fn garbage_frames_leave_other_symbols_flowing(ctx: &mut Ctx) {
    let p = ctx.resilience();
    let mut c = p.svc.ws();
    subscribe(&mut c, &["ETHUSDT"], 1);
    let mut last = next_price_of(&mut c, "ETHUSDT", 0, T);
    let before = health(&p.svc)["upstream"].clone();
    p.ex.control("garbage?count=5");
    for _ in 0..3 {
        last = next_price_of(&mut c, "ETHUSDT", last, T);
    }
    let after = wait_until("five frame errors counted", T, || {
        let h = health(&p.svc);
        (h["upstream"]["frame_errors"].as_u64() >= before["frame_errors"].as_u64().map(|n| n + 5))
            .then_some(h)
    });
    assert_eq!(
        after["upstream"]["reconnects"], before["reconnects"],
        "garbage does not cost the connection"
    );
    let btc = get(&p.svc.url("/api/prices/BTCUSDT")).json();
    let price = btc["price"].as_str().unwrap_or_default();
    assert!(
        !price.is_empty() && price.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
        "cache intact: {btc}"
    );
    assert_eq!(c.closed, None);
}

fn server_shutdown_rotates_without_gap_or_duplicate(ctx: &mut Ctx) {
    let p = ctx.resilience();
    let mut c = p.svc.ws();
    subscribe(&mut c, &["BTCUSDT", "ETHUSDT", "SOLUSDT"], 1);
    next_price_of(&mut c, "BTCUSDT", 0, T);
    let rotations = health(&p.svc)["upstream"]["rotations"]
        .as_u64()
        .unwrap_or(0);
    p.ex.control("reset");
    p.ex.control("shutdown?close_after_ms=2000");
    let mut last: std::collections::HashMap<String, u64> = Default::default();
    let mut max_gap = Duration::ZERO;
    let mut at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut switched = false;
    while Instant::now() < deadline {
        if let Some(Frame::Json(v)) = c.next(Duration::from_millis(500)) {
            assert_ne!(v["type"], "status", "clients see no state change: {v}");
            if is_prices(&v) {
                max_gap = max_gap.max(at.elapsed());
                at = Instant::now();
                for (symbol, seq) in prices_of(&v) {
                    let prev = last.insert(symbol.clone(), seq).unwrap_or(0);
                    assert!(
                        seq > prev,
                        "{symbol}: seq {seq} after {prev} (duplicate or reordered)"
                    );
                }
            }
        }
        if !switched && health(&p.svc)["upstream"]["rotations"].as_u64() > Some(rotations) {
            switched = true;
        }
        if switched && p.ex.state()["connections"] == 1 {
            break;
        }
    }
    assert!(switched, "no rotation within 15 s");
    let s = p.ex.state();
    assert_eq!(
        s["stats"]["peak_connections"], 2,
        "the replacement opened before the old one closed"
    );
    assert_eq!(s["connections"], 1);
    // Nothing lost: with the exchange paused, the client converges on its latest values.
    p.ex.control("pause?on=1");
    for symbol in ["BTCUSDT", "ETHUSDT", "SOLUSDT"] {
        p.ex.control(&format!("tick?symbol={symbol}"));
        let want = p.ex.latest(symbol).unwrap_or_default();
        c.wait_for(&format!("{symbol} at {want}"), T, |v| {
            is_prices(v)
                && v["prices"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|x| x["symbol"] == symbol && x["price"] == want.as_str())
                })
        });
    }
    p.ex.control("pause?on=0");
    eprintln!("    rotation: longest pause between price frames {max_gap:?}");
}

fn refusals_open_the_breaker_within_the_attempt_budget(ctx: &mut Ctx) {
    let p = ctx.resilience();
    let mut c = p.svc.ws();
    subscribe(&mut c, &["BTCUSDT"], 1);
    let last = next_price_of(&mut c, "BTCUSDT", 0, T);
    p.ex.control("reset");
    p.ex.control("refuse?status=429&seconds=60");
    let t0 = Instant::now();
    p.ex.control("drop");
    let h = wait_until("the breaker to open", Duration::from_secs(60), || {
        let h = health(&p.svc);
        (h["upstream"]["circuit_breaker"]["state"] == "open").then_some(h)
    });
    eprintln!("    breaker open after {:?}", t0.elapsed());
    assert_eq!(h["status"], "down", "the breaker is open: {h}");
    assert_eq!(h["upstream"]["state"], "down");
    assert_eq!(h["upstream"]["last_failure"]["kind"], "refused");
    assert_eq!(h["upstream"]["last_failure"]["status"], 429);
    c.wait_for("status down", T, |v| {
        v["type"] == "status" && v["upstream"] == "down"
    });
    // Recovery: the refusals end after 60 s; a half-open trial then succeeds.
    let recovered = next_price_of(&mut c, "BTCUSDT", last, Duration::from_secs(150));
    assert!(recovered > last);
    let s = p.ex.state();
    let times: Vec<i64> = s["stats"]["attempt_times_ms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    let first = times.first().copied().unwrap_or_default();
    let in_minute = times.iter().filter(|t| **t - first < 60_000).count();
    eprintln!(
        "    {in_minute} attempts in the refused minute, {} in all, recovered after {:?}",
        times.len(),
        t0.elapsed()
    );
    assert!(
        in_minute <= 8,
        "{in_minute} attempts in the minute of refusals: {times:?}"
    );
    // The drop is the first of the five failures that open the breaker; refusals are the rest.
    let refused = s["stats"]["refused"].as_u64().unwrap_or(0);
    assert!(
        (4..=in_minute as u64).contains(&refused),
        "{refused} refused of {in_minute}"
    );
    wait_until(
        "the breaker to close again",
        Duration::from_secs(30),
        || (health(&p.svc)["upstream"]["circuit_breaker"]["state"] == "closed").then_some(()),
    );
}

fn on_demand_subscribes_upstream_only_while_someone_listens(ctx: &mut Ctx) {
    let p = ctx.on_demand();
    let h = health(&p.svc);
    assert_eq!(h["upstream"]["state"], "idle", "{h}");
    assert_eq!(
        p.ex.state()["connections"],
        0,
        "nobody listens: no upstream"
    );
    let mut a = p.svc.ws();
    subscribe(&mut a, &["BTCUSDT"], 1);
    let streams = |ex: &Exchange| -> Option<Vec<String>> {
        let s = ex.state();
        let conns = s["conns"].as_array()?.clone();
        (conns.len() == 1).then(|| {
            conns[0]["streams"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        })
    };
    wait_until("the upstream to carry BTCUSDT", T, || {
        (streams(&p.ex)? == ["btcusdt@bookTicker", "btcusdt@ticker"]).then_some(())
    });
    next_price_of(&mut a, "BTCUSDT", 0, T);
    let mut b = p.svc.ws();
    subscribe(&mut b, &["ETHUSDT"], 1);
    next_price_of(&mut b, "ETHUSDT", 0, T);
    let requests = |ex: &Exchange, method: &str| -> Vec<Value> {
        ex.state()["stats"]["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["method"] == method)
            .cloned()
            .collect()
    };
    assert_eq!(
        requests(&p.ex, "SUBSCRIBE")[0]["params"],
        json!(["ethusdt@bookTicker", "ethusdt@ticker"])
    );
    // Churn: many changes in a short time are batched under Binance's 5 messages/s.
    for i in 0..10 {
        let action = if i % 2 == 0 {
            "subscribe"
        } else {
            "unsubscribe"
        };
        b.send_json(json!({"action": action, "symbols": ["SOLUSDT", "XRPUSDT"], "id": 100 + i}));
    }
    drop(b);
    wait_until("the upstream back to BTCUSDT only", T, || {
        (streams(&p.ex)? == ["btcusdt@bookTicker", "btcusdt@ticker"]).then_some(())
    });
    a.send_json(json!({"action": "unsubscribe", "symbols": ["BTCUSDT"], "id": 2}));
    wait_until("an UNSUBSCRIBE of BTCUSDT", T, || {
        requests(&p.ex, "UNSUBSCRIBE")
            .iter()
            .any(|r| {
                r["params"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("btcusdt@ticker")))
            })
            .then_some(())
    });
    wait_until("the idle upstream to close", T, || {
        (p.ex.state()["connections"] == 0).then_some(())
    });
    let s = p.ex.state();
    assert_eq!(s["stats"]["rate_violations"], 0);
    assert!(
        s["stats"]["max_incoming_in_one_second"].as_u64() <= Some(5),
        "{}",
        s["stats"]
    );
    let h = health(&p.svc);
    assert_eq!(
        (h["status"].as_str(), h["upstream"]["state"].as_str()),
        (Some("healthy"), Some("idle"))
    );
    let r = get(&p.svc.url("/api/prices/BTCUSDT"));
    assert_eq!(r.status, 200, "REST serves the cache while idle");
    assert!(r.json()["freshness"].is_string());
}

// ----- stateless edge routes (issue 5) ----------------------------------------------------

/// Runs a test tool to completion; its combined output is also kept in target/e2e-logs/`log`.
fn run_logged(mut cmd: std::process::Command, log: &str) -> (std::process::Output, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (make tools installs it): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(support::log_dir().join(log), &text).unwrap();
    (out, text)
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(line_prefix)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no metric {line_prefix:?}"))
}

fn rest_burst_costs_a_handful_of_leader_requests(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    ctx.ex.control("tick?symbol=ETHUSDT");
    let want = ctx.ex.latest("ETHUSDT").expect("an ETHUSDT price");
    wait_until("the hub to hold the latest ETHUSDT", T, || {
        (get(&ctx.svc.url("/api/prices/ETHUSDT")).json()["price"] == want.as_str()).then_some(())
    });
    // Let the cached answer expire, so the burst starts from a miss.
    std::thread::sleep(Duration::from_millis(1_100));
    let before = metric(
        &get(&ctx.svc.url("/metrics")).body,
        "edgetick_leader_snapshot_requests_total ",
    );
    let url = ctx.svc.url("/api/prices");
    let readers: Vec<_> = (0..200)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || request("GET", &url))
        })
        .collect();
    let mut ok = 0;
    for r in readers {
        let r = r.join().expect("reader thread").expect("reachable");
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let eth = v["prices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["symbol"] == "ETHUSDT")
            .cloned();
        assert_eq!(
            eth.map(|p| p["price"].clone()),
            Some(json!(want)),
            "every answer agrees with the exchange"
        );
        ok += 1;
    }
    let m = get(&ctx.svc.url("/metrics")).body;
    let leader_requests = metric(&m, "edgetick_leader_snapshot_requests_total ") - before;
    eprintln!("    200 concurrent reads cost {leader_requests} leader requests");
    assert_eq!(ok, 200);
    assert!(
        leader_requests <= 3.0,
        "{leader_requests} leader requests for 200 reads"
    );
    assert!(
        metric(
            &m,
            "edgetick_rest_cache_requests_total{result=\"coalesced\"} "
        ) + metric(
            &m,
            "edgetick_rest_cache_requests_total{result=\"memory_hit\"} "
        ) >= 190.0
    );
    ctx.ex.control("pause?on=0");
}

fn etag_revalidates_with_304(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    ctx.ex.control("tick?symbol=BTCUSDT");
    let want = ctx.ex.latest("BTCUSDT").expect("a BTCUSDT price");
    wait_until("the hub to hold the latest BTCUSDT", T, || {
        (get(&ctx.svc.url("/api/prices/BTCUSDT")).json()["price"] == want.as_str()).then_some(())
    });
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let url = ctx.svc.url("/api/prices/BTC-USDT");
    let first = agent.get(&url).call().expect("200");
    let tag = first.header("ETag").expect("an ETag").to_string();
    assert!(
        first
            .header("Cache-Control")
            .unwrap_or_default()
            .contains("max-age="),
        "Cache-Control"
    );
    let again = match agent.get(&url).set("If-None-Match", &tag).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(again.status(), 304);
    assert_eq!(again.header("ETag"), Some(tag.as_str()));
    assert!(again.into_string().unwrap().is_empty(), "304 has no body");
    // New data, new tag.
    ctx.ex.control("tick?symbol=BTCUSDT");
    let fresh = wait_until("a new ETag after a new price", T, || {
        let r = agent.get(&url).set("If-None-Match", &tag).call().ok()?;
        (r.status() == 200).then(|| r.header("ETag").unwrap_or_default().to_string())
    });
    assert_ne!(fresh, tag);
    ctx.ex.control("pause?on=0");
}

fn cors_allows_listed_origins_and_refuses_others(ctx: &mut Ctx) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let url = ctx.svc.url("/api/prices");
    let pre = agent
        .request("OPTIONS", &url)
        .set("Origin", ALLOWED_ORIGIN)
        .set("Access-Control-Request-Method", "GET")
        .set("Access-Control-Request-Headers", "if-none-match")
        .call()
        .expect("preflight");
    assert_eq!(pre.status(), 204);
    assert_eq!(
        pre.header("Access-Control-Allow-Origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert!(pre
        .header("Access-Control-Allow-Methods")
        .unwrap_or_default()
        .contains("GET"));
    assert!(pre
        .header("Access-Control-Allow-Headers")
        .unwrap_or_default()
        .contains("If-None-Match"));
    let ok = agent
        .get(&url)
        .set("Origin", ALLOWED_ORIGIN)
        .call()
        .expect("allowed origin");
    assert_eq!(
        ok.header("Access-Control-Allow-Origin"),
        Some(ALLOWED_ORIGIN)
    );
    assert!(ok.header("Vary").unwrap_or_default().contains("Origin"));
    assert!(ok
        .header("Access-Control-Expose-Headers")
        .unwrap_or_default()
        .contains("ETag"));
    for method in ["GET", "OPTIONS"] {
        match agent
            .request(method, &url)
            .set("Origin", "https://evil.example")
            .call()
        {
            Err(ureq::Error::Status(403, r)) => {
                assert_eq!(r.header("Access-Control-Allow-Origin"), None);
                let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
                assert_eq!(v["error"], "ORIGIN_NOT_ALLOWED");
            }
            other => panic!("{method} from a refused origin: {other:?}"),
        }
    }
    assert_eq!(get(&url).status, 200, "no Origin (not a browser): served");
    // The service's own pages are same-origin: their WebSocket (which always sends Origin)
    // is accepted whatever the list says.
    let own = ctx.svc.url("");
    let own = own.trim_end_matches('/');
    let mut c = ctx
        .svc
        .ws_with("/ws", &[("Origin", own)])
        .expect("same-origin WebSocket");
    subscribe(&mut c, &["BTCUSDT"], 1);
    assert_eq!(
        ctx.svc
            .ws_with("/ws", &[("Origin", "https://evil.example")])
            .err(),
        Some(403)
    );
    // Responses proxied from the leader (immutable headers) get CORS headers too.
    for path in ["/health", "/metrics"] {
        let r = agent
            .get(&ctx.svc.url(path))
            .set("Origin", ALLOWED_ORIGIN)
            .call()
            .expect(path);
        assert_eq!(
            r.header("Access-Control-Allow-Origin"),
            Some(ALLOWED_ORIGIN),
            "{path}"
        );
    }
}

fn metrics_are_valid_prometheus_and_counters_move(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let check = |text: &str| {
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool (make tools installs it)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let r = get(&ctx.svc.url("/metrics"));
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    check(&r.body);
    let before = r.body;
    let mut c = ctx.svc.ws();
    subscribe(&mut c, &["BTCUSDT"], 1);
    for _ in 0..3 {
        c.wait_for("prices", T, is_prices);
    }
    let after = get(&ctx.svc.url("/metrics")).body;
    check(&after);
    let ws = "edgetick_connections{transport=\"websocket\"} ";
    assert!(metric(&after, ws) >= 1.0);
    for counter in [
        "edgetick_messages_sent_total ",
        "edgetick_sent_bytes_total ",
        "edgetick_upstream_frames_total ",
        "edgetick_connections_opened_total ",
        "edgetick_fanout_duration_seconds_count ",
    ] {
        assert!(
            metric(&after, counter) > metric(&before, counter),
            "{counter} did not move"
        );
    }
    assert_eq!(metric(&after, "edgetick_upstream_connected "), 1.0);
}

fn openapi_is_valid_and_fuzzing_finds_no_server_errors(ctx: &mut Ctx) {
    let venv = support::root().join(".tools/venv/bin");
    let spec = get(&ctx.svc.url("/openapi.json"));
    assert_eq!(spec.status, 200);
    let path = support::log_dir().join("openapi.json");
    std::fs::write(&path, &spec.body).unwrap();
    let out = std::process::Command::new(venv.join("openapi-spec-validator"))
        .arg(&path)
        .output()
        .expect("openapi-spec-validator (make tools)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut cmd = std::process::Command::new(venv.join("schemathesis"));
    cmd.args(["run", &ctx.svc.url("/openapi.json"), "--url", &ctx.svc.url("")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
        .args(["--max-examples", "40", "--seed", "7", "--request-timeout", "10"])
        .env("SCHEMATHESIS_HOOKS", "");
    let (out, text) = run_logged(cmd, "schemathesis.log");
    assert!(
        out.status.success(),
        "schemathesis found problems (target/e2e-logs/schemathesis.log):\n{text}"
    );
}

// ----- fan-out: SSE, limits, security (issue 4) ---------------------------------------------

fn sse_snapshot_then_live_events_with_the_pairs_alias(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let mut s = ctx
        .svc
        .sse("/api/stream?pairs=btc-usdt", &[])
        .expect("a stream");
    assert!(
        s.header("content-type").starts_with("text/event-stream"),
        "{:?}",
        s.headers
    );
    assert_eq!(s.header("cache-control"), "no-cache, no-transform");
    assert_eq!(s.header("x-accel-buffering"), "no");
    let retry = s.next(T).expect("retry first");
    assert_eq!(
        (retry.event.as_str(), retry.data.as_str()),
        ("retry", "1000")
    );
    let snap = s.next(T).expect("snapshot");
    assert_eq!(snap.event, "snapshot");
    assert!(snap.id.is_some());
    let mut last = snap.id.unwrap();
    for _ in 0..3 {
        let e = s.wait_for("prices", T);
        let id = e.id.expect("prices events carry an id");
        assert!(id > last, "ids grow: {id} after {last}");
        last = id;
        let v = e.json();
        for p in v["prices"].as_array().unwrap() {
            assert_eq!(p["symbol"], "BTCUSDT", "only the subscribed symbol");
            assert!(p["seq"].as_u64() <= Some(id));
        }
    }
}

fn sse_read_by_a_real_event_source_client(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let out = std::process::Command::new("node")
        .arg(support::root().join("tests/e2e/sse-client.mjs"))
        .arg(ctx.svc.url("/api/stream?symbols=ETHUSDT,BTCUSDT"))
        .arg("4")
        .output()
        .expect("node");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "snapshot");
    assert_eq!(events[0]["data"]["type"], "snapshot");
    let ids: Vec<u64> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[1] > w[0]),
        "lastEventId grows: {ids:?}"
    );
    assert!(
        events[1..].iter().all(|e| e["type"] == "prices"),
        "{events:?}"
    );
}

fn sse_resumes_with_last_event_id(ctx: &mut Ctx) {
    // Halt the two symbols (no ticks, no ticker cadence) so only explicit ticks move them.
    ctx.ex.control("pause?on=1");
    ctx.ex.control("quiet?symbol=BTCUSDT,ETHUSDT");
    ctx.ex.control("tick?symbol=BTCUSDT");
    ctx.ex.control("tick?symbol=ETHUSDT");
    let eth = ctx.ex.latest("ETHUSDT").unwrap();
    wait_until("both cached", T, || {
        (get(&ctx.svc.url("/api/prices/ETHUSDT")).json()["price"] == eth.as_str()).then_some(())
    });
    let mut s = ctx
        .svc
        .sse("/api/stream?symbols=BTCUSDT,ETHUSDT", &[])
        .unwrap();
    let snap = s.wait_for("snapshot", T);
    assert_eq!(snap.json()["prices"].as_array().unwrap().len(), 2);
    let id = snap.id.unwrap();
    drop(s);
    ctx.ex.control("tick?symbol=ETHUSDT");
    let eth = ctx.ex.latest("ETHUSDT").unwrap();
    wait_until("the new ETHUSDT cached", T, || {
        (get(&ctx.svc.url("/api/prices/ETHUSDT")).json()["price"] == eth.as_str()).then_some(())
    });
    let last = id.to_string();
    let mut s = ctx
        .svc
        .sse(
            "/api/stream?symbols=BTCUSDT,ETHUSDT",
            &[("Last-Event-ID", &last)],
        )
        .unwrap();
    let snap = s.wait_for("snapshot", T);
    let prices = snap.json()["prices"].as_array().unwrap().clone();
    assert_eq!(prices.len(), 1, "only what changed after {id}: {prices:?}");
    assert_eq!(prices[0]["symbol"], "ETHUSDT");
    assert_eq!(prices[0]["price"], eth.as_str());
    // The same through the query parameter that EventSource polyfills use.
    let mut s = ctx
        .svc
        .sse(
            &format!("/api/stream?symbols=BTCUSDT,ETHUSDT&lastEventId={last}"),
            &[],
        )
        .unwrap();
    assert_eq!(
        s.wait_for("snapshot", T).json()["prices"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    ctx.ex.control("quiet?on=0");
    ctx.ex.control("pause?on=0");
}

fn sse_keepalive_comes_at_least_every_15_seconds(ctx: &mut Ctx) {
    // XRPUSDT halted (not even the ticker's cadence) while the others keep the upstream alive.
    ctx.ex.control("pause?on=0");
    ctx.ex.control("quiet?symbol=XRPUSDT");
    let mut s = ctx.svc.sse("/api/stream?symbols=XRPUSDT", &[]).unwrap();
    s.wait_for("snapshot", T);
    let started = Instant::now();
    let comment = s.wait_for("comment", Duration::from_secs(16));
    assert_eq!(comment.data, "keepalive");
    eprintln!("    keepalive after {:?} of silence", started.elapsed());
    ctx.ex.control("quiet?on=0");
}

fn sse_disconnect_is_removed_promptly(ctx: &mut Ctx) {
    let count = |svc: &Service| health(svc)["clients"]["sse"].as_u64().unwrap_or(0);
    ctx.ex.control("pause?on=0");
    // Streams of earlier scenarios are gone first, so the count below is ours alone.
    wait_until("no SSE clients", Duration::from_secs(20), || {
        (count(&ctx.svc) == 0).then_some(())
    });
    let mut s = ctx.svc.sse("/api/stream?symbols=BTCUSDT", &[]).unwrap();
    s.wait_for("snapshot", T);
    assert_eq!(count(&ctx.svc), 1);
    drop(s);
    let t0 = Instant::now();
    wait_until("the closed stream to be forgotten", T, || {
        (count(&ctx.svc) == 0).then_some(())
    });
    eprintln!("    SSE disconnect noticed after {:?}", t0.elapsed());
}

fn a_reader_that_stops_does_not_delay_a_bystander(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    // One WebSocket and one SSE reader subscribe and then never read again.
    let mut stalled_ws = ctx.svc.ws();
    subscribe(
        &mut stalled_ws,
        &["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"],
        1,
    );
    let stalled_sse = ctx
        .svc
        .sse("/api/stream?symbols=BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT", &[])
        .unwrap();
    ctx.ex.control("rate?value=400");
    let mut bystander = ctx.svc.ws();
    subscribe(&mut bystander, &["BTCUSDT"], 1);
    let started = Instant::now();
    let mut last = 0;
    for _ in 0..20 {
        last = next_price_of(&mut bystander, "BTCUSDT", last, T);
    }
    ctx.ex.control("rate?value=40");
    eprintln!(
        "    bystander got 20 newer BTCUSDT frames in {:?} beside two stalled readers",
        started.elapsed()
    );
    drop(stalled_sse);
    drop(stalled_ws);
}

/// A service with small limits, a token and an origin list, on its own exchange.
struct Limits {
    /// Held so the exchange lives as long as the service that uses it.
    _ex: Exchange,
    svc: Service,
}

const TOKEN: &str = "s3cret-token";

impl Limits {
    /// A WebSocket client that presents the token.
    fn ws(&self) -> Client {
        self.svc
            .ws_with(&format!("/ws?token={TOKEN}"), &[])
            .expect("an authorised client")
    }
}

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

fn tokens_and_origins_guard_the_streams(_ctx: &mut Ctx) {
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

fn every_limit_has_its_code_and_spares_a_bystander(_ctx: &mut Ctx) {
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

fn a_websocket_client_that_stops_acking_is_warned_then_closed_4009(_ctx: &mut Ctx) {
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

// ----- the browser side (issue 6) ----------------------------------------------------------

fn dashboard_and_client_library_in_chromium(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let mut cmd = std::process::Command::new("node");
    cmd.args(["--test", "--test-reporter=spec"])
        .arg(support::root().join("tests/browser/dashboard.test.mjs"))
        .env("EDGETICK_URL", ctx.svc.url(""))
        .env("EXCHANGE_URL", format!("http://127.0.0.1:{}", ctx.ex.port));
    let (out, text) = run_logged(cmd, "browser.log");
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| l.contains('✔') || l.contains('✖'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        out.status.success(),
        "browser tests failed (target/e2e-logs/browser.log):\n{text}"
    );
    ctx.ex.control("pause?on=0");
}

fn dashboard_survives_exchange_and_service_restarts(ctx: &mut Ctx) {
    use std::io::{BufRead, BufReader, Write};
    ctx.ex.control("pause?on=0");
    let mut child = std::process::Command::new("node")
        .arg(support::root().join("tests/browser/restarts.mjs"))
        .env("EDGETICK_URL", ctx.svc.url(""))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("node");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut expect_step = |what: &str| {
        let line = out.next().and_then(Result::ok).unwrap_or_default();
        eprintln!("    {line}");
        assert!(
            line.starts_with("step: ") && line.contains(what),
            "expected {what:?}, got {line:?}"
        );
    };
    expect_step("stop the exchange");
    ctx.ex.kill();
    writeln!(stdin, "go").unwrap();
    expect_step("start the exchange");
    ctx.ex.restart();
    ctx.ex.control("pause?on=0");
    writeln!(stdin, "go").unwrap();
    expect_step("stop the service");
    ctx.svc.stop();
    writeln!(stdin, "go").unwrap();
    expect_step("disconnected");
    ctx.svc.restart();
    writeln!(stdin, "go").unwrap();
    expect_step("prices resumed");
    assert!(child.wait().unwrap().success());
}

type Scenario = (&'static str, fn(&mut Ctx));

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let scenarios: Vec<Scenario> = vec![
        (
            "no_data_yet_is_503_with_retry_after",
            no_data_yet_is_503_with_retry_after,
        ),
        (
            "health_shows_upstream_connected",
            health_shows_upstream_connected,
        ),
        (
            "subscribe_gets_subscribed_then_snapshot_then_live_prices",
            subscribe_gets_subscribed_then_snapshot_then_live_prices,
        ),
        (
            "clients_get_only_their_symbols",
            clients_get_only_their_symbols,
        ),
        (
            "bad_frames_get_errors_and_the_connection_keeps_working",
            bad_frames_get_errors_and_the_connection_keeps_working,
        ),
        (
            "oversized_frame_closes_1009_and_a_bystander_keeps_receiving",
            oversized_frame_closes_1009_and_a_bystander_keeps_receiving,
        ),
        (
            "rest_price_equals_the_exchange_latest",
            rest_price_equals_the_exchange_latest,
        ),
        (
            "rest_errors_are_json_and_leak_nothing",
            rest_errors_are_json_and_leak_nothing,
        ),
        ("exchange_pings_are_answered", exchange_pings_are_answered),
        (
            "hub_reconnects_after_the_exchange_restarts",
            hub_reconnects_after_the_exchange_restarts,
        ),
        (
            "service_restart_serves_cached_prices_from_storage",
            service_restart_serves_cached_prices_from_storage,
        ),
        (
            "a_silent_upstream_is_replaced_within_10_s_by_default",
            floor::a_silent_upstream_is_replaced_within_10_s_by_default,
        ),
        (
            "caps_are_checked_before_symbols",
            floor::caps_are_checked_before_symbols,
        ),
        (
            "a_burst_of_connections_leaves_a_connected_client_flowing",
            floor::a_burst_of_connections_leaves_a_connected_client_flowing,
        ),
        (
            "rest_burst_costs_a_handful_of_leader_requests",
            rest_burst_costs_a_handful_of_leader_requests,
        ),
        ("etag_revalidates_with_304", etag_revalidates_with_304),
        (
            "cors_allows_listed_origins_and_refuses_others",
            cors_allows_listed_origins_and_refuses_others,
        ),
        (
            "metrics_are_valid_prometheus_and_counters_move",
            metrics_are_valid_prometheus_and_counters_move,
        ),
        (
            "openapi_is_valid_and_fuzzing_finds_no_server_errors",
            openapi_is_valid_and_fuzzing_finds_no_server_errors,
        ),
        (
            "dropped_upstream_resumes_prices",
            dropped_upstream_resumes_prices,
        ),
        (
            "stalled_upstream_is_replaced_by_the_watchdog",
            stalled_upstream_is_replaced_by_the_watchdog,
        ),
        (
            "garbage_frames_leave_other_symbols_flowing",
            garbage_frames_leave_other_symbols_flowing,
        ),
        (
            "server_shutdown_rotates_without_gap_or_duplicate",
            server_shutdown_rotates_without_gap_or_duplicate,
        ),
        (
            "on_demand_subscribes_upstream_only_while_someone_listens",
            on_demand_subscribes_upstream_only_while_someone_listens,
        ),
        (
            "refusals_open_the_breaker_within_the_attempt_budget",
            refusals_open_the_breaker_within_the_attempt_budget,
        ),
        (
            "sse_snapshot_then_live_events_with_the_pairs_alias",
            sse_snapshot_then_live_events_with_the_pairs_alias,
        ),
        (
            "sse_read_by_a_real_event_source_client",
            sse_read_by_a_real_event_source_client,
        ),
        (
            "sse_resumes_with_last_event_id",
            sse_resumes_with_last_event_id,
        ),
        (
            "sse_keepalive_comes_at_least_every_15_seconds",
            sse_keepalive_comes_at_least_every_15_seconds,
        ),
        (
            "sse_disconnect_is_removed_promptly",
            sse_disconnect_is_removed_promptly,
        ),
        (
            "a_reader_that_stops_does_not_delay_a_bystander",
            a_reader_that_stops_does_not_delay_a_bystander,
        ),
        (
            "tokens_and_origins_guard_the_streams",
            tokens_and_origins_guard_the_streams,
        ),
        (
            "every_limit_has_its_code_and_spares_a_bystander",
            every_limit_has_its_code_and_spares_a_bystander,
        ),
        (
            "a_websocket_client_that_stops_acking_is_warned_then_closed_4009",
            a_websocket_client_that_stops_acking_is_warned_then_closed_4009,
        ),
        (
            "dashboard_and_client_library_in_chromium",
            dashboard_and_client_library_in_chromium,
        ),
        (
            "dashboard_survives_exchange_and_service_restarts",
            dashboard_survives_exchange_and_service_restarts,
        ),
    ];
    let selected: Vec<&Scenario> = scenarios
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let started = Instant::now();
    let ex = Exchange::start(&[
        "--rate",
        "40",
        "--ping-interval-ms",
        "1000",
        "--pong-timeout-ms",
        "4000",
    ]);
    ex.control("pause?on=1");
    let upstream = ex.stream_url();
    let svc = Service::start(
        "main",
        &[
            ("UPSTREAM_URL", &upstream),
            ("SYMBOLS", SYMBOLS),
            ("MAX_FRAME_BYTES", "4096"),
            ("ALLOWED_ORIGINS", ALLOWED_ORIGIN),
        ],
    );
    eprintln!(
        "e2e: exchange on {}, service on {} (ready in {:?})",
        ex.port,
        svc.port,
        started.elapsed()
    );
    let mut ctx = Ctx {
        ex,
        svc,
        res: None,
        od: None,
    };
    let (mut passed, mut failed) = (0, Vec::new());
    for (name, run) in selected {
        let t = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| run(&mut ctx))) {
            Ok(()) => {
                passed += 1;
                eprintln!("test {name} ... ok ({:.1?})", t.elapsed());
            }
            Err(_) => {
                failed.push(*name);
                eprintln!("test {name} ... FAILED ({:.1?})", t.elapsed());
            }
        }
    }
    drop(ctx);
    println!("e2e: {passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}; process logs are in target/e2e-logs/");
        std::process::exit(1);
    }
}
