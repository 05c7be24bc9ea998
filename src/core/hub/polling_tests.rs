//! Engine.IO long-polling sessions through the leader: the handshake, packets by POST and
//! GET, a held GET woken, conflated prices (none of a symbol left), overlapping GETs, the
//! heartbeat of a session that stops polling, and the upgrade to a WebSocket (probe, `6`,
//! `5`).

use super::tests::Drive;
use super::*;
use crate::core::feed::neutral;
use crate::core::host::ClientHost;
use crate::core::ids::Holder;
use crate::core::input::{PollAnswer, PollInput};

/// The Socket.IO tests' leader (pings every 25 s, a 20 s timeout).
fn hub() -> Hub {
    super::socketio_tests::hub_with(&[])
}

/// A GET's body, split into its packets.
fn packets(answer: Result<PollAnswer, ApiError>) -> Vec<String> {
    match answer {
        Ok(PollAnswer::Body(b)) => b.split('\u{1e}').map(str::to_string).collect(),
        other => panic!("expected a body, got {other:?}"),
    }
}

fn get(
    h: &mut Hub,
    sid: &str,
    parked: bool,
    now: i64,
) -> (Result<PollAnswer, ApiError>, Vec<Effect>) {
    h.poll(PollInput::Get { sid, parked }, now)
}

fn post(h: &mut Hub, sid: &str, body: &str, now: i64) -> Vec<Effect> {
    let (answer, fx) = h.poll(PollInput::Post { sid, body }, now);
    assert_eq!(answer, Ok(PollAnswer::Taken));
    fx
}

fn woken(fx: &[Effect], conn: ConnId) -> bool {
    fx.iter()
        .any(|e| matches!(e, Effect::SseWake { conns } if conns.contains(&conn)))
}

/// Nothing in `fx` goes to `conn` over a socket.
fn nothing_sent(fx: &[Effect], conn: ConnId) -> bool {
    !fx.iter().any(|e| match e {
        Effect::Send { conn: c, .. } => *c == conn,
        Effect::Fanout { conns, .. } => conns.contains(&conn),
        _ => false,
    })
}

/// A polling session in `/prices`: its id and connection.
fn session(h: &mut Hub) -> (String, ConnId) {
    let open = PollInput::Open {
        holder: Holder::Leader,
        nonce: 0xfeed,
        who: None,
        owes_token: false,
    };
    let (answer, fx) = h.poll(open, 1);
    let body = packets(answer);
    assert_eq!(body.len(), 1, "the handshake answers the open packet alone");
    let v: serde_json::Value = serde_json::from_str(body[0].strip_prefix('0').unwrap()).unwrap();
    assert_eq!(v["upgrades"], serde_json::json!(["websocket"]));
    let sid = v["sid"].as_str().unwrap().to_string();
    let conn = crate::core::wire::socketio::sid::Sid::decode(&sid)
        .unwrap()
        .conn;
    assert!(nothing_sent(&fx, conn));
    post(h, &sid, "40/prices,", 2);
    let joined = packets(get(h, &sid, false, 3).0);
    assert!(joined[0].starts_with("40/prices,{\"sid\""), "{joined:?}");
    (sid, conn)
}

#[test]
fn a_held_get_is_woken_by_the_ack_and_takes_every_packet_at_once() {
    let mut h = hub();
    h.exchange_sends(1, &neutral::ticker("BTCUSDT", "42", 5), 5);
    let (sid, conn) = session(&mut h);
    assert_eq!(get(&mut h, &sid, false, 10).0, Ok(PollAnswer::Wait(conn)));
    let fx = post(
        &mut h,
        &sid,
        "42/prices,7[\"subscribe\",{\"symbol\":\"BTCUSDT\"}]",
        11,
    );
    assert!(woken(&fx, conn) && nothing_sent(&fx, conn));
    let taken = packets(get(&mut h, &sid, true, 12).0);
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert_eq!(taken[0], r#"43/prices,7[{"ok":true,"symbol":"BTCUSDT"}]"#);
    assert!(
        taken[1].starts_with(r#"42/prices,["priceUpdate",{"#),
        "{taken:?}"
    );
    assert!(
        taken[1].contains(r#""price":"42","symbol":"BTCUSDT""#),
        "{taken:?}"
    );
    assert!(h.health(13).1.contains(r#""polling":1"#));
}

#[test]
fn prices_wait_conflated_for_the_next_get() {
    let mut h = hub();
    let (sid, conn) = session(&mut h);
    post(
        &mut h,
        &sid,
        "42/prices,[\"subscribe\",{\"symbol\":\"ETHUSDT\"}]",
        4,
    );
    for (i, price) in ["1", "2", "3"].into_iter().enumerate() {
        let fx = h.exchange_sends(1, &neutral::ticker("ETHUSDT", price, 10 + i as i64), 10);
        assert!(nothing_sent(&fx, conn), "never sent over a socket");
    }
    let taken = packets(get(&mut h, &sid, false, 20).0);
    let updates: Vec<&String> = taken.iter().filter(|p| p.contains("priceUpdate")).collect();
    assert_eq!(updates.len(), 1, "{taken:?}");
    assert!(updates[0].contains(r#""price":"3""#));
}

/// Found by the simulation (seed 8546): a price noted for the next GET while the session held
/// the symbol came after the answer to its `unsubscribe`.
#[test]
fn a_symbol_left_before_the_get_brings_no_price_after_the_ack() {
    let mut h = hub();
    let (sid, conn) = session(&mut h);
    post(
        &mut h,
        &sid,
        "42/prices,1[\"subscribe\",{\"symbol\":\"ETHUSDT\"}]",
        4,
    );
    let fx = h.exchange_sends(1, &neutral::ticker("ETHUSDT", "7", 10), 10);
    assert!(nothing_sent(&fx, conn));
    post(
        &mut h,
        &sid,
        "42/prices,2[\"unsubscribe\",{\"symbol\":\"ETHUSDT\"}]",
        11,
    );
    let taken = packets(get(&mut h, &sid, false, 12).0);
    assert!(
        taken.iter().any(|p| p.starts_with("43/prices,2")),
        "the unsubscribe is answered: {taken:?}"
    );
    assert!(
        !taken.iter().any(|p| p.contains("priceUpdate")),
        "no price of a symbol it left: {taken:?}"
    );
}

#[test]
fn a_second_get_at_once_ends_the_session_and_the_held_one_gets_the_close_packet() {
    let mut h = hub();
    let (sid, conn) = session(&mut h);
    assert_eq!(get(&mut h, &sid, false, 10).0, Ok(PollAnswer::Wait(conn)));
    let (second, fx) = get(&mut h, &sid, false, 11);
    assert!(matches!(second, Err(ApiError::EngineIo { code: 3, .. })));
    assert!(woken(&fx, conn));
    assert_eq!(packets(get(&mut h, &sid, true, 12).0), ["1"]);
    let (late, _) = get(&mut h, &sid, false, 13);
    assert!(matches!(late, Err(ApiError::EngineIo { code: 1, .. })));
    assert!(!h.has_client(conn));
}

#[test]
fn a_session_id_must_match_its_nonce() {
    let mut h = hub();
    let (sid, conn) = session(&mut h);
    let forged = crate::core::wire::socketio::sid::Sid {
        holder: Holder::Leader,
        conn,
        nonce: 1,
    }
    .encode();
    for bad in [forged.as_str(), "nonsense", ""] {
        let (answer, _) = get(&mut h, bad, false, 5);
        assert!(
            matches!(answer, Err(ApiError::EngineIo { code: 1, .. })),
            "{bad}"
        );
    }
    assert_eq!(get(&mut h, &sid, false, 6).0, Ok(PollAnswer::Wait(conn)));
}

#[test]
fn the_ping_waits_for_the_get_and_a_session_that_stops_polling_ends() {
    let mut h = hub();
    let (sid, conn) = session(&mut h);
    assert_eq!(get(&mut h, &sid, false, 10).0, Ok(PollAnswer::Wait(conn)));
    let fx = h.timer(25_001);
    assert!(woken(&fx, conn) && nothing_sent(&fx, conn));
    assert_eq!(packets(get(&mut h, &sid, true, 25_002).0), ["2"]);
    post(&mut h, &sid, "3", 25_003);
    h.timer(45_001);
    assert!(h.has_client(conn), "it answered");
    h.timer(50_001);
    let fx = h.timer(70_001);
    assert!(fx.contains(&Effect::Close {
        conn,
        code: 1000,
        reason: "ping timeout"
    }));
    assert!(woken(&fx, conn) && !h.has_client(conn));
}

#[test]
fn the_upgrade_probes_ends_the_poll_with_a_noop_and_moves_the_session_to_the_socket() {
    let mut h = hub();
    let (sid, conn) = session(&mut h);
    post(
        &mut h,
        &sid,
        "42/prices,[\"subscribe\",{\"symbol\":\"BTCUSDT\"}]",
        4,
    );
    assert_eq!(get(&mut h, &sid, false, 6).0, Ok(PollAnswer::Wait(conn)));
    let (up, _) = h.poll(PollInput::Upgrade { sid: &sid }, 7);
    assert_eq!(up, Ok(PollAnswer::Upgrade(conn)));
    let fx = h.client_says(conn, "2probe", 8);
    assert!(fx.contains(&Effect::Send {
        conn,
        frame: "3probe".into()
    }));
    assert!(woken(&fx, conn));
    assert_eq!(packets(get(&mut h, &sid, true, 9).0), ["6"]);
    // The socket is not the session's yet: prices and pings still wait for a GET.
    let fx = h.timer(25_001);
    assert!(nothing_sent(&fx, conn), "never a ping in the probe");
    let fx = h.exchange_sends(1, &neutral::ticker("BTCUSDT", "9", 25_000), 25_001);
    assert!(nothing_sent(&fx, conn));
    let fx = h.client_says(conn, "5", 25_002);
    let sent: Vec<String> = fx
        .iter()
        .filter_map(|e| match e {
            // One client's frames are sends, never a one-socket fan-out.
            Effect::Send { conn: c, frame } if *c == conn => Some(frame.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(sent[0], "2", "what was queued goes to the socket: {sent:?}");
    assert!(sent[1].contains(r#""price":"9""#), "{sent:?}");
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::SaveAttachment { conn: c, .. } if *c == conn)));
    let fx = h.exchange_sends(1, &neutral::ticker("BTCUSDT", "10", 25_003), 25_003);
    assert!(!nothing_sent(&fx, conn), "pushed over the socket now");
    let (after, _) = get(&mut h, &sid, false, 25_004);
    assert!(matches!(after, Err(ApiError::EngineIo { code: 1, .. })));
}

#[test]
fn a_failed_probe_leaves_the_session_polling() {
    let mut h = hub();
    let (sid, conn) = session(&mut h);
    let (first, _) = h.poll(PollInput::Upgrade { sid: &sid }, 4);
    assert_eq!(first, Ok(PollAnswer::Upgrade(conn)));
    let (twice, _) = h.poll(PollInput::Upgrade { sid: &sid }, 4);
    assert!(matches!(twice, Err(ApiError::EngineIo { code: 3, .. })));
    let fx = h.client_says(conn, "hello", 5);
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Close { conn: c, .. } if *c == conn)));
    h.client(ClientInput::Closed { conn }, 6);
    assert!(h.has_client(conn));
    assert_eq!(get(&mut h, &sid, false, 7).0, Ok(PollAnswer::Wait(conn)));
    let (again, _) = h.poll(PollInput::Upgrade { sid: &sid }, 8);
    assert_eq!(again, Ok(PollAnswer::Upgrade(conn)));
}
