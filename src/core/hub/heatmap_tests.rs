//! The heat map through the leader: a `heatmap:` subscriber makes the leader poll open
//! interest and follow the 5-minute candles, each answer brings a map (sent only when it
//! changed), a later subscriber gets the current map at once, and nobody listening stops it.

use serde_json::Value;

use super::tests::frames;
use super::*;
use crate::core::effect::FetchId;
use crate::core::feed::neutral;
use crate::core::history::book::Answer;
use crate::core::hub::tests::{open_hub, Drive};

const NOW: i64 = 1_000 * 60_000;

fn hub() -> Hub {
    let mut h = open_hub(
        &[
            ("FUTURES_REST_URL", "http://futures.test"),
            ("HEATMAP_INTERVAL_SECONDS", "5"),
        ],
        NOW,
    );
    h.exchange_sends(1, &neutral::ticker("BTCUSDT", "100.0", NOW), NOW);
    h
}

/// The open-interest polls among `fx`.
fn polls(fx: &[Effect]) -> Vec<(u64, String)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Fetch {
                id: FetchId::OpenInterest(id),
                url,
            } => Some((*id, url.clone())),
            _ => None,
        })
        .collect()
}

fn oi(value: &str) -> Answer {
    Answer::Reply {
        status: 200,
        retry_after_ms: None,
        used_weight: None,
        body: format!(r#"{{"openInterest":"{value}","symbol":"BTCUSDT","time":1}}"#),
    }
}

fn maps(fx: &[Effect], conn: ConnId) -> Vec<Value> {
    frames(fx, conn)
        .into_iter()
        .filter(|f| f["type"] == "heatmap")
        .collect()
}

/// Runs the timer at `t` and answers its poll with `value`; returns every effect.
fn interval(h: &mut Hub, t: i64, value: &str) -> Vec<Effect> {
    let fx = h.timer(t);
    let asked = polls(&fx);
    assert_eq!(asked.len(), 1, "one poll per interval: {fx:?}");
    let mut all = fx;
    all.extend(h.fetched(FetchId::OpenInterest(asked[0].0), oi(value), t + 20, 0.5));
    all.extend(h.timer(t + 30));
    all
}

#[test]
fn a_heatmap_subscriber_gets_maps_only_when_they_change() {
    let mut h = hub();
    let (c, _) = h.client_open(crate::core::wire::Wire::Json, None, NOW);
    let fx = h.client_says(
        c,
        r#"{"action":"subscribe","channels":["heatmap:btc-usdt"]}"#,
        NOW,
    );
    // Its 5-minute candles are followed upstream and backfilled.
    let follows = fx.iter().any(
        |e| matches!(e, Effect::SendUpstream { text, .. } if text.contains("candles:BTCUSDT:5m")),
    );
    assert!(follows, "{fx:?}");
    assert!(fx.iter().any(|e| matches!(e, Effect::Fetch { id: FetchId::Klines(_), url } if url.contains("interval=5m"))));
    let first = interval(&mut h, NOW, "1000");
    let poll = polls(&first);
    assert_eq!(
        poll[0].1,
        "http://futures.test/fapi/v1/openInterest?symbol=BTCUSDT"
    );
    let m = maps(&first, c);
    assert_eq!(m.len(), 1, "the first map");
    assert_eq!(m[0]["channel"], "heatmap:BTCUSDT");
    assert_eq!(m[0]["data"]["current_price"], "100.0");
    assert_eq!(m[0]["data"]["levels"].as_array().unwrap().len(), 41);
    assert_eq!(m[0]["data"]["positions_created"], "0");
    assert!(m[0]["timestamp"].as_str().unwrap().ends_with('Z'));
    // Open interest rises while the price rises: positions created, placed.
    h.exchange_sends(
        1,
        &neutral::ticker("BTCUSDT", "100.2", NOW + 4_000),
        NOW + 4_000,
    );
    let second = interval(&mut h, NOW + 5_000, "1100");
    let m = maps(&second, c);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["data"]["positions_created"], "100");
    let dense = m[0]["data"]["levels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["long_density"] == 1.0)
        .count();
    assert_eq!(dense, 2, "the 25x and 50x longs' levels");
    // Nothing moved: no frame.
    let third = interval(&mut h, NOW + 10_000, "1100");
    assert!(maps(&third, c).is_empty(), "sent only when it changed");
    // A later subscriber gets the current map at once.
    let (d, _) = h.client_open(crate::core::wire::Wire::Json, None, NOW + 11_000);
    let fx = h.client_says(
        d,
        r#"{"action":"subscribe","channels":["heatmap:BTCUSDT"]}"#,
        NOW + 11_000,
    );
    let greeted = maps(&fx, d);
    assert_eq!(greeted.len(), 1);
    assert_eq!(greeted[0]["data"]["positions_created"], "100");
    // Nobody listening: no more polls.
    h.client_says(
        c,
        r#"{"action":"unsubscribe","channels":["heatmap:BTCUSDT"]}"#,
        NOW + 12_000,
    );
    h.client_says(
        d,
        r#"{"action":"unsubscribe","channels":["heatmap:BTCUSDT"]}"#,
        NOW + 12_000,
    );
    assert!(polls(&h.timer(NOW + 20_000)).is_empty());
}

#[test]
fn a_failed_poll_backs_off_and_the_map_still_comes_on_time() {
    let mut h = hub();
    let (c, _) = h.client_open(crate::core::wire::Wire::Json, None, NOW);
    h.client_says(
        c,
        r#"{"action":"subscribe","channels":["heatmap:BTCUSDT"]}"#,
        NOW,
    );
    let fx = h.timer(NOW);
    let asked = polls(&fx);
    let mut fx = h.fetched(
        FetchId::OpenInterest(asked[0].0),
        Answer::Failed,
        NOW + 10,
        0.99,
    );
    fx.extend(h.timer(NOW + 20));
    assert_eq!(maps(&fx, c).len(), 1, "a map from what is known");
    // The backoff (under a second) is over by the next interval; then a refusal with a
    // minute's Retry-After.
    let fx = h.timer(NOW + 5_000);
    let asked = polls(&fx);
    assert_eq!(asked.len(), 1);
    let refused = Answer::Reply {
        status: 429,
        retry_after_ms: Some(60_000),
        used_weight: None,
        body: String::new(),
    };
    let mut fx = h.fetched(FetchId::OpenInterest(asked[0].0), refused, NOW + 5_010, 0.5);
    fx.extend(h.timer(NOW + 5_020));
    assert!(maps(&fx, c).is_empty(), "nothing changed: nothing sent");
    // Inside the Retry-After the map is still computed on time, without a poll.
    h.exchange_sends(
        1,
        &neutral::ticker("BTCUSDT", "101.0", NOW + 9_000),
        NOW + 9_000,
    );
    let mut fx = h.timer(NOW + 10_000);
    assert!(polls(&fx).is_empty(), "no poll before the Retry-After");
    fx.extend(h.timer(NOW + 10_010));
    let m = maps(&fx, c);
    assert_eq!(m.len(), 1, "the new price: a new map");
    assert_eq!(m[0]["data"]["current_price"], "101.0");
    assert_eq!(polls(&h.timer(NOW + 65_010)).len(), 1, "after it");
}
