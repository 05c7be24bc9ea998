//! The stateless Worker's routing as a pure decision: the edge reads a request's method,
//! path, query and three headers, and gets a typed [`Route`] or the [`ApiError`] to answer
//! with. What a route asks an object of the tree is an [`ObjectRequest`].
//!
//! # Layout
//! [`query`] reads a request's parts, [`object`] encodes what objects are asked, `stream`
//! routes `/api/stream`, `socketio` routes `/socket.io/`; this module routes the rest and
//! depends on all four.

use super::auth;
use super::config::Config;
use super::error::ApiError;
use super::groups::AssetGroup;
use super::ids::Holder;
use super::rest::{self, CorsDecision};
use super::symbol::percent_decode;
use super::text::truncate;
use super::wire::Wire;

mod candles;
pub mod object;
pub mod query;
mod socketio;
mod stream;

pub use object::{FaultKind, ObjectRequest};
use query::{authorized, bearer, find};
pub use query::{
    parse_stream_symbols, parse_symbol_query, presented_token, token_matches, Href, Incoming,
};
pub use stream::stream_channels;

/// What a request is, once it passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A CORS preflight: answer 204 with the allowed methods and headers.
    Preflight,
    /// Hand the request to the leader for the leader to answer.
    Leader(ObjectRequest),
    /// `GET /metrics`: the leader's exposition plus this isolate's counters.
    Metrics,
    /// A price read, answered through the edge cache from the leader's `ObjectRequest`.
    CachedRead(ObjectRequest),
    /// A fault to inject (`TEST_FAULTS=on` only).
    Fault(Fault),
    /// `POST /api/publish` with the right token: the Worker checks the body's size and hands
    /// it to the leader.
    Publish,
    /// A request of an Engine.IO session: forwarded as it is to the object holding it.
    Held(Holder),
}

/// A fault the end-to-end tests inject into the tree; the routes exist only with
/// `TEST_FAULTS=on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The leader closes every shard's link.
    Unlink,
    /// The leader object is reset (as if evicted or crashed).
    RestartLeader,
    /// Shard `n` is reset.
    RestartShard(u32),
    /// The leader forgets its event history (a new epoch).
    WipeHistory,
    /// The leader (`None`) or shard `n` hibernates and wakes: its memory is lost, its
    /// client sockets stay open and are taken back from their attachments.
    Hibernate(Option<u32>),
}

/// Why a request was refused, for the edge's counters of refused stream connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRefusal {
    /// The `Origin` is not allowed.
    Origin,
    /// The token is missing or wrong.
    Token,
}

/// Whether [`classify`] reads [`Incoming::now_ms`]: only a JWT's expiry is checked against
/// the clock, so without `JWT_SECRET` the edge need not read it for every request.
pub fn reads_clock(cfg: &Config) -> bool {
    cfg.jwt_secret.is_some()
}

/// Routes a request: the route table, methods, CORS, the token on the streams, query
/// parameters, symbols and `Last-Event-ID`, in that order (each refusal is the first check a
/// request fails). A refusal of a stream connection also says why, for the edge's counters.
pub fn classify(
    cfg: &Config,
    cors: &CorsDecision,
    req: &Incoming<'_>,
) -> Result<Route, (ApiError, Option<StreamRefusal>)> {
    let path = req.path;
    if cfg.test_faults {
        if let Some(fault) = fault_of(req) {
            return Ok(Route::Fault(fault));
        }
    }
    if path == "/api/publish" {
        return publish_route(cfg, req).map_err(|e| (e, None));
    }
    let is_price = path.starts_with("/api/prices/");
    let is_stream = Wire::of_socket_path(path).is_some() || path == "/api/stream";
    let seed = AssetGroup::of_path(path).is_some() || path == "/api/status";
    let known = matches!(
        path,
        "/api/prices" | "/api/candles" | "/health" | "/metrics"
    ) || is_stream
        || is_price
        || seed;
    if !known {
        return Err((
            ApiError::NotFound(format!(
                "no route for {}; see / for the dashboard and /openapi.json for the API",
                truncate(path, 64)
            )),
            None,
        ));
    }
    if *cors == CorsDecision::Deny {
        return Err((
            rest::origin_refused(),
            is_stream.then_some(StreamRefusal::Origin),
        ));
    }
    let socketio = matches!(Wire::of_socket_path(path), Some(Wire::SocketIo(_)));
    match req.method {
        "OPTIONS" => return Ok(Route::Preflight),
        "GET" | "HEAD" => {}
        // Engine.IO takes POSTs, and answers other methods its own way.
        _ if socketio => {}
        _ => {
            let e = ApiError::MethodNotAllowed(format!("{path} answers GET only"));
            return Err((e, None));
        }
    }
    if is_stream {
        stream_auth(cfg, req)?;
    }
    route(cfg, req).map_err(|e| (e, None))
}

/// The token a stream's upgrade presents, checked before the request reaches an object. A
/// Socket.IO session may present its token in its CONNECT packet instead: the object that
/// holds it checks the token there.
fn stream_auth(cfg: &Config, req: &Incoming<'_>) -> Result<(), (ApiError, Option<StreamRefusal>)> {
    if matches!(Wire::of_socket_path(req.path), Some(Wire::SocketIo(_))) {
        return Ok(());
    }
    if let Some(secret) = &cfg.jwt_secret {
        let token = presented_token(req.authorization, req.query);
        if let Err(e) = auth::identify(Some(secret), token, req.now_ms) {
            let e = ApiError::Unauthorized(e.to_string());
            return Err((e, Some(StreamRefusal::Token)));
        }
    } else if let Some(expected) = &cfg.auth_token {
        if !authorized(req, expected) {
            let e = ApiError::Unauthorized(
                "a token is required: ?token=... or Authorization: Bearer ...".into(),
            );
            return Err((e, Some(StreamRefusal::Token)));
        }
    }
    Ok(())
}

/// `/api/publish`: absent without `PUBLISH_TOKEN`; `POST` with `Authorization: Bearer`.
fn publish_route(cfg: &Config, req: &Incoming<'_>) -> Result<Route, ApiError> {
    let Some(expected) = &cfg.events.publish_token else {
        return Err(ApiError::NotFound(
            "no route for /api/publish: set PUBLISH_TOKEN to publish events".into(),
        ));
    };
    if req.method != "POST" {
        return Err(ApiError::MethodNotAllowed(
            "/api/publish answers POST only".into(),
        ));
    }
    // The scheme is case-insensitive (RFC 7235), as on the stream routes.
    if !bearer(req.authorization).is_some_and(|t| token_matches(expected, t)) {
        return Err(ApiError::Unauthorized(
            "publishing needs Authorization: Bearer <PUBLISH_TOKEN>".into(),
        ));
    }
    Ok(Route::Publish)
}

/// A `/fault/...` route (only consulted with `TEST_FAULTS=on`).
fn fault_of(req: &Incoming<'_>) -> Option<Fault> {
    match req.path {
        "/fault/unlink" => Some(Fault::Unlink),
        "/fault/restart-leader" => Some(Fault::RestartLeader),
        "/fault/wipe-history" => Some(Fault::WipeHistory),
        "/fault/restart-shard" => find(req, &["shard"])?.parse().ok().map(Fault::RestartShard),
        "/fault/hibernate" => match find(req, &["shard"]) {
            Some(n) => n.parse().ok().map(|n| Fault::Hibernate(Some(n))),
            None => Some(Fault::Hibernate(None)),
        },
        _ => None,
    }
}

fn route(cfg: &Config, req: &Incoming<'_>) -> Result<Route, ApiError> {
    let params = req.query.to_vec();
    match req.path {
        path if Wire::of_socket_path(path).is_some() => {
            let wire = Wire::of_socket_path(path).unwrap_or(Wire::Json);
            if let Wire::SocketIo(_) = wire {
                return socketio::route(cfg, req);
            }
            if !req
                .upgrade
                .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
            {
                return Err(ApiError::UpgradeRequired(format!(
                    "{path} is a WebSocket endpoint; connect with a WebSocket client"
                )));
            }
            Ok(Route::Leader(ObjectRequest::WebSocket { wire }))
        }
        "/api/stream" => stream::route(cfg, req, params).map(Route::Leader),
        "/health" => {
            rest::check_params(params, &[])?;
            Ok(Route::Leader(ObjectRequest::Health))
        }
        "/metrics" => {
            rest::check_params(params, &[])?;
            Ok(Route::Metrics)
        }
        "/api/status" => {
            rest::check_params(params, &[])?;
            Ok(Route::CachedRead(ObjectRequest::Status))
        }
        path if AssetGroup::of_path(path).is_some() => {
            rest::check_params(params, &[])?;
            let group = AssetGroup::of_path(path).unwrap_or(AssetGroup::Crypto);
            Ok(Route::CachedRead(ObjectRequest::Group { group }))
        }
        "/api/candles" => candles::route(cfg, req).map(Route::CachedRead),
        "/api/prices" => {
            rest::check_params(params, &["symbols", "pairs"])?;
            let symbols = find(req, &["symbols", "pairs"])
                .map(|raw| parse_symbol_query(cfg, &raw))
                .transpose()?;
            Ok(Route::CachedRead(ObjectRequest::Prices { symbols }))
        }
        path => {
            rest::check_params(params, &[])?;
            let raw = percent_decode(path.strip_prefix("/api/prices/").unwrap_or_default());
            let symbol = cfg.symbols.resolve(&raw).ok_or_else(|| {
                ApiError::UnknownSymbol(format!("{:?} is not a served symbol", truncate(&raw, 24)))
            })?;
            Ok(Route::CachedRead(ObjectRequest::Price { symbol }))
        }
    }
}

/// The fan-out shard a new client connection goes to, from a uniform draw in `[0, 1)`:
/// any shard is as good as another (a client never needs a particular one), and uniform
/// draws spread clients evenly. `None` without shards: the leader carries the clients.
pub fn shard_for(cfg: &Config, draw: f64) -> Option<u32> {
    let n = cfg.fanout_shards;
    if n == 0 {
        return None;
    }
    let pick = (draw.clamp(0.0, 1.0) * f64::from(n)) as u32;
    Some(pick.min(n - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn cfg(extra: &[(&str, &str)]) -> Config {
        let mut map: HashMap<&str, &str> = [("SYMBOLS", "BTCUSDT,ETHUSDT")].into_iter().collect();
        map.extend(extra.iter().copied());
        Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap()
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn get<'a>(path: &'a str, query: &'a [(String, String)]) -> Incoming<'a> {
        Incoming {
            method: "GET",
            path,
            query,
            ..Incoming::default()
        }
    }

    fn code(r: Result<Route, (ApiError, Option<StreamRefusal>)>) -> &'static str {
        r.err().map_or("ok", |(e, _)| e.code())
    }

    /// The edge skips the clock when `reads_clock` says so: without `JWT_SECRET` no decision
    /// may depend on `now_ms`.
    #[test]
    fn only_a_jwt_secret_makes_the_clock_matter() {
        assert!(reads_clock(&cfg(&[(
            "JWT_SECRET",
            "k".repeat(32).as_str()
        )])));
        let token = q(&[("token", "s3cret")]);
        let paths = [
            "/ws",
            "/api/stream",
            "/socket.io/",
            "/api/prices",
            "/health",
        ];
        for c in [cfg(&[]), cfg(&[("AUTH_TOKEN", "s3cret")])] {
            assert!(!reads_clock(&c));
            for path in paths {
                for query in [&q(&[]), &token] {
                    let at = |now_ms| Incoming {
                        upgrade: Some("websocket"),
                        now_ms,
                        ..get(path, query)
                    };
                    let cors = CorsDecision::NoOrigin;
                    let (early, late) = (
                        classify(&c, &cors, &at(0)),
                        classify(&c, &cors, &at(i64::MAX)),
                    );
                    assert_eq!(early, late, "{path} {query:?}");
                }
            }
        }
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cret", "s3cre"));
        assert!(!token_matches("s3cret", "s3cret!"));
        assert!(!token_matches("s3cret", "S3cret"));
        assert!(!token_matches("s3cret", ""));
    }

    #[test]
    fn publish_takes_the_bearer_scheme_in_any_case() {
        let c = cfg(&[("PUBLISH_TOKEN", "s3cret")]);
        let none = q(&[]);
        let post = |authorization| Incoming {
            method: "POST",
            authorization,
            ..get("/api/publish", &none)
        };
        for given in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret"] {
            let r = classify(&c, &CorsDecision::NoOrigin, &post(Some(given)));
            assert_eq!(r, Ok(Route::Publish), "{given}");
        }
        for refused in [None, Some("Bearer wrong"), Some("Basic s3cret")] {
            let r = classify(&c, &CorsDecision::NoOrigin, &post(refused));
            assert_eq!(code(r), "UNAUTHORIZED", "{refused:?}");
        }
    }

    #[test]
    fn socketio_requests_get_engine_io_refusals() {
        let c = cfg(&[]);
        let allow = CorsDecision::NoOrigin;
        let ask = |pairs: &[(&str, &str)], upgrade: Option<&'static str>| {
            let query = q(pairs);
            let req = Incoming {
                upgrade,
                ..get("/socket.io/", &query)
            };
            classify(&c, &allow, &req).map_err(|(e, _)| e.body())
        };
        let ws = Some("websocket");
        assert_eq!(
            ask(&[("EIO", "4"), ("transport", "websocket")], ws),
            Ok(Route::Leader(ObjectRequest::WebSocket {
                wire: Wire::SocketIo(crate::core::wire::socketio::Nsp::Pending)
            }))
        );
        let body =
            |code: u8, message: &str| Err(json!({"code": code, "message": message}).to_string());
        assert_eq!(
            ask(&[("EIO", "3"), ("transport", "websocket")], ws),
            body(5, "Unsupported protocol version")
        );
        assert_eq!(
            ask(&[("EIO", "4"), ("transport", "flash")], None),
            body(0, "Transport unknown")
        );
        assert_eq!(
            ask(&[("EIO", "4"), ("transport", "websocket")], None),
            body(3, "Bad request")
        );
    }

    #[test]
    fn routes_reach_their_typed_request() {
        let c = cfg(&[]);
        let allow = CorsDecision::Allow("*".into());
        let none = q(&[]);
        let ws = Incoming {
            upgrade: Some("websocket"),
            ..get("/ws", &none)
        };
        assert_eq!(
            classify(&c, &allow, &ws),
            Ok(Route::Leader(ObjectRequest::WebSocket { wire: Wire::Json }))
        );
        let list = q(&[("pairs", "btc-usdt,ETHUSDT")]);
        let hdr = Incoming {
            last_event_id: Some(" 42 "),
            ..get("/api/stream", &list)
        };
        assert_eq!(
            classify(&c, &allow, &hdr),
            Ok(Route::Leader(ObjectRequest::Stream {
                symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
                channels: vec![],
                refused: vec![],
                last: Some("42".into()),
                token: None,
            }))
        );
        assert_eq!(
            classify(&c, &allow, &get("/api/prices/eth%2Fusdt", &none)),
            Ok(Route::CachedRead(ObjectRequest::Price {
                symbol: "ETHUSDT".into()
            }))
        );
        assert_eq!(
            classify(&c, &allow, &get("/metrics", &none)),
            Ok(Route::Metrics)
        );
        let pre = Incoming {
            method: "OPTIONS",
            ..get("/api/prices", &none)
        };
        assert_eq!(classify(&c, &allow, &pre), Ok(Route::Preflight));
    }

    #[test]
    fn each_refusal_is_the_first_check_failed() {
        let c = cfg(&[("AUTH_TOKEN", "s3cret")]);
        let allow = CorsDecision::Allow("*".into());
        let none = q(&[]);
        assert_eq!(
            code(classify(&c, &allow, &get("/nope", &none))),
            "NOT_FOUND"
        );
        let denied = classify(&c, &CorsDecision::Deny, &get("/ws", &none));
        assert_eq!(
            denied.clone().err().map(|(_, r)| r),
            Some(Some(StreamRefusal::Origin))
        );
        let post = Incoming {
            method: "POST",
            ..get("/health", &none)
        };
        assert_eq!(code(classify(&c, &allow, &post)), "METHOD_NOT_ALLOWED");
        let no_token = classify(&c, &allow, &get("/api/stream", &none));
        assert_eq!(
            no_token.clone().err().map(|(_, r)| r),
            Some(Some(StreamRefusal::Token))
        );
        let token = q(&[("token", "s3cret")]);
        assert_eq!(
            code(classify(&c, &allow, &get("/ws", &token))),
            "UPGRADE_REQUIRED"
        );
        let bearer = Incoming {
            authorization: Some("Bearer s3cret"),
            ..get("/api/stream", &none)
        };
        assert_eq!(
            code(classify(&c, &allow, &bearer)),
            "BAD_REQUEST",
            "symbols= missing"
        );
        let bad_id = q(&[
            ("token", "s3cret"),
            ("symbols", "BTCUSDT"),
            ("lastEventId", "x"),
        ]);
        assert_eq!(
            code(classify(&c, &allow, &get("/api/stream", &bad_id))),
            "BAD_REQUEST"
        );
        let extra = q(&[("bogus", "1")]);
        assert_eq!(
            code(classify(&c, &allow, &get("/health", &extra))),
            "BAD_REQUEST"
        );
        assert_eq!(
            code(classify(&c, &allow, &get("/api/prices/DOGEUSDT", &none))),
            "UNKNOWN_SYMBOL"
        );
    }

    #[test]
    fn the_leader_reads_back_what_the_worker_wrote() {
        for r in [
            ObjectRequest::WebSocket { wire: Wire::Json },
            ObjectRequest::Stream {
                symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
                channels: vec![],
                refused: vec![],
                last: Some("7".into()),
                token: None,
            },
            ObjectRequest::Stream {
                symbols: vec!["BTCUSDT".into()],
                channels: vec!["events:signals".into()],
                refused: vec!["trades:NOPE".into(), "events:x".into()],
                last: Some("7_e1_3".into()),
                token: Some("h.c.s".into()),
            },
            ObjectRequest::Stream {
                symbols: vec![],
                channels: vec!["events:signals".into()],
                refused: vec![],
                last: None,
                token: None,
            },
            ObjectRequest::Health,
            ObjectRequest::Metrics,
            ObjectRequest::Prices { symbols: None },
            ObjectRequest::Prices {
                symbols: Some(vec!["ETHUSDT".into()]),
            },
            ObjectRequest::Price {
                symbol: "BTCUSDT".into(),
            },
            ObjectRequest::Link { shard: 3 },
            ObjectRequest::Fault {
                kind: FaultKind::Unlink,
            },
            ObjectRequest::Fault {
                kind: FaultKind::Restart,
            },
            ObjectRequest::Group {
                group: AssetGroup::Forex,
            },
            ObjectRequest::Status,
            ObjectRequest::Candles {
                symbol: "BTCUSDT".into(),
                interval: "4h".into(),
                limit: 200,
            },
            ObjectRequest::Polling { sid: None },
            ObjectRequest::Polling {
                sid: Some("L1_00000000000000ff".into()),
            },
            ObjectRequest::Upgrade {
                sid: "S2_1_00000000000000ff".into(),
            },
            ObjectRequest::WebSocket {
                wire: Wire::SocketIo(crate::core::wire::socketio::Nsp::Pending),
            },
        ] {
            let path = r.path();
            let (p, query) = path.split_once('?').unwrap_or((&path, ""));
            let pairs: Vec<(String, String)> = query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(ObjectRequest::parse(p, &pairs), Ok(r));
        }
        assert!(ObjectRequest::Polling { sid: None }.is_client_connection());
        assert!(!ObjectRequest::Health.is_client_connection());
        assert!(ObjectRequest::parse("/prices/", &[]).is_err());
        assert!(ObjectRequest::parse("/other", &[]).is_err());
        assert!(
            ObjectRequest::parse("/link", &[]).is_err(),
            "a link names its shard"
        );
    }

    #[test]
    fn a_stream_opens_with_the_channels_served_and_names_the_rest() {
        let c = cfg(&[]);
        let ask = |channels: &str| {
            let query = q(&[("channels", channels)]);
            classify(&c, &CorsDecision::NoOrigin, &get("/api/stream", &query))
        };
        let opened = ask("trades:btc-usdt,trades:NOPEUSDT,events:nope&x");
        assert_eq!(
            opened,
            Ok(Route::Leader(ObjectRequest::Stream {
                symbols: vec![],
                channels: vec!["trades:BTCUSDT".into()],
                refused: vec!["trades:NOPEUSDT".into(), "events:nopex".into()],
                last: None,
                token: None,
            }))
        );
        assert_eq!(code(ask("trades:NOPEUSDT,events:nope")), "UNKNOWN_CHANNEL");
    }

    #[test]
    fn candles_are_read_for_a_binance_symbol_an_interval_and_a_limit() {
        let c = cfg(&[("CANDLE_HISTORY", "300")]);
        let ask = |pairs: &[(&str, &str)]| {
            let query = q(pairs);
            classify(&c, &CorsDecision::NoOrigin, &get("/api/candles", &query))
        };
        let read = |symbol: &str, interval: &str, limit| {
            Ok(Route::CachedRead(ObjectRequest::Candles {
                symbol: symbol.into(),
                interval: interval.into(),
                limit,
            }))
        };
        assert_eq!(ask(&[("symbol", "btcusdt")]), read("BTCUSDT", "1m", 300));
        let given = [("symbol", "ETHUSDT"), ("interval", "1h"), ("limit", "20")];
        assert_eq!(ask(&given), read("ETHUSDT", "1h", 20));
        assert_eq!(code(ask(&[])), "BAD_REQUEST");
        assert_eq!(code(ask(&[("symbol", "DOGEUSDT")])), "UNKNOWN_SYMBOL");
        assert_eq!(
            code(ask(&[("symbol", "BTCUSDT"), ("interval", "2m")])),
            "BAD_REQUEST"
        );
        for limit in ["0", "301", "x", "-1"] {
            let r = ask(&[("symbol", "BTCUSDT"), ("limit", limit)]);
            assert_eq!(code(r), "BAD_REQUEST", "{limit}");
        }
        assert_eq!(
            code(ask(&[("symbol", "BTCUSDT"), ("since", "1")])),
            "BAD_REQUEST"
        );
    }

    #[test]
    fn clients_spread_over_the_shards_and_never_reach_a_link() {
        let with = |n: &str| {
            Config::from_lookup(|k| (k == "FANOUT_SHARDS").then(|| n.to_string())).unwrap()
        };
        assert_eq!(shard_for(&with("0"), 0.5), None);
        let cfg = with("4");
        let picks: Vec<Option<u32>> = [0.0, 0.24, 0.25, 0.99, 1.0]
            .iter()
            .map(|d| shard_for(&cfg, *d))
            .collect();
        assert_eq!(picks, [Some(0), Some(0), Some(1), Some(3), Some(3)]);
        let refused = classify(
            &cfg,
            &CorsDecision::NoOrigin,
            &Incoming {
                method: "GET",
                path: "/link",
                ..Incoming::default()
            },
        );
        assert!(refused.is_err(), "/link is the leader's, not the Worker's");
    }

    #[test]
    fn fault_routes_exist_only_in_a_test_configuration() {
        let faults = |on: &str| {
            Config::from_lookup(|k| (k == "TEST_FAULTS").then(|| on.to_string())).unwrap()
        };
        let ask = |cfg: &Config, path: &'static str, query: &[(String, String)]| {
            classify(
                cfg,
                &CorsDecision::NoOrigin,
                &Incoming {
                    method: "GET",
                    path,
                    query,
                    ..Incoming::default()
                },
            )
        };
        let shard = [("shard".to_string(), "2".to_string())];
        let off = Config::from_lookup(|_| None).unwrap();
        assert!(matches!(
            ask(&off, "/fault/unlink", &[]),
            Err((ApiError::NotFound(_), _))
        ));
        let on = faults("on");
        assert_eq!(
            ask(&on, "/fault/unlink", &[]),
            Ok(Route::Fault(Fault::Unlink))
        );
        assert_eq!(
            ask(&on, "/fault/restart-shard", &shard),
            Ok(Route::Fault(Fault::RestartShard(2)))
        );
        assert!(Config::from_lookup(|k| (k == "TEST_FAULTS").then(|| "yes".into())).is_err());
    }
}
