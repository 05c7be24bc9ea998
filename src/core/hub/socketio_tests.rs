//! Socket.IO sessions through the leader: the Engine.IO handshake, joining `/prices` or `/`,
//! `subscribe` with and without an ack, prices as `priceUpdate` and `price_update`, refusals,
//! and the heartbeat.

use std::collections::HashMap;
use std::rc::Rc;

use super::tests::Drive;
use super::*;
use crate::core::attachment::Attachment;
use crate::core::feed::neutral::{self, Neutral};
use crate::core::host::ClientHost;
use crate::core::ids::SourceId;
use crate::core::input::{ClientInput, UpstreamEvent};
use crate::core::wire::socketio::Nsp;
use crate::core::wire::Wire;

fn hub() -> Hub {
    hub_with(&[])
}

pub(super) fn hub_with(extra: &[(&str, &str)]) -> Hub {
    let mut map: HashMap<&str, &str> = [
        ("SYMBOLS", "BTCUSDT,ETHUSDT"),
        ("UPSTREAM_URL", "ws://127.0.0.1:1/stream"),
        ("FLUSH_MS", "0"),
        ("SOCKETIO_PING_INTERVAL_SECONDS", "25"),
        ("SOCKETIO_PING_TIMEOUT_SECONDS", "20"),
        ("SOCKETIO_BROADCAST", "BTCUSDT"),
    ]
    .into_iter()
    .collect();
    map.extend(extra.iter().copied());
    let cfg = Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap();
    let mut h = Hub::with_source(cfg, Rc::new(Neutral));
    h.start(0);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    h
}

/// The frames `conn` was sent among `fx`, as text.
fn sent(fx: &[Effect], conn: ConnId) -> Vec<String> {
    let mine = fx.iter().filter_map(|e| match e {
        Effect::Send { conn: c, frame } if *c == conn => Some(frame.to_string()),
        Effect::Fanout { conns, frame } if conns.contains(&conn) => Some(frame.to_string()),
        _ => None,
    });
    mine.collect()
}

/// A Socket.IO session that joined `nsp` (`/prices` or `/`).
fn session(h: &mut Hub, nsp: &str) -> ConnId {
    let (c, fx) = h.client_open(Wire::SocketIo(Nsp::Pending), None, 1);
    let open = sent(&fx, c);
    assert!(open[0].starts_with(r#"0{"sid":""#), "{open:?}");
    assert!(open[0].contains(r#""upgrades":[]"#) && open[0].contains(r#""pingInterval":25000"#));
    let connect = if nsp == "/" {
        "40".to_string()
    } else {
        format!("40{nsp},")
    };
    let fx = h.client_says(c, &connect, 2);
    let joined = sent(&fx, c);
    let prefix = if nsp == "/" { "40{" } else { "40/prices,{" };
    assert!(joined[0].starts_with(prefix), "{joined:?}");
    c
}

#[test]
fn prices_clients_subscribe_with_an_ack_and_get_price_updates_of_their_room() {
    let mut h = hub();
    h.exchange_sends(1, &neutral::ticker("ETHUSDT", "2000", 5), 5);
    let c = session(&mut h, "/prices");
    let fx = h.client_says(c, r#"42/prices,7["subscribe",{"symbol":"BTCUSDT"}]"#, 10);
    assert_eq!(
        sent(&fx, c),
        [r#"43/prices,7[{"ok":true,"symbol":"BTCUSDT"}]"#]
    );
    let fx = h.exchange_sends(1, &neutral::ticker("BTCUSDT", "42350.50", 20), 20);
    assert_eq!(
        sent(&fx, c),
        [r#"42/prices,["priceUpdate",{"price":"42350.50","symbol":"BTCUSDT","ts":20}]"#]
    );
    let fx = h.exchange_sends(1, &neutral::ticker("ETHUSDT", "2001", 21), 21);
    assert!(sent(&fx, c).is_empty(), "not its room");
    let fx = h.client_says(c, r#"42/prices,["unsubscribe",{"symbol":"BTCUSDT"}]"#, 30);
    assert!(sent(&fx, c).is_empty(), "no ack asked, none sent");
    let fx = h.exchange_sends(1, &neutral::ticker("BTCUSDT", "1", 40), 40);
    assert!(sent(&fx, c).is_empty(), "left the room");
}

#[test]
fn refusals_are_acks_or_exceptions_and_unknown_namespaces_are_refused() {
    let mut h = hub();
    let c = session(&mut h, "/prices");
    let fx = h.client_says(c, r#"42/prices,3["subscribe",{"symbol":"DOGEUSDT"}]"#, 10);
    let ack = &sent(&fx, c)[0];
    assert!(
        ack.starts_with(r#"43/prices,3[{"code":"UNKNOWN_SYMBOL""#) && ack.contains(r#""ok":false"#),
        "{ack}"
    );
    let fx = h.client_says(c, r#"42/prices,["subscribe",{"symbol":"DOGEUSDT"}]"#, 11);
    assert!(sent(&fx, c)[0].starts_with(r#"42/prices,["exception",{"message":"#));
    let fx = h.client_says(c, "40/admin,", 12);
    assert_eq!(
        sent(&fx, c),
        [r#"44/admin,{"message":"Invalid namespace"}"#]
    );
    let fx = h.client_says(c, "4{not a packet", 13);
    assert!(fx.contains(&Effect::Close {
        conn: c,
        code: 1002,
        reason: "malformed packet"
    }));
}

#[test]
fn root_clients_get_every_broadcast_symbol_as_numbers() {
    let mut h = hub();
    let c = session(&mut h, "/");
    let fx = h.exchange_sends(
        1,
        &neutral::ticker("BTCUSDT", "42350.50", 1_703_520_000_000),
        20,
    );
    assert_eq!(
        sent(&fx, c),
        [
            r#"42["price_update",{"symbol":"BTCUSDT","price":42350.50,"percent_change":0.10,"timestamp":"2023-12-25T16:00:00.000Z"}]"#
        ]
    );
    let fx = h.exchange_sends(1, &neutral::ticker("ETHUSDT", "1", 21), 21);
    assert!(sent(&fx, c).is_empty(), "not broadcast");
    let health: serde_json::Value = serde_json::from_str(&h.health(22).1).unwrap();
    assert_eq!(health["clients"]["socketio"], 1);
    assert!(h
        .metrics(22)
        .contains("edgetick_socketio_sessions{transport=\"websocket\"} 1\n"));
}

#[test]
fn the_heartbeat_pings_everyone_at_once_and_closes_the_silent() {
    let mut h = hub();
    let a = session(&mut h, "/prices");
    let b = session(&mut h, "/prices");
    let fx = h.timer(25_001);
    let pings: Vec<&Effect> = fx
        .iter()
        .filter(|e| matches!(e, Effect::Fanout { frame, .. } if &**frame == "2"))
        .collect();
    assert_eq!(pings.len(), 1, "one frame for every session");
    h.client_says(a, "3", 26_000);
    let fx = h.timer(45_001);
    assert!(fx.contains(&Effect::Close {
        conn: b,
        code: 1000,
        reason: "ping timeout"
    }));
    assert!(!fx
        .iter()
        .any(|e| matches!(e, Effect::Close { conn, .. } if *conn == a)));
    assert!(h.has_client(a) && !h.has_client(b));
    h.client(ClientInput::Closed { conn: a }, 46_000);
}

#[test]
fn a_session_restored_after_hibernation_is_pinged_at_once_and_keeps_its_room() {
    let mut h = hub();
    h.client_restore(Attachment::new(
        9,
        Wire::SocketIo(Nsp::Prices),
        vec!["BTCUSDT".to_string()],
        None,
    ));
    let fx = h.timer(1);
    assert_eq!(sent(&fx, 9), ["2"], "pinged at once");
    let fx = h.exchange_sends(1, &neutral::ticker("BTCUSDT", "7", 3), 3);
    assert!(sent(&fx, 9)[0].starts_with(r#"42/prices,["priceUpdate""#));
}

#[test]
fn a_session_that_owes_its_token_joins_only_with_it_in_its_connect() {
    let mut h = hub_with(&[("AUTH_TOKEN", "s3cret")]);
    let (c, _) = h.client_open(Wire::SocketIo(Nsp::Pending), None, 1);
    h.require_auth(c);
    let refused = [r#"44/prices,{"message":"UNAUTHORIZED"}"#];
    assert_eq!(sent(&h.client_says(c, "40/prices,", 2), c), refused);
    assert_eq!(
        sent(&h.client_says(c, r#"40/prices,{"token":"no"}"#, 3), c),
        refused
    );
    let fx = h.client_says(c, r#"40/prices,{"token":"s3cret"}"#, 4);
    assert!(sent(&fx, c)[0].starts_with("40/prices,{\"sid\""));
}
