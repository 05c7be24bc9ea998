//! The leader↔shard link as a tree runs it: a leader [`Hub`] and shards wired in memory,
//! every message through the real encoding.

use std::collections::HashMap;

use serde_json::Value;

use super::*;
use crate::core::feed::neutral::{self, Neutral};
use crate::core::host::ClientHost;
use crate::core::hub::tests::frames;
use crate::core::hub::tests::stream;
use crate::core::hub::tests::Drive;
use crate::core::hub::Hub;
use crate::core::ids::ShardId;
use crate::core::ids::SourceId;
use crate::core::input::{ClientInput, UpstreamEvent};
use crate::core::wire::Wire;
use std::rc::Rc;

const SUB: &str = r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#;

fn config(pairs: &[(&str, &str)]) -> Config {
    let mut map: HashMap<&str, &str> = [
        ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
        ("UPSTREAM_URL", "ws://127.0.0.1:1/stream"),
        ("FLUSH_MS", "0"),
        ("FANOUT_SHARDS", "2"),
    ]
    .into_iter()
    .collect();
    map.extend(pairs.iter().copied());
    Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap()
}

fn ticker(symbol: &str, price: &str, event_time: i64) -> String {
    neutral::ticker(symbol, price, event_time)
}

/// A connected leader with a price for BTCUSDT.
fn leader(pairs: &[(&str, &str)]) -> Hub {
    let mut h = Hub::with_source(config(pairs), Rc::new(Neutral));
    h.start(0);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    h.exchange_sends(1, &ticker("BTCUSDT", "100.5", 1_000), 10);
    h
}

/// What the leader sends shard `shard` on link `generation`.
fn to_shard(fx: &[Effect], shard: ShardId, generation: u64) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SendShards { links, text } if links.contains(&(shard, generation)) => {
                Some(text.to_string())
            }
            _ => None,
        })
        .collect()
}

/// What the shard sends the leader.
fn to_leader(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SendLeader { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "prices" || f["type"] == "snapshot")
        .flat_map(|f| f["prices"].as_array().cloned().unwrap_or_default())
        .map(|p| p["seq"].as_u64().unwrap())
        .collect()
}

/// The generation of the dial among `fx`.
fn dialed(fx: &[Effect]) -> Option<u64> {
    fx.iter().find_map(|e| match e {
        Effect::DialLeader { generation } => Some(*generation),
        _ => None,
    })
}

/// The shard's current link generation (0 without one).
fn current(s: &Shard) -> u64 {
    match s.uplink() {
        Uplink::Dialing { generation } | Uplink::Up { generation, .. } => generation,
        Uplink::Down => 0,
    }
}

/// The shard takes a message of the leader, and with it the flush due at once (its
/// zero-delay timer, as the edge fires it once the message is done).
fn take(s: &mut Shard, generation: u64, text: &str, now: i64) -> Vec<Effect> {
    let mut fx = s.leader_text(generation, text, now);
    if s.fanout().timer_due().is_some_and(|t| t <= now) {
        fx.extend(s.timer(now));
    }
    fx
}

/// Links `shard` (its pending dial answered) and delivers the leader's snapshot and the
/// shard's first messages both ways; returns the shard's effects and the leader's link.
fn link(h: &mut Hub, s: &mut Shard, shard: ShardId, now: i64) -> (Vec<Effect>, u64) {
    let generation = current(s);
    let mut fx = s.leader_opened(generation, now);
    let (leader_gen, lfx) = h.shard_linked(shard, now).unwrap();
    for text in to_leader(&fx) {
        h.shard_text(shard, leader_gen, &text, now);
    }
    for text in to_shard(&lfx, shard, leader_gen) {
        fx.extend(take(s, generation, &text, now));
    }
    for text in to_leader(&fx) {
        h.shard_text(shard, leader_gen, &text, now);
    }
    (fx, leader_gen)
}

#[test]
fn a_shard_dials_on_its_first_client_and_holds_commands_until_the_snapshot() {
    let mut h = leader(&[]);
    let mut s = Shard::new(config(&[]));
    assert!(!s.synced());
    let (c, fx) = s.client_open(Wire::Json, None, 20);
    assert!(dialed(&fx).is_some(), "a dial");
    let fx = s.client_says(c, SUB, 21);
    assert!(frames(&fx, c).is_empty(), "held until the snapshot is in");
    let (fx, g) = link(&mut h, &mut s, 0, 22);
    let f = frames(&fx, c);
    assert_eq!(f[0]["type"], "subscribed");
    assert_eq!(f[1]["type"], "snapshot");
    assert_eq!(
        f[1]["prices"][0]["price"], "100.5",
        "from the leader's snapshot"
    );
    // The leader learned the shard's interest, and its next change reaches the client.
    let fx = h.exchange_sends(1, &ticker("BTCUSDT", "101.0", 2_000), 30);
    assert!(
        to_shard(&fx, 0, g).is_empty(),
        "sent after the input at hand"
    );
    let texts = to_shard(&h.timer(30), 0, g);
    assert_eq!(texts.len(), 1, "one message per flush per linked shard");
    let g = current(&s);
    let fx = take(&mut s, g, &texts[0], 31);
    let f = frames(&fx, c);
    assert_eq!(f[0]["prices"][0]["price"], "101.0");
}

#[test]
fn a_broken_link_relinks_and_catches_up_without_a_seq_twice_or_backwards() {
    let mut h = leader(&[]);
    let mut s = Shard::new(config(&[]));
    let (c, _) = s.client_open(Wire::Json, None, 20);
    s.client_says(c, SUB, 20);
    let (fx, g) = link(&mut h, &mut s, 0, 20);
    let mut seen = seqs(&frames(&fx, c));
    // The link breaks: the client hears `reconnecting`; the leader moves on without it.
    let fx = s.leader_closed(current(&s), 100, 0.5);
    let f = frames(&fx, c);
    assert_eq!(
        (f[0]["type"].as_str(), f[0]["upstream"].as_str()),
        (Some("status"), Some("reconnecting"))
    );
    h.shard_closed(0, g, 100);
    h.exchange_sends(1, &ticker("BTCUSDT", "102.0", 3_000), 110);
    h.exchange_sends(1, &ticker("ETHUSDT", "5.0", 3_000), 111);
    let retry = fx
        .iter()
        .find_map(|e| match e {
            Effect::Timer { at_ms } => Some(*at_ms),
            _ => None,
        })
        .unwrap();
    assert!(retry > 100 && retry <= 100 + RELINK_CAP_MS);
    let fx = s.timer(retry);
    assert!(dialed(&fx).is_some(), "a dial");
    let (fx, _) = link(&mut h, &mut s, 0, retry);
    let f = frames(&fx, c);
    seen.extend(seqs(&f));
    assert!(
        seen.windows(2).all(|w| w[1] > w[0]),
        "every seq once, growing: {seen:?}"
    );
    assert!(
        f.iter()
            .any(|x| x["type"] == "status" && x["upstream"] == "connected"),
        "told the link is back: {f:?}"
    );
    assert!(
        f.iter().any(|x| x["prices"][0]["price"] == "102.0"),
        "caught up with what it missed: {f:?}"
    );
    // A snapshot that repeats what the shard has sends the client nothing.
    let again = h.shard_linked(0, retry + 1).unwrap();
    let text = to_shard(&again.1, 0, again.0).remove(0);
    s.leader_closed(current(&s), retry + 1, 0.0);
    let t = s.timer(retry + 1 + RELINK_CAP_MS);
    assert!(dialed(&t).is_some(), "a dial");
    let mut fx = s.leader_opened(current(&s), retry + 2 + RELINK_CAP_MS);
    let g = current(&s);
    fx.extend(take(&mut s, g, &text, retry + 2 + RELINK_CAP_MS));
    assert!(
        seqs(&frames(&fx, c)).is_empty(),
        "nothing new, nothing sent"
    );
}

#[test]
fn a_restarted_leader_is_relinked_and_seq_keeps_growing() {
    let mut h = leader(&[]);
    let mut s = Shard::new(config(&[]));
    let (c, _) = s.client_open(Wire::Json, None, 20);
    s.client_says(c, SUB, 20);
    let (fx, _) = link(&mut h, &mut s, 0, 20);
    let mut seen = seqs(&frames(&fx, c));
    // The leader's object is replaced: a new instance above the old one's `seq` block.
    let mut h2 = Hub::with_source(config(&[]), Rc::new(Neutral));
    h2.restore_prices(Vec::new(), h.seq() + 100_000, 50);
    h2.start(50);
    h2.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        50,
        0.0,
    );
    h2.exchange_sends(1, &ticker("BTCUSDT", "99.0", 9_000), 60);
    s.leader_closed(current(&s), 55, 0.0);
    let fx = s.timer(55 + RELINK_CAP_MS);
    assert!(dialed(&fx).is_some(), "a dial");
    let (fx, _) = link(&mut h2, &mut s, 0, 70);
    seen.extend(seqs(&frames(&fx, c)));
    assert!(seen.windows(2).all(|w| w[1] > w[0]), "{seen:?}");
    assert_eq!(seen.len(), 2);
}

#[test]
fn on_demand_follows_the_union_of_the_shards_interests() {
    let pairs = [("UPSTREAM_MODE", "on-demand")];
    let mut h = Hub::with_source(config(&pairs), Rc::new(Neutral));
    h.start(0);
    let mut a = Shard::new(config(&pairs));
    let mut b = Shard::new(config(&pairs));
    let (ca, _) = a.client_open(Wire::Json, None, 0);
    let (cb, _) = b.client_open(Wire::Json, None, 0);
    let (_, ga) = link(&mut h, &mut a, 0, 1);
    let (_, gb) = link(&mut h, &mut b, 1, 1);
    let fx = a.client_says(ca, SUB, 2);
    let mut lfx = Vec::new();
    for t in to_leader(&fx) {
        lfx.extend(h.shard_text(0, ga, &t, 2));
    }
    let url = lfx
        .iter()
        .find_map(|e| match e {
            Effect::ConnectUpstream { url, .. } => Some(url.clone()),
            _ => None,
        })
        .expect("a listener in shard 0 starts the upstream");
    assert!(
        url.contains("streams=BTCUSDT/") && !url.contains("ETHUSDT"),
        "{url}"
    );
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        3,
        0.0,
    );
    let fx = b.client_says(cb, r#"{"action":"subscribe","symbols":["ETHUSDT"]}"#, 4);
    let mut lfx = Vec::new();
    for t in to_leader(&fx) {
        lfx.extend(h.shard_text(1, gb, &t, 4));
    }
    let sent: Vec<String> = lfx
        .iter()
        .filter_map(|e| match e {
            Effect::SendUpstream { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert!(
        sent.iter()
            .any(|t| t.contains("\"add\"") && t.contains("\"ETHUSDT\"")),
        "{sent:?}"
    );
    // Shard 0's link goes: its symbol is no longer wanted.
    let lfx = h.shard_closed(0, ga, 1_000);
    let later = h.timer(1_000 + 1_000);
    let sent: Vec<String> = lfx
        .iter()
        .chain(later.iter())
        .filter_map(|e| match e {
            Effect::SendUpstream { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    let alarm = h.alarm(2_000, 0.5);
    let all: Vec<String> = sent
        .into_iter()
        .chain(alarm.iter().filter_map(|e| match e {
            Effect::SendUpstream { text, .. } => Some(text.clone()),
            _ => None,
        }))
        .collect();
    assert!(
        all.iter()
            .any(|t| t.contains("\"remove\"") && t.contains("\"BTCUSDT\"")),
        "{all:?}"
    );
}

#[test]
fn an_idle_shard_hangs_up_and_reports_while_linked() {
    let mut h = leader(&[]);
    let mut s = Shard::new(config(&[]));
    let (c, _) = s.client_open(Wire::Json, None, 0);
    let (_, g) = link(&mut h, &mut s, 1, 0);
    let fx = s.timer(REPORT_EVERY_MS);
    let reports = to_leader(&fx);
    assert_eq!(reports.len(), 1);
    h.shard_text(1, g, &reports[0], REPORT_EVERY_MS);
    let views = h.shard_views();
    assert_eq!((views[1].linked, views[1].lag), (true, Some(0)));
    assert_eq!(views[1].report.as_ref().map(|r| r.websocket), Some(1));
    assert!(!views[0].linked);
    let (_, body) = h.health(REPORT_EVERY_MS);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        health["clients"]["websocket"], 1,
        "the shards' clients add up"
    );
    assert_eq!(health["shards"][1]["clients"]["websocket"], 1);
    assert_eq!(
        health["capacity"]["max_connections"],
        2 * 10_000,
        "per shard"
    );
    let metrics = h.metrics(REPORT_EVERY_MS);
    assert!(metrics.contains("edgetick_connections{transport=\"websocket\"} 1\n"));
    assert!(metrics.contains("edgetick_shard_linked{shard=\"1\"} 1\n"));
    assert!(metrics.contains("edgetick_shard_connections{shard=\"1\",transport=\"websocket\"} 1\n"));
    s.client(ClientInput::Closed { conn: c }, 3_000);
    let fx = s.timer(3_000 + IDLE_UNLINK_MS);
    assert!(fx.iter().any(|e| matches!(e, Effect::HangUpLeader { .. })));
    assert_eq!(s.uplink(), Uplink::Down);
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::DialLeader { .. })),
        "no clients, no dial"
    );
}

#[test]
fn an_sse_stream_waits_for_the_snapshot() {
    let mut h = leader(&[]);
    let mut s = Shard::new(config(&[]));
    let syms = ["BTCUSDT".to_string()];
    assert!(matches!(
        s.sse_open(&stream(&syms, &[], None, None), 0),
        Err(ApiError::NoData { .. })
    ));
    let (ws, _) = s.client_open(Wire::Json, None, 0);
    link(&mut h, &mut s, 0, 1);
    let (_, first, _) = s.sse_open(&stream(&syms, &[], None, None), 2).unwrap();
    assert!(first.contains("100.5"), "{first}");
    assert!(s.has_client(ws));
}

#[test]
fn a_link_that_never_brings_the_snapshot_is_given_up_and_dialled_again() {
    let mut s = Shard::new(config(&[]));
    let (c, fx) = s.client_open(Wire::Json, None, 0);
    let first = dialed(&fx).unwrap();
    s.client_says(c, SUB, 1);
    s.leader_opened(first, 2);
    assert!(!s.synced(), "open, but no snapshot yet");
    let fx = s.timer(LINK_TIMEOUT_MS);
    assert!(fx.contains(&Effect::HangUpLeader { generation: first }));
    let f = frames(&fx, c);
    assert!(
        f.iter().all(|x| x["type"] != "subscribed"),
        "still held: {f:?}"
    );
    let retry = LINK_TIMEOUT_MS + RELINK_CAP_MS;
    let fx = s.timer(retry);
    let second = dialed(&fx).expect("dialled again");
    assert!(second > first);
    let mut h = leader(&[]);
    let (fx, _) = link(&mut h, &mut s, 0, retry + 1);
    let f = frames(&fx, c);
    let kinds: Vec<&str> = f.iter().filter_map(|x| x["type"].as_str()).collect();
    assert_eq!(kinds, ["status", "subscribed", "snapshot"], "{f:?}");
    assert_eq!(f[0]["upstream"], "connected", "told the link is back");
}

/// Found by the simulation (seed 303): a link that closed while dialing, with no client left,
/// kept its deadline, and the timer stayed due in the past: a busy loop.
#[test]
fn a_closed_link_with_no_client_leaves_no_timer_due_in_the_past() {
    let mut s = Shard::new(config(&[]));
    let (c, fx) = s.client_open(Wire::Json, None, 20);
    let generation = dialed(&fx).expect("a dial");
    s.client(ClientInput::Closed { conn: c }, 21);
    let timers = |fx: &[Effect]| -> Vec<i64> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Timer { at_ms } => Some(*at_ms),
                _ => None,
            })
            .collect()
    };
    let fx = s.leader_closed(generation, 22, 0.5);
    assert!(timers(&fx).iter().all(|t| *t > 22), "{fx:?}");
    let late = 22 + LINK_TIMEOUT_MS + 1_000;
    let fx = s.timer(late);
    assert!(
        timers(&fx).iter().all(|t| *t > late),
        "nothing due at or before now: {fx:?}"
    );
}

#[test]
fn an_event_published_while_the_link_is_down_reaches_the_shards_client_on_relink() {
    let cfg = [("EVENT_CHANNELS", "signals")];
    let mut h = leader(&cfg);
    h.restore_events("e1".into(), Vec::new());
    let mut s = Shard::new(config(&cfg));
    let c = 7;
    let keys = vec!["events:signals".to_string()];
    s.client_restore(crate::core::attachment::Attachment::new(
        c,
        Wire::Json,
        keys,
        None,
    ));
    s.prepare(20);
    let (_, g) = link(&mut h, &mut s, 0, 20);
    s.leader_closed(current(&s), 100, 0.5);
    h.shard_closed(0, g, 100);
    let mut h = leader(&cfg);
    h.restore_events("e1".into(), Vec::new());
    let body = r#"{"channel":"events:signals","event":"x","data":{"n":1}}"#;
    h.publish(body, 110).unwrap();
    let fx = s.timer(100 + RELINK_CAP_MS);
    assert!(dialed(&fx).is_some(), "a dial");
    let (fx, _) = link(&mut h, &mut s, 0, 100 + RELINK_CAP_MS);
    let f = frames(&fx, c);
    assert!(
        f.iter()
            .any(|x| x["type"] == "event" && x["data"]["n"] == 1),
        "the missed event: {f:?}"
    );
}

#[test]
fn a_token_expiry_is_the_shards_alarm_and_closes_4401_when_it_fires() {
    let mut s = Shard::new(config(&[("JWT_SECRET", "s")]));
    let who = crate::core::ids::Identity {
        sub: "alice".into(),
        exp_ms: 60_000,
        channels: None,
    };
    let (c, fx) = s.client_open(Wire::Json, Some(who), 20);
    assert!(fx.contains(&Effect::SetAlarm { at_ms: 60_000 }), "{fx:?}");
    assert!(!fx
        .iter()
        .any(|e| matches!(e, Effect::Timer { at_ms } if *at_ms >= 60_000)));
    assert!(!s
        .alarm(59_999)
        .iter()
        .any(|e| matches!(e, Effect::Close { .. })));
    let fx = s.alarm(60_000);
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Close { conn, code, .. } if *conn == c && *code == crate::core::protocol::close::TOKEN_EXPIRED)));
}

#[test]
fn a_polling_sessions_upgrade_goes_through_while_the_link_is_down() {
    use crate::core::ids::Holder;
    use crate::core::input::{PollAnswer, PollInput};
    let mut s = Shard::new(config(&[]));
    let open = PollInput::Open {
        holder: Holder::Shard(0),
        nonce: 7,
        who: None,
        owes_token: false,
    };
    let Ok(PollAnswer::Body(body)) = s.poll(open, 1).0 else {
        panic!("a handshake")
    };
    let v: Value = serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
    let sid = v["sid"].as_str().unwrap().to_string();
    assert!(!s.synced(), "no link yet");
    let Ok(PollAnswer::Upgrade(conn)) = s.poll(PollInput::Upgrade { sid: &sid }, 2).0 else {
        panic!("the upgrade's socket taken")
    };
    let fx = s.client_says(conn, "2probe", 3);
    let probe = Effect::Send {
        conn,
        frame: "3probe".into(),
    };
    assert!(fx.contains(&probe), "answered at once: {fx:?}");
    let get = PollInput::Get {
        sid: &sid,
        parked: false,
    };
    assert_eq!(s.poll(get, 4).0, Ok(PollAnswer::Body("6".into())));
    let fx = s.client_says(conn, "5", 5);
    let saved = |e: &Effect| matches!(e, Effect::SaveAttachment { conn: c, .. } if *c == conn);
    assert!(fx.iter().any(saved), "the session is the socket's: {fx:?}");
    assert!(!s.fanout().is_polling(conn));
}

#[test]
fn a_socketio_session_answering_its_pings_outlives_a_long_link_outage() {
    use crate::core::wire::socketio::Nsp;
    let cfg = [
        ("SOCKETIO_PING_INTERVAL_SECONDS", "25"),
        ("SOCKETIO_PING_TIMEOUT_SECONDS", "20"),
    ];
    let mut s = Shard::new(config(&cfg));
    let (conn, _) = s.client_open(Wire::SocketIo(Nsp::Pending), None, 0);
    s.client_says(conn, "40/prices,", 1);
    assert!(!s.synced(), "the leader never answers");
    let pinged = |fx: &[Effect]| {
        fx.iter().any(|e| match e {
            Effect::Send { conn: c, frame } => *c == conn && &**frame == "2",
            Effect::Fanout { conns, frame } => conns.contains(&conn) && &**frame == "2",
            _ => false,
        })
    };
    let mut pings = 0;
    for now in (1_000..200_000).step_by(1_000) {
        let fx = s.timer(now);
        let timed_out = fx.iter().any(|e| {
            matches!(e, Effect::Close { conn: c, reason, .. } if *c == conn && *reason == "ping timeout")
        });
        assert!(
            !timed_out,
            "closed at {now} ms though it answered every ping"
        );
        if pinged(&fx) {
            pings += 1;
            s.client_says(conn, "3", now + 10);
        }
    }
    assert!(pings >= 4, "pinged through the outage ({pings})");
}
