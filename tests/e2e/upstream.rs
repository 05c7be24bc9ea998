//! The upstream under the fake exchange's faults: pings, drops, stalls, garbage, rotation,
//! refusals, on-demand, restarts, and the default watchdog.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;
use crate::*;

pub fn exchange_pings_are_answered(ctx: &mut Ctx) {
    let before = ctx.ex.state()["stats"]["pongs"].as_u64().unwrap_or(0);
    wait_until("two more pongs at the exchange", T, || {
        let s = ctx.ex.state();
        (s["stats"]["pongs"].as_u64().unwrap_or(0) >= before + 2).then_some(())
    });
    assert_eq!(ctx.ex.state()["stats"]["pong_timeouts"], 0);
}

pub fn hub_reconnects_after_the_exchange_restarts(ctx: &mut Ctx) {
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

pub fn service_restart_serves_cached_prices_from_storage(ctx: &mut Ctx) {
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

pub fn dropped_upstream_resumes_prices(ctx: &mut Ctx) {
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

pub fn stalled_upstream_is_replaced_by_the_watchdog(ctx: &mut Ctx) {
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
    let h = wait_replaced_silent(&p.svc, &before, Duration::from_secs(15));
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

pub fn garbage_frames_leave_other_symbols_flowing(ctx: &mut Ctx) {
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

pub fn server_shutdown_rotates_without_gap_or_duplicate(ctx: &mut Ctx) {
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

pub fn refusals_open_the_breaker_within_the_attempt_budget(ctx: &mut Ctx) {
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

pub fn on_demand_subscribes_upstream_only_while_someone_listens(ctx: &mut Ctx) {
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
    let h = wait_replaced_silent(&ctx.svc, &before, Duration::from_secs(10));
    eprintln!("    silent upstream replaced after {:?}", t0.elapsed());
    let seq = h["seq"].as_u64().unwrap_or(0);
    next_price_of(&mut c, "BTCUSDT", seq, T);
}

/// Waits until `/health` shows a new `silent` failure (after the one at `before`) and the
/// upstream connected again: the watchdog replaced a stream that went quiet. The bound is
/// the behaviour under test (the watchdog's limit plus a reconnect), not a speed measurement.
fn wait_replaced_silent(svc: &Service, before: &Value, within: Duration) -> Value {
    wait_until(
        "the watchdog to replace the silent connection",
        within,
        || {
            let h = health(svc);
            let u = &h["upstream"];
            (u["last_failure"]["at"] != *before
                && u["last_failure"]["kind"] == "silent"
                && u["state"] == "connected")
                .then_some(h)
        },
    )
}
