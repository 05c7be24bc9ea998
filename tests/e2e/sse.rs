//! Server-Sent Events end to end: snapshot, live events, resume, keepalive, slow readers.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;
use crate::*;

pub fn sse_snapshot_then_live_events_with_the_pairs_alias(ctx: &mut Ctx) {
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

pub fn sse_read_by_a_real_event_source_client(ctx: &mut Ctx) {
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

pub fn sse_resumes_with_last_event_id(ctx: &mut Ctx) {
    // Halt the two symbols (no ticks, no ticker cadence) so only explicit ticks move them.
    ctx.ex.control("pause?on=1");
    ctx.ex.control("quiet?symbol=BTCUSDT,ETHUSDT");
    // Both cached: BTCUSDT's tick is applied before ETHUSDT's.
    ctx.ex.control("tick?symbol=BTCUSDT");
    tick_and_wait(ctx, "ETHUSDT");
    let mut s = ctx
        .svc
        .sse("/api/stream?symbols=BTCUSDT,ETHUSDT", &[])
        .unwrap();
    let snap = s.wait_for("snapshot", T);
    assert_eq!(snap.json()["prices"].as_array().unwrap().len(), 2);
    let id = snap.id.unwrap();
    drop(s);
    let eth = tick_and_wait(ctx, "ETHUSDT");
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
    ctx.ex.control("quiet?symbol=BTCUSDT,ETHUSDT&on=0");
    ctx.ex.control("pause?on=0");
}

pub fn sse_keepalive_comes_at_least_every_15_seconds(ctx: &mut Ctx) {
    // XRPUSDT halted (not even the ticker's cadence) while the others keep the upstream alive.
    ctx.ex.control("pause?on=0");
    ctx.ex.control("quiet?symbol=XRPUSDT");
    let mut s = ctx.svc.sse("/api/stream?symbols=XRPUSDT", &[]).unwrap();
    s.wait_for("snapshot", T);
    let started = Instant::now();
    let comment = s.wait_for("comment", Duration::from_secs(16));
    assert_eq!(comment.data, "keepalive");
    eprintln!("    keepalive after {:?} of silence", started.elapsed());
    ctx.ex.control("quiet?symbol=XRPUSDT&on=0");
}

pub fn sse_disconnect_is_removed_promptly(ctx: &mut Ctx) {
    let count = |svc: &Service| health(svc)["clients"]["sse"].as_u64().unwrap_or(0);
    ctx.ex.control("pause?on=0");
    // Usually the runtime cancels a closed stream's body at once (~0.2 s). Now and then
    // wrangler's local proxy keeps the runtime's side of a closed stream open without pulling
    // from it; the hub then ends it as a reader that stopped reading (SLOW_CLOSE_MS, 30 s,
    // counted from the first bytes it left unread: for a quiet stream, its next keepalive)
    // and forgets it there and then, without waiting for a pull that may never come (it
    // used to wait, and such a stream was counted until the proxy let go: one fresh run
    // timed out at 45 s). While the socket's buffers still take its bytes the runtime keeps
    // pulling, and the stream is not behind until they are full: the bound allows that
    // twice over. Either way it is forgotten: a stream that lingered past it would be a leak.
    use edgetick::core::fanout::{KEEPALIVE_MS, SLOW_CLOSE_MS};
    let bound = Duration::from_millis(2 * (KEEPALIVE_MS + SLOW_CLOSE_MS) as u64 + 10_000);
    // Streams of earlier scenarios (a quiet one among them) are gone first, so the count
    // below is ours alone.
    wait_until("no SSE clients", bound, || {
        (count(&ctx.svc) == 0).then_some(())
    });
    let mut s = ctx.svc.sse("/api/stream?symbols=BTCUSDT", &[]).unwrap();
    s.wait_for("snapshot", T);
    assert_eq!(count(&ctx.svc), 1);
    drop(s);
    let t0 = Instant::now();
    wait_until("the closed stream to be forgotten", bound, || {
        (count(&ctx.svc) == 0).then_some(())
    });
    eprintln!("    SSE disconnect noticed after {:?}", t0.elapsed());
}

pub fn a_reader_that_stops_does_not_delay_a_bystander(ctx: &mut Ctx) {
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

/// One URL with a channel the service does not serve: the stream opens with what is served
/// and names the rest in a `warning`; a URL with nothing served is refused.
pub fn sse_leaves_out_unserved_channels_and_says_so(ctx: &mut Ctx) {
    let svc = &ctx.svc;
    let mut sse = svc
        .sse("/api/stream?symbols=BTCUSDT&channels=trades:NOPEUSDT", &[])
        .expect("the stream opens with what is served");
    sse.wait_for("snapshot", T);
    let warning = sse.wait_for("warning", T).json();
    assert_eq!(warning["code"], "UNKNOWN_CHANNEL");
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("trades:NOPEUSDT"),
        "{warning}"
    );
    let refused = svc
        .sse("/api/stream?channels=trades:NOPEUSDT", &[])
        .err()
        .expect("nothing served: refused");
    assert_eq!(
        (refused.status, refused.json()["error"].clone()),
        (400, serde_json::json!("UNKNOWN_CHANNEL"))
    );
}
