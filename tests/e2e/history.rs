//! The candle history end to end: `/api/candles` backfilled from the fake exchange's REST
//! klines (the same candles it serves), edge-cached with an ETag until the next close,
//! extended by the stream's closes with no gap and no duplicate, a REST endpoint that
//! refuses with 429 backed off (its `Retry-After` honoured) until it answers, and a
//! restarted service answering from its storage.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;
use crate::*;

const MIN: i64 = 60_000;

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(15))
        .build()
}

/// A GET that keeps its headers; HTTP errors are answers too.
fn call(url: &str, if_none_match: Option<&str>) -> ureq::Response {
    let mut req = agent().get(url);
    if let Some(tag) = if_none_match {
        req = req.set("If-None-Match", tag);
    }
    match req.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// The open times of an answer's candles, checked one per interval with no gap, all closed.
fn open_times(body: &Value, interval_ms: i64) -> Vec<i64> {
    let candles = body["candles"].as_array().expect("candles");
    let times: Vec<i64> = candles.iter().map(|c| c["t"].as_i64().unwrap()).collect();
    for pair in times.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            interval_ms,
            "one candle per interval, in order"
        );
    }
    assert!(candles
        .iter()
        .all(|c| c["closed"] == true && c["c"].is_string()));
    times
}

fn rest_requests(ex: &Exchange) -> u64 {
    ex.state()["stats"]["rest_requests"].as_u64().unwrap_or(0)
}

pub fn candles_are_backfilled_then_extended_by_closes(ctx: &mut Ctx) {
    let (ex, svc) = (&ctx.ex, &ctx.svc);
    let before = epoch_ms();
    let url = svc.url("/api/candles?symbol=xrp-usdt&interval=1m");
    let first = call(&url, None);
    assert_eq!(first.status(), 200);
    let tag = first.header("ETag").expect("an ETag").to_string();
    let control = first
        .header("Cache-Control")
        .unwrap_or_default()
        .to_string();
    let body: Value = serde_json::from_str(&first.into_string().unwrap()).unwrap();
    assert_eq!(
        (body["symbol"].as_str(), body["interval"].as_str()),
        (Some("XRPUSDT"), Some("1m"))
    );
    let times = open_times(&body, MIN);
    assert_eq!(
        times.len(),
        500,
        "CANDLE_HISTORY's worth, backfilled before the answer"
    );
    let newest = *times.last().unwrap();
    let after = epoch_ms();
    assert!(
        [before, after].iter().any(|t| newest == t - t % MIN - MIN),
        "the newest is the last closed minute ({newest})"
    );
    let max_age: i64 = control
        .trim_start_matches("public, max-age=")
        .parse()
        .unwrap_or(0);
    assert!(
        (1..=60).contains(&max_age),
        "kept until the next close: {control}"
    );
    // The same candles the exchange serves.
    let klines = get(&format!(
        "{}/api/v3/klines?symbol=XRPUSDT&interval=1m&startTime={}&limit=500",
        ex.rest_url(),
        times[0]
    ))
    .json();
    for (ours, theirs) in body["candles"]
        .as_array()
        .unwrap()
        .iter()
        .zip(klines.as_array().unwrap())
    {
        assert_eq!(ours["t"], theirs[0]);
        assert_eq!(
            [&ours["o"], &ours["h"], &ours["l"], &ours["c"], &ours["v"]],
            [&theirs[1], &theirs[2], &theirs[3], &theirs[4], &theirs[5]]
        );
    }
    // Read again: the edge answers, and the tag revalidates.
    let asked = rest_requests(ex);
    let again = call(&url, Some(&tag));
    assert_eq!(again.status(), 304);
    assert_eq!(again.header("ETag"), Some(tag.as_str()));
    assert_eq!(
        rest_requests(ex),
        asked,
        "a read of a complete series asks nothing upstream"
    );
    // A close on the stream joins the history (a tick first: the exchange may be paused, and
    // its candle is then the minute of the symbol's last trade).
    ex.control("tick?symbol=XRPUSDT");
    let mut c = svc.ws();
    c.send_json(json!({"action": "subscribe", "channels": ["candles:XRPUSDT:1m"], "id": 1}));
    c.wait_for("subscribed", T, |v| v["type"] == "subscribed");
    // The upstream follows the channel once its first candle arrives; then the close.
    c.wait_for("the open candle", T, |v| v["type"] == "candle");
    ex.control("candle-close?symbol=XRPUSDT");
    let (closed, _) = c.wait_for("the close", T, |v| {
        v["type"] == "candle" && v["candle"]["closed"] == true
    });
    let closed_t = closed["candle"]["t"].as_i64().unwrap();
    // A new limit is a new cache key: the leader's answer, not the edge's copy.
    let latest = wait_until("the close in the history", T, || {
        let r = call(
            &svc.url("/api/candles?symbol=XRPUSDT&interval=1m&limit=499"),
            None,
        );
        let v: Value = serde_json::from_str(&r.into_string().ok()?).ok()?;
        let times = open_times(&v, MIN);
        (times.last() == Some(&closed_t)).then_some((v, times))
    });
    assert_eq!(latest.1.len(), 499);
    assert_eq!(
        latest.0["candles"][498]["c"], closed["candle"]["c"],
        "the stream's candle"
    );
}

pub fn candle_backfill_backs_off_on_429_and_recovers(_ctx: &mut Ctx) {
    let ex = Exchange::start(&["--rate", "20"]);
    let mut svc = Service::start(
        "history",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT"),
        ],
    );
    ex.control("rest?status=429&retry_after=2&count=2");
    let started = Instant::now();
    let url = svc.url("/api/candles?symbol=BTCUSDT&interval=5m&limit=100");
    let full = wait_until(
        "the backfill after two refusals",
        Duration::from_secs(30),
        || {
            let v: Value = serde_json::from_str(&call(&url, None).into_string().ok()?).ok()?;
            (open_times(&v, 5 * MIN).len() == 100).then_some(v)
        },
    );
    let waited = started.elapsed();
    let state = ex.state()["stats"].clone();
    assert_eq!(state["rest_refused"], 2, "{state}");
    assert_eq!(
        state["rest_requests"], 3,
        "no request beyond the refusals and the answer"
    );
    assert!(
        waited >= Duration::from_secs(4),
        "each Retry-After (2 s) honoured: {waited:?}"
    );
    // A restarted service answers from its storage: the same candles, and at most the one
    // candle that closed meanwhile asked for.
    svc.restart();
    let v: Value = serde_json::from_str(&call(&url, None).into_string().unwrap()).unwrap();
    let times = open_times(&v, 5 * MIN);
    assert_eq!(times.len(), 100);
    let kept = open_times(&full, 5 * MIN);
    assert!(times.first() >= kept.first() && times.first() <= kept.get(1));
    assert!(rest_requests(&ex) <= 4, "{}", ex.state());
}
