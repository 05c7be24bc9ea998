//! Hibernation end to end (`TEST_FAULTS=on`): the leader and every shard hibernate and wake
//! with their client sockets open; each client keeps what it held, however large (an
//! attachment that outgrew a socket's is kept in storage), and the shards link again without
//! a client having to speak.

use serde_json::json;

use crate::support::*;
use crate::*;

const TOKEN: &str = "publish-secret";
const DESKS: usize = 60;

fn desk(n: usize) -> String {
    format!("signals-of-the-trading-desk-{n:02}")
}

fn publish(svc: &Service, channel: &str, n: u64) {
    let body = json!({"channel": format!("events:{channel}"), "event": "desk", "data": {"n": n}});
    publish_json(svc, TOKEN, &body);
}

/// What `list` says the client holds: every symbol and channel, sorted.
fn held(c: &mut Client) -> Vec<String> {
    c.send_json(json!({"action": "list", "id": 9}));
    let (v, _) = c.wait_for("subscriptions", T, |v| v["type"] == "subscriptions");
    let mut all: Vec<String> = ["symbols", "channels"]
        .iter()
        .flat_map(|k| v[*k].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    all.sort();
    all
}

/// Waits until `/health` counts `n` attachments kept in storage (only the large one's: the
/// local runtime does not refuse a larger attachment as the platform does, so this is what
/// shows the large one went to storage).
fn stored_attachments(svc: &Service, n: u64) {
    wait_until("the stored attachments counted", T, || {
        let h = get(&svc.url("/health")).json();
        (h["clients"]["stored_attachments"].as_u64()? == n).then_some(())
    });
}

/// Every object hibernates and wakes; the answers say how many sockets each took back.
fn hibernate_all(svc: &Service) -> u64 {
    let mut woken = 0;
    for path in [
        "/fault/hibernate?shard=0",
        "/fault/hibernate?shard=1",
        "/fault/hibernate",
    ] {
        let r = get(&svc.url(path));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        woken += r.json()["woken"].as_u64().unwrap_or(0);
    }
    woken
}

/// Waits until each of `wanted` (a channel and the event's `n`) has come, in any order.
fn events(c: &mut Client, wanted: &[(&str, u64)]) {
    let mut missing: Vec<(String, u64)> = wanted
        .iter()
        .map(|(ch, n)| (format!("events:{ch}"), *n))
        .collect();
    while !missing.is_empty() {
        let (v, _) = c.wait_for("the events", T, |v| v["type"] == "event");
        let got = (
            v["channel"].as_str().unwrap_or("").to_string(),
            v["data"]["n"].as_u64().unwrap_or(0),
        );
        missing.retain(|m| *m != got);
    }
}

pub fn subscriptions_of_any_size_survive_hibernation(_ctx: &mut Ctx) {
    let ex = Exchange::start(&["--rate", "5"]);
    let desks: Vec<String> = (0..DESKS).map(desk).collect();
    let svc = Service::start(
        "hibernation",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT"),
            ("FANOUT_SHARDS", "2"),
            ("TEST_FAULTS", "on"),
            ("PUBLISH_TOKEN", TOKEN),
            ("EVENT_CHANNELS", &desks.join(",")),
        ],
    );
    wait_connected(&svc);
    // Many: 60 channels of 40 bytes and a symbol, more than a socket's 2,048 bytes carry.
    let mut many = svc.ws();
    let channels: Vec<String> = desks.iter().map(|d| format!("events:{d}")).collect();
    many.send_json(
        json!({"action": "subscribe", "symbols": ["BTCUSDT"], "channels": channels, "id": 1}),
    );
    many.wait_for("subscribed", T, |v| v["type"] == "subscribed");
    let mut few = svc.ws();
    let first = format!("events:{}", desks[0]);
    few.send_json(
        json!({"action": "subscribe", "symbols": ["ETHUSDT"], "channels": [first], "id": 1}),
    );
    few.wait_for("subscribed", T, |v| v["type"] == "subscribed");
    let before = (held(&mut many), held(&mut few));
    assert_eq!(before.0.len(), DESKS + 1);
    stored_attachments(&svc, 1);

    assert_eq!(hibernate_all(&svc), 2, "both sockets taken back");
    // Nobody speaks: the shards link again by themselves, and events and prices flow.
    publish(&svc, &desks[DESKS - 1], 1);
    publish(&svc, &desks[0], 2);
    // Order holds within a channel, not across channels (a catch-up goes channel by channel).
    events(&mut many, &[(&desks[DESKS - 1], 1), (&desks[0], 2)]);
    events(&mut few, &[(&desks[0], 2)]);
    for (c, symbol) in [(&mut many, "BTCUSDT"), (&mut few, "ETHUSDT")] {
        c.wait_for("a price after waking", T, |v| {
            v["type"] == "prices" && v["prices"][0]["symbol"] == symbol
        });
    }
    assert_eq!((held(&mut many), held(&mut few)), before, "nothing lost");
    stored_attachments(&svc, 1);

    // Back under the socket's size: the attachment holds it again (the stored copy is
    // forgotten), and a second hibernation keeps exactly that.
    let dropped: Vec<String> = channels[5..].to_vec();
    many.send_json(json!({"action": "unsubscribe", "channels": dropped, "id": 2}));
    many.wait_for("unsubscribed", T, |v| v["type"] == "unsubscribed");
    let kept = held(&mut many);
    assert_eq!(kept.len(), 6);
    stored_attachments(&svc, 0);
    assert_eq!(hibernate_all(&svc), 2);
    assert_eq!(held(&mut many), kept);
    publish(&svc, &desks[1], 3);
    events(&mut many, &[(&desks[1], 3)]);
}
