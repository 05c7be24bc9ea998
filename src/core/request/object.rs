//! What the Worker asks an object of the tree (the leader, or a fan-out shard for the
//! client connections it carries), as a path and query: [`ObjectRequest::path`] writes it
//! and [`ObjectRequest::parse`] reads it back, the one place it is encoded and decoded.

use crate::core::cursor;
use crate::core::error::ApiError;
use crate::core::groups::AssetGroup;
use crate::core::wire::Wire;

/// Socket.IO's path.
const ENGINE_PATH: &str = "/socket.io/";
/// An Engine.IO request's path and query up to its transport.
const ENGINE: &str = "/socket.io/?EIO=4&transport=";

/// What the leader or a shard is asked to do for a [`super::Fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Close every shard link (the leader).
    Unlink,
    /// Reset the object.
    Restart,
    /// Forget the event history (the leader).
    WipeHistory,
    /// Hibernate and wake, the client sockets kept.
    Hibernate,
}

/// What the Worker asks an object (the leader, or a shard for its clients).
/// [`ObjectRequest::parse`] are the one place it is encoded and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectRequest {
    /// A WebSocket upgrade of a wire (the client's own request is forwarded).
    WebSocket {
        /// The wire its path names.
        wire: Wire,
    },
    /// An Engine.IO long-polling request (the client's own, forwarded): the handshake
    /// without a session id, a GET or POST of the session with one.
    Polling {
        /// The session id.
        sid: Option<String>,
    },
    /// A WebSocket opened to upgrade the long-polling session `sid` (the client's own
    /// request, forwarded).
    Upgrade {
        /// The session id.
        sid: String,
    },
    /// An SSE stream of canonical symbols and resolved channels, resuming from `last` (a
    /// stream id, see [`crate::core::cursor`]) when given.
    Stream {
        /// Canonical, whitelisted symbols.
        symbols: Vec<String>,
        /// Served channels.
        channels: Vec<String>,
        /// Channels asked for that are not served (the stream says so in a `warning`).
        refused: Vec<String>,
        /// The id the reader already has.
        last: Option<String>,
        /// The reader's JWT, for the object to know whose stream it is (with `JWT_SECRET`).
        token: Option<String>,
    },
    /// `/health`.
    Health,
    /// The leader's metrics.
    Metrics,
    /// Every live price, or the listed ones.
    Prices {
        /// Canonical, whitelisted symbols; `None` for all.
        symbols: Option<Vec<String>>,
    },
    /// One canonical, whitelisted symbol.
    Price {
        /// The symbol.
        symbol: String,
    },
    /// The live prices of an asset class (the Flask terminal's `/api/stocks` …).
    Group {
        /// Which.
        group: AssetGroup,
    },
    /// The service's state in one small object (`/api/status`).
    Status,
    /// The newest `limit` closed candles of a Binance symbol and an interval.
    Candles {
        /// Canonical, served by Binance.
        symbol: String,
        /// One of the candle channels' intervals.
        interval: String,
        /// How many, from 1 to `CANDLE_HISTORY`.
        limit: usize,
    },
    /// A fan-out shard links to the leader (a WebSocket upgrade from the shard object;
    /// never routed from outside: [`super::classify`] has no route to it).
    Link {
        /// The shard's number.
        shard: u32,
    },
    /// A test fault (`TEST_FAULTS=on`).
    Fault {
        /// What to do.
        kind: FaultKind,
    },
    /// A publish that passed the token check; its body travels with the request.
    Publish,
}

impl ObjectRequest {
    /// True for what a client connection asks of the object that carries it (the leader
    /// without shards, or a shard): a WebSocket, a stream, Engine.IO's polling and upgrade.
    pub fn is_client_connection(&self) -> bool {
        matches!(
            self,
            ObjectRequest::WebSocket { .. }
                | ObjectRequest::Stream { .. }
                | ObjectRequest::Polling { .. }
                | ObjectRequest::Upgrade { .. }
        )
    }

    /// The path and query the leader is asked with.
    pub fn path(&self) -> String {
        match self {
            ObjectRequest::WebSocket { wire } => wire.socket_path().unwrap_or("/ws").into(),
            ObjectRequest::Polling { sid } => {
                let sid = sid
                    .as_ref()
                    .map(|s| format!("&sid={s}"))
                    .unwrap_or_default();
                format!("{ENGINE}polling{sid}")
            }
            ObjectRequest::Upgrade { sid } => format!("{ENGINE}websocket&sid={sid}"),
            ObjectRequest::Stream {
                symbols,
                channels,
                refused,
                last,
                token,
            } => {
                let mut path = format!("/stream?symbols={}", symbols.join(","));
                if let Some(t) = token {
                    path.push_str(&format!("&token={t}"));
                }
                if !channels.is_empty() {
                    path.push_str(&format!("&channels={}", channels.join(",")));
                }
                if !refused.is_empty() {
                    path.push_str(&format!("&refused={}", refused.join(",")));
                }
                if let Some(id) = last {
                    path.push_str(&format!("&last={id}"));
                }
                path
            }
            ObjectRequest::Health => "/health".into(),
            ObjectRequest::Metrics => "/metrics".into(),
            ObjectRequest::Prices { symbols: None } => "/prices".into(),
            ObjectRequest::Prices {
                symbols: Some(list),
            } => format!("/prices?symbols={}", list.join(",")),
            ObjectRequest::Price { symbol } => format!("/prices/{symbol}"),
            ObjectRequest::Group { group } => format!("/group?name={}", group.name()),
            ObjectRequest::Status => "/status".into(),
            ObjectRequest::Candles {
                symbol,
                interval,
                limit,
            } => format!("/candles?symbol={symbol}&interval={interval}&limit={limit}"),
            ObjectRequest::Link { shard } => format!("/link?shard={shard}"),
            ObjectRequest::Fault { kind } => match kind {
                FaultKind::Unlink => "/fault?kind=unlink".into(),
                FaultKind::Restart => "/fault?kind=restart".into(),
                FaultKind::WipeHistory => "/fault?kind=wipe-history".into(),
                FaultKind::Hibernate => "/fault?kind=hibernate".into(),
            },
            ObjectRequest::Publish => "/publish".into(),
        }
    }

    /// Reads back what [`ObjectRequest::path`] wrote (anything else is not found).
    pub fn parse(path: &str, query: &[(String, String)]) -> Result<ObjectRequest, ApiError> {
        let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let list = |name: &str| {
            param(name).map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
        };
        let transport = param("transport").map(String::as_str);
        let sid = param("sid").cloned();
        Ok(match path {
            ENGINE_PATH if transport == Some("polling") => ObjectRequest::Polling { sid },
            ENGINE_PATH if sid.is_some() => ObjectRequest::Upgrade {
                sid: sid.unwrap_or_default(),
            },
            p if Wire::of_socket_path(p).is_some() => ObjectRequest::WebSocket {
                wire: Wire::of_socket_path(p).unwrap_or(Wire::Json),
            },
            "/stream" => ObjectRequest::Stream {
                symbols: list("symbols").unwrap_or_default(),
                channels: list("channels").unwrap_or_default(),
                refused: list("refused").unwrap_or_default(),
                last: param("last").cloned().filter(|v| cursor::well_formed(v)),
                token: param("token").cloned(),
            },
            "/health" => ObjectRequest::Health,
            "/status" => ObjectRequest::Status,
            "/candles" => candles(query)?,
            "/group" => match param("name").and_then(|n| AssetGroup::of_name(n)) {
                Some(group) => ObjectRequest::Group { group },
                None => {
                    return Err(ApiError::BadRequest(
                        "/group?name=stocks|forex|crypto".into(),
                    ))
                }
            },
            "/metrics" => ObjectRequest::Metrics,
            "/publish" => ObjectRequest::Publish,
            "/link" => match param("shard").and_then(|v| v.parse().ok()) {
                Some(shard) => ObjectRequest::Link { shard },
                None => return Err(ApiError::BadRequest("/link needs ?shard=N".into())),
            },
            "/fault" => ObjectRequest::Fault {
                kind: fault_kind(param("kind").map(String::as_str))?,
            },
            "/prices" => ObjectRequest::Prices {
                symbols: list("symbols"),
            },
            p => match p.strip_prefix("/prices/") {
                Some(symbol) if !symbol.is_empty() => ObjectRequest::Price {
                    symbol: symbol.to_string(),
                },
                _ => return Err(ApiError::NotFound(format!("no leader route for {p}"))),
            },
        })
    }
}

/// A candles read as [`ObjectRequest::path`] writes it.
fn candles(query: &[(String, String)]) -> Result<ObjectRequest, ApiError> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    match (param("symbol"), param("interval"), param("limit")) {
        (Some(symbol), Some(interval), Some(limit)) => Ok(ObjectRequest::Candles {
            symbol,
            interval,
            limit: limit.parse().unwrap_or(1),
        }),
        _ => Err(ApiError::BadRequest(
            "/candles?symbol=&interval=&limit=".into(),
        )),
    }
}

/// A fault's kind as [`ObjectRequest::path`] writes it.
fn fault_kind(kind: Option<&str>) -> Result<FaultKind, ApiError> {
    match kind {
        Some("unlink") => Ok(FaultKind::Unlink),
        Some("restart") => Ok(FaultKind::Restart),
        Some("wipe-history") => Ok(FaultKind::WipeHistory),
        Some("hibernate") => Ok(FaultKind::Hibernate),
        _ => Err(ApiError::BadRequest("/fault?kind=unlink|restart".into())),
    }
}
