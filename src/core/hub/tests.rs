//! Unit tests of the hub: the feed and the fan-out together, as one leader object runs them.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;
use crate::core::attachment::Attachment;
use crate::core::fanout::SseTake;
use crate::core::fanout::{KEEPALIVE_MS, SLOW_CLOSE_MS, SLOW_WARN_MS};
use crate::core::feed::link::Failure;
use crate::core::feed::link::CONNECT_TIMEOUT_MS;
use crate::core::feed::neutral::{self, Neutral};
use crate::core::feed::{MAX_UPSTREAM_FRAME_BYTES, SEQ_BLOCK};
use crate::core::host::ClientHost;
use crate::core::ids::SourceId;
use crate::core::ids::{ConnId, Identity};
use crate::core::input::{ClientInput, StreamOpen, UpstreamEvent};
use crate::core::price::Price;
use crate::core::protocol::close;
use crate::core::request::{parse_stream_symbols, parse_symbol_query};
use crate::core::upstream_state::UpstreamState;
use crate::core::wire::Wire;
use std::rc::Rc;

/// Shorthand for the inputs tests send most: a client's text frame (to the leader or a
/// shard) and an exchange's frame (to the leader).
pub(crate) trait Drive {
    /// Client `conn` sends `text`.
    fn client_says(&mut self, conn: ConnId, text: &str, now_ms: i64) -> Vec<Effect>;
}

impl<T: ClientHost> Drive for T {
    fn client_says(&mut self, conn: ConnId, text: &str, now_ms: i64) -> Vec<Effect> {
        self.client(ClientInput::Text { conn, text }, now_ms)
    }
}

impl Hub {
    /// The exchange sends `text` on upstream connection `generation`; with `FLUSH_MS=0` the
    /// flush that change is due for right away runs too (its zero-delay timer, as the edge
    /// fires it once the input at hand is done).
    pub(crate) fn exchange_sends(
        &mut self,
        generation: u64,
        text: &str,
        now_ms: i64,
    ) -> Vec<Effect> {
        let mut fx = self.upstream(
            SourceId::Neutral,
            UpstreamEvent::Text { generation, text },
            now_ms,
            0.0,
        );
        if self.config().flush_ms == 0 && self.fanout().timer_due().is_some_and(|t| t <= now_ms) {
            fx.extend(self.timer(now_ms));
        }
        fx
    }
}

/// A leader over BTCUSDT and ETHUSDT following the neutral source, with `vars` besides,
/// started and its upstream open at `now_ms` (the history's and the heat map's tests).
pub(crate) fn open_hub(vars: &[(&str, &str)], now_ms: i64) -> Hub {
    let mut map: HashMap<&str, &str> = [
        ("SYMBOLS", "BTCUSDT,ETHUSDT"),
        ("UPSTREAM_URL", "ws://127.0.0.1:1/stream"),
        ("BINANCE_REST_URL", "http://rest.test"),
    ]
    .into_iter()
    .collect();
    map.extend(vars.iter().copied());
    let cfg = Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap();
    let mut h = Hub::with_source(cfg, Rc::new(Neutral));
    h.start(now_ms);
    let opened = UpstreamEvent::Opened { generation: 1 };
    h.upstream(SourceId::Neutral, opened, now_ms, 0.0);
    h
}

/// The upstream state the hub's feed is in.
fn state(h: &Hub) -> UpstreamState {
    h.feed.state()
}

/// An SSE stream to open.
pub(crate) fn stream(
    symbols: &[String],
    channels: &[String],
    last: Option<&str>,
    who: Option<Identity>,
) -> StreamOpen {
    StreamOpen {
        symbols: symbols.to_vec(),
        channels: channels.to_vec(),
        refused: Vec::new(),
        last: last.map(str::to_string),
        who,
    }
}

fn hub() -> Hub {
    let map: HashMap<&str, &str> = [
        ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
        (
            "UPSTREAM_URL",
            "ws://127.0.0.1:1/stream,ws://127.0.0.1:2/stream",
        ),
        ("MAX_SYMBOLS_PER_CONNECTION", "2"),
        ("MAX_FRAME_BYTES", "256"),
        ("MAX_CONNECTIONS", "2"),
        ("FLUSH_MS", "0"),
    ]
    .into_iter()
    .collect();
    Hub::with_source(
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap(),
        Rc::new(Neutral),
    )
}

fn connected() -> Hub {
    let mut h = hub();
    h.start(0);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    h
}

fn ticker(symbol: &str, price: &str, event_time: i64) -> String {
    neutral::ticker(symbol, price, event_time)
}

/// The frames `conn` was sent among `fx`, parsed (also used by the shard tests).
pub(crate) fn frames(fx: &[Effect], conn: ConnId) -> Vec<Value> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Send { conn: c, frame } if *c == conn => Some(frame.clone()),
            Effect::Fanout { conns, frame } if conns.contains(&conn) => Some(frame.clone()),
            _ => None,
        })
        .map(|f| serde_json::from_str(&f).unwrap())
        .collect()
}

#[test]
fn start_connects_once_to_the_first_endpoint_with_every_stream() {
    let mut h = hub();
    let fx = h.start(0);
    let url = fx
        .iter()
        .find_map(|e| match e {
            Effect::ConnectUpstream {
                generation: 1, url, ..
            } => Some(url.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        url,
        "ws://127.0.0.1:1/stream?streams=BTCUSDT/BTCUSDT.book/ETHUSDT/ETHUSDT.book/\
         SOLUSDT/SOLUSDT.book"
    );
    assert!(fx.iter().any(|e| matches!(e, Effect::SetAlarm { .. })));
    assert!(
        h.start(1).is_empty(),
        "already connecting: nothing more to do"
    );
}

#[test]
fn subscribe_answers_subscribed_then_snapshot_then_live_prices() {
    let mut h = connected();
    h.exchange_sends(1, &ticker("BTCUSDT", "100.5", 1), 10);
    let c = h.client_open(Wire::Json, None, 0).0;
    let fx = h.client_says(
        c,
        r#"{"action":"subscribe","symbols":["btc/usdt","ETH-USDT"],"id":1}"#,
        20,
    );
    let f = frames(&fx, c);
    assert_eq!(
        f[0],
        json!({"type":"subscribed","symbols":["BTCUSDT","ETHUSDT"],"id":1})
    );
    assert_eq!(f[1]["type"], "snapshot");
    assert_eq!(
        f[1]["prices"].as_array().unwrap().len(),
        1,
        "only BTC has a value"
    );
    assert_eq!(f[1]["prices"][0]["price"], "100.5");
    assert!(fx.contains(&Effect::SaveAttachment {
        conn: c,
        attachment: Attachment::new(
            c,
            Wire::Json,
            vec!["BTCUSDT".into(), "ETHUSDT".into()],
            None
        ),
    }));
    let fx = h.exchange_sends(1, &ticker("ETHUSDT", "2000.1", 2), 30);
    let f = frames(&fx, c);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["type"], "prices");
    assert_eq!(f[0]["prices"][0]["symbol"], "ETHUSDT");
    assert_eq!(f[0]["prices"][0]["price"], "2000.1");
    assert_eq!(f[0]["prices"][0]["seq"], 2);
}

#[test]
fn each_client_gets_only_its_symbols_and_one_update_is_encoded_once() {
    let mut h = connected();
    let a = h.client_open(Wire::Json, None, 0).0;
    let b = h.client_open(Wire::Json, None, 0).0;
    let c = h.client_open(Wire::Json, None, 0).0;
    h.client_says(a, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
    h.client_says(b, r#"{"action":"subscribe","symbols":["ETHUSDT"]}"#, 0);
    h.client_says(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
    let fx = h.exchange_sends(1, &ticker("BTCUSDT", "1.5", 5), 1);
    let fanouts: Vec<_> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Fanout { conns, .. } => Some(conns.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(fanouts.len(), 1, "one encoded frame for all subscribers");
    let mut to = fanouts[0].clone();
    to.sort();
    assert_eq!(to, [a, c]);
    assert!(frames(&fx, b).is_empty());
}

#[test]
fn unknown_symbol_is_an_error_and_changes_nothing() {
    let mut h = connected();
    let c = h.client_open(Wire::Json, None, 0).0;
    let fx = h.client_says(
        c,
        r#"{"action":"subscribe","symbols":["BTCUSDT","DOGEUSDT"],"id":7}"#,
        0,
    );
    let f = frames(&fx, c);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["type"], "error");
    assert_eq!(f[0]["code"], "UNKNOWN_SYMBOL");
    assert_eq!(f[0]["id"], 7);
    assert!(f[0]["message"].as_str().unwrap().contains("DOGEUSDT"));
    assert!(!fx.iter().any(|e| matches!(e, Effect::Close { .. })));
    let f = frames(&h.client_says(c, r#"{"action":"list"}"#, 0), c);
    assert_eq!(
        f[0],
        json!({"type":"subscriptions","symbols":[],"channels":[]})
    );
}

#[test]
fn unsubscribe_list_and_ping() {
    let mut h = connected();
    let c = h.client_open(Wire::Json, None, 0).0;
    h.client_says(
        c,
        r#"{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT"]}"#,
        0,
    );
    let f = frames(
        &h.client_says(
            c,
            r#"{"action":"unsubscribe","symbols":["ethusdt"],"id":2}"#,
            0,
        ),
        c,
    );
    assert_eq!(
        f[0],
        json!({"type":"unsubscribed","symbols":["ETHUSDT"],"id":2})
    );
    let f = frames(&h.client_says(c, r#"{"action":"list","id":3}"#, 0), c);
    assert_eq!(
        f[0],
        json!({"type":"subscriptions","symbols":["BTCUSDT"],"channels":[],"id":3})
    );
    let f = frames(&h.client_says(c, r#"{"action":"ping","id":4}"#, 1234), c);
    assert_eq!(f[0], json!({"type":"pong","id":4,"ts":1234}));
    let fx = h.exchange_sends(1, &ticker("ETHUSDT", "3", 9), 1);
    assert!(
        frames(&fx, c).is_empty(),
        "unsubscribed symbol no longer arrives"
    );
}

#[test]
fn limits_on_symbols_and_frame_size() {
    let mut h = connected();
    let c = h.client_open(Wire::Json, None, 0).0;
    let f = frames(
        &h.client_says(
            c,
            r#"{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT","SOLUSDT"]}"#,
            0,
        ),
        c,
    );
    assert_eq!(f[0]["code"], "TOO_MANY_SYMBOLS");
    let big = format!(r#"{{"action":"list","pad":"{}"}}"#, "x".repeat(300));
    assert_eq!(
        h.client_says(c, &big, 0),
        vec![Effect::Close {
            conn: c,
            code: close::TOO_LARGE,
            reason: "frame too large"
        }]
    );
    assert!(!h.has_client(c), "a closed connection is forgotten at once");
    let c = h.client_open(Wire::Json, None, 0).0;
    let f = frames(&h.client(ClientInput::Binary { conn: c, len: 3 }, 0), c);
    assert_eq!(f[0]["code"], "BAD_REQUEST");
    assert!(h.admit_client());
    h.client_open(Wire::Json, None, 0);
    assert!(!h.admit_client(), "MAX_CONNECTIONS is 2");
    assert_eq!(h.fanout.stats().refused_at_capacity, 1);
    assert_eq!(
        h.client(ClientInput::Binary { conn: c, len: 300 }, 0).len(),
        1,
        "an oversized binary frame closes too"
    );
}

fn persists(fx: &[Effect]) -> Vec<(Vec<(String, u64)>, u64)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Persist { prices, seq_floor } => Some((
                prices.iter().map(|(s, _, q)| (s.clone(), *q)).collect(),
                *seq_floor,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn prices_are_written_in_batches_after_their_fan_out() {
    let mut h = hub();
    let fx = h.start(0);
    assert_eq!(
        persists(&fx),
        [(vec![], SEQ_BLOCK)],
        "a block is reserved first"
    );
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    let c = h.client_open(Wire::Json, None, 0).0;
    h.client_says(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
    let fx = h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 100);
    assert_eq!(frames(&fx, c).len(), 1, "sent at once");
    assert!(
        persists(&fx).is_empty(),
        "no write between an update and its fan-out"
    );
    for (i, t) in [(2, 300), (3, 600)] {
        let fx = h.exchange_sends(1, &ticker("BTCUSDT", &i.to_string(), i), t);
        assert!(persists(&fx).is_empty());
    }
    h.exchange_sends(1, &ticker("ETHUSDT", "9", 1), 700);
    assert!(persists(&h.timer(1_099)).is_empty(), "not due yet");
    let fx = h.timer(1_100);
    assert_eq!(
        persists(&fx),
        [(
            vec![("BTCUSDT".to_string(), 3), ("ETHUSDT".to_string(), 4)],
            SEQ_BLOCK
        )],
        "one write with the newest value of each changed symbol"
    );
    assert!(
        persists(&h.timer(2_200)).is_empty(),
        "nothing changed, nothing written"
    );
}

#[test]
fn seq_is_reserved_in_blocks_ahead_of_use() {
    let mut h = hub();
    h.restore_prices(vec![], 7_000_000, 0);
    assert_eq!(persists(&h.start(0)), [(vec![], 7_000_000 + SEQ_BLOCK)]);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    let mut writes = Vec::new();
    for i in 1..=SEQ_BLOCK / 2 + 1 {
        let fx = h.exchange_sends(1, &ticker("BTCUSDT", &i.to_string(), i as i64), 0);
        writes.extend(persists(&fx));
    }
    assert!(
        writes.is_empty(),
        "never a write in the same step as an update"
    );
    writes.extend(persists(&h.timer(0)));
    assert_eq!(h.seq(), 7_000_000 + SEQ_BLOCK / 2 + 1);
    assert_eq!(
        writes.len(),
        1,
        "half a block used: the next block is reserved at once"
    );
    assert_eq!(writes[0].1, h.seq() + SEQ_BLOCK);
    assert!(
        writes[0].1 > h.seq(),
        "the stored floor is always above every seq handed out"
    );
}

#[test]
fn the_first_frame_brings_the_watchdog_alarm_forward_to_the_cadence_limit() {
    let mut h = hub();
    h.start(0);
    // Nothing delivered yet: the alarm waits for the configured 30 s ceiling (or the
    // connect time-out before it).
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    let fx = h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 1_000);
    assert!(
        fx.contains(&Effect::SetAlarm { at_ms: 6_000 }),
        "tickers promise a frame a second: 5 s after the first one, {fx:?}"
    );
}

#[test]
fn caps_are_checked_before_symbols_are_resolved() {
    let mut h = connected();
    let c = h.client_open(Wire::Json, None, 0).0;
    // Three unknown names over a cap of two: the count answers, not the content.
    let f = frames(
        &h.client_says(
            c,
            r#"{"action":"subscribe","symbols":["NOPE1","NOPE2","NOPE3"],"id":7}"#,
            0,
        ),
        c,
    );
    assert_eq!(f[0]["code"], "TOO_MANY_SYMBOLS", "{f:?}");
    assert_eq!(f[0]["id"], 7);
    let f = frames(
        &h.client_says(c, r#"{"action":"unsubscribe","symbols":["x","y","z"]}"#, 0),
        c,
    );
    assert_eq!(f[0]["code"], "TOO_MANY_SYMBOLS");
    // Within the cap, content is judged.
    let f = frames(
        &h.client_says(c, r#"{"action":"subscribe","symbols":["NOPE1"]}"#, 0),
        c,
    );
    assert_eq!(f[0]["code"], "UNKNOWN_SYMBOL");
    // Streams: the same order.
    let cfg = h.config().clone();
    assert!(matches!(
        parse_stream_symbols(&cfg, "a,b,<c>"),
        Err(ApiError::TooManySymbols(_))
    ));
    assert!(matches!(
        parse_stream_symbols(&cfg, "NOPEUSDT"),
        Err(ApiError::UnknownSymbol(_))
    ));
    assert_eq!(
        parse_stream_symbols(&cfg, "btc-usdt,ETHUSDT").unwrap(),
        ["BTCUSDT", "ETHUSDT"]
    );
}

#[test]
fn bad_upstream_frames_are_counted_and_never_reach_the_cache() {
    let mut h = connected();
    let c = h.client_open(Wire::Json, None, 0).0;
    h.client_says(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
    h.exchange_sends(1, &ticker("BTCUSDT", "5", 1), 1);
    for garbage in ["{{{", &ticker("BTCUSDT", "NaN", 2), r#"{"nonsense":{}}"#] {
        let fx = h.exchange_sends(1, garbage, 2);
        assert!(frames(&fx, c).is_empty());
    }
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Binary { generation: 1 },
        3,
        0.0,
    );
    assert_eq!(h.feed.stats().upstream_errors, 4);
    let body: Value = serde_json::from_str(&h.rest_price("BTCUSDT", 3).unwrap().0).unwrap();
    assert_eq!(body["price"], "5");
}

#[test]
fn upstream_failure_backs_off_announces_and_reconnects_on_the_alarm() {
    let mut h = connected();
    let c = h.client_open(Wire::Json, None, 0).0;
    let fx = h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Failed {
            generation: 1,
            failure: Failure::Closed {
                code: 1006,
                reason: String::new(),
            },
        },
        100,
        0.5,
    );
    assert!(fx.contains(&Effect::CloseUpstream {
        source: SourceId::Neutral,
        generation: 1
    }));
    assert_eq!(frames(&fx, c)[0]["upstream"], "reconnecting");
    assert!(fx.contains(&Effect::SetAlarm { at_ms: 600 }), "{fx:?}");
    assert!(h
        .upstream(
            SourceId::Neutral,
            UpstreamEvent::Failed {
                generation: 1,
                failure: Failure::Network("late duplicate".into())
            },
            101,
            0.5
        )
        .is_empty());
    assert!(!h
        .alarm(599, 0.5)
        .iter()
        .any(|e| matches!(e, Effect::ConnectUpstream { .. })));
    let fx = h.alarm(600, 0.5);
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::ConnectUpstream { generation: 2, .. })));
    // Events of the replaced connection are ignored.
    assert!(h
        .exchange_sends(1, &ticker("BTCUSDT", "1", 1), 601)
        .is_empty());
    let fx = h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 2 },
        700,
        0.0,
    );
    assert_eq!(frames(&fx, c)[0]["upstream"], "connected");
    assert_eq!(h.feed.report(0).upstreams[0].reconnects, 1);
}

#[test]
fn repeated_failures_move_to_the_next_endpoint_and_report_down() {
    let mut h = hub();
    h.start(0);
    let mut now = 0;
    let mut urls = Vec::new();
    for gen in 1..=6 {
        h.upstream(
            SourceId::Neutral,
            UpstreamEvent::Failed {
                generation: gen,
                failure: Failure::Refused {
                    status: 429,
                    retry_after_ms: None,
                },
            },
            now,
            1.0,
        );
        now += 120_000;
        for e in h.alarm(now, 1.0) {
            if let Effect::ConnectUpstream { url, .. } = e {
                urls.push(url);
            }
        }
    }
    assert!(urls[1].starts_with("ws://127.0.0.1:1/"));
    assert!(urls[2].starts_with("ws://127.0.0.1:2/"), "{urls:?}");
    // The last alarm came after the breaker's minute: a half-open trial is in flight.
    // It fails too, which re-opens the breaker at once.
    let refused = Failure::Refused {
        status: 429,
        retry_after_ms: None,
    };
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Failed {
            generation: 7,
            failure: refused,
        },
        now,
        1.0,
    );
    assert_eq!(state(&h), "down");
    let (code, body) = h.health(now);
    assert_eq!(code, 503);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "down");
    assert_eq!(v["upstream"]["circuit_breaker"]["state"], "open");
}

#[test]
fn a_connect_that_hangs_times_out() {
    let mut h = hub();
    h.start(0);
    let fx = h.alarm(CONNECT_TIMEOUT_MS, 0.0);
    assert!(fx.contains(&Effect::CloseUpstream {
        source: SourceId::Neutral,
        generation: 1
    }));
    assert_eq!(state(&h), "reconnecting");
}

#[test]
fn health_by_state() {
    let mut h = hub();
    let (code, body) = h.health(0);
    assert_eq!(code, 503, "never connected, no data: down, but it answers");
    assert!(body.contains(r#""status":"down""#));
    h.start(0);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 1_000);
    let v: Value = serde_json::from_str(&h.health(2_000).1).unwrap();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["upstream"]["state"], "connected");
    assert_eq!(v["upstream"]["last_message_age_ms"], 1_000);
    assert_eq!(v["symbols"]["fresh"], 1);
    assert_eq!(v["clients"]["sse"], 0);
    let v: Value = serde_json::from_str(&h.health(20_000).1).unwrap();
    assert_eq!(v["status"], "degraded", "connected but silent");
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Failed {
            generation: 1,
            failure: Failure::Network("gone".into()),
        },
        20_000,
        0.5,
    );
    let (code, body) = h.health(21_000);
    assert_eq!(
        (code, body.contains("degraded")),
        (200, true),
        "cached value still usable"
    );
    let (code, _) = h.health(70_000);
    assert_eq!(code, 503, "nothing younger than 60 s and no upstream");
}

#[test]
fn ttl_sweep_on_the_alarm_forgets_expired_prices() {
    let mut h = connected();
    h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 0);
    let fx = h.alarm(300_001, 0.0);
    assert!(fx.contains(&Effect::Forget {
        symbols: vec!["BTCUSDT".into()]
    }));
    assert!(matches!(
        h.rest_price("BTCUSDT", 300_001),
        Err(ApiError::NoData { .. })
    ));
}

#[test]
fn restored_clients_and_prices_continue_where_they_were() {
    let mut h = hub();
    let p = Price {
        symbol: "BTCUSDT".into(),
        price: Some("7".into()),
        received_at: 0,
        seq: 41,
        ..Price::default()
    };
    h.restore_prices(vec![(p, Default::default())], 50, 1_000);
    h.client_restore(Attachment::new(
        9,
        Wire::Json,
        vec!["BTCUSDT".to_string(), "NOTSERVED".to_string()],
        None,
    ));
    assert_eq!(
        h.client_open(Wire::Json, None, 0).0,
        10,
        "new ids continue above restored ones"
    );
    let body: Value = serde_json::from_str(&h.rest_price("BTCUSDT", 1_000).unwrap().0).unwrap();
    assert_eq!(body["price"], "7");
    h.start(1_000);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        1_000,
        0.0,
    );
    let fx = h.exchange_sends(1, &ticker("BTCUSDT", "8", 2), 1_100);
    let f = frames(&fx, 9);
    assert_eq!(
        f[0]["prices"][0]["seq"], 51,
        "seq continues above the persisted floor"
    );
}

fn hub_with(pairs: &[(&str, &str)]) -> Hub {
    let mut map: HashMap<&str, &str> = [
        ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
        ("UPSTREAM_URL", "ws://127.0.0.1:1/stream"),
        ("FLUSH_MS", "0"),
    ]
    .into_iter()
    .collect();
    map.extend(pairs.iter().copied());
    Hub::with_source(
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap(),
        Rc::new(Neutral),
    )
}

fn upstream_sends(fx: &[Effect]) -> Vec<Value> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SendUpstream { text, .. } => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

#[test]
fn on_demand_follows_listeners() {
    let mut h = hub_with(&[
        ("UPSTREAM_MODE", "on-demand"),
        ("UPSTREAM_IDLE_CLOSE_SECONDS", "5"),
    ]);
    assert!(h
        .start(0)
        .iter()
        .all(|e| !matches!(e, Effect::ConnectUpstream { .. })));
    assert_eq!(state(&h), "idle");
    let a = h.client_open(Wire::Json, None, 0).0;
    let fx = h.client_says(a, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 10);
    let url = fx
        .iter()
        .find_map(|e| match e {
            Effect::ConnectUpstream { url, .. } => Some(url.clone()),
            _ => None,
        })
        .expect("the first listener opens the upstream");
    assert!(url.ends_with("?streams=BTCUSDT/BTCUSDT.book"), "{url}");
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        20,
        0.0,
    );
    let b = h.client_open(Wire::Json, None, 0).0;
    let fx = h.client_says(b, r#"{"action":"subscribe","symbols":["ETHUSDT"]}"#, 1_000);
    assert_eq!(
        upstream_sends(&fx),
        [json!({"add":["ETHUSDT","ETHUSDT.book"],"id":1})]
    );
    let fx = h.client(ClientInput::Closed { conn: b }, 2_000);
    assert!(upstream_sends(&fx)[0].get("remove").is_some());
    let fx = h.client(ClientInput::Closed { conn: a }, 3_000);
    assert_eq!(
        upstream_sends(&fx),
        [json!({"remove":["BTCUSDT","BTCUSDT.book"],"id":3})]
    );
    let fx = h.alarm(7_999, 0.0);
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::CloseUpstream { .. })),
        "grace period"
    );
    let fx = h.alarm(8_000, 0.0);
    assert!(
        fx.contains(&Effect::CloseUpstream {
            source: SourceId::Neutral,
            generation: 1
        }),
        "{fx:?}"
    );
    assert_eq!(state(&h), "idle");
    let v: Value = serde_json::from_str(&h.health(8_000).1).unwrap();
    assert_eq!(v["status"], "healthy", "idle by design is not a fault");
}

#[test]
fn rotation_delivers_every_change_once_with_growing_seq() {
    let mut h = connected();
    let c = h.client_open(Wire::Json, None, 0).0;
    h.client_says(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
    let mut seen: Vec<u64> = Vec::new();
    let mut collect = |fx: &[Effect]| {
        for f in frames(fx, c) {
            if f["type"] == "prices" {
                seen.push(f["prices"][0]["seq"].as_u64().unwrap());
            }
            assert_ne!(f["type"], "status", "no state change is visible: {f}");
        }
    };
    collect(&h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 10));
    let fx = h.exchange_sends(1, neutral::CLOSING, 11);
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::ConnectUpstream { generation: 2, .. })));
    collect(&fx);
    collect(&h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 2 },
        12,
        0.0,
    ));
    collect(&h.exchange_sends(1, &ticker("BTCUSDT", "2", 2), 13));
    // Both connections now carry the same update; only one reaches the client.
    let fx = h.exchange_sends(2, &ticker("BTCUSDT", "2", 2), 14);
    assert!(fx.contains(&Effect::CloseUpstream {
        source: SourceId::Neutral,
        generation: 1
    }));
    collect(&fx);
    collect(&h.exchange_sends(1, &ticker("BTCUSDT", "3", 3), 15));
    collect(&h.exchange_sends(2, &ticker("BTCUSDT", "3", 3), 16));
    collect(&h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Failed {
            generation: 1,
            failure: Failure::Closed {
                code: 1000,
                reason: "shutdown".into(),
            },
        },
        17,
        0.0,
    ));
    assert_eq!(seen, [1, 2, 3], "every change once, in order");
    assert_eq!(state(&h), "connected");
}

#[test]
fn book_ticker_merges_bid_and_ask_into_the_price() {
    let mut h = connected();
    h.exchange_sends(1, &ticker("BTCUSDT", "100.5", 1_000), 10);
    h.exchange_sends(1, &neutral::book("BTCUSDT", "100.40", "100.70", 5), 20);
    let v: Value = serde_json::from_str(&h.rest_price("BTCUSDT", 20).unwrap().0).unwrap();
    assert_eq!(
        (v["price"].as_str(), v["bid"].as_str(), v["ask"].as_str()),
        (Some("100.5"), Some("100.40"), Some("100.70"))
    );
    assert_eq!(
        v["event_time"], 20,
        "book changes carry the hub's receive time"
    );
    assert_eq!(v["seq"], 2);
}

#[test]
fn oversized_upstream_frames_are_skipped_unparsed() {
    let mut h = connected();
    let big = format!(
        r#"{{"price":{{"symbol":"BTCUSDT","pad":"{}"}}}}"#,
        "x".repeat(MAX_UPSTREAM_FRAME_BYTES)
    );
    assert!(h.exchange_sends(1, &big, 1).iter().any(|e| matches!(
        e,
        Effect::Log {
            event: "upstream_bad_frame",
            ..
        }
    )));
    assert_eq!(h.feed.stats().upstream_errors, 1);
}

#[test]
fn etag_follows_seq_and_metrics_count_what_happened() {
    let mut h = connected();
    h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 1_000);
    let (_, a) = h.rest_price("BTCUSDT", 1_000).unwrap();
    let (_, b) = h.rest_price("BTCUSDT", 2_000).unwrap();
    assert_eq!(a, b, "age changes, data does not");
    h.exchange_sends(1, &ticker("BTCUSDT", "2", 2), 2_500);
    assert_ne!(h.rest_price("BTCUSDT", 3_000).unwrap().1, a);
    let c = h.client_open(Wire::Json, None, 0).0;
    h.client_says(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 3_000);
    h.exchange_sends(1, &ticker("BTCUSDT", "3", 3), 3_100);
    h.observe_fanout(0.002);
    let m = h.metrics(3_200);
    for line in [
        "edgetick_connections{transport=\"websocket\"} 1",
        "edgetick_connections{transport=\"sse\"} 0",
        "edgetick_leader_snapshot_requests_total 3",
        "edgetick_upstream_frames_total{source=\"neutral\"} 3",
        "edgetick_upstream_connected{source=\"neutral\"} 1",
        "edgetick_upstream_breaker_state{source=\"neutral\",state=\"closed\"} 1",
        "edgetick_symbols{freshness=\"fresh\"} 1",
        "edgetick_fanout_duration_seconds_count 1",
        "edgetick_messages_sent_total 3",
        // By symbol: its one subscriber, the snapshot's price not counted, the update's yes.
        "edgetick_symbol_subscribers{symbol=\"BTCUSDT\"} 1",
        "edgetick_symbol_messages_sent_total{symbol=\"BTCUSDT\"} 1",
        "edgetick_symbol_slow_consumers_total{symbol=\"BTCUSDT\"} 0",
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
    }
    assert!(
        !m.contains("symbol=\"ETHUSDT\""),
        "only symbols with subscribers or counts"
    );
}

fn live_with(pairs: &[(&str, &str)]) -> Hub {
    let mut h = hub_with(pairs);
    h.start(0);
    h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Opened { generation: 1 },
        0,
        0.0,
    );
    h
}

#[test]
fn an_idle_hub_sends_at_once_and_a_burst_shares_one_frame_per_client() {
    let mut h = live_with(&[("FLUSH_MS", "20")]);
    let (a, _) = h.client_open(Wire::Json, None, 0);
    let (b, _) = h.client_open(Wire::Json, None, 0);
    let (c, _) = h.client_open(Wire::Json, None, 0);
    h.client_says(
        a,
        r#"{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT"]}"#,
        0,
    );
    h.client_says(
        b,
        r#"{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT"]}"#,
        0,
    );
    h.client_says(c, r#"{"action":"subscribe","symbols":["ETHUSDT"]}"#, 0);
    // Nothing was sent recently: the flush is due at once, after the input at hand.
    let fx = h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 100);
    assert!(fx.contains(&Effect::Timer { at_ms: 100 }), "{fx:?}");
    let fx = h.exchange_sends(1, &ticker("ETHUSDT", "2", 1), 100);
    assert!(
        frames(&fx, a).is_empty(),
        "arrived together: joins the same flush"
    );
    let fx = h.timer(100);
    assert_eq!(frames(&fx, a).len(), 1, "one frame for both: {fx:?}");
    assert_eq!(frames(&fx, a)[0]["prices"].as_array().unwrap().len(), 2);
    // More changes in the instant of that flush (it is still being carried out) open a
    // window, and what arrives during it is sent together at its end.
    let fx = h.exchange_sends(1, &ticker("ETHUSDT", "2.5", 2), 100);
    assert!(fx.contains(&Effect::Timer { at_ms: 120 }), "{fx:?}");
    h.exchange_sends(1, &ticker("BTCUSDT", "3", 2), 110);
    h.exchange_sends(1, &ticker("ETHUSDT", "2", 3), 115);
    let fx = h.timer(120);
    let fanouts: Vec<(Vec<ConnId>, Value)> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Fanout { conns, frame } => {
                let mut c = conns.clone();
                c.sort();
                Some((c, serde_json::from_str(frame).unwrap()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        fanouts.len(),
        2,
        "one frame per distinct set of changes: {fanouts:?}"
    );
    let ab = fanouts
        .iter()
        .find(|(c, _)| *c == vec![a, b])
        .expect("a and b share a frame");
    let prices: Vec<(&str, &str)> = ab.1["prices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["symbol"].as_str().unwrap(), p["price"].as_str().unwrap()))
        .collect();
    assert_eq!(
        prices,
        [("BTCUSDT", "3"), ("ETHUSDT", "2")],
        "newest value per symbol, conflated"
    );
    let only_c = fanouts.iter().find(|(cs, _)| *cs == vec![c]).unwrap();
    assert_eq!(only_c.1["prices"].as_array().unwrap().len(), 1);
}

#[test]
fn sse_streams_snapshot_then_conflated_pulls_then_resume() {
    let mut h = live_with(&[]);
    h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 10);
    h.exchange_sends(1, &ticker("ETHUSDT", "2", 1), 11);
    let (conn, first, _) = h
        .sse_open(
            &stream(&["BTCUSDT".into(), "ETHUSDT".into()], &[], None, None),
            20,
        )
        .unwrap();
    assert!(
        first.starts_with("retry: 1000\n\nevent: snapshot\nid: 2\ndata: {\"type\":\"snapshot\""),
        "{first}"
    );
    assert!(first.contains("\"BTCUSDT\"") && first.contains("\"ETHUSDT\""));
    assert_eq!(h.client_counts(), (0, 1));
    assert_eq!(h.sse_take(conn, 21), SseTake::Pending, "nothing new: park");
    let fx = h.exchange_sends(1, &ticker("BTCUSDT", "3", 2), 30);
    assert!(fx.contains(&Effect::SseWake { conns: vec![conn] }));
    // A reader that does not pull gets the newest value once, not a backlog.
    h.exchange_sends(1, &ticker("BTCUSDT", "4", 3), 31);
    h.exchange_sends(1, &ticker("BTCUSDT", "5", 4), 32);
    let SseTake::Data(d) = h.sse_take(conn, 40) else {
        panic!("data expected")
    };
    assert_eq!(d.matches("event: prices").count(), 1, "{d}");
    assert!(d.starts_with("event: prices\nid: 5\n"), "{d}");
    assert!(d.contains("\"price\":\"5\"") && !d.contains("\"price\":\"4\""));
    // Resume: only what changed after the given id.
    h.exchange_sends(1, &ticker("ETHUSDT", "6", 2), 50);
    let (_, resumed, _) = h
        .sse_open(
            &stream(&["BTCUSDT".into(), "ETHUSDT".into()], &[], Some("5"), None),
            60,
        )
        .unwrap();
    assert!(
        resumed.contains("\"ETHUSDT\"") && !resumed.contains("\"BTCUSDT\""),
        "{resumed}"
    );
    h.client(ClientInput::Closed { conn }, 70);
    assert_eq!(h.client_counts(), (0, 1));
    assert_eq!(h.sse_take(conn, 71), SseTake::Closed);
}

#[test]
fn sse_never_repeats_what_the_snapshot_carried() {
    let mut h = live_with(&[("FLUSH_MS", "20")]);
    let a = h.client_open(Wire::Json, None, 0).0;
    h.client_says(a, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
    h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 100);
    // The stream opens inside the flush window: its snapshot already has seq 1.
    let (conn, first, _) = h
        .sse_open(&stream(&["BTCUSDT".into()], &[], None, None), 105)
        .unwrap();
    assert!(first.contains("id: 1\n"));
    h.timer(120);
    assert_eq!(
        h.sse_take(conn, 121),
        SseTake::Pending,
        "nothing new for this stream"
    );
    h.exchange_sends(1, &ticker("BTCUSDT", "2", 2), 130);
    h.timer(150);
    let SseTake::Data(d) = h.sse_take(conn, 151) else {
        panic!()
    };
    assert!(d.starts_with("event: prices\nid: 2\n"), "{d}");
}

/// Found by the e2e suite (a quiet stream of an earlier scenario still counted 20 s after its
/// reader left): a stream that stopped pulling while nothing changed had nothing pending, so
/// it was never closed.
#[test]
fn a_quiet_stream_whose_reader_stopped_is_closed_too() {
    let mut h = live_with(&[]);
    let (conn, _, _) = h
        .sse_open(&stream(&["BTCUSDT".into()], &[], None, None), 0)
        .unwrap();
    assert_eq!(h.sse_take(conn, 0), SseTake::Pending);
    h.timer(KEEPALIVE_MS);
    let keepalive = SseTake::Data(": keepalive\n\n".into());
    assert_eq!(h.sse_take(conn, KEEPALIVE_MS), keepalive);
    // It never pulls again, and BTCUSDT never moves.
    let stopped = 2 * KEEPALIVE_MS;
    h.timer(stopped);
    h.timer(stopped + SLOW_WARN_MS);
    assert_eq!(h.fanout.stats().slow_consumers, 1);
    let fx = h.timer(stopped + SLOW_CLOSE_MS);
    assert!(fx.contains(&Effect::SseWake { conns: vec![conn] }));
    // Forgotten at once, not at its next pull: a proxy that holds the stream open unread
    // may never pull again.
    assert_eq!(h.client_counts(), (0, 0));
    assert_eq!(h.sse_take(conn, stopped + SLOW_CLOSE_MS), SseTake::Closed);
    assert_eq!(h.fanout.stats().slow_consumer_closes, 1);
}

#[test]
fn sse_keepalive_slow_warning_and_close() {
    let mut h = live_with(&[]);
    let (conn, _, _) = h
        .sse_open(&stream(&["BTCUSDT".into()], &[], None, None), 0)
        .unwrap();
    assert_eq!(h.sse_take(conn, 0), SseTake::Pending);
    let fx = h.timer(KEEPALIVE_MS);
    assert!(fx.contains(&Effect::SseWake { conns: vec![conn] }));
    assert_eq!(
        h.sse_take(conn, KEEPALIVE_MS),
        SseTake::Data(": keepalive\n\n".into())
    );
    // Now the reader stops pulling while prices change.
    h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 20_000);
    h.timer(20_000 + SLOW_WARN_MS);
    assert_eq!(h.fanout.stats().slow_consumers, 1);
    let fx = h.timer(20_000 + SLOW_CLOSE_MS);
    assert!(fx.contains(&Effect::SseWake { conns: vec![conn] }));
    assert_eq!(h.sse_take(conn, 20_000 + SLOW_CLOSE_MS), SseTake::Closed);
    assert_eq!(h.fanout.stats().slow_consumer_closes, 1);
    let m = h.metrics(60_000);
    assert!(m.contains("edgetick_clients_closed_total{reason=\"slow_consumer\"} 1"));
}

#[test]
fn a_warned_reader_that_catches_up_gets_the_warning_first() {
    let mut h = live_with(&[]);
    let (conn, _, _) = h
        .sse_open(&stream(&["BTCUSDT".into()], &[], None, None), 0)
        .unwrap();
    h.exchange_sends(1, &ticker("BTCUSDT", "1", 1), 1_000);
    h.timer(1_000 + SLOW_WARN_MS);
    let SseTake::Data(d) = h.sse_take(conn, 7_000) else {
        panic!()
    };
    assert!(
        d.starts_with("event: warning\ndata: {\"type\":\"warning\",\"code\":\"SLOW_CONSUMER\""),
        "{d}"
    );
    assert!(d.contains("event: prices"));
}

#[test]
fn sse_limits() {
    let mut h = live_with(&[
        ("MAX_SYMBOLS_PER_CONNECTION", "1"),
        ("MAX_CONNECTIONS", "1"),
    ]);
    let two = ["BTCUSDT".to_string(), "ETHUSDT".to_string()];
    assert!(matches!(
        h.sse_open(&stream(&two, &[], None, None), 0),
        Err(ApiError::TooManySymbols(_))
    ));
    h.sse_open(&stream(&two[..1], &[], None, None), 0).unwrap();
    let e = h
        .sse_open(&stream(&two[..1], &[], None, None), 0)
        .unwrap_err();
    assert_eq!(e.status(), 503);
}

#[test]
fn status_changes_reach_sse_readers_as_events() {
    let mut h = live_with(&[]);
    let (conn, _, _) = h
        .sse_open(&stream(&["BTCUSDT".into()], &[], None, None), 0)
        .unwrap();
    assert_eq!(h.sse_take(conn, 0), SseTake::Pending);
    let fx = h.upstream(
        SourceId::Neutral,
        UpstreamEvent::Failed {
            generation: 1,
            failure: Failure::Network("gone".into()),
        },
        10,
        0.5,
    );
    assert!(fx.contains(&Effect::SseWake { conns: vec![conn] }));
    let SseTake::Data(d) = h.sse_take(conn, 11) else {
        panic!()
    };
    assert!(
        d.starts_with("event: status\ndata: {\"type\":\"status\",\"upstream\":\"reconnecting\""),
        "{d}"
    );
}

#[test]
fn a_websocket_client_that_stops_acking_is_held_warned_caught_up_and_closed() {
    use crate::core::fanout::session::ACK_WINDOW_BYTES;
    let mut h = live_with(&[("CLIENT_MESSAGES_PER_SECOND", "1000")]);
    let slow = h.client_open(Wire::Json, None, 0).0;
    let bystander = h.client_open(Wire::Json, None, 0).0;
    for c in [slow, bystander] {
        h.client_says(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
    }
    h.client_says(slow, r#"{"action":"ack","seq":0}"#, 0);
    let mut sent_bytes = 0;
    let mut last_seq = 0;
    let mut i = 0;
    // Feed until the slow client stops getting frames (its window is full).
    loop {
        i += 1;
        let fx = h.exchange_sends(1, &ticker("BTCUSDT", &i.to_string(), i), 10);
        let got = frames(&fx, slow);
        assert_eq!(
            frames(&fx, bystander).len(),
            1,
            "the bystander always gets its frame"
        );
        if got.is_empty() {
            break;
        }
        last_seq = got[0]["prices"][0]["seq"].as_u64().unwrap();
        sent_bytes += got[0].to_string().len();
        assert!(i < 100_000, "never fell behind");
    }
    assert!(sent_bytes > ACK_WINDOW_BYTES - 1_000, "{sent_bytes}");
    for j in 0..10 {
        h.exchange_sends(1, &ticker("BTCUSDT", &format!("9{j}"), i + 1 + j), 20);
    }
    let fx = h.timer(10 + SLOW_WARN_MS);
    let w = frames(&fx, slow);
    assert_eq!(
        (w[0]["type"].as_str(), w[0]["code"].as_str()),
        (Some("warning"), Some("SLOW_CONSUMER"))
    );
    let slow_btc = "edgetick_symbol_slow_consumers_total{symbol=\"BTCUSDT\"} 1";
    assert!(h.metrics(10 + SLOW_WARN_MS).lines().any(|l| l == slow_btc));
    // It acknowledges what it has: one frame with the newest value catches it up.
    let fx = h.client_says(
        slow,
        &format!(r#"{{"action":"ack","seq":{last_seq}}}"#),
        6_000,
    );
    let f = frames(&fx, slow);
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0]["prices"][0]["price"], "99",
        "conflated to the newest value"
    );
    // Falling behind again and staying there: closed with 4009.
    let mut k = 100;
    while !frames(
        &h.exchange_sends(1, &ticker("BTCUSDT", &k.to_string(), i + k), 7_000),
        slow,
    )
    .is_empty()
    {
        k += 1;
    }
    let fx = h.timer(7_000 + SLOW_CLOSE_MS);
    assert!(fx.contains(&Effect::Close {
        conn: slow,
        code: close::SLOW_CONSUMER,
        reason: "slow consumer"
    }));
    assert_eq!(h.fanout.stats().slow_consumer_closes, 1);
    assert!(h.has_client(bystander));
}

#[test]
fn the_rate_limit_answers_rate_limited_then_closes_4008() {
    let mut h = live_with(&[("CLIENT_MESSAGES_PER_SECOND", "3")]);
    let c = h.client_open(Wire::Json, None, 0).0;
    let bystander = h.client_open(Wire::Json, None, 0).0;
    let ping = r#"{"action":"ping"}"#;
    for _ in 0..3 {
        assert_eq!(frames(&h.client_says(c, ping, 0), c)[0]["type"], "pong");
    }
    let f = frames(&h.client_says(c, ping, 0), c);
    assert_eq!(f[0]["code"], "RATE_LIMITED");
    let mut closed = false;
    for _ in 0..10 {
        let fx = h.client_says(c, ping, 0);
        if fx.iter().any(|e| {
            matches!(
                e,
                Effect::Close {
                    code: close::RATE_LIMITED,
                    ..
                }
            )
        }) {
            closed = true;
            break;
        }
    }
    assert!(closed, "persisting closes with 4008");
    assert!(!h.has_client(c));
    assert_eq!(
        frames(&h.client_says(bystander, ping, 0), bystander)[0]["type"],
        "pong"
    );
}

#[test]
fn rest_bodies() {
    let mut h = connected();
    h.exchange_sends(1, &ticker("BTCUSDT", "1.25", 1), 1_000);
    let v: Value = serde_json::from_str(&h.rest_prices(None, 3_000).0).unwrap();
    assert_eq!(v["upstream"], "connected");
    assert_eq!(v["as_of"], 3_000);
    assert_eq!(v["prices"][0]["price"], "1.25");
    assert_eq!(v["prices"][0]["age_ms"], 2_000);
    assert_eq!(v["prices"][0]["freshness"], "fresh");
    let only = parse_symbol_query(h.config(), "eth-usdt").unwrap();
    let v: Value = serde_json::from_str(&h.rest_prices(Some(&only), 3_000).0).unwrap();
    assert_eq!(v["prices"], json!([]));
    assert!(matches!(
        parse_symbol_query(h.config(), "DOGEUSDT"),
        Err(ApiError::UnknownSymbol(_))
    ));
    assert!(matches!(
        parse_symbol_query(h.config(), "<x>"),
        Err(ApiError::BadRequest(_))
    ));
    assert!(matches!(
        parse_symbol_query(h.config(), ","),
        Err(ApiError::BadRequest(_))
    ));
    let e = h.rest_price("ETHUSDT", 3_000).unwrap_err();
    assert_eq!(
        (e.status(), e.code(), e.retry_after()),
        (503, "NO_DATA", Some(1))
    );
}

#[test]
fn a_failed_send_closes_the_client_retryably_and_forgets_it() {
    let mut h = connected();
    let (c, _) = h.client_open(Wire::Json, None, 0);
    h.client_says(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
    let fx = h.client(ClientInput::SendFailed { conn: c }, 1);
    let close = Effect::Close {
        conn: c,
        code: close::INTERNAL,
        reason: "send failed",
    };
    assert!(fx.contains(&close), "{fx:?}");
    assert_eq!(close::reciprocal(1011), 1011);
    assert!(!h.has_client(c));
    assert!(
        !h.client(ClientInput::SendFailed { conn: c }, 2)
            .iter()
            .any(|e| matches!(e, Effect::Close { .. })),
        "a client is closed once"
    );
}

/// Found by the simulation: subscribing again to a symbol already held sent its latest once
/// more (a `seq` twice). The snapshot carries only what the subscribe added.
#[test]
fn subscribing_again_never_repeats_a_seq() {
    let mut h = connected();
    h.exchange_sends(1, &ticker("BTCUSDT", "100.5", 1_000), 10);
    let (c, _) = h.client_open(Wire::Json, None, 20);
    let sub = r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#;
    let f = frames(&h.client_says(c, sub, 21), c);
    assert_eq!(f[1]["prices"][0]["seq"], 1);
    let f = frames(&h.client_says(c, sub, 22), c);
    assert_eq!(f[0]["type"], "subscribed");
    assert_eq!(f[1]["type"], "snapshot");
    assert_eq!(f[1]["prices"], json!([]), "already held: not repeated");
    let both = r#"{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT"]}"#;
    h.exchange_sends(1, &ticker("ETHUSDT", "5.0", 1_000), 23);
    let f = frames(&h.client_says(c, both, 24), c);
    let symbols: Vec<&Value> = f[1]["prices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["symbol"])
        .collect();
    assert_eq!(symbols, [&json!("ETHUSDT")], "only the one it added");
}

/// One SSE URL with a channel the service does not serve opens with what is served and says
/// the rest in a `warning`.
#[test]
fn a_stream_names_the_channels_it_left_out() {
    let mut h = connected();
    let open = StreamOpen {
        refused: vec!["trades:NOPEUSDT".into()],
        ..stream(&["BTCUSDT".to_string()], &[], None, None)
    };
    let (_, first, _) = h.sse_open(&open, 10).unwrap();
    let warning = first
        .split("\n\n")
        .find(|e| e.starts_with("event: warning"))
        .expect("a warning");
    assert!(warning.contains(r#""code":"UNKNOWN_CHANNEL""#), "{warning}");
    assert!(warning.contains("trades:NOPEUSDT"), "{warning}");
    assert!(
        first.contains("event: snapshot"),
        "the stream opened: {first}"
    );
}
