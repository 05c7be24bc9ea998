//! The feed driven directly through a source-neutral test source: what it asks the upstream
//! for, what reaches the fan-out, what a late or unwanted update does.

use std::rc::Rc;

use super::neutral::{self, Neutral};
use super::*;

fn feed(pairs: &[(&str, &str)]) -> Feed {
    let cfg = Config::from_lookup(|k| {
        let base = [
            ("SYMBOLS", "BTCUSDT,ETHUSDT"),
            ("UPSTREAM_URL", "ws://127.0.0.1:1/stream"),
        ];
        let mut all = pairs.iter().chain(base.iter());
        all.find(|(name, _)| *name == k).map(|(_, v)| v.to_string())
    })
    .unwrap();
    Feed::new(Rc::new(cfg), vec![Rc::new(Neutral)])
}

/// A feed of the always-on mode, connected on generation 1.
fn connected() -> Feed {
    let mut f = feed(&[]);
    let mut fx = Vec::new();
    f.start(0, &mut fx);
    f.upstream_opened(SourceId::Neutral, 1, 0, &mut fx);
    f
}

fn text(f: &mut Feed, frame: &str, now_ms: i64) -> Batch {
    let mut out = Batch::default();
    f.upstream_text(
        (SourceId::Neutral, 1),
        frame,
        now_ms,
        &mut Vec::new(),
        &mut out,
    );
    out
}

#[test]
fn every_served_symbols_streams_are_asked_for_in_the_sources_spelling() {
    let mut f = feed(&[]);
    let mut fx = Vec::new();
    f.start(0, &mut fx);
    let urls: Vec<&String> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::ConnectUpstream { source, url, .. } => {
                assert_eq!(*source, SourceId::Neutral);
                Some(url)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        urls,
        ["ws://127.0.0.1:1/stream?streams=BTCUSDT/BTCUSDT.book/ETHUSDT/ETHUSDT.book"]
    );
}

#[test]
fn a_price_reaches_the_fan_out_once_and_a_late_one_in_its_lane_never() {
    let mut f = connected();
    let out = text(&mut f, &neutral::ticker("BTCUSDT", "1.50", 10), 100);
    assert_eq!(out.prices.len(), 1);
    assert!(out.prices[0].encoded.contains(r#""price":"1.50""#));
    let late = text(&mut f, &neutral::ticker("BTCUSDT", "1.40", 9), 101);
    assert!(late.prices.is_empty(), "older than the last in its lane");
    let book = text(&mut f, &neutral::book("BTCUSDT", "1.49", "1.51", 1), 102);
    assert_eq!(book.prices.len(), 1, "another lane is ordered on its own");
    let again = text(&mut f, &neutral::book("BTCUSDT", "1.48", "1.52", 1), 103);
    assert!(again.prices.is_empty(), "a sequence number must grow");
    let other = text(&mut f, &neutral::ticker("DOGEUSDT", "1", 11), 104);
    assert!(other.prices.is_empty(), "a symbol not served");
    assert_eq!(f.stats().upstream_errors, 1);
}

#[test]
fn market_updates_reach_the_fan_out_only_while_someone_listens() {
    let mut f = connected();
    let trade = neutral::market("trades:BTCUSDT", "t", r#"{"id":1}"#);
    assert!(text(&mut f, &trade, 10).market.is_empty(), "nobody listens");
    let mut fx = Vec::new();
    f.want(["trades:BTCUSDT".to_string()].into(), 20, &mut fx);
    let got = text(&mut f, &trade, 30).market;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (&*got[0].channel, &*got[0].encoded),
        ("trades:BTCUSDT", r#"{"id":1}"#)
    );
}

#[test]
fn a_closing_connection_is_replaced_before_it_goes() {
    let mut f = connected();
    text(&mut f, &neutral::ticker("BTCUSDT", "1.50", 10), 100);
    let mut fx = Vec::new();
    f.upstream_text(
        (SourceId::Neutral, 1),
        neutral::CLOSING,
        200,
        &mut fx,
        &mut Batch::default(),
    );
    assert!(fx
        .iter()
        .any(|e| matches!(e, Effect::ConnectUpstream { generation: 2, .. })));
    assert_eq!(
        f.state(),
        UpstreamState::Connected,
        "still delivering meanwhile"
    );
}
