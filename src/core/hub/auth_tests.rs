//! Private channels through the leader: the owner subscribes and receives, another user is
//! refused and receives nothing (live or recovered), and an expired token closes 4401.

use std::collections::HashMap;

use serde_json::Value;

use super::tests::frames;
use super::*;
use crate::core::feed::neutral::Neutral;
use crate::core::host::ClientHost;
use crate::core::hub::tests::stream;
use crate::core::hub::tests::Drive;
use crate::core::ids::Identity;
use crate::core::ids::SourceId;
use crate::core::input::UpstreamEvent;
use crate::core::protocol::close;
use crate::core::wire::Wire;
use std::rc::Rc;

fn hub() -> Hub {
    let map: HashMap<&str, &str> = [
        ("SYMBOLS", "BTCUSDT"),
        ("UPSTREAM_URL", "ws://127.0.0.1:1/stream"),
        ("FLUSH_MS", "0"),
        ("JWT_SECRET", "s3cret"),
        ("PUBLISH_TOKEN", "p"),
        ("EVENT_CHANNELS", "signals,portfolio"),
    ]
    .into_iter()
    .collect();
    let mut h = Hub::with_source(
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap(),
        Rc::new(Neutral),
    );
    h.restore_events("e1".into(), Vec::new());
    h.start(0);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    h
}

fn user(sub: &str, exp_ms: i64) -> Option<Identity> {
    Some(Identity {
        sub: sub.into(),
        exp_ms,
        channels: None,
    })
}

fn sub(h: &mut Hub, c: ConnId, channel: &str, since: Option<u64>) -> Vec<Value> {
    let since = since.map_or(String::new(), |o| {
        format!(r#","since":{{"{channel}":{{"offset":{o},"epoch":"e1"}}}}"#)
    });
    let text = format!(r#"{{"action":"subscribe","channels":["{channel}"]{since},"id":1}}"#);
    frames(&h.client_says(c, &text, 10), c)
}

#[test]
fn a_private_channel_reaches_its_owner_only() {
    let mut h = hub();
    let (alice, _) = h.client_open(Wire::Json, user("alice", 60_000), 1);
    let (bob, _) = h.client_open(Wire::Json, user("bob", 60_000), 1);
    let ok = sub(&mut h, alice, "user:alice:portfolio", None);
    assert_eq!(ok[0]["type"], "subscribed");
    let no = sub(&mut h, bob, "user:alice:portfolio", None);
    assert_eq!(
        (no[0]["type"].as_str(), no[0]["code"].as_str()),
        (Some("error"), Some("FORBIDDEN"))
    );
    let body =
        r#"{"channel":"user:alice:portfolio","event":"portfolio_update","data":{"usd":"10.5"}}"#;
    let (_, fx) = h.publish(body, 20).unwrap();
    assert_eq!(frames(&fx, alice)[0]["data"]["usd"], "10.5");
    assert!(frames(&fx, bob).is_empty(), "nothing leaks to another user");
    let again = sub(&mut h, bob, "user:alice:portfolio", Some(0));
    assert_eq!(
        again.len(),
        1,
        "a recovery of another's channel returns nothing: {again:?}"
    );
    assert_eq!(again[0]["code"], "FORBIDDEN");
    let (anon, _) = h.client_open(Wire::Json, None, 1);
    assert_eq!(
        sub(&mut h, anon, "user:alice:portfolio", None)[0]["code"],
        "FORBIDDEN"
    );
    assert_eq!(
        h.sse_open(
            &stream(
                &[],
                &["user:alice:portfolio".into()],
                None,
                user("bob", 60_000)
            ),
            30
        )
        .unwrap_err()
        .status(),
        403
    );
}

#[test]
fn an_expired_token_closes_its_connection_4401() {
    let mut h = hub();
    let (c, fx) = h.client_open(Wire::Json, user("alice", 5_000), 1);
    // The expiry is the object's alarm, never its in-memory timer (which would keep the
    // object from hibernating until then).
    assert!(fx.contains(&Effect::SetAlarm { at_ms: 5_000 }), "{fx:?}");
    assert!(!fx.contains(&Effect::Timer { at_ms: 5_000 }));
    let (d, _) = h.client_open(Wire::Json, user("bob", 9_000), 1);
    assert!(!h
        .alarm(4_999, 0.0)
        .iter()
        .any(|e| matches!(e, Effect::Close { .. })));
    let fx = h.alarm(5_000, 0.0);
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::SetAlarm { at_ms } if *at_ms <= 5_001)),
        "not set again for what was just dealt with: {fx:?}"
    );
    assert!(
        fx.contains(&Effect::SetAlarm { at_ms: 9_000 }),
        "bob's: {fx:?}"
    );
    let closed: Vec<(ConnId, u16)> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Close { conn, code, .. } => Some((*conn, *code)),
            _ => None,
        })
        .collect();
    assert_eq!(closed, [(c, close::TOKEN_EXPIRED)], "only the expired one");
    assert!(h.has_client(d));
    let limited = Some(Identity {
        sub: "carol".into(),
        exp_ms: 60_000,
        channels: Some(vec!["events:signals".into()]),
    });
    let (e, _) = h.client_open(Wire::Json, limited, 1);
    assert_eq!(
        sub(&mut h, e, "events:signals", None)[0]["type"],
        "subscribed"
    );
    assert_eq!(
        sub(&mut h, e, "events:portfolio", None)[0]["code"],
        "FORBIDDEN"
    );
}
