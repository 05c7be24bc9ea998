//! History: offsets, the cap, recovery and epochs.

use serde_json::value::RawValue;

use super::*;

fn data(v: &str) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).unwrap()
}

fn since(offset: u64, epoch: &str) -> Since {
    Since {
        offset,
        epoch: epoch.into(),
    }
}

fn replayed(r: Recovery) -> Vec<u64> {
    match r {
        Recovery::Replay(events) => events
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_str(&e.encoded).unwrap();
                assert_eq!(v["offset"].as_u64(), Some(e.offset));
                e.offset
            })
            .collect(),
        Recovery::Lost => panic!("lost"),
    }
}

#[test]
fn offsets_grow_per_channel_and_frames_are_encoded_once() {
    let mut h = History::new("e1".into(), 3);
    let a = h.append("events:a", "x", &data(r#"{"p":"1.10"}"#), 7);
    let b = h.append("events:b", "y", &data("null"), 8);
    let a2 = h.append("events:a", "x", &data("2"), 9);
    assert_eq!((a.offset, b.offset, a2.offset), (1, 1, 2));
    let v: serde_json::Value = serde_json::from_str(&a.encoded).unwrap();
    assert!(
        v.get("type").is_none(),
        "a body: each wire adds its own framing"
    );
    assert_eq!(v["channel"], "events:a");
    assert_eq!(v["epoch"], "e1");
    assert_eq!(v["event"], "x");
    assert_eq!(v["ts"], 7);
    assert!(
        a.encoded.contains(r#""data":{"p":"1.10"}"#),
        "decimals stay"
    );
    assert_eq!(h.top("events:a"), 2);
    assert_eq!(h.events().count(), 3);
}

#[test]
fn a_client_gets_exactly_what_it_missed_or_learns_it_is_lost() {
    let mut h = History::new("e1".into(), 3);
    for i in 0..5 {
        h.append("events:a", "x", &data(&i.to_string()), i);
    }
    assert_eq!(replayed(h.recover("events:a", &since(3, "e1"))), [4, 5]);
    assert_eq!(replayed(h.recover("events:a", &since(2, "e1"))), [3, 4, 5]);
    assert_eq!(
        replayed(h.recover("events:a", &since(5, "e1"))),
        Vec::<u64>::new()
    );
    assert_eq!(
        h.recover("events:a", &since(1, "e1")),
        Recovery::Lost,
        "event 2 is no longer kept"
    );
    assert_eq!(h.recover("events:a", &since(4, "e0")), Recovery::Lost);
    assert_eq!(
        replayed(h.recover("events:z", &since(0, "e1"))),
        Vec::<u64>::new()
    );
    // A position in a public channel this copy has nothing of yet: a copy behind the
    // object the client came from (its events are on their way), nothing lost.
    assert_eq!(
        replayed(h.recover("events:z", &since(3, "e1"))),
        Vec::<u64>::new()
    );
}

#[test]
fn a_copy_keeps_only_what_is_new_and_a_reset_changes_the_epoch() {
    let mut leader = History::new("e1".into(), 10);
    let mut copy = History::new("e1".into(), 10);
    let e1 = leader.append("events:a", "x", &data("1"), 0);
    let e2 = leader.append("events:a", "x", &data("2"), 0);
    assert!(copy.record(e1.clone()) && copy.record(e2.clone()));
    assert!(!copy.record(e1), "a repeat is not new");
    assert_eq!(copy.events().count(), 2);
    copy.reset("e2".into());
    assert_eq!((copy.epoch(), copy.top("events:a")), ("e2", 0));
    let a = History::new_epoch(1_700_000_000_000, 0.5);
    let b = History::new_epoch(1_700_000_000_000, 0.25);
    assert_ne!(a, b);
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn events_stored_as_frames_by_an_earlier_version_read_back_as_bodies() {
    let old = r#"{"type":"event","channel":"events:a","offset":3,"epoch":"e1","event":"x","data":1,"ts":2}"#;
    let e = Event::stored("events:a".into(), 3, old);
    assert_eq!(
        &*e.encoded,
        r#"{"channel":"events:a","offset":3,"epoch":"e1","event":"x","data":1,"ts":2}"#
    );
    let body = r#"{"channel":"events:a","offset":4}"#;
    assert_eq!(&*Event::stored("events:a".into(), 4, body).encoded, body);
}

const ALICE: &str = "user:alice:portfolio";
const BOB: &str = "user:bob:portfolio";
const CAROL: &str = "user:carol:portfolio";

#[test]
fn private_channels_together_keep_at_most_the_bound_the_oldest_evicted_first() {
    let mut h = History::new("e1".into(), 10).bound_private(3, usize::MAX);
    h.append(ALICE, "x", &data("1"), 0);
    h.append(BOB, "x", &data("1"), 0);
    h.append(ALICE, "x", &data("2"), 0);
    h.append("events:signals", "x", &data("1"), 0);
    assert!(
        h.take_evicted().is_empty(),
        "three private, one public: within"
    );
    h.append(CAROL, "x", &data("1"), 0);
    assert_eq!(
        h.take_evicted(),
        [(ALICE.to_string(), 1)],
        "alice's first, the oldest"
    );
    assert_eq!(h.private_kept().0, 3);
    assert_eq!(h.recover(ALICE, &since(0, "e1")), Recovery::Lost);
    assert_eq!(replayed(h.recover(ALICE, &since(1, "e1"))), [2]);
    // Bob's only event goes next: his channel is forgotten, and its offsets go on above it.
    h.append(CAROL, "x", &data("2"), 0);
    assert_eq!(h.take_evicted(), [(BOB.to_string(), 1)]);
    assert_eq!(h.private_floor(), 1);
    assert_eq!(h.recover(BOB, &since(0, "e1")), Recovery::Lost);
    assert_eq!(
        h.recover(BOB, &since(1, "e1")),
        Recovery::Lost,
        "a forgotten channel"
    );
    assert_eq!(
        h.recover("user:dan:portfolio", &since(0, "e1")),
        Recovery::Lost
    );
    let again = h.append(BOB, "x", &data("2"), 0);
    assert_eq!(again.offset, 2, "never an offset twice");
    assert_eq!(
        h.top("events:signals"),
        1,
        "public channels are not bounded by it"
    );
}

#[test]
fn the_bytes_bound_evicts_too_and_never_the_event_that_just_came() {
    let big = format!("\"{}\"", "x".repeat(500));
    let mut h = History::new("e1".into(), 10).bound_private(100, 1_000);
    h.append(ALICE, "x", &data(&big), 0);
    h.append(BOB, "x", &data(&big), 0);
    assert_eq!(h.take_evicted(), [(ALICE.to_string(), 1)]);
    assert!(h.private_kept().1 <= 1_000);
    let huge = format!("\"{}\"", "x".repeat(5_000));
    h.append(CAROL, "x", &data(&huge), 0);
    assert_eq!(h.take_evicted(), [(BOB.to_string(), 1)]);
    assert_eq!(h.private_kept().0, 1, "the newest stays, whatever its size");
    assert_eq!(h.private_floor(), 1);
}

#[test]
fn the_counts_match_what_is_kept_through_caps_evictions_and_copies() {
    let mut h = History::new("e1".into(), 4).bound_private(25, 20_000);
    let mut copy = History::new("e1".into(), 4).bound_private(25, 20_000);
    // A copy that links half way: the catch-up (every kept event, in arrival order), then
    // the rest live.
    let mut late: Option<History> = None;
    let mut x: u64 = 7;
    for i in 0..2_000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let user = format!("user:u{}:portfolio", (x >> 33) % 40);
        let body = format!("\"{}\"", "y".repeat(((x >> 20) % 300) as usize));
        let e = h.append(&user, "x", &data(&body), i);
        for (channel, through) in h.take_evicted() {
            let missed = since(through - 1, "e1");
            assert_eq!(
                h.recover(&channel, &missed),
                Recovery::Lost,
                "{channel} {through}"
            );
        }
        copy.record(e.clone());
        let kept = |hist: &History| -> Vec<(String, u64)> {
            hist.events()
                .map(|e| (e.channel.clone(), e.offset))
                .collect()
        };
        assert_eq!(
            kept(&h),
            kept(&copy),
            "a copy fed the same events keeps the same"
        );
        match late.as_mut() {
            Some(l) => {
                l.record(e.clone());
                assert_eq!(kept(&h), kept(l), "a copy that caught up keeps the same");
            }
            None if i == 1_000 => {
                let mut l = History::new("e1".into(), 4).bound_private(25, 20_000);
                h.events().cloned().for_each(|e| {
                    l.record(e);
                });
                late = Some(l);
            }
            None => {}
        }
        for hist in [&h, &copy] {
            let private: Vec<&Event> = hist
                .events()
                .filter(|e| e.channel.starts_with(USER))
                .collect();
            let bytes = private.iter().map(|e| e.encoded.len()).sum::<usize>();
            let (events, kept_bytes, order) = hist.private_kept();
            assert_eq!((events, kept_bytes), (private.len(), bytes));
            assert!(private.len() <= 25 && bytes <= 20_000);
            assert!(
                order <= 2 * events + 65,
                "the eviction order stays bounded: {order}"
            );
        }
    }
}
