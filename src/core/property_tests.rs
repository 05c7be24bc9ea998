//! Property tests of every reader of untrusted input (proptest): client commands, each
//! source's upstream frames, the leader ↔ shard link codec, `Last-Event-ID`, JWTs,
//! Engine.IO and Socket.IO packets, session ids, REST klines and candle bodies. Arbitrary
//! text never panics any of them, and what edgetick writes reads back the same.

use proptest::prelude::*;

use super::auth;
use super::batch::{Batch, Change, WireKind};
use super::cursor::{self, EventsAt};
use super::feed::binance;
use super::feed::twelvedata::frames as twelvedata;
use super::history::klines;
use super::ids::Holder;
use super::market::{candle_body, candle_json, candle_of_body};
use super::protocol::parse_command;
use super::request::Href;
use super::tree::ShardMessage;
use super::wire::socketio::engine::{split_body, EnginePacket};
use super::wire::socketio::packet::Packet;
use super::wire::socketio::sid::Sid;

/// Text that is sometimes arbitrary and often close to what the readers expect: JSON-ish
/// fragments, separators and numbers mixed with anything.
fn texty() -> impl Strategy<Value = String> {
    let pieces = prop::collection::vec(
        prop_oneof![
            any::<String>(),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("[".to_string()),
            Just("\"".to_string()),
            Just(":".to_string()),
            Just(",".to_string()),
            Just("\u{1e}".to_string()),
            Just("_".to_string()),
            Just("42".to_string()),
            Just("-1".to_string()),
            Just("1e308".to_string()),
            Just(r#""action":"subscribe""#.to_string()),
            Just(r#""symbols":["BTCUSDT"]"#.to_string()),
            Just(r#""stream":"btcusdt@ticker","data":"#.to_string()),
            Just(r#""event":"price","symbol":"AAPL","price":"#.to_string()),
            Just(r#"{"t":"batch","seq":1,"prices":[]}"#.to_string()),
            Just("40/prices,".to_string()),
            Just("42[\"subscribe\",".to_string()),
        ],
        0..12,
    );
    pieces.prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn client_commands_never_panic(text in texty()) {
        let _ = parse_command(&text);
    }

    #[test]
    fn upstream_frames_never_panic(text in texty()) {
        let _ = binance::parse_frame(&text);
        let _ = twelvedata::parse(&text);
        let _ = klines::parse(&text);
        let _ = candle_of_body(&text);
    }

    #[test]
    fn link_messages_never_panic(text in texty()) {
        let _ = Batch::decode(&text);
        let _ = ShardMessage::decode(&text);
    }

    #[test]
    fn ids_and_tokens_never_panic(text in texty(), now in any::<i64>()) {
        let channels = vec!["events:signals".to_string()];
        let _ = cursor::parse(&text, &channels);
        let _ = cursor::well_formed(&text);
        let _ = auth::identify(Some("s3cret"), Some(&text), now);
        let _ = Sid::decode(&text);
    }

    #[test]
    fn socketio_packets_never_panic(text in texty()) {
        let _ = EnginePacket::decode(&text);
        let _ = split_body(&text);
        let _ = Packet::decode(&text);
    }

    #[test]
    fn a_batch_reads_back_as_written(
        seq in 1u64..1_000_000,
        prices in prop::collection::vec(("[A-Z]{3,8}USDT", 1u64..1_000_000, 0i64..2_000_000_000_000), 0..6),
    ) {
        let prices: Vec<Change> = prices
            .into_iter()
            .map(|(symbol, s, at)| Change {
                encoded: format!(r#"{{"symbol":"{symbol}","price":"1.5","seq":{s},"received_at":{at}}}"#).into(),
                symbol,
                seq: s,
                received_at: at,
            })
            .collect();
        let batch = Batch { prices, seq, ..Batch::default() };
        let (kind, back) = Batch::decode(&batch.encode(WireKind::Batch)).unwrap();
        prop_assert_eq!(kind, WireKind::Batch);
        prop_assert_eq!(back.seq, batch.seq);
        prop_assert_eq!(back.prices, batch.prices);
    }

    #[test]
    fn a_stream_id_reads_back_as_written(
        seq in any::<u64>(),
        epoch in "[a-z0-9]{1,12}",
        offsets in prop::collection::vec(any::<u64>(), 1..4),
    ) {
        let channels: Vec<String> = (0..offsets.len()).map(|i| format!("events:c{i}")).collect();
        let at = EventsAt {
            epoch,
            offsets: channels.iter().cloned().zip(offsets).collect(),
        };
        let id = cursor::id(seq, Some(&at));
        prop_assert!(cursor::well_formed(&id));
        let (back_seq, back) = cursor::parse(&id, &channels).unwrap();
        prop_assert_eq!(back_seq, seq);
        prop_assert_eq!(back, Some(at));
    }

    #[test]
    fn a_session_id_reads_back_as_written(shard in proptest::option::of(0u32..64), conn in any::<u64>(), nonce in any::<u64>()) {
        let holder = shard.map_or(Holder::Leader, Holder::Shard);
        let sid = Sid { holder, conn, nonce };
        prop_assert_eq!(Sid::decode(&sid.encode()), Some(sid));
    }

    #[test]
    fn a_candle_body_reads_back_as_written(
        t in 0i64..4_000_000_000_000,
        ohlcv in prop::array::uniform5("[0-9]{1,6}\\.[0-9]{1,8}"),
    ) {
        let [o, h, l, c, v] = &ohlcv;
        let candle = candle_json(t, [o, h, l, c, v], true);
        let body = candle_body("candles:BTCUSDT:1m", &candle);
        prop_assert_eq!(candle_of_body(&body), Some(("candles:BTCUSDT:1m", t, candle.as_str())));
    }

    #[test]
    fn a_signed_token_reads_back_and_a_changed_one_does_not(sub in "[a-z0-9]{1,16}", flip in 0usize..200) {
        let claims = format!(r#"{{"sub":"{sub}","exp":4000000000}}"#);
        let token = auth::sign_hs256("s3cret", &claims);
        let who = auth::identify(Some("s3cret"), Some(&token), 0).unwrap().unwrap();
        prop_assert_eq!(who.sub.as_str(), sub.as_str());
        // A changed character (not one that ends a segment: its spare bits may not count)
        // makes the token refused.
        let mut bytes = token.into_bytes();
        let ends = |i: usize, b: &[u8]| i + 1 == b.len() || b.get(i + 1) == Some(&b'.');
        let i = (0..bytes.len()).cycle().skip(flip).find(|i| bytes[*i] != b'.' && !ends(*i, &bytes)).unwrap_or(0);
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(auth::identify(Some("s3cret"), Some(&changed), 0).is_err(), "{}", changed);
    }

    #[test]
    fn a_request_url_splits_as_the_url_crate_parses_it(
        host in "[a-z0-9][a-z0-9.-]{0,15}",
        port in proptest::option::of(any::<u16>()),
        path in "(/[a-zA-Z0-9%._~!$&'()*+,;=:@ -]{0,10}){0,4}",
        query in proptest::option::of("[ -~]{0,40}"),
        fragment in proptest::option::of("[a-z?#]{0,5}"),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
        let raw = format!("https://{host}{port}{path}{query}{fragment}");
        if let Ok(u) = url::Url::parse(&raw) {
            // What the runtime hands over is the serialised form.
            let href = Href::split(u.as_str());
            prop_assert_eq!(href.origin, u.origin().ascii_serialization());
            prop_assert_eq!(href.path, u.path());
            prop_assert_eq!(href.query, u.query().unwrap_or(""));
            let pairs: Vec<(String, String)> =
                u.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            prop_assert_eq!(href.query_pairs(), pairs);
        }
    }
}
