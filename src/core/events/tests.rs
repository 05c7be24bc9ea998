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
    assert_eq!(h.recover("events:z", &since(3, "e1")), Recovery::Lost);
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
