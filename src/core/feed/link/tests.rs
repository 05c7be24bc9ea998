//! Unit tests of the upstream link: breaker, budget, endpoints, watchdog, rotation, requests.

use std::collections::BTreeSet;

use serde_json::json;

use super::*;
use crate::core::feed::binance::{Binance, MIN_REQUEST_SPACING_MS};

/// A link to Binance (the link's own tests speak its stream names).
fn link(s: LinkSettings) -> Link {
    Link::new(s, Rc::new(Binance))
}

fn settings(on_demand: bool) -> LinkSettings {
    LinkSettings {
        urls: vec!["ws://a/stream".into(), "ws://b/stream".into()],
        watchdog_ms: 30_000,
        max_age_ms: 3_600_000,
        idle_close_ms: 10_000,
        on_demand,
    }
}

fn streams(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn connects(fx: &[Effect]) -> Vec<(u64, String)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::ConnectUpstream {
                generation, url, ..
            } => Some((*generation, url.clone())),
            _ => None,
        })
        .collect()
}

fn closes(fx: &[Effect]) -> Vec<u64> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::CloseUpstream { generation, .. } => Some(*generation),
            _ => None,
        })
        .collect()
}

fn sends(fx: &[Effect]) -> Vec<serde_json::Value> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::SendUpstream { text, .. } => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

/// A link with generation 1 connected and delivering at t=0.
fn live() -> Link {
    let mut l = link(settings(false));
    let mut fx = Vec::new();
    l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
    l.opened(1, 0, &mut fx);
    l.frame(1, 0, &mut fx);
    l
}

#[test]
fn breaker_opens_after_five_half_opens_after_a_minute_closes_after_three_successes() {
    let mut b = Breaker::default();
    for i in 0..4 {
        b.failure(i);
        assert_eq!(b.name(), "closed");
    }
    b.failure(4);
    assert_eq!(b.state(), BreakerState::Open { until: 60_004 });
    assert_eq!(b.admit(60_003), Some(60_004));
    assert_eq!(b.admit(60_004), None);
    assert_eq!(b.name(), "half_open");
    b.success(61_000);
    b.success(61_500);
    assert_eq!(
        b.state(),
        BreakerState::HalfOpen {
            successes: 1,
            last: Some(61_000)
        },
        "too close together"
    );
    assert_eq!(
        b.failures(),
        0,
        "a delivered frame ends the run of failures"
    );
    b.success(63_000);
    b.success(65_000);
    assert_eq!(b.name(), "closed");
    assert_eq!(b.failures(), 0);
}

#[test]
fn a_delivering_connection_closes_a_breaker_restored_open() {
    let mut b = Breaker::default();
    (0..5).for_each(|i| b.failure(i));
    assert_eq!(b.name(), "open");
    // A connection delivers anyway (memory of an earlier instance, or a replacement
    // that failed while the active one kept delivering).
    assert!(b.success(10_000));
    assert_eq!((b.name(), b.failures()), ("half_open", 0));
    b.success(12_000);
    b.success(14_000);
    assert_eq!(b.name(), "closed", "closes as after any trial");
}

#[test]
fn a_failure_while_half_open_reopens_at_once() {
    let mut b = Breaker::default();
    (0..5).for_each(|i| b.failure(i));
    b.admit(70_000);
    b.failure(70_001);
    assert_eq!(b.state(), BreakerState::Open { until: 130_001 });
}

#[test]
fn a_success_while_closed_resets_the_count() {
    let mut b = Breaker::default();
    (0..4).for_each(|i| b.failure(i));
    b.success(5);
    b.failure(6);
    assert_eq!((b.name(), b.failures()), ("closed", 1));
}

#[test]
fn refusals_for_an_hour_stay_far_under_binances_attempt_limit() {
    let mut l = link(settings(false));
    let mut fx = Vec::new();
    l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
    let mut attempts: Vec<i64> = Vec::new();
    let mut now = 0;
    while now < 3_600_000 {
        for (g, _) in connects(&fx) {
            attempts.push(now);
            let mut more = Vec::new();
            l.failed(
                g,
                Failure::Refused {
                    status: 429,
                    retry_after_ms: None,
                },
                now,
                0.0,
                &mut more,
            );
            fx.extend(more);
        }
        fx.clear();
        now = l
            .next_wake()
            .expect("a retry is always scheduled")
            .max(now + 1);
        l.tick(now, 0.0, &mut fx);
    }
    let worst = attempts
        .iter()
        .map(|t| {
            attempts
                .iter()
                .filter(|u| **u >= *t && **u < t + 300_000)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        worst <= MAX_ATTEMPTS_PER_WINDOW,
        "{worst} attempts in 5 minutes"
    );
    assert!(
        worst <= 10,
        "the breaker should keep it to a handful: {worst}"
    );
    assert!(attempts.len() > 10, "it keeps trying: {}", attempts.len());
    assert_eq!(l.state(), "down");
}

#[test]
fn the_budget_caps_attempts_even_without_backoff() {
    let mut b = AttemptBudget::default();
    for t in 0..MAX_ATTEMPTS_PER_WINDOW as i64 {
        assert_eq!(b.next_allowed(t), t);
        b.record(t);
    }
    assert_eq!(b.next_allowed(100), ATTEMPT_WINDOW_MS);
    assert_eq!(b.next_allowed(ATTEMPT_WINDOW_MS), ATTEMPT_WINDOW_MS);
}

#[test]
fn retry_after_is_honoured_and_451_moves_to_the_next_endpoint() {
    let mut l = link(settings(false));
    let mut fx = Vec::new();
    l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
    fx.clear();
    l.failed(
        1,
        Failure::Refused {
            status: 429,
            retry_after_ms: Some(30_000),
        },
        0,
        0.0,
        &mut fx,
    );
    assert_eq!(l.next_wake(), Some(30_000));
    l.tick(29_999, 0.0, &mut fx);
    assert!(connects(&fx).is_empty());
    l.tick(30_000, 0.0, &mut fx);
    assert_eq!(connects(&fx)[0].1, "ws://a/stream?streams=btcusdt@ticker");
    fx.clear();
    l.failed(
        2,
        Failure::Refused {
            status: 451,
            retry_after_ms: None,
        },
        30_000,
        1.0,
        &mut fx,
    );
    l.tick(l.next_wake().unwrap(), 0.0, &mut fx);
    assert!(connects(&fx)[0].1.starts_with("ws://b/stream"), "{fx:?}");
    assert_eq!(l.last_failure().unwrap().1.kind(), "refused");
}

#[test]
fn the_watchdog_replaces_a_silent_connection() {
    let mut l = live();
    let mut fx = Vec::new();
    l.frame(1, 10_000, &mut fx);
    // Ticker streams promise a frame every second: five missed cadences is silence.
    assert_eq!(l.next_wake(), Some(15_000));
    l.tick(14_999, 0.5, &mut fx);
    assert!(closes(&fx).is_empty());
    l.tick(15_000, 0.5, &mut fx);
    assert_eq!(closes(&fx), [1]);
    assert_eq!(
        l.last_failure().unwrap().1,
        Failure::Silent { for_ms: 5_000 }
    );
    assert_eq!(l.state(), "reconnecting");
    fx.clear();
    l.tick(l.next_wake().unwrap(), 0.5, &mut fx);
    assert_eq!(connects(&fx).len(), 1, "reconnects after the backoff");
}

#[test]
fn the_silence_limit_follows_what_the_streams_promise() {
    let l = link(settings(false));
    let s = |v: &[&str]| streams(v);
    // Tickers every second: 5 s once the connection has delivered.
    assert_eq!(
        l.silence_limit_of(&s(&["btcusdt@ticker", "btcusdt@bookTicker"]), true),
        5_000
    );
    // Klines every 2 s: 10 s.
    assert_eq!(l.silence_limit_of(&s(&["btcusdt@kline_1m"]), true), 10_000);
    // Only event streams (a quiet market silences them): the configured 30 s.
    assert_eq!(
        l.silence_limit_of(&s(&["btcusdt@bookTicker", "btcusdt@aggTrade"]), true),
        30_000
    );
    // Not delivered yet (an exchange with nothing to say at first): the configured 30 s.
    assert_eq!(l.silence_limit_of(&s(&["btcusdt@ticker"]), false), 30_000);
    // A configured watchdog shorter than the derived limit wins.
    let short = link(LinkSettings {
        watchdog_ms: 3_000,
        ..settings(false)
    });
    assert_eq!(short.silence_limit_of(&s(&["btcusdt@ticker"]), true), 3_000);
}

#[test]
fn server_shutdown_rotates_make_before_break() {
    let mut l = live();
    let mut fx = Vec::new();
    l.server_shutdown(1, 1_000, &mut fx);
    assert_eq!(connects(&fx).len(), 1, "the replacement opens at once");
    assert!(closes(&fx).is_empty(), "the old one keeps delivering");
    fx.clear();
    l.opened(2, 1_100, &mut fx);
    assert!(
        closes(&fx).is_empty(),
        "not before the replacement delivers"
    );
    assert_eq!(l.frame(1, 1_150, &mut fx), FrameVerdict::Apply);
    assert_eq!(l.frame(2, 1_200, &mut fx), FrameVerdict::Switched);
    assert_eq!(closes(&fx), [1]);
    assert_eq!(
        l.frame(1, 1_250, &mut fx),
        FrameVerdict::Ignore,
        "late frames of the old one"
    );
    assert_eq!(l.rotations, 1);
    assert_eq!(l.state(), "connected");
    // The old connection's close afterwards is not a failure.
    fx.clear();
    l.failed(
        1,
        Failure::Closed {
            code: 1000,
            reason: "bye".into(),
        },
        1_300,
        0.0,
        &mut fx,
    );
    assert!(fx.is_empty());
    assert_eq!(l.breaker().failures(), 0);
}

#[test]
fn rotation_by_age_and_a_replacement_that_never_delivers() {
    let mut l = live();
    let mut fx = Vec::new();
    l.frame(1, 3_599_000, &mut fx);
    l.tick(3_600_000, 0.0, &mut fx);
    assert_eq!(connects(&fx).len(), 1, "rotated before the exchange's cut");
    fx.clear();
    l.opened(2, 3_600_100, &mut fx);
    l.frame(1, 3_614_000, &mut fx);
    l.tick(3_600_100 + CONNECT_TIMEOUT_MS, 0.0, &mut fx);
    assert_eq!(closes(&fx), [2], "a silent replacement is dropped");
    assert_eq!(l.state(), "connected", "the old connection still serves");
}

#[test]
fn the_active_dying_during_rotation_switches_to_the_open_replacement() {
    let mut l = live();
    let mut fx = Vec::new();
    l.server_shutdown(1, 1_000, &mut fx);
    l.opened(2, 1_100, &mut fx);
    fx.clear();
    l.failed(
        1,
        Failure::Closed {
            code: 1000,
            reason: "shutdown".into(),
        },
        1_200,
        0.0,
        &mut fx,
    );
    assert_eq!(l.state(), "connected");
    assert_eq!(
        l.frame(2, 1_300, &mut fx),
        FrameVerdict::FirstFrame,
        "promoted without a frame: its first one shortens the silence limit"
    );
}

#[test]
fn on_demand_batches_spaced_requests_and_closes_when_idle() {
    let mut l = link(settings(true));
    let mut fx = Vec::new();
    l.want(BTreeSet::new(), 0, &mut fx);
    assert!(fx.is_empty(), "nothing wanted, nothing opened");
    assert_eq!(l.state(), "idle");
    l.want(streams(&["btcusdt@ticker"]), 10, &mut fx);
    assert_eq!(connects(&fx)[0].1, "ws://a/stream?streams=btcusdt@ticker");
    l.opened(1, 20, &mut fx);
    fx.clear();
    l.want(streams(&["btcusdt@ticker", "ethusdt@ticker"]), 30, &mut fx);
    assert_eq!(
        sends(&fx),
        [json!({"method":"SUBSCRIBE","params":["ethusdt@ticker"],"id":1})]
    );
    fx.clear();
    // Three changes inside the spacing window become one request.
    l.want(
        streams(&["btcusdt@ticker", "ethusdt@ticker", "solusdt@ticker"]),
        100,
        &mut fx,
    );
    l.want(
        streams(&[
            "btcusdt@ticker",
            "ethusdt@ticker",
            "solusdt@ticker",
            "xrpusdt@ticker",
        ]),
        200,
        &mut fx,
    );
    assert!(sends(&fx).is_empty());
    assert_eq!(l.next_wake(), Some(30 + MIN_REQUEST_SPACING_MS));
    l.tick(430, 0.0, &mut fx);
    assert_eq!(
        sends(&fx),
        [json!({"method":"SUBSCRIBE","params":["solusdt@ticker","xrpusdt@ticker"],"id":2})]
    );
    fx.clear();
    l.want(BTreeSet::new(), 1_000, &mut fx);
    assert_eq!(sends(&fx)[0]["method"], "UNSUBSCRIBE");
    assert!(
        closes(&fx).is_empty(),
        "kept open for the idle grace period"
    );
    fx.clear();
    l.tick(1_000 + 10_000, 0.0, &mut fx);
    assert_eq!(closes(&fx), [1]);
    assert_eq!(l.state(), "idle");
    assert_eq!(
        l.next_wake(),
        None,
        "nothing to wake for: the object may hibernate"
    );
    assert_eq!(
        l.breaker().failures(),
        0,
        "closing when idle is not a failure"
    );
}

#[test]
fn requests_never_exceed_the_rate_under_churn() {
    let mut l = link(settings(true));
    let mut fx = Vec::new();
    l.want(streams(&["s0@ticker"]), 0, &mut fx);
    l.opened(1, 0, &mut fx);
    let mut sent_at = Vec::new();
    for t in 0..10_000i64 {
        let mut f = Vec::new();
        let n = (t / 7) % 5;
        let set: BTreeSet<String> = (0..=n).map(|i| format!("s{i}@ticker")).collect();
        l.want(set, t, &mut f);
        if l.next_wake().is_some_and(|w| w <= t) {
            l.tick(t, 0.0, &mut f);
        }
        sent_at.extend(sends(&f).iter().map(|_| t));
    }
    for w in sent_at.windows(2) {
        assert!(w[1] - w[0] >= MIN_REQUEST_SPACING_MS, "{w:?}");
    }
    assert!(sent_at.len() > 10);
}

#[test]
fn an_evicted_link_remembers_its_breaker_and_budget() {
    let mut l = link(settings(false));
    let mut fx = Vec::new();
    l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
    for g in 1..=5 {
        let refused = Failure::Refused {
            status: 429,
            retry_after_ms: None,
        };
        l.failed(g, refused, 1_000 * g as i64, 0.0, &mut fx);
        if g < 5 {
            l.tick(l.next_wake().unwrap(), 0.0, &mut fx);
        }
    }
    assert_eq!(l.breaker().name(), "open");
    assert!(l.take_dirty());
    let json = serde_json::to_string(&l.memory()).unwrap();
    // A new instance, as after an eviction: it must not try again before the breaker allows.
    let mut fresh = link(settings(false));
    fresh.restore(serde_json::from_str(&json).unwrap());
    let mut fx = Vec::new();
    fresh.want(streams(&["btcusdt@ticker"]), 6_000, &mut fx);
    assert!(connects(&fx).is_empty(), "{fx:?}");
    assert_eq!(fresh.state(), "down");
    let until = fresh.breaker().open_until().unwrap();
    assert_eq!(fresh.next_wake(), Some(until));
    fresh.tick(until, 0.0, &mut fx);
    assert_eq!(connects(&fx)[0].0, 6, "generations continue");
    assert_eq!(fresh.breaker().name(), "half_open");
    // The trial connection delivers: the errors end at once, the breaker closes after
    // three spaced successes, and this instance has reconnected nothing yet.
    fresh.opened(6, until + 50, &mut fx);
    fresh.frame(6, until + 100, &mut fx);
    assert_eq!(fresh.breaker().failures(), 0);
    fresh.frame(6, until + 2_100, &mut fx);
    fresh.frame(6, until + 4_100, &mut fx);
    assert_eq!(
        (fresh.state(), fresh.breaker().name()),
        (UpstreamState::Connected, "closed")
    );
    assert_eq!(fresh.reconnects, 0, "a restart is not a reconnect");
    assert!(fresh.take_dirty(), "the closed breaker is to be written");
}

#[test]
fn connect_timeout_counts_as_a_failure() {
    let mut l = link(settings(false));
    let mut fx = Vec::new();
    l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
    assert_eq!(l.next_wake(), Some(CONNECT_TIMEOUT_MS));
    fx.clear();
    l.tick(CONNECT_TIMEOUT_MS, 0.0, &mut fx);
    assert_eq!(closes(&fx), [1]);
    assert_eq!(l.last_failure().unwrap().1, Failure::ConnectTimeout);
    // A late open of the abandoned attempt is closed, not adopted.
    fx.clear();
    l.opened(1, CONNECT_TIMEOUT_MS + 5, &mut fx);
    assert_eq!(closes(&fx), [1]);
    assert!(!l.is_connected());
}

/// A link to Twelve Data: no streams in its URL, a heartbeat every 10 s.
fn twelve_data() -> Link {
    let td = crate::core::feed::twelvedata::TwelveData::new("key", 10_000);
    Link::new(settings(false), Rc::new(td))
}

#[test]
fn a_source_without_streams_in_its_url_subscribes_when_open_and_so_does_its_replacement() {
    let mut l = twelve_data();
    let mut fx = Vec::new();
    l.want(streams(&["AAPL", "EUR/USD"]), 0, &mut fx);
    assert_eq!(connects(&fx), [(1, "ws://a/stream?apikey=key".to_string())]);
    assert!(sends(&fx).is_empty(), "nothing to ask before it is open");
    fx.clear();
    l.opened(1, 10, &mut fx);
    assert_eq!(sends(&fx)[0]["action"], "subscribe");
    assert_eq!(sends(&fx)[0]["params"]["symbols"], "AAPL,EUR/USD");
    l.frame(1, 20, &mut fx);
    // Rotation by age: the replacement asks for the streams once open, and takes over when
    // they deliver; the active one delivers meanwhile.
    l.frame(1, 3_600_050, &mut fx);
    fx.clear();
    l.tick(3_600_100, 0.5, &mut fx);
    let replacement = connects(&fx)[0].0;
    fx.clear();
    l.opened(replacement, 3_600_200, &mut fx);
    assert_eq!(sends(&fx).len(), 1, "{fx:?}");
    assert!(fx.iter().any(
        |e| matches!(e, Effect::SendUpstream { generation, .. } if *generation == replacement)
    ));
    assert_eq!(l.frame(1, 3_600_250, &mut fx), FrameVerdict::Apply);
    assert_eq!(
        l.frame(replacement, 3_600_300, &mut fx),
        FrameVerdict::Switched
    );
    assert_eq!(closes(&fx), [1]);
}

#[test]
fn heartbeats_keep_a_quiet_market_alive_and_their_silence_trips_the_watchdog() {
    let mut l = twelve_data();
    let mut fx = Vec::new();
    l.want(streams(&["AAPL"]), 0, &mut fx);
    l.opened(1, 0, &mut fx);
    l.frame(1, 100, &mut fx);
    // A closed market: no prices, only the heartbeat's answers, for ten minutes.
    let mut now = 100;
    while now < 600_000 {
        now = l.next_wake().expect("a wake-up");
        fx.clear();
        l.tick(now, 0.5, &mut fx);
        let beats = sends(&fx);
        if beats.iter().any(|b| b["action"] == "heartbeat") {
            l.frame(1, now + 50, &mut fx);
        }
        assert!(l.is_connected(), "dropped at {now}: {fx:?}");
    }
    // The answers stop: the watchdog replaces the connection within its limit.
    let silent_from = now;
    while l.is_connected() {
        now = l.next_wake().expect("a wake-up");
        fx.clear();
        l.tick(now, 0.5, &mut fx);
    }
    assert!(
        now - silent_from <= 30_000 + 10_000,
        "{}",
        now - silent_from
    );
}
