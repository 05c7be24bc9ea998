//! The client WebSocket protocol of docs/protocol.md: commands in, frames out.
//!
//! Control frames are small and built with serde. Price frames are assembled from
//! per-price JSON that was encoded once when the price changed, so sending the same update
//! to many clients costs no JSON work per client.

use serde_json::{Map, Value};

use super::error::{ClientError, ErrorCode};
use super::events::Since;
use super::text::truncate;

/// Close codes of docs/protocol.md. 4000–4499 mean "reconnect with backoff", 4500–4999 "do not".
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// A packet that does not follow the protocol (Socket.IO).
    pub const PROTOCOL: u16 = 1002;
    /// A frame larger than `MAX_FRAME_BYTES`.
    pub const TOO_LARGE: u16 = 1009;
    /// Internal error.
    pub const INTERNAL: u16 = 1011;
    /// The object carrying the connection is restarting: reconnect.
    pub const RESTART: u16 = 1012;
    /// Rate limited for too long.
    pub const RATE_LIMITED: u16 = 4008;
    /// Could not keep up.
    pub const SLOW_CONSUMER: u16 = 4009;
    /// The service is at `MAX_CONNECTIONS`.
    pub const AT_CAPACITY: u16 = 4290;
    /// The connection's token expired: reconnect with a fresh one.
    pub const TOKEN_EXPIRED: u16 = 4401;

    /// The code to answer a client's close with: its own, except the reserved codes that
    /// may not be sent (1005 no status, 1006 abnormal, 1015 TLS), answered with 1000.
    pub fn reciprocal(code: usize) -> u16 {
        match code {
            1005 | 1006 | 1015 => NORMAL,
            c => u16::try_from(c).unwrap_or(NORMAL),
        }
    }
}

/// A parsed client command. `id` is any JSON number or string the client chose.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Add symbols (raw spellings; the hub resolves them against the whitelist) and
    /// channels, recovering event channels from where the client stopped.
    Subscribe {
        /// As the client wrote them.
        symbols: Vec<String>,
        /// Channel names as written.
        channels: Vec<String>,
        /// Per event channel, where the client stopped (`since`).
        since: Vec<(String, Since)>,
        /// Echoed back.
        id: Option<Value>,
    },
    /// Remove symbols and channels.
    Unsubscribe {
        /// As the client wrote them.
        symbols: Vec<String>,
        /// Channel names as written.
        channels: Vec<String>,
        /// Echoed back.
        id: Option<Value>,
    },
    /// List this connection's subscriptions.
    List {
        /// Echoed back.
        id: Option<Value>,
    },
    /// Flow control: the client has applied every frame up to this `seq`. Not answered.
    Ack {
        /// The highest `seq` applied.
        seq: u64,
    },
    /// Application-level ping, answered with the server's clock.
    Ping {
        /// Echoed back.
        id: Option<Value>,
    },
}

impl Command {
    /// The `id` to echo in an answer.
    pub fn id(&self) -> Option<Value> {
        match self {
            Command::Subscribe { id, .. }
            | Command::Unsubscribe { id, .. }
            | Command::List { id }
            | Command::Ping { id } => id.clone(),
            Command::Ack { .. } => None,
        }
    }
}

/// Parses one client text frame. Errors carry the frame's `id` when it had a usable one.
pub fn parse_command(text: &str) -> Result<Command, ClientError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|_| ClientError::new(ErrorCode::BadJson, "frame is not valid JSON"))?;
    let Value::Object(obj) = value else {
        return Err(ClientError::new(
            ErrorCode::BadRequest,
            "frame must be a JSON object such as {\"action\":\"subscribe\",\"symbols\":[\"BTCUSDT\"]}",
        ));
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(v @ (Value::Number(_) | Value::String(_))) => Some(v.clone()),
        Some(_) => {
            return Err(ClientError::new(
                ErrorCode::BadRequest,
                "`id` must be a number or a string",
            ))
        }
    };
    let action = match obj.get("action") {
        Some(Value::String(a)) => a.as_str(),
        Some(_) => {
            return Err(
                ClientError::new(ErrorCode::BadRequest, "`action` must be a string").with_id(id),
            )
        }
        None => return Err(ClientError::new(ErrorCode::BadRequest, "missing `action`").with_id(id)),
    };
    match action {
        "subscribe" | "unsubscribe" => targets_command(action, &obj, id),
        "list" => Ok(Command::List { id }),
        "ping" => Ok(Command::Ping { id }),
        "ack" => match obj.get("seq").and_then(Value::as_u64) {
            Some(seq) => Ok(Command::Ack { seq }),
            None => Err(ClientError::new(
                ErrorCode::BadRequest,
                "`ack` needs `seq`, the highest seq applied",
            )
            .with_id(id)),
        },
        other => Err(ClientError::new(
            ErrorCode::UnknownAction,
            format!(
                "unknown action {:?}; use subscribe, unsubscribe, list, ping or ack",
                truncate(other, 32)
            ),
        )
        .with_id(id)),
    }
}

/// A `subscribe` or `unsubscribe` command.
fn targets_command(
    action: &str,
    obj: &Map<String, Value>,
    id: Option<Value>,
) -> Result<Command, ClientError> {
    let (symbols, channels) = targets(obj).map_err(|e| e.with_id(id.clone()))?;
    if action == "unsubscribe" {
        return Ok(Command::Unsubscribe {
            symbols,
            channels,
            id,
        });
    }
    let since = since(obj).map_err(|e| e.with_id(id.clone()))?;
    Ok(Command::Subscribe {
        symbols,
        channels,
        since,
        id,
    })
}

/// `symbols` and `channels`: either may be absent, not both.
fn targets(obj: &Map<String, Value>) -> Result<(Vec<String>, Vec<String>), ClientError> {
    let symbols = strings(obj, "symbols")?;
    let channels = strings(obj, "channels")?;
    if symbols.is_empty() && channels.is_empty() {
        return Err(ClientError::new(
            ErrorCode::BadRequest,
            "name something: `symbols` and/or `channels`, non-empty arrays of strings",
        ));
    }
    Ok((symbols, channels))
}

/// A list of strings under `key`; absent is empty.
fn strings(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, ClientError> {
    let bad = || {
        ClientError::new(
            ErrorCode::BadRequest,
            format!("`{key}` must be a non-empty array of strings"),
        )
    };
    let Some(v) = obj.get(key) else {
        return Ok(Vec::new());
    };
    let list = v.as_array().filter(|l| !l.is_empty()).ok_or_else(bad)?;
    list.iter()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
        .collect()
}

/// `since`: `{"events:signals":{"offset":41,"epoch":"..."}, ...}`.
fn since(obj: &Map<String, Value>) -> Result<Vec<(String, Since)>, ClientError> {
    let bad = || {
        ClientError::new(
            ErrorCode::BadRequest,
            "`since` must map channels to {\"offset\":N,\"epoch\":\"...\"}",
        )
    };
    let Some(v) = obj.get("since") else {
        return Ok(Vec::new());
    };
    let map = v.as_object().ok_or_else(bad)?;
    map.iter()
        .map(|(channel, pos)| {
            let offset = pos.get("offset").and_then(Value::as_u64).ok_or_else(bad)?;
            let epoch = pos.get("epoch").and_then(Value::as_str).ok_or_else(bad)?;
            let epoch = truncate(epoch, 64);
            Ok((channel.clone(), Since { offset, epoch }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(text: &str) -> ClientError {
        parse_command(text).unwrap_err()
    }

    #[test]
    fn every_action_parses() {
        assert_eq!(
            parse_command(r#"{"action":"subscribe","symbols":["BTCUSDT","eth-usdt"],"id":1}"#)
                .unwrap(),
            Command::Subscribe {
                symbols: vec!["BTCUSDT".into(), "eth-usdt".into()],
                channels: vec![],
                since: vec![],
                id: Some(json!(1))
            }
        );
        assert_eq!(
            parse_command(r#"{"action":"unsubscribe","symbols":["BTCUSDT"],"id":"a"}"#).unwrap(),
            Command::Unsubscribe {
                symbols: vec!["BTCUSDT".into()],
                channels: vec![],
                id: Some(json!("a"))
            }
        );
        assert_eq!(
            parse_command(r#"{"action":"list","id":3}"#).unwrap(),
            Command::List { id: Some(json!(3)) }
        );
        assert_eq!(
            parse_command(r#"{"action":"ping"}"#).unwrap(),
            Command::Ping { id: None }
        );
        assert_eq!(
            parse_command(r#"{"action":"ack","seq":42}"#).unwrap(),
            Command::Ack { seq: 42 }
        );
        assert_eq!(err(r#"{"action":"ack"}"#).code, ErrorCode::BadRequest);
    }

    #[test]
    fn channels_and_since_parse_beside_symbols() {
        let cmd = parse_command(
            r#"{"action":"subscribe","channels":["events:a"],"since":{"events:a":{"offset":4,"epoch":"e1"}}}"#,
        )
        .unwrap();
        let Command::Subscribe {
            symbols,
            channels,
            since,
            ..
        } = cmd
        else {
            panic!("subscribe")
        };
        assert!(symbols.is_empty());
        assert_eq!(channels, ["events:a"]);
        let at = Since {
            offset: 4,
            epoch: "e1".into(),
        };
        assert_eq!(since, [("events:a".to_string(), at)]);
        let bad = |t: &str| err(t).code;
        assert_eq!(bad(r#"{"action":"subscribe"}"#), ErrorCode::BadRequest);
        assert_eq!(
            bad(r#"{"action":"subscribe","channels":[]}"#),
            ErrorCode::BadRequest
        );
        let no_epoch =
            r#"{"action":"subscribe","channels":["events:a"],"since":{"events:a":{"offset":1}}}"#;
        assert_eq!(bad(no_epoch), ErrorCode::BadRequest);
    }

    #[test]
    fn bad_frames_get_their_codes_and_keep_the_id() {
        assert_eq!(err("{nope").code, ErrorCode::BadJson);
        assert_eq!(err("ping").code, ErrorCode::BadJson);
        assert_eq!(err("[1]").code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"symbols":[]}"#).code, ErrorCode::BadRequest);
        let e = err(r#"{"action":"dance","id":9}"#);
        assert_eq!((e.code, e.id), (ErrorCode::UnknownAction, Some(json!(9))));
        let e = err(r#"{"action":"subscribe","symbols":"BTCUSDT","id":2}"#);
        assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(json!(2))));
        assert_eq!(
            err(r#"{"action":"subscribe","symbols":[]}"#).code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            err(r#"{"action":"subscribe","symbols":[1]}"#).code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            err(r#"{"action":"list","id":{"x":1}}"#).code,
            ErrorCode::BadRequest
        );
        assert_eq!(err(r#"{"action":7}"#).code, ErrorCode::BadRequest);
    }

    #[test]
    fn unknown_action_message_is_bounded() {
        let long = "x".repeat(5000);
        let e = err(&format!(r#"{{"action":"{long}"}}"#));
        assert!(e.message.len() < 120, "{}", e.message.len());
    }

    #[test]
    fn a_close_is_answered_with_its_own_code_unless_reserved() {
        assert_eq!(close::reciprocal(4000), 4000);
        assert_eq!(close::reciprocal(1001), 1001);
        for reserved in [1005, 1006, 1015, 70_000] {
            assert_eq!(close::reciprocal(reserved), close::NORMAL);
        }
    }
}
