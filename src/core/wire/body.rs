//! The bodies of the service's own messages to clients (answers, warnings, errors, the
//! upstream state, prices assembled from their encodings): built once, framed by each wire.

use serde::Serialize;
use serde_json::Value;

use crate::core::error::ClientError;

#[derive(Serialize)]
struct SymbolsBody<'a> {
    symbols: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    channels: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: &'a Option<Value>,
}

/// What a `subscribed`, `unsubscribed` or `subscriptions` frame names.
#[derive(Debug, Default)]
pub struct Targets<'a> {
    /// Canonical symbols.
    pub symbols: &'a [String],
    /// Channels; the field is left out when `None` (a symbols-only exchange keeps its shape).
    pub channels: Option<&'a [String]>,
    /// Whether every channel asked to recover did (`subscribe` with `since` only).
    pub recovered: Option<bool>,
}

/// The body of a `subscribed` / `unsubscribed` / `subscriptions` answer with channels.
pub fn targets(t: &Targets<'_>, id: &Option<Value>) -> String {
    to_json(&SymbolsBody {
        symbols: t.symbols,
        channels: t.channels,
        recovered: t.recovered,
        id,
    })
}

/// The body of a `subscribed` / `unsubscribed` / `subscriptions` answer of symbols only.
pub fn symbols(symbols: &[String], id: &Option<Value>) -> String {
    to_json(&SymbolsBody {
        symbols,
        channels: None,
        recovered: None,
        id,
    })
}

#[derive(Serialize)]
struct PongBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: &'a Option<Value>,
    ts: i64,
}

/// A `pong` answer's body, carrying the server clock so clients can estimate skew and lag.
pub fn pong(id: &Option<Value>, now_ms: i64) -> String {
    to_json(&PongBody { id, ts: now_ms })
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: &'a Option<Value>,
}

/// The body of an `error` answer to a rejected command.
pub fn error(err: &ClientError) -> String {
    to_json(&ErrorBody {
        code: err.code.as_str(),
        message: &err.message,
        id: &err.id,
    })
}

/// A `warning`'s body (e.g. `SLOW_CONSUMER`).
pub fn warning(code: &str, message: &str) -> String {
    serde_json::json!({"code": code, "message": message}).to_string()
}

/// The body of a `status` announcing the upstream state.
pub fn status(upstream: &str, now_ms: i64) -> String {
    format!(r#"{{"upstream":"{upstream}","ts":{now_ms}}}"#)
}

/// Assembles `{"prices":[p1,p2,...]}` (a `prices` or `snapshot` body) from prices encoded
/// once when they changed, so sending an update to many clients costs no JSON work per client.
pub fn prices<S: AsRef<str>>(encoded: &[S]) -> String {
    let body: usize = encoded.iter().map(|e| e.as_ref().len() + 1).sum();
    let mut out = String::with_capacity(body + 16);
    out.push_str(r#"{"prices":["#);
    for (i, e) in encoded.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e.as_ref());
    }
    out.push_str("]}");
    out
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Invariant: these frame structs hold only strings, numbers and serde_json values,
    // which always serialise; an error here would be a bug in serde_json itself.
    serde_json::to_string(value).unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ErrorCode;
    use crate::core::wire::{Kind, Payload, Wire};
    use serde_json::json;

    fn framed(kind: Kind, body: &str) -> Value {
        serde_json::from_str(&crate::core::wire::json::frame(Payload::new(kind, body))).unwrap()
    }

    #[test]
    fn answers_are_json_with_the_id_echoed() {
        let f: Value = framed(
            Kind::Subscribed,
            &symbols(&["BTCUSDT".into()], &Some(json!(1))),
        );
        assert_eq!(f, json!({"type":"subscribed","symbols":["BTCUSDT"],"id":1}));
        let f: Value = framed(Kind::Subscriptions, &symbols(&[], &None));
        assert_eq!(f, json!({"type":"subscriptions","symbols":[]}));
        let f: Value = framed(Kind::Pong, &pong(&Some(json!(4)), 99));
        assert_eq!(f, json!({"type":"pong","id":4,"ts":99}));
        let e = ClientError::new(ErrorCode::UnknownSymbol, "unknown symbol \"X\"")
            .with_id(Some(json!(5)));
        let f: Value = framed(Kind::Error, &error(&e));
        assert_eq!(
            f,
            json!({"type":"error","code":"UNKNOWN_SYMBOL","message":"unknown symbol \"X\"","id":5})
        );
        let f: Value = framed(Kind::Status, &status("reconnecting", 5));
        assert_eq!(f, json!({"type":"status","upstream":"reconnecting","ts":5}));
        let t = Targets {
            symbols: &[],
            channels: Some(&["events:a".to_string()]),
            recovered: Some(true),
        };
        assert_eq!(
            Wire::Json.frames(
                Payload::new(Kind::Subscribed, &targets(&t, &Some(json!(2)))),
                None
            )[0],
            r#"{"type":"subscribed","symbols":[],"channels":["events:a"],"recovered":true,"id":2}"#
        );
    }

    #[test]
    fn sse_events_are_framed() {
        assert_eq!(
            crate::core::wire::sse::event("prices", Some("7"), "{}"),
            "event: prices\nid: 7\ndata: {}\n\n"
        );
        assert_eq!(
            crate::core::wire::sse::event("status", None, "{\"a\":1}"),
            "event: status\ndata: {\"a\":1}\n\n"
        );
    }

    #[test]
    fn price_frames_are_assembled_from_encoded_parts() {
        let parts = [r#"{"symbol":"A","seq":1}"#, r#"{"symbol":"B","seq":2}"#];
        let f: Value = framed(Kind::Prices, &super::prices(&parts));
        assert_eq!(
            f,
            json!({"type":"prices","prices":[{"symbol":"A","seq":1},{"symbol":"B","seq":2}]})
        );
        let empty: [&str; 0] = [];
        let f: Value = framed(Kind::Snapshot, &super::prices(&empty));
        assert_eq!(f, json!({"type":"snapshot","prices":[]}));
    }
}
