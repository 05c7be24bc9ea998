//! The application's event channels end to end, through four fan-out shards: publish
//! reaches every subscriber once and in order, each refusal has its status, a returning
//! client recovers exactly what it missed (or learns it cannot), and a wiped history
//! changes the epoch.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;
use crate::*;

const TOKEN: &str = "publish-secret";

/// A service with four shards, event channels and a publish token.
fn events_service(extra: &[(&str, &str)]) -> (Exchange, Service) {
    let ex = Exchange::start(&["--rate", "5"]);
    let mut vars = vec![
        ("UPSTREAM_URL", ex.stream_url()),
        ("SYMBOLS", "BTCUSDT,ETHUSDT".to_string()),
        ("FANOUT_SHARDS", "4".to_string()),
        ("TEST_FAULTS", "on".to_string()),
        ("PUBLISH_TOKEN", TOKEN.to_string()),
        ("EVENT_CHANNELS", "signals,alerts".to_string()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let svc = Service::start("events", &pairs);
    wait_connected(&svc);
    (ex, svc)
}

fn publish(svc: &Service, channel: &str, n: u64) -> Value {
    let data = json!({"n": n, "px": "101.50"});
    publish_json(
        svc,
        TOKEN,
        &json!({"channel": channel, "event": "signal_generated", "data": data}),
    )
}

/// Subscribes with `since` and returns the `subscribed` frame and the offsets of the events
/// replayed before it (what was missed comes first, then `subscribed` with `recovered`).
fn recover(c: &mut Client, channel: &str, since: Value) -> (Value, Vec<u64>) {
    c.send_json(json!({"action": "subscribe", "channels": [channel], "since": since, "id": 1}));
    let (ack, before) = c.wait_for("subscribed", T, |v| v["type"] == "subscribed");
    let replayed = before
        .iter()
        .filter(|v| v["type"] == "event")
        .map(|v| v["offset"].as_u64().unwrap_or(0))
        .collect();
    (ack, replayed)
}

/// Subscribes to event channels (with `since` when given); returns the `subscribed` frame.
fn subscribe_channels(c: &mut Client, channels: &[&str], since: Option<Value>) -> Value {
    let mut cmd = json!({"action": "subscribe", "channels": channels, "id": 1});
    if let Some(s) = since {
        cmd["since"] = s;
    }
    c.send_json(cmd);
    let (ack, _) = c.wait_for("subscribed", T, |v| v["type"] == "subscribed");
    ack
}

/// The next `n` event frames' offsets on `channel`.
fn offsets(c: &mut Client, channel: &str, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            let (e, _) = c.wait_for("an event", T, |v| v["type"] == "event");
            assert_eq!(e["channel"], channel, "{e}");
            assert_eq!(e["data"]["px"], "101.50", "decimals stay strings");
            e["offset"].as_u64().unwrap_or(0)
        })
        .collect()
}

pub fn publish_reaches_every_shard_once_in_order(_ctx: &mut Ctx) {
    let (_ex, svc) = events_service(&[]);
    let mut clients: Vec<Client> = (0..8).map(|_| svc.ws()).collect();
    for c in clients.iter_mut() {
        let ack = subscribe_channels(c, &["events:signals"], None);
        assert_eq!(ack["channels"], json!(["events:signals"]));
    }
    let mut other = svc.ws();
    subscribe_channels(&mut other, &["events:alerts"], None);
    let mut readers: Vec<SseReader> = (0..4)
        .map(|_| {
            svc.sse("/api/stream?channels=events:signals", &[])
                .expect("an SSE reader")
        })
        .collect();
    for r in readers.iter_mut() {
        r.wait_for("subscribed", T);
    }
    let h = wait_until(
        "the shards to report 9 WebSockets and 4 streams",
        Duration::from_secs(20),
        || {
            let h = health(&svc);
            let (ws, sse) = (
                h["clients"]["websocket"].as_u64(),
                h["clients"]["sse"].as_u64(),
            );
            (ws == Some(9) && sse == Some(4)).then_some(h)
        },
    );
    let busy = h["shards"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|s| s["clients"]["websocket"].as_u64() > Some(0))
            .count()
    });
    assert!(busy >= 2, "clients on at least two shards: {h}");
    let first = publish(&svc, "events:signals", 0)["offset"]
        .as_u64()
        .unwrap_or(0);
    for n in 1..10 {
        publish(&svc, "events:signals", n);
    }
    let want: Vec<u64> = (first..first + 10).collect();
    for c in clients.iter_mut() {
        assert_eq!(
            offsets(c, "events:signals", 10),
            want,
            "each once, in order"
        );
    }
    for r in readers.iter_mut() {
        let got: Vec<u64> = (0..10)
            .map(|_| {
                r.wait_for("event", T).json()["offset"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .collect();
        assert_eq!(got, want, "SSE readers alike");
    }
    let marker = publish(&svc, "events:alerts", 99)["offset"].as_u64();
    let (e, skipped) = other.wait_for("the alert", T, |v| v["type"] == "event");
    assert_eq!(e["offset"].as_u64(), marker);
    assert!(
        skipped.iter().all(|v| v["type"] != "event"),
        "no signal reached an alerts-only client: {skipped:?}"
    );
    c_list(&mut other);
}

fn c_list(c: &mut Client) {
    c.send_json(json!({"action": "list", "id": 5}));
    let (l, _) = c.wait_for("subscriptions", T, |v| v["type"] == "subscriptions");
    assert_eq!(l["channels"], json!(["events:alerts"]));
    assert_eq!(l["symbols"], json!([]));
}

pub fn each_publish_refusal_has_its_status(ctx: &mut Ctx) {
    let no_route = post(&ctx.svc.url("/api/publish"), &[], "{}");
    assert_eq!(no_route.status, 404, "no PUBLISH_TOKEN, no route");
    let (_ex, svc) = events_service(&[("PUBLISH_PER_SECOND", "3"), ("MAX_EVENT_BYTES", "200")]);
    let url = svc.url("/api/publish");
    let body = r#"{"channel":"events:signals","event":"x","data":{}}"#;
    let auth = format!("Bearer {TOKEN}");
    let send = |headers: &[(&str, &str)], body: &str| post(&url, headers, body);
    let r = send(&[], body);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("UNAUTHORIZED"))
    );
    assert_eq!(send(&[("Authorization", "Bearer wrong")], body).status, 401);
    let r = send(
        &[("Authorization", &auth)],
        r#"{"channel":"events:nope","event":"x"}"#,
    );
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("UNKNOWN_CHANNEL"))
    );
    let r = send(&[("Authorization", &auth)], "not json");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("BAD_REQUEST"))
    );
    let big = json!({"channel": "events:signals", "event": "x", "data": "y".repeat(300)});
    let r = send(&[("Authorization", &auth)], &big.to_string());
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (413, json!("TOO_LARGE"))
    );
    assert_eq!(request("GET", &url).map(|r| r.status), Ok(405));
    // The scheme is case-insensitive (RFC 7235), as on the stream routes.
    let lower = format!("bearer {TOKEN}");
    let r = send(&[("Authorization", &lower)], body);
    assert_eq!(r.status, 200, "lower-case bearer: {}", r.body);
    let statuses: Vec<u16> = (0..8)
        .map(|_| send(&[("Authorization", &auth)], body).status)
        .collect();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        refused >= 1 && statuses[0] == 200,
        "over PUBLISH_PER_SECOND: {statuses:?}"
    );
}

pub fn a_returning_client_recovers_what_it_missed(_ctx: &mut Ctx) {
    let (_ex, svc) = events_service(&[("EVENT_HISTORY", "10")]);
    let mut c = svc.ws();
    subscribe_channels(&mut c, &["events:signals"], None);
    let p = publish(&svc, "events:signals", 0);
    let (e, _) = c.wait_for("an event", T, |v| v["type"] == "event");
    let (at, epoch) = (e["offset"].as_u64().unwrap_or(0), e["epoch"].clone());
    assert_eq!(epoch, p["epoch"]);
    drop(c);
    for n in 1..=5 {
        publish(&svc, "events:signals", n);
    }
    let since =
        |offset: u64, epoch: &Value| json!({"events:signals": {"offset": offset, "epoch": epoch}});
    let mut back = svc.ws();
    let (ack, replayed) = recover(&mut back, "events:signals", since(at, &epoch));
    assert_eq!(ack["recovered"], true, "{ack}");
    assert_eq!(
        replayed,
        (at + 1..=at + 5).collect::<Vec<_>>(),
        "exactly those 5"
    );
    for n in 6..=20 {
        publish(&svc, "events:signals", n);
    }
    let mut late = svc.ws();
    let (ack, replayed) = recover(&mut late, "events:signals", since(at, &epoch));
    assert_eq!(
        ack["recovered"], false,
        "more than EVENT_HISTORY missed: {ack}"
    );
    assert!(
        replayed.is_empty(),
        "nothing replayed for a lost gap: {replayed:?}"
    );
    let wiped = get(&svc.url("/fault/wipe-history")).json();
    assert_ne!(wiped["epoch"], epoch, "a wiped history has a new epoch");
    let mut after = svc.ws();
    let ack = subscribe_channels(
        &mut after,
        &["events:signals"],
        Some(since(at + 20, &epoch)),
    );
    assert_eq!(ack["recovered"], false, "the old epoch is gone: {ack}");
    let p = publish(&svc, "events:signals", 21);
    assert_eq!(
        (p["offset"].as_u64(), &p["epoch"]),
        (Some(1), &wiped["epoch"])
    );
    let (e, _) = after.wait_for(
        "the new epoch's first event",
        Duration::from_secs(20),
        |v| v["type"] == "event",
    );
    assert_eq!(
        (e["offset"].as_u64(), &e["epoch"]),
        (Some(1), &wiped["epoch"])
    );
}

pub fn sse_streams_events_and_resumes_by_last_event_id(_ctx: &mut Ctx) {
    let (_ex, svc) = events_service(&[]);
    let mut sse = svc
        .sse(
            "/api/stream?channels=events:signals,events:alerts&symbols=BTCUSDT",
            &[],
        )
        .expect("an SSE stream of channels");
    let sub = sse.wait_for("subscribed", T);
    assert_eq!(
        sub.json()["channels"],
        json!(["events:signals", "events:alerts"])
    );
    sse.wait_for("snapshot", T);
    let mut ws = svc.ws();
    subscribe_channels(&mut ws, &["events:signals"], None);
    let first = publish(&svc, "events:signals", 1)["offset"]
        .as_u64()
        .unwrap_or(0);
    let e = sse.wait_for("event", T);
    assert_eq!(e.json()["offset"].as_u64(), Some(first));
    let id = e.raw_id.clone().expect("an event has an id");
    assert!(
        id.contains('_'),
        "the id carries the channels' positions: {id}"
    );
    assert_eq!(
        offsets(&mut ws, "events:signals", 1),
        [first],
        "WebSocket and SSE alike"
    );
    drop(sse);
    for n in 2..=4 {
        publish(&svc, "events:signals", n);
    }
    publish(&svc, "events:alerts", 5);
    let mut back = svc
        .sse(
            "/api/stream?channels=events:signals,events:alerts&symbols=BTCUSDT",
            &[("Last-Event-ID", &id)],
        )
        .expect("a resumed stream");
    let sub = back.wait_for("subscribed", T);
    assert_eq!(sub.json()["recovered"], true, "{}", sub.data);
    let mut got = Vec::new();
    while got.len() < 4 {
        let e = back.wait_for("event", T).json();
        got.push((
            e["channel"].as_str().unwrap_or_default().to_string(),
            e["offset"].as_u64().unwrap_or(0),
        ));
    }
    let want: Vec<(String, u64)> = (first + 1..=first + 3)
        .map(|o| ("events:signals".to_string(), o))
        .chain([("events:alerts".to_string(), 1)])
        .collect();
    assert_eq!(got, want, "exactly what was missed, in order");
}

pub fn a_client_too_slow_for_events_is_closed_4009_and_recovers(_ctx: &mut Ctx) {
    let (_ex, svc) = events_service(&[("PUBLISH_PER_SECOND", "1000")]);
    let mut slow = svc.ws();
    subscribe_channels(&mut slow, &["events:signals"], None);
    // It speaks flow control (a 1 MiB window), then stops reading.
    slow.send_json(json!({"action": "ack", "seq": 0}));
    let mut bystander = svc.ws();
    subscribe_channels(&mut bystander, &["events:signals"], None);
    let auth = format!("Bearer {TOKEN}");
    let filler = "y".repeat(15_000);
    let total = 90;
    for n in 0..total {
        let body =
            json!({"channel": "events:signals", "event": "bulk", "data": {"n": n, "fill": filler}});
        let r = post(
            &svc.url("/api/publish"),
            &[("Authorization", &auth)],
            &body.to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut seen = Vec::new();
    let code = loop {
        match slow.next(T) {
            Some(Frame::Json(v)) if v["type"] == "event" => {
                seen.push(v["offset"].as_u64().unwrap_or(0))
            }
            Some(_) => {}
            None => break slow.closed.unwrap_or(0),
        }
        if let Some(code) = slow.closed {
            break code;
        }
    };
    assert_eq!(code, 4009, "closed as too slow after {} events", seen.len());
    assert!(
        seen.len() < total,
        "it did not get them all: {}",
        seen.len()
    );
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, no gap before the close"
    );
    let mut all = Vec::new();
    while all.len() < total {
        let (e, _) = bystander.wait_for("an event", T, |v| v["type"] == "event");
        all.push(e["offset"].as_u64().unwrap_or(0));
    }
    assert_eq!(
        all,
        (1..=total as u64).collect::<Vec<_>>(),
        "the bystander got every event"
    );
    let last = seen.last().copied().unwrap_or(0);
    let epoch = bystander_epoch(&svc);
    let mut back = svc.ws();
    let since = json!({"events:signals": {"offset": last, "epoch": epoch}});
    let (ack, rest) = recover(&mut back, "events:signals", since);
    assert_eq!(ack["recovered"], true, "{ack}");
    assert_eq!(rest, (last + 1..=total as u64).collect::<Vec<_>>());
}

/// The current epoch, from a publish to the other channel.
fn bystander_epoch(svc: &Service) -> Value {
    publish(svc, "events:alerts", 0)["epoch"].clone()
}
