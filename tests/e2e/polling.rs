//! Raw Engine.IO long-polling against the built worker, byte for byte: the handshake, a
//! POST's packets and a GET's answer, two GETs at once (the protocol ends the session), and
//! the upgrade to a WebSocket (`2probe`/`3probe`, the held GET answered `6`, `5`).

use std::thread;

use serde_json::Value;

use super::support::{self, Frame, Service};
use super::{Ctx, T};

/// The record separator between packets of a polling body.
const RS: char = '\u{1e}';

/// A polling session: its id (from the handshake, whose `open` packet is checked).
fn handshake(svc: &Service) -> String {
    let r = support::get(&svc.url("/socket.io/?EIO=4&transport=polling&t=a"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    let open: Value = serde_json::from_str(r.body.strip_prefix('0').expect("an open packet"))
        .expect("the open packet's JSON");
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert!(open["pingInterval"].is_u64() && open["maxPayload"].is_u64());
    open["sid"].as_str().expect("a sid").to_string()
}

fn url(svc: &Service, sid: &str) -> String {
    svc.url(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"))
}

fn post(svc: &Service, sid: &str, body: &str) {
    let r = support::post(&url(svc, sid), &[("Content-Type", "text/plain")], body);
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
}

/// A GET of the session: its status and body.
fn get(svc: &Service, sid: &str) -> (u16, String) {
    let r = support::request("GET", &url(svc, sid)).expect("a GET's answer");
    (r.status, r.body)
}

/// A session joined to `/prices`, its queue empty (the next GET is held).
fn joined(svc: &Service) -> String {
    let sid = handshake(svc);
    post(svc, &sid, "40/prices,");
    let (status, body) = get(svc, &sid);
    assert_eq!(status, 200);
    assert!(body.starts_with("40/prices,{\"sid\":"), "{body}");
    sid
}

pub fn polling_packets_go_by_post_and_come_back_by_get(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    ctx.ex.control("tick?symbol=BTCUSDT");
    let sid = handshake(&ctx.svc);
    // Two packets in one body: the CONNECT and a subscribe with an ack.
    let connect_and_subscribe = format!("40/prices,{RS}42/prices,5[\"subscribe\",\"BTCUSDT\"]");
    post(&ctx.svc, &sid, &connect_and_subscribe);
    let mut packets: Vec<String> = Vec::new();
    let want = ctx.ex.latest("BTCUSDT").expect("a BTCUSDT price");
    support::wait_until("the snapshot's priceUpdate", T, || {
        let (status, body) = get(&ctx.svc, &sid);
        assert_eq!(status, 200, "{body}");
        packets.extend(body.split(RS).map(str::to_string));
        packets
            .iter()
            .any(|p| p.contains("priceUpdate"))
            .then_some(())
    });
    assert!(packets[0].starts_with("40/prices,{\"sid\":"), "{packets:?}");
    assert_eq!(packets[1], r#"43/prices,5[{"ok":true,"symbol":"BTCUSDT"}]"#);
    let update: Value = serde_json::from_str(&packets[2]["42/prices,".len()..]).expect("JSON");
    assert_eq!(update[0], "priceUpdate");
    assert_eq!(update[1]["price"].as_str(), Some(want.as_str()));
}

pub fn polling_a_second_get_at_once_ends_the_session(ctx: &mut Ctx) {
    let sid = joined(&ctx.svc);
    // Both held at once: whichever arrives second is refused and ends the session; the
    // one held gets the close packet.
    let (a, b) = {
        let svc = &ctx.svc;
        thread::scope(|s| {
            let first = s.spawn(|| get(svc, &sid));
            let second = s.spawn(|| get(svc, &sid));
            (first.join().expect("a GET"), second.join().expect("a GET"))
        })
    };
    let mut answers = [a, b];
    answers.sort();
    assert_eq!(answers[0], (200, "1".to_string()), "{answers:?}");
    assert_eq!(answers[1].0, 400, "{answers:?}");
    let refusal: Value = serde_json::from_str(&answers[1].1).expect("JSON");
    assert_eq!(refusal["code"], 3);
    let (status, body) = get(&ctx.svc, &sid);
    assert_eq!((status, body.contains("\"code\":1")), (400, true), "{body}");
}

pub fn polling_upgrades_to_a_websocket_by_the_probe(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    ctx.ex.control("tick?symbol=ETHUSDT");
    let sid = joined(&ctx.svc);
    let svc = &ctx.svc;
    thread::scope(|s| {
        let held = s.spawn(|| get(svc, &sid));
        let path = format!("/socket.io/?EIO=4&transport=websocket&sid={sid}");
        let mut ws = svc
            .ws_with(&path, &[])
            .unwrap_or_else(|status| panic!("upgrade refused with {status}"));
        ws.send_text("2probe");
        match ws.next(T) {
            Some(Frame::Text(t)) => assert_eq!(t, "3probe"),
            other => panic!("expected 3probe, got {other:?}"),
        }
        assert_eq!(held.join().expect("the held GET"), (200, "6".to_string()));
        ws.send_text("5");
        ws.send_text(r#"42/prices,9["subscribe",{"symbol":"ETHUSDT"}]"#);
        let mut frames = Vec::new();
        while !frames.iter().any(|f: &String| f.contains("priceUpdate")) {
            match ws.next(T) {
                Some(Frame::Text(t)) => frames.push(t),
                Some(Frame::Json(_)) => {} // a ping (`2`) reads as JSON
                other => panic!("expected packets on the socket, got {other:?} after {frames:?}"),
            }
        }
        assert_eq!(frames[0], r#"43/prices,9[{"ok":true,"symbol":"ETHUSDT"}]"#);
    });
    let (status, body) = get(svc, &sid);
    assert_eq!(status, 400, "the session polls no more: {body}");
}
