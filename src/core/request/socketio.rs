//! `/socket.io/`: Engine.IO's requests, routed or refused with the protocol's own 400s
//! (`{"code":N,"message":…}`, in the order its reference server checks them). A request
//! without a session id opens one on whichever object takes new clients; a request with
//! one goes to the object its id names, which alone knows the session.

use super::query::{find, Incoming};
use super::{ObjectRequest, Route};
use crate::core::config::Config;
use crate::core::error::ApiError;
use crate::core::ids::Holder;
use crate::core::wire::socketio::sid::Sid;
use crate::core::wire::socketio::Nsp;
use crate::core::wire::Wire;

fn refuse(code: u8, message: &'static str) -> Result<Route, ApiError> {
    Err(ApiError::EngineIo { code, message })
}

/// Routes a request of `/socket.io/`.
pub(super) fn route(cfg: &Config, req: &Incoming<'_>) -> Result<Route, ApiError> {
    if find(req, &["EIO"]).as_deref() != Some("4") {
        return refuse(5, "Unsupported protocol version");
    }
    let websocket = match find(req, &["transport"]).as_deref() {
        Some("websocket") => true,
        Some("polling") => false,
        _ => return refuse(0, "Transport unknown"),
    };
    let upgrade = req
        .upgrade
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let Some(sid) = find(req, &["sid"]) else {
        if req.method != "GET" {
            return refuse(2, "Bad handshake method");
        }
        return match (websocket, upgrade) {
            (true, false) => refuse(3, "Bad request"),
            (true, true) => Ok(Route::Leader(ObjectRequest::WebSocket {
                wire: Wire::SocketIo(Nsp::Pending),
            })),
            (false, _) => Ok(Route::Leader(ObjectRequest::Polling { sid: None })),
        };
    };
    let holder = match Sid::decode(&sid).map(|s| s.holder) {
        Some(Holder::Shard(n)) if n < cfg.fanout_shards => Holder::Shard(n),
        Some(Holder::Leader) if cfg.fanout_shards == 0 => Holder::Leader,
        _ => return refuse(1, "Session ID unknown"),
    };
    let fits = match websocket {
        true => upgrade && req.method == "GET",
        false => matches!(req.method, "GET" | "POST"),
    };
    if !fits {
        return refuse(3, "Bad request");
    }
    Ok(Route::Held(holder))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::request::classify;
    use crate::core::rest::CorsDecision;
    use std::collections::HashMap;

    fn cfg(shards: &str) -> Config {
        let map: HashMap<&str, &str> = [("SYMBOLS", "BTCUSDT"), ("FANOUT_SHARDS", shards)]
            .into_iter()
            .collect();
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap()
    }

    fn ask(
        c: &Config,
        method: &'static str,
        pairs: &[(&str, &str)],
        upgrade: Option<&'static str>,
    ) -> Result<Route, String> {
        let query: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let req = Incoming {
            method,
            path: "/socket.io/",
            query: &query,
            upgrade,
            ..Incoming::default()
        };
        classify(c, &CorsDecision::NoOrigin, &req).map_err(|(e, _)| e.body())
    }

    fn body(code: u8, message: &str) -> Result<Route, String> {
        Err(serde_json::json!({"code": code, "message": message}).to_string())
    }

    #[test]
    fn a_session_starts_anywhere_and_every_later_request_reaches_its_holder() {
        let c = cfg("4");
        let polling = [("EIO", "4"), ("transport", "polling")];
        assert_eq!(
            ask(&c, "GET", &polling, None),
            Ok(Route::Leader(ObjectRequest::Polling { sid: None }))
        );
        let sid = Sid {
            holder: Holder::Shard(3),
            conn: 7,
            nonce: 9,
        }
        .encode();
        let with = |t: &'static str| [("EIO", "4"), ("transport", t), ("sid", sid.as_str())];
        for method in ["GET", "POST"] {
            let r = ask(&c, method, &with("polling"), None);
            assert_eq!(r, Ok(Route::Held(Holder::Shard(3))), "{method}");
        }
        let up = ask(&c, "GET", &with("websocket"), Some("websocket"));
        assert_eq!(up, Ok(Route::Held(Holder::Shard(3))));
    }

    #[test]
    fn bad_requests_get_engine_io_codes() {
        let c = cfg("2");
        let (v4, poll) = (("EIO", "4"), ("transport", "polling"));
        let far = Sid {
            holder: Holder::Shard(2),
            conn: 1,
            nonce: 1,
        }
        .encode();
        let leader = Sid {
            holder: Holder::Leader,
            conn: 1,
            nonce: 1,
        }
        .encode();
        let unknown = body(1, "Session ID unknown");
        assert_eq!(
            ask(&c, "POST", &[v4, poll], None),
            body(2, "Bad handshake method")
        );
        assert_eq!(
            ask(&c, "PUT", &[v4, poll], None),
            body(2, "Bad handshake method")
        );
        assert_eq!(ask(&c, "GET", &[v4, poll, ("sid", "x")], None), unknown);
        assert_eq!(ask(&c, "GET", &[v4, poll, ("sid", &far)], None), unknown);
        assert_eq!(ask(&c, "GET", &[v4, poll, ("sid", &leader)], None), unknown);
        let ws_sid = [v4, ("transport", "websocket"), ("sid", &far[..])];
        let near = Sid {
            holder: Holder::Shard(1),
            conn: 1,
            nonce: 1,
        }
        .encode();
        let ws_near = [v4, ("transport", "websocket"), ("sid", &near[..])];
        assert_eq!(ask(&c, "GET", &ws_sid, Some("websocket")), unknown);
        assert_eq!(ask(&c, "GET", &ws_near, None), body(3, "Bad request"));
        let poll_near = [v4, poll, ("sid", &near[..])];
        assert_eq!(ask(&c, "PUT", &poll_near, None), body(3, "Bad request"));
        assert_eq!(
            ask(&c, "GET", &[v4, ("transport", "x")], None),
            body(0, "Transport unknown")
        );
    }
}
