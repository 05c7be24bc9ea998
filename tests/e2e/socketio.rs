//! Socket.IO with the official `socket.io-client` (npm, pinned), as the seeds' front ends use
//! it (default options: long-polling, then the upgrade) and with the WebSocket alone:
//! `/prices` (NestJS) with rooms, acks and `exception`, `/` (Flask-SocketIO) with its
//! broadcast, an unknown namespace refused, a client that reconnects by itself after the
//! service restarts; and raw Engine.IO WebSocket sessions (the handshake, an ack, a
//! malformed packet) and the 400s. Raw long-polling is in `polling`.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Instant;

use serde_json::Value;

use super::support::{self, epoch_ms, Client, Exchange, Frame, Service};
use super::{wait_connected, Ctx, T};

/// A `tests/e2e/socketio-client.mjs` process and what it has printed.
pub struct SioClient {
    child: Child,
    _stdin: ChildStdin,
    lines: Receiver<Value>,
    seen: Vec<Value>,
}

impl SioClient {
    /// Starts the client against `svc` with the script's arguments.
    pub fn start(svc: &Service, args: &[&str]) -> SioClient {
        let mut child = Command::new("node")
            .arg(support::root().join("tests/e2e/socketio-client.mjs"))
            .arg(svc.url(""))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("node");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take().expect("stdin");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        SioClient {
            child,
            _stdin: stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line already read that `want` accepts, or else the next one to come.
    pub fn seen_or_wait(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        match self.seen.iter().find(|v| want(v)) {
            Some(v) => v.clone(),
            None => self.wait(what, want),
        }
    }

    /// Waits for a line that `want` accepts; every line read is kept in `seen`.
    pub fn wait(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if want(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no {what} within {T:?}; got {:?}", self.seen),
            }
        }
    }
}

impl Drop for SioClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ev(name: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["ev"] == name
}

pub fn socketio_prices_clients_get_their_rooms_acks_and_exceptions(ctx: &mut Ctx) {
    for transport in ["default", "websocket"] {
        prices_client(ctx, transport);
    }
}

/// A `/prices` client (`default` options, or the WebSocket alone) and its room.
fn prices_client(ctx: &mut Ctx, transport: &str) {
    ctx.ex.control("pause?on=1");
    ctx.ex.control("tick?symbol=BTCUSDT");
    let mut c = SioClient::start(&ctx.svc, &["prices", "btc-usdt", transport]);
    let opened = c.wait("the Engine.IO open", ev("open"));
    let first = if transport == "websocket" {
        "websocket"
    } else {
        "polling"
    };
    assert_eq!(opened["data"]["transport"], first);
    c.wait("connect", ev("connect"));
    let ack = c.wait("the subscribe's ack", ev("ack"));
    assert_eq!(
        ack["data"],
        serde_json::json!({"ok": true, "symbol": "BTCUSDT"})
    );
    let exception = c.wait("the unknown symbol's exception", ev("exception"));
    assert_eq!(exception["data"]["status"], "error");
    ctx.ex.control("tick?symbol=ETHUSDT");
    ctx.ex.control("tick?symbol=BTCUSDT");
    let want = ctx.ex.latest("BTCUSDT").expect("a BTCUSDT price");
    let update = c.wait("the ticked price", |v| {
        v["ev"] == "priceUpdate" && v["data"]["price"].as_str() == Some(want.as_str())
    });
    assert_eq!(update["data"]["symbol"], "BTCUSDT");
    assert!(update["data"]["ts"].as_i64().unwrap_or(0) > 0);
    if transport != "websocket" {
        // The upgrade races the namespace's CONNECT reply and what follows: looked for last.
        let upgraded = c.seen_or_wait("the upgrade", ev("upgrade"));
        assert_eq!(upgraded["data"]["transport"], "websocket");
    }
    let rooms: Vec<&Value> = c.seen.iter().filter(|v| v["ev"] == "priceUpdate").collect();
    assert!(
        rooms.iter().all(|v| v["data"]["symbol"] == "BTCUSDT"),
        "only its room: {rooms:?}"
    );
    let first = rooms.first().map_or(0, |v| v["ms"].as_i64().unwrap_or(0));
    eprintln!("  {transport}: first priceUpdate {first} ms after io()");
    drop(c);
    unsubscribed_client(ctx, transport);
}

/// After its `unsubscribe`, a client hears nothing more of the room: a tick of the room's
/// symbol, then one of the symbol it holds; the second arrives, the first never does.
fn unsubscribed_client(ctx: &mut Ctx, transport: &str) {
    let mut c = SioClient::start(&ctx.svc, &["unsubscribe", "BTCUSDT,ETHUSDT", transport]);
    let left = c.wait("the unsubscribe's ack", ev("unsubscribed"));
    assert_eq!(left["data"]["ok"], true, "{left}");
    c.wait("the second subscribe's ack", |v| {
        v["ev"] == "ack" && v["data"]["symbol"] == "ETHUSDT"
    });
    ctx.ex.control("tick?symbol=BTCUSDT");
    let gone = ctx.ex.latest("BTCUSDT").expect("a BTCUSDT price");
    ctx.ex.control("tick?symbol=ETHUSDT");
    let held = ctx.ex.latest("ETHUSDT").expect("an ETHUSDT price");
    c.wait("the held symbol's tick", |v| {
        v["ev"] == "priceUpdate" && v["data"]["price"].as_str() == Some(held.as_str())
    });
    let after = c.seen.iter().skip_while(|v| v["ev"] != "unsubscribed");
    let late: Vec<&Value> = after
        .filter(|v| v["ev"] == "priceUpdate" && v["data"]["symbol"] == "BTCUSDT")
        .collect();
    assert!(late.is_empty(), "after unsubscribe ({gone}): {late:?}");
}

pub fn socketio_root_clients_get_the_broadcast(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    let mut c = SioClient::start(&ctx.svc, &["root"]);
    c.wait("connect", ev("connect"));
    c.wait("the connected event", ev("connected"));
    ctx.ex.control("tick?symbol=SOLUSDT");
    let want: f64 = ctx.ex.latest("SOLUSDT").expect("a price").parse().unwrap();
    // The subscription's snapshot may bring an older price first; the ticked one follows.
    let update = c.wait("SOLUSDT's ticked price as a JSON number", |v| {
        let price = v["data"]["price"].as_f64();
        v["ev"] == "price_update"
            && v["data"]["symbol"] == "SOLUSDT"
            && price.is_some_and(|p| (p - want).abs() < 1e-9)
    });
    assert!(update["data"]["timestamp"]
        .as_str()
        .unwrap_or("")
        .ends_with('Z'));
}

pub fn socketio_unknown_namespaces_are_refused(ctx: &mut Ctx) {
    let mut c = SioClient::start(&ctx.svc, &["nsp", "/admin"]);
    let refused = c.wait("connect_error", ev("connect_error"));
    assert_eq!(refused["data"]["message"], "Invalid namespace");
}

pub fn socketio_sessions_outlive_many_pings_through_four_shards(_ctx: &mut Ctx) {
    let ex = Exchange::start(&["--rate", "40"]);
    let svc = Service::start(
        "socketio-shards",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
            ("FANOUT_SHARDS", "4"),
            ("SOCKETIO_PING_INTERVAL_SECONDS", "1"),
            ("SOCKETIO_PING_TIMEOUT_SECONDS", "1"),
        ],
    );
    wait_connected(&svc);
    let mut clients: Vec<SioClient> = (0..6)
        .map(|_| SioClient::start(&svc, &["prices", "BTCUSDT"]))
        .collect();
    let start = epoch_ms();
    for c in &mut clients {
        c.wait("the ack", ev("ack"));
    }
    // Four ping intervals later every session still gets prices: each answered its pings.
    for c in &mut clients {
        let later = c.wait("a price four ping intervals on", |v| {
            v["ev"] == "priceUpdate" && v["data"]["ts"].as_i64().unwrap_or(0) > start + 4_000
        });
        assert_eq!(later["data"]["symbol"], "BTCUSDT");
        assert!(
            !c.seen.iter().any(|v| v["ev"] == "disconnect"),
            "{:?}",
            c.seen
        );
    }
}

pub fn socketio_clients_reconnect_by_themselves_after_the_service_restarts(_ctx: &mut Ctx) {
    let ex = Exchange::start(&["--rate", "20"]);
    let mut svc = Service::start(
        "socketio-restart",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT"),
        ],
    );
    wait_connected(&svc);
    let mut c = SioClient::start(&svc, &["resubscribe", "BTCUSDT"]);
    c.wait("connect", ev("connect"));
    c.wait("a price", ev("priceUpdate"));
    svc.stop();
    c.wait("the disconnect", ev("disconnect"));
    svc.restart();
    wait_connected(&svc);
    let restarted = epoch_ms();
    // The client's own reconnection (its defaults: 1–5 s apart) finds the new objects; the
    // page's connect handler subscribes again and prices flow again.
    c.wait("the reconnect", ev("connect"));
    c.wait("the new ack", |v| {
        v["ev"] == "ack" && v["data"]["ok"] == true
    });
    let price = c.wait("a price after the restart", |v| {
        v["ev"] == "priceUpdate" && v["data"]["ts"].as_i64().unwrap_or(0) > restarted
    });
    assert_eq!(price["data"]["symbol"], "BTCUSDT");
}

pub fn socketio_tokens_come_in_connect_or_the_query(_ctx: &mut Ctx) {
    let ex = Exchange::start(&["--rate", "20"]);
    let svc = Service::start(
        "socketio-auth",
        &[
            ("UPSTREAM_URL", &ex.stream_url()),
            ("SYMBOLS", "BTCUSDT,ETHUSDT"),
            ("AUTH_TOKEN", "s3cret"),
        ],
    );
    wait_connected(&svc);
    for args in [["auth", ""], ["auth", "wrong"]] {
        let mut c = SioClient::start(&svc, &args);
        let refused = c.wait("the refusal", ev("connect_error"));
        assert_eq!(refused["data"]["message"], "UNAUTHORIZED", "{args:?}");
    }
    for args in [["auth", "s3cret"], ["query", "s3cret"]] {
        let mut c = SioClient::start(&svc, &args);
        c.wait("connect", ev("connect"));
    }
}

pub fn socketio_requests_engine_io_cannot_serve_get_its_400s(ctx: &mut Ctx) {
    for (query, code, message) in [
        (
            "EIO=3&transport=websocket",
            5,
            "Unsupported protocol version",
        ),
        ("EIO=4&transport=flash", 0, "Transport unknown"),
        ("EIO=4&transport=websocket", 3, "Bad request"),
        ("EIO=4&transport=polling&sid=L1_1", 1, "Session ID unknown"),
        (
            "EIO=4&transport=polling&sid=nonsense",
            1,
            "Session ID unknown",
        ),
    ] {
        let r = support::get(&ctx.svc.url(&format!("/socket.io/?{query}")));
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let body = r.json();
        assert_eq!(
            (body["code"].as_u64(), body["message"].as_str()),
            (Some(code), Some(message))
        );
    }
    let handshake = ctx.svc.url("/socket.io/?EIO=4&transport=polling");
    let r = support::post(&handshake, &[], "40");
    assert_eq!(
        (r.status, r.json()["code"].as_u64()),
        (400, Some(2)),
        "{}",
        r.body
    );
}

/// A raw Engine.IO WebSocket on `/prices`: the open packet read, the namespace joined.
fn raw_prices_session(svc: &Service) -> Client {
    let mut ws = svc
        .ws_with("/socket.io/?EIO=4&transport=websocket", &[])
        .unwrap_or_else(|status| panic!("upgrade refused with {status}"));
    let open = match ws.next(T) {
        Some(Frame::Text(t)) => t,
        other => panic!("expected the open packet, got {other:?}"),
    };
    let handshake: Value = serde_json::from_str(&open[1..]).expect("the handshake's JSON");
    assert!(open.starts_with('0'), "{open}");
    assert_eq!(handshake["upgrades"], serde_json::json!([]), "{open}");
    assert!(handshake["sid"].is_string() && handshake["pingInterval"].is_u64());
    ws.send_text("40/prices,");
    match ws.next(T) {
        Some(Frame::Text(t)) if t.starts_with("40/prices,{\"sid\":") => {}
        other => panic!("expected the CONNECT answer, got {other:?}"),
    }
    ws
}

/// The next text frame that starts with `prefix`.
fn next_starting(ws: &mut Client, prefix: &str) -> String {
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        if let Some(Frame::Text(t)) = ws.next(deadline - Instant::now()) {
            if t.starts_with(prefix) {
                return t;
            }
        }
    }
    panic!("no frame starting {prefix:?} within {T:?}")
}

pub fn socketio_a_malformed_packet_closes_only_its_own_session(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=1");
    let mut bad = raw_prices_session(&ctx.svc);
    let mut good = raw_prices_session(&ctx.svc);
    good.send_text(r#"42/prices,7["subscribe",{"symbol":"BTCUSDT"}]"#);
    let ack = next_starting(&mut good, "43/prices,7");
    assert_eq!(ack, r#"43/prices,7[{"ok":true,"symbol":"BTCUSDT"}]"#);
    bad.send_text(r#"42/prices,["subscribe",{"symbol":"#);
    assert_eq!(
        bad.wait_closed(T),
        1002,
        "a malformed packet is a protocol error"
    );
    ctx.ex.control("tick?symbol=BTCUSDT");
    let want = ctx.ex.latest("BTCUSDT").expect("a BTCUSDT price");
    // The priceUpdates that come, until the ticked price: only its room's.
    loop {
        let text = next_starting(&mut good, r#"42/prices,["priceUpdate","#);
        let event: Value = serde_json::from_str(&text["42/prices,".len()..]).expect("an event");
        assert_eq!(event[1]["symbol"], "BTCUSDT", "{text}");
        assert!(event[1]["ts"].as_i64().unwrap_or(0) > 0, "{text}");
        if event[1]["price"].as_str() == Some(want.as_str()) {
            break;
        }
    }
}
