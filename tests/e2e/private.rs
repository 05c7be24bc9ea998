//! Private channels end to end (`JWT_SECRET`), through two fan-out shards: a bad, forged or
//! expired token is refused at connect, a user reads only their own `user:<id>:` channels
//! (live, recovered and over SSE), and a token that expires on an open connection closes it
//! with 4401; what private channels keep together is bounded, the oldest evicted first, and
//! a channel forgotten by the bound never reuses an offset, across a restart too.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;
use crate::*;

const SECRET: &str = "jwt-secret-for-tests";
const PUBLISH: &str = "publish-secret";

/// An HS256 JWT for `sub`, valid for `secs` more seconds, signed with `secret`.
fn token(secret: &str, sub: &str, secs: i64) -> String {
    let now = epoch_ms() / 1000;
    let claims = json!({"sub": sub, "exp": now + secs}).to_string();
    edgetick::core::auth::sign_hs256(secret, &claims)
}

fn private_service(extra: &[(&str, &str)]) -> (Exchange, Service) {
    let ex = Exchange::start(&["--rate", "5"]);
    let url = ex.stream_url();
    let mut vars = vec![
        ("UPSTREAM_URL", url.as_str()),
        ("SYMBOLS", "BTCUSDT"),
        ("FANOUT_SHARDS", "2"),
        ("JWT_SECRET", SECRET),
        ("PUBLISH_TOKEN", PUBLISH),
        ("EVENT_CHANNELS", "signals,portfolio"),
    ];
    vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    vars.extend_from_slice(extra);
    let svc = Service::start("private", &vars);
    wait_connected(&svc);
    (ex, svc)
}

fn publish(svc: &Service, channel: &str, n: u64) -> Value {
    let body = json!({"channel": channel, "event": "portfolio_update", "data": {"n": n}});
    publish_json(svc, PUBLISH, &body)
}

fn subscribe_private(c: &mut Client, channel: &str, since: Option<Value>) -> Value {
    subscribe_replaying(c, channel, since).0
}

/// The answer to a subscribe of `channel` (from `since`), and the frames before it (what a
/// recovery replays comes first).
fn subscribe_replaying(c: &mut Client, channel: &str, since: Option<Value>) -> (Value, Vec<Value>) {
    let mut cmd = json!({"action": "subscribe", "channels": [channel], "id": 3});
    if let Some(s) = since {
        cmd["since"] = s;
    }
    c.send_json(cmd);
    c.wait_for("an answer", T, |v| v["id"] == 3)
}

pub fn private_channels_reach_only_their_owner(_ctx: &mut Ctx) {
    let (_ex, svc) = private_service(&[]);
    let refused = |q: &str| svc.ws_with(&format!("/ws{q}"), &[]).err();
    assert_eq!(refused(""), Some(401), "no token");
    let forged = token("not-the-secret", "alice", 600);
    assert_eq!(refused(&format!("?token={forged}")), Some(401), "forged");
    let expired = token(SECRET, "alice", -10);
    assert_eq!(refused(&format!("?token={expired}")), Some(401), "expired");
    let alice_t = token(SECRET, "alice", 600);
    let bob_t = token(SECRET, "bob", 600);
    let mut alice = svc
        .ws_with(&format!("/ws?token={alice_t}"), &[])
        .expect("alice connects");
    let bearer = format!("Bearer {bob_t}");
    let mut bob = svc
        .ws_with("/ws", &[("Authorization", &bearer)])
        .expect("bob connects");
    assert_eq!(
        subscribe_private(&mut alice, "user:alice:portfolio", None)["type"],
        "subscribed"
    );
    let no = subscribe_private(&mut bob, "user:alice:portfolio", None);
    assert_eq!(
        (no["type"].as_str(), no["code"].as_str()),
        (Some("error"), Some("FORBIDDEN"))
    );
    assert_eq!(
        subscribe_private(&mut bob, "user:bob:portfolio", None)["type"],
        "subscribed"
    );
    let first = publish(&svc, "user:alice:portfolio", 1);
    let (e, _) = alice.wait_for("alice's event", T, |v| v["type"] == "event");
    assert_eq!(
        (e["channel"].as_str(), e["data"]["n"].as_u64()),
        (Some("user:alice:portfolio"), Some(1))
    );
    publish(&svc, "user:bob:portfolio", 2);
    let (e, skipped) = bob.wait_for("bob's own event", T, |v| v["type"] == "event");
    assert_eq!(e["channel"], "user:bob:portfolio");
    assert!(
        skipped.iter().all(|v| v["type"] != "event"),
        "alice's event never reached bob"
    );
    let since = json!({"user:alice:portfolio": {"offset": 0, "epoch": first["epoch"]}});
    let stolen = subscribe_private(&mut bob, "user:alice:portfolio", Some(since));
    assert_eq!(
        stolen["code"], "FORBIDDEN",
        "recovery of another's channel returns nothing"
    );
    let sse_path = |t: &str| format!("/api/stream?channels=user:alice:portfolio&token={t}");
    let status = svc.sse(&sse_path(&bob_t), &[]).err().map(|r| r.status);
    assert_eq!(status, Some(403), "bob's SSE for alice's channel");
    let mut sse = svc.sse(&sse_path(&alice_t), &[]).expect("alice's SSE");
    sse.wait_for("subscribed", T);
    publish(&svc, "user:alice:portfolio", 3);
    let ev = sse.wait_for("event", T).json();
    assert_eq!(ev["data"]["n"], 3);
    assert_eq!(
        svc.sse("/api/stream?channels=events:signals", &[])
            .err()
            .map(|r| r.status),
        Some(401)
    );
}

pub fn a_token_expiring_mid_connection_closes_4401(_ctx: &mut Ctx) {
    let (_ex, svc) = private_service(&[("TEST_FAULTS", "on")]);
    let short = token(SECRET, "alice", 3);
    let mut c = svc
        .ws_with(&format!("/ws?token={short}"), &[])
        .expect("connects");
    assert_eq!(
        subscribe_private(&mut c, "user:alice:portfolio", None)["type"],
        "subscribed"
    );
    // The expiry is the object's alarm: it fires even after the object lost its memory
    // (an in-memory timer would not have, and would have kept the object awake meanwhile).
    for path in ["/fault/hibernate?shard=0", "/fault/hibernate?shard=1"] {
        assert_eq!(get(&svc.url(path)).status, 200, "{path}");
    }
    assert_eq!(c.wait_closed(Duration::from_secs(15)), 4401);
}

/// Where `c`, as `user`, stands after subscribing to its portfolio from `offset`: the
/// `recovered` flag and the `n` of each event replayed.
fn recover_from(svc: &Service, user: &str, offset: u64, epoch: &Value) -> (Value, Vec<u64>) {
    let t = token(SECRET, user, 600);
    let mut c = svc
        .ws_with(&format!("/ws?token={t}"), &[])
        .expect("connects");
    let channel = format!("user:{user}:portfolio");
    let since = json!({ channel.clone(): {"offset": offset, "epoch": epoch} });
    let (ack, before) = subscribe_replaying(&mut c, &channel, Some(since));
    let replayed = before
        .iter()
        .filter(|v| v["type"] == "event")
        .filter_map(|v| v["data"]["n"].as_u64())
        .collect();
    (ack["recovered"].clone(), replayed)
}

pub fn private_history_is_bounded_oldest_first_and_never_reuses_an_offset(_ctx: &mut Ctx) {
    // The leader answers every recovery here: a shard's copy applies a publish a moment after
    // the publisher's answer, so what it evicted would race the next read.
    let (_ex, mut svc) =
        private_service(&[("PRIVATE_HISTORY_EVENTS", "3"), ("FANOUT_SHARDS", "0")]);
    let first = publish(&svc, "user:alice:portfolio", 1);
    let epoch = first["epoch"].clone();
    publish(&svc, "user:bob:portfolio", 2);
    publish(&svc, "user:alice:portfolio", 3);
    publish(&svc, "user:carol:portfolio", 4);
    // Four private events, three kept: alice's first, the oldest, is gone.
    assert_eq!(
        recover_from(&svc, "alice", 0, &epoch),
        (json!(false), vec![])
    );
    assert_eq!(
        recover_from(&svc, "alice", 1, &epoch),
        (json!(true), vec![3])
    );
    // Bob's only event goes next: his channel is forgotten whole.
    publish(&svc, "user:carol:portfolio", 5);
    assert_eq!(recover_from(&svc, "bob", 0, &epoch), (json!(false), vec![]));
    // Storage forgot them too, and kept the floor: after a restart nothing comes back, and
    // bob's next event takes an offset he never had.
    svc.restart();
    wait_connected(&svc);
    assert_eq!(
        recover_from(&svc, "alice", 0, &epoch),
        (json!(false), vec![])
    );
    assert_eq!(
        recover_from(&svc, "carol", 0, &epoch),
        (json!(true), vec![4, 5])
    );
    let again = publish(&svc, "user:bob:portfolio", 6);
    assert_eq!(again["offset"], 2, "above bob's last offset, 1");
    assert_eq!(again["epoch"], epoch);
}
