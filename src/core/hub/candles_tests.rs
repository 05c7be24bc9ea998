//! The candle history through the leader: a `candles:` subscriber makes its series live and
//! backfilled, closes from the stream extend it (stored after the fan-out), `/api/candles`
//! waits for an incomplete series, and a restarted leader fetches only the gap.

use serde_json::Value;

use super::*;
use crate::core::effect::FetchId;
use crate::core::feed::neutral;
use crate::core::history::api::CandlesRead;
use crate::core::history::book::Answer;
use crate::core::history::candles::Candle;
use crate::core::hub::tests::{open_hub, Drive};

const MIN: i64 = 60_000;
const NOW: i64 = 1_000 * MIN + 20_000;

fn hub() -> Hub {
    open_hub(&[("CANDLE_HISTORY", "50")], NOW)
}

fn fetches(fx: &[Effect]) -> Vec<(FetchId, String)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Fetch {
                id: FetchId::Klines(id),
                url,
            } => Some((FetchId::Klines(*id), url.clone())),
            _ => None,
        })
        .collect()
}

fn stored(fx: &[Effect]) -> Vec<i64> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::StoreCandles { gained } => Some(gained.candles.iter().map(|c| c.t / MIN)),
            _ => None,
        })
        .flatten()
        .collect()
}

fn klines(from_min: i64, to_min: i64) -> Answer {
    let rows: Vec<String> = (from_min..=to_min)
        .map(|m| {
            format!(
                r#"[{},"1","2","0.5","1.5","10",0,"0",0,"0","0","0"]"#,
                m * MIN
            )
        })
        .collect();
    Answer::Reply {
        status: 200,
        retry_after_ms: None,
        used_weight: Some(2),
        body: format!("[{}]", rows.join(",")),
    }
}

fn closed_kline(minute: i64) -> String {
    let body = format!(
        r#"{{"channel":"candles:BTCUSDT:1m","candle":{{"t":{},"o":"1.0","h":"2.0","l":"0.5","c":"1.25","v":"3.0","closed":true}}}}"#,
        minute * MIN
    );
    neutral::market("candles:BTCUSDT:1m", "x", &body)
}

fn read<'a>(symbol: &'a str, last_chance: bool) -> CandlesRead<'a> {
    CandlesRead {
        symbol,
        interval: "1m",
        limit: 50,
        last_chance,
    }
}

fn candles(answer: &crate::core::history::api::CandlesAnswer) -> Vec<i64> {
    let v: Value = serde_json::from_str(&answer.body).unwrap();
    let list = v["candles"].as_array().unwrap();
    list.iter()
        .map(|c| c["t"].as_i64().unwrap() / MIN)
        .collect()
}

#[test]
fn a_candles_subscriber_gets_its_series_backfilled_and_extended_by_the_stream() {
    let mut h = hub();
    let (c, _) = h.client_open(crate::core::wire::Wire::Json, None, NOW);
    let sub = r#"{"action":"subscribe","channels":["candles:BTCUSDT:1m"]}"#;
    let fx = h.client_says(c, sub, NOW);
    let asked = fetches(&fx);
    assert_eq!(asked.len(), 1, "{fx:?}");
    let url = &asked[0].1;
    assert!(url.starts_with("http://rest.test/api/v3/klines?symbol=BTCUSDT&interval=1m"));
    assert!(
        url.contains(&format!("startTime={}&limit=50", 950 * MIN)),
        "{url}"
    );
    let fx = h.fetched(asked[0].0, klines(950, 1_000), NOW + 100, 0.5);
    assert_eq!(
        stored(&fx),
        (950..1_000).collect::<Vec<_>>(),
        "the open candle is not kept"
    );
    assert!(fx.iter().any(|e| matches!(e, Effect::CandlesReady)));
    // The stream closes minute 1000: fanned out first, stored after.
    let t = 1_001 * MIN + 1_000;
    let fx = h.exchange_sends(1, &closed_kline(1_000), t);
    let fx = [fx, h.timer(t + 10)].concat();
    let send = fx
        .iter()
        .position(|e| matches!(e, Effect::Send { .. } | Effect::Fanout { .. }));
    let store = fx
        .iter()
        .position(|e| matches!(e, Effect::StoreCandles { .. }));
    assert_eq!(stored(&fx), [1_000]);
    assert!(send.is_some() && store.is_some());
    let (answer, fx) = h.rest_candles(read("BTCUSDT", false), t + 20);
    assert!(fetches(&fx).is_empty(), "complete: nothing to fetch");
    let answer = answer.expect("complete");
    assert_eq!(candles(&answer), (951..=1_000).collect::<Vec<_>>());
    assert!(answer.max_age_s > 1 && answer.max_age_s <= 60);
}

#[test]
fn a_read_of_an_unknown_series_waits_for_its_backfill() {
    let mut h = hub();
    let (answer, fx) = h.rest_candles(read("ETHUSDT", false), NOW);
    assert!(answer.is_none(), "it waits");
    let asked = fetches(&fx);
    assert_eq!(asked.len(), 1);
    let (again, fx) = h.rest_candles(read("ETHUSDT", false), NOW + 1);
    assert!(
        again.is_none() && fetches(&fx).is_empty(),
        "one request at a time"
    );
    let refused = Answer::Reply {
        status: 429,
        retry_after_ms: Some(2_000),
        used_weight: None,
        body: String::new(),
    };
    let fx = h.fetched(asked[0].0, refused, NOW + 5, 0.5);
    assert!(stored(&fx).is_empty());
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::Timer { at_ms } if *at_ms == NOW + 2_005)));
    let (answer, _) = h.rest_candles(read("ETHUSDT", true), NOW + 10);
    let answer = answer.expect("its last chance answers what is held");
    assert!(candles(&answer).is_empty());
    assert_eq!(answer.max_age_s, 1);
    let fx = h.timer(NOW + 2_005);
    let asked = fetches(&fx);
    assert_eq!(asked.len(), 1, "retried after Retry-After");
    h.fetched(asked[0].0, klines(950, 1_000), NOW + 2_100, 0.5);
    let (answer, _) = h.rest_candles(read("ETHUSDT", false), NOW + 2_200);
    assert_eq!(answer.map(|a| candles(&a).len()), Some(50));
}

#[test]
fn a_restarted_leader_fetches_only_the_gap() {
    let mut h = hub();
    let candle = |m: i64| Candle::new(m * MIN, ["1"; 5]);
    h.restore_candles("BTCUSDT", "1m", (950..990).map(candle).collect());
    let (answer, fx) = h.rest_candles(read("BTCUSDT", false), NOW);
    assert!(answer.is_none());
    let asked = fetches(&fx);
    assert!(asked[0]
        .1
        .contains(&format!("startTime={}&limit=10", 990 * MIN)));
    let fx = h.fetched(asked[0].0, klines(985, 1_000), NOW + 1, 0.5);
    assert_eq!(
        stored(&fx),
        (990..1_000).collect::<Vec<_>>(),
        "no duplicates stored"
    );
}
