//! Two sources at once, both from the fake exchange: Binance and Twelve Data. Prices of both
//! reach one client in one subscription and REST (Twelve Data's spelling kept); each source
//! reports in `/health`; Twelve Data's faults (a closed market, a stall, a drop, a refused
//! key) leave Binance's prices flowing.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::support::{self, wait_until, Client, Exchange, Service};
use super::{wait_connected, Ctx, T};

/// The key the exchange accepts.
const KEY: &str = "td-test-key";

/// An exchange that speaks both, and a service that follows both (`key` presented to
/// Twelve Data); `NOPE` is a symbol Twelve Data does not list.
fn start(name: &str, key: &str) -> (Exchange, Service) {
    let (ex, svc) = start_with(name, key, &[]);
    wait_connected(&svc);
    (ex, svc)
}

/// [`start`] with more variables, not waiting for anything.
fn start_with(name: &str, key: &str, extra: &[(&str, &str)]) -> (Exchange, Service) {
    let ex = Exchange::start(&["--rate", "100", "--twelvedata-key", KEY]);
    let td = format!("ws://127.0.0.1:{}/v1/quotes/price", ex.port);
    let stream = ex.stream_url();
    let mut vars = vec![
        ("UPSTREAM_URL", stream.as_str()),
        ("SYMBOLS", "BTCUSDT,ETHUSDT"),
        ("TWELVEDATA_SYMBOLS", "AAPL,EUR/USD,NOPE"),
        ("TWELVEDATA_API_KEY", key),
        ("TWELVEDATA_URL", td.as_str()),
        ("TWELVEDATA_HEARTBEAT_SECONDS", "1"),
        ("UPSTREAM_WATCHDOG_SECONDS", "3"),
    ];
    vars.extend_from_slice(extra);
    let svc = Service::start(name, &vars);
    (ex, svc)
}

fn health(svc: &Service) -> Value {
    support::get(&svc.url("/health")).json()
}

/// `/health`'s report of `source`.
fn upstream(svc: &Service, source: &str) -> Value {
    let h = health(svc);
    let all = h["upstreams"].as_array().cloned().unwrap_or_default();
    all.into_iter()
        .find(|u| u["source"] == source)
        .unwrap_or_else(|| panic!("no {source} in {h}"))
}

fn wait_state(svc: &Service, source: &str, want: impl Fn(&Value) -> bool) -> Value {
    wait_until(
        &format!("{source} as wanted"),
        Duration::from_secs(20),
        || {
            let u = upstream(svc, source);
            want(&u).then_some(u)
        },
    )
}

/// The next price of `symbol` the client gets (from a snapshot or an update).
fn next_price(ws: &mut Client, symbol: &str) -> Value {
    let (frame, _) = ws.wait_for(symbol, T, |v| {
        v["prices"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["symbol"] == symbol))
    });
    let prices = frame["prices"].as_array().cloned().unwrap_or_default();
    prices
        .into_iter()
        .find(|p| p["symbol"] == symbol)
        .unwrap_or(Value::Null)
}

pub fn both_sources_reach_one_client_and_rest(_ctx: &mut Ctx) {
    let (ex, svc) = start("sources", KEY);
    wait_state(&svc, "twelvedata", |u| u["state"] == "connected");
    let mut ws = svc.ws();
    ws.send_json(json!({"action": "subscribe", "symbols": ["BTCUSDT", "eur-usd", "aapl"]}));
    for symbol in ["BTCUSDT", "EUR/USD", "AAPL"] {
        let p = next_price(&mut ws, symbol);
        assert!(p["price"].as_str().is_some_and(|s| !s.is_empty()), "{p}");
    }
    let rest = support::get(&svc.url("/api/prices/eur%2Fusd"));
    assert_eq!(rest.status, 200, "{}", rest.body);
    assert_eq!(rest.json()["symbol"], "EUR/USD");
    seed_routes(&svc);
    let td = upstream(&svc, "twelvedata");
    assert_eq!(td["failed_symbols"], json!(["NOPE"]), "{td}");
    assert_eq!(upstream(&svc, "binance")["state"], "connected");
    let state = ex.state();
    let flavors: Vec<&Value> = state["conns"]
        .as_array()
        .map(|c| c.iter().map(|c| &c["flavor"]).collect())
        .unwrap_or_default();
    assert!(flavors.contains(&&json!("twelvedata")), "{state}");
}

/// The Flask terminal's routes: prices by asset class, numbers written from the decimal
/// text, and the status.
fn seed_routes(svc: &Service) {
    let want = [
        ("/api/stocks", "aapl"),
        ("/api/forex", "eur/usd"),
        ("/api/crypto", "btcusdt"),
    ];
    for (route, key) in want {
        let body = wait_until(route, T, || {
            let v = support::get(&svc.url(route)).json();
            v.get(key).is_some().then_some(v)
        });
        assert_eq!(body["ok"], true, "{body}");
        assert!(body[key]["price"].is_number(), "{route}: {body}");
        let others = ["aapl", "eur/usd", "btcusdt"]
            .into_iter()
            .filter(|k| *k != key);
        for other in others {
            assert!(body.get(other).is_none(), "{route} holds {other}: {body}");
        }
    }
    let crypto = support::get(&svc.url("/api/crypto")).json();
    assert!(crypto["btcusdt"]["change"].is_number(), "{crypto}");
    let status = support::get(&svc.url("/api/status")).json();
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["upstreams"]["twelvedata"], "connected", "{status}");
    assert_eq!(status["upstreams"]["binance"], "connected", "{status}");
}

pub fn twelve_data_faults_leave_binance_flowing(_ctx: &mut Ctx) {
    let (ex, svc) = start("sources-faults", KEY);
    wait_state(&svc, "twelvedata", |u| u["state"] == "connected");
    let mut ws = svc.ws();
    ws.send_json(json!({"action": "subscribe", "symbols": ["BTCUSDT", "EUR/USD"]}));
    next_price(&mut ws, "EUR/USD");
    // A closed market: only heartbeats are answered, and that is enough.
    ex.control("closed-market?on=1");
    let closed = support::epoch_ms();
    let before = upstream(&svc, "twelvedata")["reconnects"].clone();
    let gap = binance_flows_past(&mut ws, closed + 5_000);
    eprintln!("  closed market: Binance's longest gap {gap:?}");
    let td = upstream(&svc, "twelvedata");
    assert_eq!(
        (&td["state"], &td["reconnects"]),
        (&json!("connected"), &before),
        "{td}"
    );
    ex.control("closed-market?on=0");
    // Garbage on Twelve Data's connection: skipped and counted, the connection kept.
    ex.control("garbage?source=twelvedata&count=5");
    let td = wait_state(&svc, "twelvedata", |u| {
        u["frame_errors"].as_u64() >= Some(5)
    });
    assert_eq!(td["reconnects"], before, "{td}");
    next_price(&mut ws, "EUR/USD");
    // A stall, then a drop: each replaced while Binance keeps delivering. Binance's frames
    // are watched through the time Twelve Data takes to come back (the watchdog's 3 s for
    // the stall, a reconnect for the drop).
    for (fault, n, window_ms) in [
        ("stall?source=twelvedata", 1, 4_000),
        ("drop?source=twelvedata", 2, 1_500),
    ] {
        let started = Instant::now();
        ex.control(fault);
        let since = support::epoch_ms();
        let gap = binance_flows_past(&mut ws, since + window_ms);
        let want = before.as_u64().unwrap_or(0) + n;
        wait_state(&svc, "twelvedata", |u| {
            u["reconnects"].as_u64() >= Some(want)
        });
        next_price(&mut ws, "EUR/USD");
        let back = started.elapsed();
        eprintln!(
            "  {fault}: Twelve Data back in {back:?}; Binance's longest gap meanwhile {gap:?}"
        );
    }
    let b = upstream(&svc, "binance");
    assert_eq!(
        (&b["reconnects"], &b["state"]),
        (&json!(0), &json!("connected")),
        "{b}"
    );
}

/// Waits for a Binance price made after `after_ms`; returns the longest wait between two
/// Binance frames meanwhile (a measurement: the fake exchange's rate sets its floor).
fn binance_flows_past(ws: &mut Client, after_ms: i64) -> Duration {
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    ws.wait_for("a BTCUSDT price", Duration::from_secs(15), |v| {
        let ps = v["prices"].as_array().cloned().unwrap_or_default();
        let mine: Vec<&Value> = ps.iter().filter(|p| p["source"] == "binance").collect();
        if !mine.is_empty() {
            longest = longest.max(last.elapsed());
            last = Instant::now();
        }
        mine.iter()
            .any(|p| p["symbol"] == "BTCUSDT" && p["event_time"].as_i64().unwrap_or(0) > after_ms)
    });
    longest
}

pub fn on_demand_follows_each_source_apart(_ctx: &mut Ctx) {
    let extra = [
        ("UPSTREAM_MODE", "on-demand"),
        ("UPSTREAM_IDLE_CLOSE_SECONDS", "1"),
    ];
    let (ex, svc) = start_with("sources-on-demand", KEY, &extra);
    for source in ["binance", "twelvedata"] {
        wait_state(&svc, source, |u| u["state"] == "idle");
    }
    let streams = |flavor: &str| -> Option<Value> {
        let state = ex.state();
        let conns = state["conns"].as_array().cloned().unwrap_or_default();
        let mine = conns.into_iter().filter(|c| c["flavor"] == flavor);
        mine.map(|c| c["streams"].clone())
            .find(|s| s.as_array().is_some_and(|a| !a.is_empty()))
    };
    let mut ws = svc.ws();
    ws.send_json(json!({"action": "subscribe", "symbols": ["eur/usd"]}));
    next_price(&mut ws, "EUR/USD");
    assert_eq!(streams("twelvedata"), Some(json!(["EUR/USD"])));
    assert_eq!(
        streams("combined"),
        None,
        "Binance carries nothing nobody asked for"
    );
    ws.send_json(json!({"action": "subscribe", "symbols": ["BTCUSDT"]}));
    next_price(&mut ws, "BTCUSDT");
    let binance = wait_until("Binance's streams", T, || streams("combined"));
    assert_eq!(binance, json!(["btcusdt@bookTicker", "btcusdt@ticker"]));
    ws.send_json(json!({"action": "unsubscribe", "symbols": ["EUR/USD"]}));
    wait_state(&svc, "twelvedata", |u| u["state"] == "idle");
    assert_eq!(upstream(&svc, "binance")["state"], "connected");
}

pub fn a_refused_twelve_data_key_is_reported_while_binance_flows(_ctx: &mut Ctx) {
    let (_ex, svc) = start("sources-key", "not-the-key");
    let td = wait_state(&svc, "twelvedata", |u| {
        u["last_failure"]["status"].as_u64() == Some(401)
    });
    assert_eq!(td["state"], "unauthorized", "{td}");
    let h = health(&svc);
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(
        !h.to_string().contains("not-the-key"),
        "the key is never reported"
    );
    let mut ws = svc.ws();
    ws.send_json(json!({"action": "subscribe", "symbols": ["BTCUSDT"]}));
    binance_flows_past(&mut ws, support::epoch_ms());
}

pub fn the_dashboard_groups_both_sources_in_chromium(_ctx: &mut Ctx) {
    let (_ex, svc) = start("sources-dashboard", KEY);
    wait_state(&svc, "twelvedata", |u| u["state"] == "connected");
    let mut cmd = std::process::Command::new("node");
    cmd.args(["--test", "--test-reporter=spec"])
        .arg(support::root().join("tests/browser/sources.test.mjs"))
        .env("EDGETICK_URL", svc.url(""));
    let (out, text) = super::run_logged(cmd, "browser-sources.log");
    assert!(
        out.status.success(),
        "browser test failed (target/e2e-logs/browser-sources.log):\n{text}"
    );
}
