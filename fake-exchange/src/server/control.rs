//! The `/control/*` endpoints: faults on demand (drop, stall, pause, quiet, garbage, refuse,
//! shutdown, candle-close, Twelve Data's closed-market, REST faults, open interest held), the rate,
//! single ticks, and the state the tests read back.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::{lock, now_ms, Exchange, Flavor, Out, Refusal, Stats};

/// A control request's query parameters.
type Query = HashMap<String, String>;

pub(super) async fn state(State(ex): State<Arc<Exchange>>) -> Json<Value> {
    Json(ex.snapshot())
}

fn flag(q: &Query, name: &str, default: bool) -> bool {
    q.get(name).map_or(default, |v| {
        matches!(v.as_str(), "1" | "true" | "on" | "yes")
    })
}

fn number(q: &Query, name: &str) -> Option<u64> {
    q.get(name).and_then(|v| v.parse().ok())
}

/// `/control/{action}`: one fault or report per action (see the module's list).
pub(super) async fn control(
    State(ex): State<Arc<Exchange>>,
    Path(action): Path<String>,
    axum::extract::Query(q): axum::extract::Query<Query>,
) -> Response {
    let ex = &*ex;
    let done = match action.as_str() {
        "drop" => Ok(drop_conns(ex, &q)),
        "stall" => Ok(stall(ex, &q)),
        "candle-close" => Ok(candle_close(ex, &q)),
        "pause" => Ok(pause(ex, &q)),
        "closed-market" => Ok(closed_market(ex, &q)),
        "rest" => Ok(rest_fault(ex, &q)),
        "open-interest" => Ok(hold_open_interest(ex, &q)),
        "quiet" => Ok(quiet(ex, &q)),
        "garbage" => Ok(garbage(ex, &q)),
        "refuse" => Ok(refuse(ex, &q)),
        "shutdown" => Ok(shutdown(ex, &q)),
        "tick" => tick(ex, &q),
        "rate" => rate(ex, &q),
        "reset" => Ok(reset(ex, &q)),
        _ => {
            let unknown = format!("unknown control action {action:?}");
            return (StatusCode::NOT_FOUND, unknown).into_response();
        }
    };
    match done {
        Ok(v) => Json(v).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

/// `source=binance|twelvedata`: only that source's connections (default: all).
fn of_source(q: &Query) -> impl Fn(Flavor) -> bool {
    let source = q.get("source").cloned();
    move |f| match source.as_deref() {
        Some("twelvedata") => f == Flavor::TwelveData,
        Some("binance") => f != Flavor::TwelveData,
        _ => true,
    }
}

fn drop_conns(ex: &Exchange, q: &Query) -> Value {
    let clean = q.get("mode").is_some_and(|m| m == "close");
    let n = ex.broadcast_to(of_source(q), || {
        vec![if clean {
            Out::Close(1001, "going away")
        } else {
            Out::Drop
        }]
    });
    json!({"dropped": n, "clean": clean})
}

fn stall(ex: &Exchange, q: &Query) -> Value {
    // Default: the connections open now go silent, new ones flow (a stream that died
    // without closing). `all=1`: every connection, new ones too.
    let on = flag(q, "on", true);
    let all = flag(q, "all", false);
    let mut n = 0;
    let mine = of_source(q);
    for c in lock(&ex.conns).values_mut().filter(|c| mine(c.flavor)) {
        c.stalled = on;
        n += 1;
    }
    if all || !on {
        lock(&ex.faults).stalled = on && all;
    }
    json!({"stalled": on, "connections": n, "all": all})
}

fn candle_close(ex: &Exchange, q: &Query) -> Value {
    // Closes every candle of `symbol` now: each kline stream gets the closed candle
    // (`x: true`) once, then the new open one.
    let symbol = q
        .get("symbol")
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_default();
    let state = lock(&ex.market).close_candles(&symbol, now_ms());
    lock(&ex.history).record(&state);
    let sent = ex.send_closed(&state) + ex.send_streams(&state, |k| k.starts_with("kline_"));
    json!({"symbol": symbol, "sent": sent})
}

fn pause(ex: &Exchange, q: &Query) -> Value {
    let on = flag(q, "on", true);
    lock(&ex.faults).paused = on;
    json!({"paused": on})
}

/// Twelve Data's market closes (`on=1`, the default) or opens: no prices while it is closed,
/// heartbeats still answered (a weekend for stocks).
fn closed_market(ex: &Exchange, q: &Query) -> Value {
    let on = flag(q, "on", true);
    lock(&ex.faults).closed_market = on;
    json!({"closed_market": on})
}

fn quiet(ex: &Exchange, q: &Query) -> Value {
    // A halted symbol: nothing is sent for it, not even the ticker's cadence, while
    // the others keep flowing. `symbol=A,B` (default on=1); `on=0` without a symbol
    // releases all.
    let on = flag(q, "on", true);
    let mut f = lock(&ex.faults);
    let named: Vec<String> = q
        .get("symbol")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .collect()
        })
        .unwrap_or_default();
    match (on, named.is_empty()) {
        (false, true) => f.quiet.clear(),
        (true, _) => f.quiet.extend(named),
        (false, false) => named.iter().for_each(|s| {
            f.quiet.remove(s);
        }),
    }
    json!({"quiet": f.quiet})
}

fn garbage(ex: &Exchange, q: &Query) -> Value {
    let count = number(q, "count").unwrap_or(5) as usize;
    let n = ex.broadcast_to(of_source(q), || {
            (0..count)
                .map(|i| match i % 5 {
                    0 => Out::Text("this is not json {".into()),
                    1 => Out::Text(r#"{"stream":"btcusdt@depth","data":{"s":"BTCUSDT"}}"#.into()),
                    2 => Out::Text(r#"{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","E":1,"s":"BTCUSDT","c":"NaN"}}"#.into()),
                    3 => Out::Binary(vec![0, 159, 146, 150]),
                    _ => Out::Text(format!(r#"{{"stream":"btcusdt@ticker","pad":"{}"}}"#, "x".repeat(100_000))),
                })
                .collect()
        });
    json!({"connections": n, "frames_each": count})
}

/// The REST endpoints' fault: `status` (0 stops it), `retry_after`, `count`, `slow_ms`.
fn rest_fault(ex: &Exchange, q: &Query) -> Value {
    let fault = super::rest::RestFault {
        status: number(q, "status").unwrap_or(0) as u16,
        retry_after: number(q, "retry_after"),
        remaining: number(q, "count"),
        slow_ms: number(q, "slow_ms").unwrap_or(0),
    };
    lock(&ex.faults).rest = fault;
    json!({"rest_status": fault.status, "slow_ms": fault.slow_ms})
}

/// Holds `symbol`'s open interest at `value` (a decimal string), or lets it drift again
/// without one.
fn hold_open_interest(ex: &Exchange, q: &Query) -> Value {
    let symbol = q
        .get("symbol")
        .cloned()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let mut f = lock(&ex.faults);
    match q.get("value").filter(|v| !v.is_empty()) {
        Some(v) => f.open_interest.insert(symbol.clone(), v.clone()),
        None => f.open_interest.remove(&symbol),
    };
    json!({"symbol": symbol, "held": f.open_interest.get(&symbol)})
}

fn refuse(ex: &Exchange, q: &Query) -> Value {
    let status = number(q, "status").unwrap_or(429) as u16;
    let mut f = lock(&ex.faults);
    if status == 0 {
        f.refuse = None;
        json!({"refusing": null})
    } else {
        f.refuse = Some(Refusal {
            status,
            remaining: number(q, "count"),
            until: number(q, "seconds").map(|s| Instant::now() + Duration::from_secs(s)),
            retry_after: number(q, "retry_after"),
        });
        json!({"refusing": status})
    }
}

fn shutdown(ex: &Exchange, q: &Query) -> Value {
    let after = number(q, "close_after_ms").unwrap_or(1_000);
    let msg = json!({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": now_ms()}})
        .to_string();
    let n = ex.broadcast(|| vec![Out::Text(msg.clone())]);
    let senders: Vec<UnboundedSender<Out>> =
        lock(&ex.conns).values().map(|c| c.tx.clone()).collect();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after)).await;
        for tx in senders {
            let _ = tx.send(Out::Close(1000, "server shutdown"));
        }
    });
    json!({"announced": n, "close_after_ms": after})
}

fn reset(ex: &Exchange, _: &Query) -> Value {
    let open = lock(&ex.conns).len();
    *lock(&ex.stats) = Stats {
        peak_connections: open,
        ..Stats::default()
    };
    json!({"reset": true})
}

fn tick(ex: &Exchange, q: &Query) -> Result<Value, &'static str> {
    match q.get("symbol") {
        Some(s) => {
            ex.tick(&s.to_ascii_uppercase());
            Ok(json!({"ticked": s.to_ascii_uppercase()}))
        }
        None => Err("tick needs ?symbol="),
    }
}

fn rate(ex: &Exchange, q: &Query) -> Result<Value, &'static str> {
    match q.get("value").and_then(|v| v.parse::<f64>().ok()) {
        Some(r) if r >= 0.0 => {
            ex.rate_millis.store((r * 1000.0) as u64, Ordering::Relaxed);
            Ok(json!({"rate": r}))
        }
        _ => Err("rate needs ?value=<updates per second>"),
    }
}
