//! The fan-out driven directly with what the feed and the events module hand it (batches of
//! payloads, nothing from any exchange): each payload reaches every subscriber once, framed
//! once per wire.

use std::rc::Rc;

use super::*;
use crate::core::batch::Change;
use crate::core::events::Event;
use crate::core::input::{ClientInput, StreamOpen};
use crate::core::market::{MarketKind, MarketUpdate};

fn fanout() -> Fanout {
    let cfg = Config::from_lookup(|k| match k {
        "SYMBOLS" => Some("BTCUSDT,ETHUSDT".into()),
        "EVENT_CHANNELS" => Some("signals".into()),
        _ => None,
    })
    .unwrap();
    Fanout::new(Rc::new(cfg))
}

fn say(f: &mut Fanout, conn: ConnId, text: &str) {
    f.client(ClientInput::Text { conn, text }, 1, &mut Vec::new());
}

fn price(seq: u64, value: &str) -> Batch {
    Batch {
        prices: vec![Change {
            symbol: "BTCUSDT".into(),
            encoded: format!(r#"{{"symbol":"BTCUSDT","price":"{value}","seq":{seq}}}"#).into(),
            seq,
            received_at: 10,
        }],
        seq,
        ..Batch::default()
    }
}

/// Every `Fanout` effect: its targets and its frame.
fn fanouts(fx: &[Effect]) -> Vec<(Vec<ConnId>, String)> {
    let each = fx.iter().filter_map(|e| match e {
        Effect::Fanout { conns, frame } => Some((conns.clone(), frame.to_string())),
        _ => None,
    });
    each.collect()
}

#[test]
fn a_price_is_framed_once_for_the_json_wire_and_as_an_event_for_sse() {
    let mut f = fanout();
    let a = f.client_open(Wire::Json, None, 1, &mut Vec::new());
    let b = f.client_open(Wire::Json, None, 1, &mut Vec::new());
    for c in [a, b] {
        say(&mut f, c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#);
    }
    let open = StreamOpen {
        symbols: vec!["BTCUSDT".into()],
        ..StreamOpen::default()
    };
    let (s, first) = f.sse_open(&open, 1).unwrap();
    assert!(first.contains("event: snapshot\n"), "{first}");
    assert_eq!(f.sse_take(s, 2), SseTake::Pending, "parked");
    let mut fx = Vec::new();
    f.apply(&price(1, "1.50"), 10, &mut fx);
    f.timer(10, &mut fx);
    let sent = fanouts(&fx);
    assert_eq!(sent.len(), 1, "one frame for the JSON wire: {sent:?}");
    assert_eq!(sent[0].0, vec![a, b]);
    assert_eq!(
        sent[0].1,
        r#"{"type":"prices","prices":[{"symbol":"BTCUSDT","price":"1.50","seq":1}]}"#
    );
    assert!(fx.contains(&Effect::SseWake { conns: vec![s] }));
    let SseTake::Data(event) = f.sse_take(s, 11) else {
        panic!("the SSE reader has its price");
    };
    assert!(
        event.starts_with("event: prices\nid: 1\ndata: {\"type\":\"prices\""),
        "{event}"
    );
}

#[test]
fn events_and_market_bodies_are_framed_by_the_subscribers_wire() {
    let mut f = fanout();
    let c = f.client_open(Wire::Json, None, 1, &mut Vec::new());
    let subscribe = r#"{"action":"subscribe","channels":["events:signals","candles:BTCUSDT:1m"]}"#;
    say(&mut f, c, subscribe);
    let event = Event {
        channel: "events:signals".into(),
        offset: 1,
        encoded:
            r#"{"channel":"events:signals","offset":1,"epoch":"e1","event":"x","data":2,"ts":3}"#
                .into(),
    };
    let candle = MarketUpdate {
        channel: "candles:BTCUSDT:1m".into(),
        kind: MarketKind::Candle,
        encoded: r#"{"channel":"candles:BTCUSDT:1m","candle":{"c":"1.5","closed":false}}"#.into(),
    };
    let batch = Batch {
        events: vec![event],
        epoch: Some("e1".into()),
        market: vec![candle],
        ..Batch::default()
    };
    let mut fx = Vec::new();
    f.apply(&batch, 10, &mut fx);
    f.timer(20, &mut fx);
    let frames: Vec<String> = fanouts(&fx).into_iter().map(|(_, f)| f).collect();
    assert_eq!(
        frames,
        [
            r#"{"type":"event","channel":"events:signals","offset":1,"epoch":"e1","event":"x","data":2,"ts":3}"#,
            r#"{"type":"candle","channel":"candles:BTCUSDT:1m","candle":{"c":"1.5","closed":false}}"#,
        ]
    );
}

#[test]
fn an_attachment_is_stored_only_while_it_outgrows_the_socket_and_forgotten_on_close() {
    let cfg = Config::from_lookup(|k| match k {
        "SYMBOLS" => Some("BTCUSDT".into()),
        "EVENT_CHANNELS" => Some(
            (0..60)
                .map(|i| format!("signals-of-the-trading-desk-{i:02}"))
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    })
    .unwrap();
    let mut f = Fanout::new(Rc::new(cfg));
    // What each effect does with the connection's attachment.
    let stored = |fx: &[Effect]| -> Vec<&str> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::SaveAttachment { attachment, .. } if attachment.stored => Some("slim"),
                Effect::SaveAttachment { .. } => Some("whole"),
                Effect::StoreAttachment { whole: Some(_), .. } => Some("store"),
                Effect::StoreAttachment { whole: None, .. } => Some("forget"),
                _ => None,
            })
            .collect()
    };
    let mut fx = Vec::new();
    let c = f.client_open(Wire::Json, None, 0, &mut fx);
    assert_eq!(
        stored(&fx),
        ["whole"],
        "an attachment at once, in the socket"
    );
    let all: Vec<String> = (0..60)
        .map(|i| format!("\"events:signals-of-the-trading-desk-{i:02}\""))
        .collect();
    let text = format!(r#"{{"action":"subscribe","channels":[{}]}}"#, all.join(","));
    let says = |f: &mut Fanout, text: &str| {
        let mut fx = Vec::new();
        f.client(ClientInput::Text { conn: c, text }, 1, &mut fx);
        fx
    };
    assert_eq!(stored(&says(&mut f, &text)), ["slim", "store"]);
    assert_eq!(f.report().stored_attachments, 1);
    let text = text.replace("subscribe", "unsubscribe");
    assert_eq!(
        stored(&says(&mut f, &text)),
        ["whole", "forget"],
        "fits again"
    );
    let mut fx = Vec::new();
    say(&mut f, c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#);
    f.client(ClientInput::Closed { conn: c }, 3, &mut fx);
    assert!(stored(&fx).is_empty(), "nothing stored, nothing to forget");
    let text = text.replace("unsubscribe", "subscribe");
    let c = f.client_open(Wire::Json, None, 4, &mut Vec::new());
    f.client(
        ClientInput::Text {
            conn: c,
            text: &text,
        },
        4,
        &mut Vec::new(),
    );
    let mut fx = Vec::new();
    f.client(ClientInput::Closed { conn: c }, 5, &mut fx);
    assert_eq!(stored(&fx), ["forget"], "closed: the stored copy forgotten");
    assert_eq!(f.report().stored_attachments, 0);
}

fn signal(offset: u64) -> Event {
    Event {
        channel: "events:signals".into(),
        offset,
        encoded: format!(
            r#"{{"channel":"events:signals","offset":{offset},"epoch":"e1","event":"x","data":0,"ts":1}}"#
        )
        .into(),
    }
}

fn signals(offsets: &[u64]) -> Batch {
    Batch {
        events: offsets.iter().map(|o| signal(*o)).collect(),
        epoch: Some("e1".into()),
        ..Batch::default()
    }
}

/// Found by the simulation: a client that left an object whose link was further on and
/// resumed here, where those events had not arrived yet, got them again when they came
/// (and a channel this copy had nothing of answered `recovered:false`).
#[test]
fn a_client_resuming_ahead_of_this_copy_gets_no_event_twice() {
    let mut f = fanout();
    f.apply(&signals(&[1]), 1, &mut Vec::new());
    let c = f.client_open(Wire::Json, None, 1, &mut Vec::new());
    let mut fx = Vec::new();
    let resume = r#"{"action":"subscribe","channels":["events:signals"],"since":{"events:signals":{"offset":3,"epoch":"e1"}}}"#;
    f.client(
        ClientInput::Text {
            conn: c,
            text: resume,
        },
        2,
        &mut fx,
    );
    let answer = fx.iter().find_map(|e| match e {
        Effect::Send { frame, .. } => Some(frame.to_string()),
        _ => None,
    });
    assert!(answer.is_some_and(|a| a.contains(r#""recovered":true"#)));
    let mut fx = Vec::new();
    f.apply(&signals(&[2, 3, 4]), 3, &mut fx);
    let got: Vec<String> = fanouts(&fx).into_iter().map(|(_, f)| f).collect();
    assert_eq!(got.len(), 1, "only what it had not: {got:?}");
    assert!(got[0].contains(r#""offset":4"#), "{got:?}");
}

/// Found by the simulation: an SSE reader resuming with a `Last-Event-ID` further on than
/// this object's `seq` got the prices up to it again, older than what it held.
#[test]
fn an_sse_reader_resuming_ahead_of_this_object_gets_no_older_price() {
    let mut f = fanout();
    f.apply(&price(2, "1.00"), 1, &mut Vec::new());
    let open = StreamOpen {
        symbols: vec!["BTCUSDT".into()],
        last: Some("5".into()),
        ..StreamOpen::default()
    };
    let (s, first) = f.sse_open(&open, 2).unwrap();
    assert!(first.contains("id: 5\n"), "it stays where it was: {first}");
    assert_eq!(f.sse_take(s, 3), SseTake::Pending);
    let mut fx = Vec::new();
    f.apply(&price(4, "1.20"), 4, &mut fx);
    f.timer(10, &mut fx);
    assert_eq!(
        f.sse_take(s, 11),
        SseTake::Pending,
        "seq 4 is older than its 5"
    );
    f.apply(&price(6, "1.30"), 12, &mut fx);
    f.timer(20, &mut fx);
    let SseTake::Data(event) = f.sse_take(s, 21) else {
        panic!("the newer price comes");
    };
    assert!(event.contains(r#""seq":6"#), "{event}");
}
