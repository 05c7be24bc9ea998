//! Configuration of docs/configuration.md, parsed and validated once; a bad value stops start-up.

use super::error::ConfigError;
use super::symbol::{canonical, Whitelist};

pub mod history;
pub mod twelvedata;

pub use history::HistoryConfig;
pub use twelvedata::TwelveDataConfig;

/// Binance endpoints tried in order (see docs/upstream.md).
pub const DEFAULT_UPSTREAM: &str = "wss://stream.binance.com:9443/stream,wss://stream.binance.com:443/stream,wss://data-stream.binance.vision/stream";

/// Twenty liquid USDT pairs: enough for a useful dashboard, far under Binance's stream limits.
pub const DEFAULT_SYMBOLS: &str = "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,ADAUSDT,DOGEUSDT,AVAXUSDT,DOTUSDT,LINKUSDT,TRXUSDT,LTCUSDT,BCHUSDT,ATOMUSDT,UNIUSDT,ETCUSDT,XLMUSDT,NEARUSDT,APTUSDT,FILUSDT";

/// Durable Object location hints Cloudflare accepts.
const LOCATION_HINTS: [&str; 9] = [
    "wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me",
];

/// Binance's limit of streams on one connection.
pub const MAX_STREAMS: usize = 1024;

/// When the hub holds its upstream connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamMode {
    /// Keep every whitelisted symbol subscribed, listeners or not.
    Always,
    /// Connect only while someone listens.
    OnDemand,
}

/// Which browser origins may open streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// `*`: any origin (development).
    Any,
    /// Exactly these origins, e.g. `https://example.com`.
    List(Vec<String>),
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Combined-stream endpoints, tried in order.
    pub upstream_urls: Vec<String>,
    /// Symbols served (every source's).
    pub symbols: Whitelist,
    /// Twelve Data, when `TWELVEDATA_SYMBOLS` turns it on.
    pub twelvedata: Option<TwelveDataConfig>,
    /// Cached prices older than this are dropped.
    pub price_ttl_ms: i64,
    /// Client connections held at most.
    pub max_connections: usize,
    /// Symbols one connection may hold.
    pub max_symbols_per_connection: usize,
    /// Client frames per second before `RATE_LIMITED`.
    pub client_messages_per_second: u32,
    /// Largest client frame accepted.
    pub max_frame_bytes: usize,
    /// Origins allowed to connect.
    pub allowed_origins: Origins,
    /// Bearer token for `/ws` and `/api/stream`, when set.
    pub auth_token: Option<String>,
    /// `JWT_SECRET` (a secret): with it every `/ws` and `/api/stream` connection needs an
    /// HS256 JWT, and private channels `user:<id>:<name>` exist.
    pub jwt_secret: Option<String>,
    /// When to hold the upstream.
    pub upstream_mode: UpstreamMode,
    /// Where the leader object is created.
    pub leader_location: String,
    /// Upstream silence after which the connection is replaced.
    pub watchdog_ms: i64,
    /// Upstream connection age at which it is rotated, make-before-break, ahead of Binance's
    /// 24 h cut.
    pub max_age_ms: i64,
    /// On-demand: how long an upstream nobody needs stays open before it is closed.
    pub idle_close_ms: i64,
    /// `max-age` of REST price answers at the edge (0 disables edge caching).
    pub rest_cache_seconds: u32,
    /// Window in which updates are gathered into one frame per client (0: immediately).
    pub flush_ms: i64,
    /// How a fan-out crosses into JavaScript: one JS string for every socket (`shared`), or
    /// one per socket (`per-socket`, kept to measure the difference).
    pub shared_send: bool,
    /// Fan-out shards carrying the clients (`FANOUT_SHARDS`); 0: the leader carries them.
    pub fanout_shards: u32,
    /// `TEST_FAULTS=on`: the `/fault/...` routes the end-to-end tests use to break links and
    /// restart objects. Off (absent) in every other configuration.
    pub test_faults: bool,
    /// The application's event channels and their publish API.
    pub events: EventsConfig,
    /// Socket.IO's heartbeat and the `/` namespace's broadcast.
    pub socketio: SocketIoConfig,
    /// Candle history and the heat map.
    pub history: HistoryConfig,
}

/// Socket.IO (docs/socketio.md): the heartbeat a session is told in its handshake, and what
/// the `/` namespace broadcasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketIoConfig {
    /// `SOCKETIO_PING_INTERVAL_SECONDS`: how often the server pings.
    pub ping_interval_ms: i64,
    /// `SOCKETIO_PING_TIMEOUT_SECONDS`: how long a pong may take before the session ends.
    pub ping_timeout_ms: i64,
    /// `SOCKETIO_BROADCAST`: the symbols every client of `/` gets (default: all served).
    pub broadcast: Vec<String>,
}

/// Event channels (docs/events.md): what may be published, by whom, how much is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// `PUBLISH_TOKEN` (a secret): without it `POST /api/publish` does not exist.
    pub publish_token: Option<String>,
    /// `EVENT_CHANNELS`: the names `events:<name>` may take.
    pub channels: Vec<String>,
    /// `MAX_EVENT_BYTES`: the largest publish body accepted.
    pub max_event_bytes: usize,
    /// `PUBLISH_PER_SECOND`: publishes accepted per second (a bucket with one second of burst).
    pub publish_per_second: u32,
    /// `EVENT_HISTORY`: events kept per channel for recovery.
    pub history: usize,
    /// `PRIVATE_HISTORY_EVENTS` and `PRIVATE_HISTORY_BYTES`: what every private channel
    /// keeps together, at most (the oldest evicted first).
    pub private_history: (usize, usize),
}

/// The variables as `get` gives them: trimmed, unset or empty meaning "use the default".
struct Vars<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A whole number from `min` to `max`.
    fn number(
        &self,
        name: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError {
                    name,
                    value: v,
                    problem: format!("expected a whole number from {min} to {max}"),
                }),
            },
        }
    }

    /// One of the spellings in `choices` (the first is the default).
    fn choice<T: Copy>(&self, name: &'static str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        let Some(v) = self.text(name) else {
            return choices.first().map(|c| c.1).ok_or_else(|| ConfigError {
                name,
                value: String::new(),
                problem: "no choices".into(),
            });
        };
        match choices.iter().find(|c| c.0 == v) {
            Some(c) => Ok(c.1),
            None => {
                let names: Vec<String> = choices.iter().map(|c| format!("`{}`", c.0)).collect();
                Err(ConfigError {
                    name,
                    value: v,
                    problem: format!("expected {}", names.join(" or ")),
                })
            }
        }
    }
}

impl Config {
    /// Parses every variable through `get` (unset or empty means "use the default").
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let v = Vars(get);
        let upstream_raw = v.text("UPSTREAM_URL").unwrap_or(DEFAULT_UPSTREAM.into());
        let symbols_raw = v.text("SYMBOLS").unwrap_or(DEFAULT_SYMBOLS.into());
        let allowed_origins = match v.text("ALLOWED_ORIGINS") {
            None => Origins::Any,
            Some(o) if o == "*" => Origins::Any,
            Some(o) => Origins::List(parse_origins(&o)?),
        };
        let modes = [
            ("always", UpstreamMode::Always),
            ("on-demand", UpstreamMode::OnDemand),
        ];
        let sends = [("shared", true), ("per-socket", false)];
        let sec = |name, default, min, max| {
            Ok::<i64, ConfigError>(v.number(name, default, min, max)? as i64 * 1000)
        };
        let mut symbols = parse_symbols(&symbols_raw)?;
        let twelvedata = twelvedata_of(&v, &mut symbols)?;
        Ok(Config {
            twelvedata,
            upstream_urls: parse_urls(&upstream_raw)?,
            symbols: symbols.clone(),
            price_ttl_ms: sec("PRICE_TTL_SECONDS", 300, 1, 86_400)?,
            max_connections: v.number("MAX_CONNECTIONS", 10_000, 1, 1_000_000)? as usize,
            max_symbols_per_connection: v.number("MAX_SYMBOLS_PER_CONNECTION", 100, 1, 1024)?
                as usize,
            client_messages_per_second: v.number("CLIENT_MESSAGES_PER_SECOND", 10, 1, 10_000)?
                as u32,
            max_frame_bytes: v.number("MAX_FRAME_BYTES", 4096, 64, 1 << 20)? as usize,
            allowed_origins,
            auth_token: v.text("AUTH_TOKEN"),
            jwt_secret: v.text("JWT_SECRET"),
            upstream_mode: v.choice("UPSTREAM_MODE", &modes)?,
            leader_location: leader_location(v.text("LEADER_LOCATION"))?,
            watchdog_ms: sec("UPSTREAM_WATCHDOG_SECONDS", 30, 2, 3_600)?,
            max_age_ms: sec("UPSTREAM_MAX_AGE_SECONDS", 84_600, 10, 86_000)?,
            idle_close_ms: sec("UPSTREAM_IDLE_CLOSE_SECONDS", 30, 1, 3_600)?,
            rest_cache_seconds: v.number("REST_CACHE_SECONDS", 1, 0, 60)? as u32,
            flush_ms: v.number("FLUSH_MS", 5, 0, 1_000)? as i64,
            shared_send: v.choice("SEND_MODE", &sends)?,
            fanout_shards: v.number("FANOUT_SHARDS", 0, 0, 64)? as u32,
            test_faults: v.choice("TEST_FAULTS", &[("off", false), ("on", true)])?,
            events: events_of(&v)?,
            socketio: SocketIoConfig {
                ping_interval_ms: sec("SOCKETIO_PING_INTERVAL_SECONDS", 25, 1, 300)?,
                ping_timeout_ms: sec("SOCKETIO_PING_TIMEOUT_SECONDS", 20, 1, 300)?,
                broadcast: parse_broadcast(v.text("SOCKETIO_BROADCAST"), &symbols)?,
            },
            history: history_of(&v)?,
        })
    }
}

/// The event channels' variables.
fn events_of<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<EventsConfig, ConfigError> {
    Ok(EventsConfig {
        publish_token: v.text("PUBLISH_TOKEN"),
        channels: parse_event_channels(&v.text("EVENT_CHANNELS").unwrap_or("signals".into()))?,
        max_event_bytes: v.number("MAX_EVENT_BYTES", 16_384, 64, 1 << 20)? as usize,
        publish_per_second: v.number("PUBLISH_PER_SECOND", 100, 1, 10_000)? as u32,
        history: v.number("EVENT_HISTORY", 100, 1, 10_000)? as usize,
        private_history: (
            v.number("PRIVATE_HISTORY_EVENTS", 10_000, 1, 1_000_000)? as usize,
            v.number("PRIVATE_HISTORY_BYTES", 4 << 20, 1 << 16, 1 << 28)? as usize,
        ),
    })
}

/// Twelve Data's variables (see [`twelvedata::parse`]); its symbols join `symbols`.
fn twelvedata_of<F: Fn(&str) -> Option<String>>(
    v: &Vars<F>,
    symbols: &mut Whitelist,
) -> Result<Option<TwelveDataConfig>, ConfigError> {
    let heartbeat_ms = v.number("TWELVEDATA_HEARTBEAT_SECONDS", 10, 1, 60)? as i64 * 1000;
    let vars = (
        v.text("TWELVEDATA_SYMBOLS"),
        v.text("TWELVEDATA_API_KEY"),
        v.text("TWELVEDATA_URL"),
    );
    twelvedata::parse(vars, heartbeat_ms, symbols)
}

/// History's variables (see [`history`]).
fn history_of<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<HistoryConfig, ConfigError> {
    let rest = v.text("BINANCE_REST_URL");
    let futures = v.text("FUTURES_REST_URL");
    let futures = history::rest_urls(
        "FUTURES_REST_URL",
        futures.as_deref().unwrap_or(history::DEFAULT_FUTURES),
    )?;
    Ok(HistoryConfig {
        candles: v.number("CANDLE_HISTORY", 500, 10, 1_000)? as usize,
        rest_urls: history::rest_urls(
            "BINANCE_REST_URL",
            rest.as_deref().unwrap_or(history::DEFAULT_REST),
        )?,
        futures_url: futures.into_iter().next().unwrap_or_default(),
        heatmap_interval_ms: v.number("HEATMAP_INTERVAL_SECONDS", 5, 1, 300)? as i64 * 1000,
    })
}

/// `SOCKETIO_BROADCAST`: served symbols in any spelling (default: every served symbol).
fn parse_broadcast(raw: Option<String>, served: &Whitelist) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(served.iter().cloned().collect());
    };
    let mut named = Vec::new();
    for s in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match served.resolve(s) {
            Some(symbol) if !named.contains(&symbol) => named.push(symbol),
            Some(_) => {}
            None => {
                return Err(ConfigError {
                    name: "SOCKETIO_BROADCAST",
                    value: raw.clone(),
                    problem: format!("{s} is not a served symbol"),
                })
            }
        }
    }
    if named.is_empty() {
        return Err(ConfigError {
            name: "SOCKETIO_BROADCAST",
            value: raw.clone(),
            problem: "expected served symbols, comma-separated".into(),
        });
    }
    named.sort();
    Ok(named)
}

fn parse_urls(raw: &str) -> Result<Vec<String>, ConfigError> {
    let urls = crate::core::text::comma_list(raw);
    for u in &urls {
        if !crate::core::text::is_socket_url(u) {
            return Err(ConfigError {
                name: "UPSTREAM_URL",
                value: raw.to_string(),
                problem: format!(
                    "{u:?} is not a ws:// or wss:// combined-stream endpoint without a query, \
                     e.g. wss://stream.binance.com:9443/stream"
                ),
            });
        }
    }
    if urls.is_empty() {
        return Err(ConfigError {
            name: "UPSTREAM_URL",
            value: raw.to_string(),
            problem:
                "names no endpoint; give at least one, e.g. wss://stream.binance.com:9443/stream"
                    .into(),
        });
    }
    Ok(urls)
}

/// `EVENT_CHANNELS`: comma-separated names of lower-case letters, digits, `-` and `_`.
fn parse_event_channels(raw: &str) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let name = name.strip_prefix("events:").unwrap_or(name);
        if !super::text::valid_name(name) {
            return Err(ConfigError {
                name: "EVENT_CHANNELS",
                value: raw.to_string(),
                problem: format!(
                    "{name:?} is not a channel name (1 to 64 of a-z, 0-9, - and _), e.g. signals"
                ),
            });
        }
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// A location hint for the leader object (default `apac`, near Binance's servers).
fn leader_location(given: Option<String>) -> Result<String, ConfigError> {
    let hint = given.unwrap_or_else(|| "apac".into());
    if LOCATION_HINTS.contains(&hint.as_str()) {
        return Ok(hint);
    }
    Err(ConfigError {
        name: "LEADER_LOCATION",
        value: hint,
        problem: format!("expected one of {}", LOCATION_HINTS.join(", ")),
    })
}

fn parse_symbols(raw: &str) -> Result<Whitelist, ConfigError> {
    let mut out = Vec::new();
    for s in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match canonical(s) {
            Some(c) => out.push(c),
            None => {
                return Err(ConfigError {
                    name: "SYMBOLS",
                    value: raw.to_string(),
                    problem: format!("{s:?} is not a symbol such as BTCUSDT"),
                })
            }
        }
    }
    if out.is_empty() || out.len() > MAX_STREAMS / 2 {
        return Err(ConfigError {
            name: "SYMBOLS",
            value: raw.to_string(),
            problem: format!("expected 1 to {} comma-separated symbols", MAX_STREAMS / 2),
        });
    }
    Ok(Whitelist::new(out))
}

fn parse_origins(raw: &str) -> Result<Vec<String>, ConfigError> {
    let origins = crate::core::text::comma_list(raw);
    for o in &origins {
        if !(o.starts_with("http://") || o.starts_with("https://")) || o.contains('*') {
            return Err(ConfigError {
                name: "ALLOWED_ORIGINS",
                value: raw.to_string(),
                problem: format!(
                    "{o:?} is not an origin such as https://example.com (or use * alone)"
                ),
            });
        }
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_socketio_broadcast_is_served_symbols_only() {
        let with = |b: &str| {
            let pairs = [("SYMBOLS", "BTCUSDT,ETHUSDT"), ("SOCKETIO_BROADCAST", b)];
            Config::from_lookup(|k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(with("").unwrap().socketio.broadcast, ["BTCUSDT", "ETHUSDT"]);
        assert_eq!(with("eth-usdt").unwrap().socketio.broadcast, ["ETHUSDT"]);
        let e = with("DOGEUSDT").unwrap_err();
        assert_eq!(e.name, "SOCKETIO_BROADCAST");
        assert_eq!(with("").unwrap().socketio.ping_interval_ms, 25_000);
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.upstream_urls.len(), 3);
        assert_eq!(c.upstream_urls[0], "wss://stream.binance.com:9443/stream");
        assert_eq!(c.symbols.len(), 20);
        assert_eq!(c.price_ttl_ms, 300_000);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.max_symbols_per_connection, 100);
        assert_eq!(c.client_messages_per_second, 10);
        assert_eq!(c.max_frame_bytes, 4096);
        assert_eq!(c.allowed_origins, Origins::Any);
        assert_eq!(c.auth_token, None);
        assert_eq!(c.upstream_mode, UpstreamMode::Always);
        assert_eq!(c.leader_location, "apac");
        assert_eq!(c.watchdog_ms, 30_000);
        assert_eq!(
            c.max_age_ms, 84_600_000,
            "rotated 30 minutes before Binance's 24 h cut"
        );
        assert_eq!(c.idle_close_ms, 30_000);
        assert_eq!(c.rest_cache_seconds, 1);
        assert_eq!(c.flush_ms, 5);
        assert!(c.shared_send);
        let e = &c.events;
        assert_eq!(
            (e.publish_token.as_deref(), e.channels.clone()),
            (None, vec!["signals".into()])
        );
        assert_eq!(
            (e.max_event_bytes, e.publish_per_second, e.history),
            (16_384, 100, 100)
        );
    }

    #[test]
    fn event_channels_are_names() {
        let c = cfg(&[
            ("EVENT_CHANNELS", "signals, events:alerts,signals"),
            ("PUBLISH_TOKEN", "p"),
        ])
        .unwrap();
        assert_eq!(c.events.channels, ["signals", "alerts"]);
        assert_eq!(c.events.publish_token.as_deref(), Some("p"));
        let e = cfg(&[("EVENT_CHANNELS", "Signals")]).unwrap_err();
        assert_eq!(e.name, "EVENT_CHANNELS");
        assert!(cfg(&[("EVENT_HISTORY", "0")]).is_err());
    }

    #[test]
    fn values_are_parsed_and_symbols_canonicalised() {
        let c = cfg(&[
            ("UPSTREAM_URL", "ws://127.0.0.1:9001/stream"),
            ("SYMBOLS", "btc-usdt, ETH/USDT"),
            ("PRICE_TTL_SECONDS", "60"),
            (
                "ALLOWED_ORIGINS",
                "https://a.example, http://localhost:8787/",
            ),
            ("UPSTREAM_MODE", "on-demand"),
            ("AUTH_TOKEN", "s3cret"),
        ])
        .unwrap();
        assert_eq!(c.upstream_urls, ["ws://127.0.0.1:9001/stream"]);
        assert_eq!(
            c.symbols.iter().cloned().collect::<Vec<_>>(),
            ["BTCUSDT", "ETHUSDT"]
        );
        assert_eq!(c.price_ttl_ms, 60_000);
        assert_eq!(
            c.allowed_origins,
            Origins::List(vec![
                "https://a.example".into(),
                "http://localhost:8787".into()
            ])
        );
        assert_eq!(c.upstream_mode, UpstreamMode::OnDemand);
        assert_eq!(c.auth_token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("UPSTREAM_URL", "http://x/stream"),
            ("UPSTREAM_URL", "wss://x/stream?streams=a"),
            ("SYMBOLS", "BTC USDT"),
            ("SYMBOLS", ","),
            ("PRICE_TTL_SECONDS", "0"),
            ("PRICE_TTL_SECONDS", "ten"),
            ("MAX_CONNECTIONS", "-1"),
            ("MAX_FRAME_BYTES", "10"),
            ("ALLOWED_ORIGINS", "example.com"),
            ("UPSTREAM_MODE", "sometimes"),
            ("LEADER_LOCATION", "mars"),
            ("UPSTREAM_WATCHDOG_SECONDS", "1"),
            ("UPSTREAM_MAX_AGE_SECONDS", "90000"),
            ("UPSTREAM_IDLE_CLOSE_SECONDS", "0"),
            ("SEND_MODE", "sometimes"),
        ] {
            let e = cfg(&[(name, value)]).unwrap_err();
            assert_eq!(e.name, name, "{value}");
            assert!(e.to_string().contains(name));
        }
    }

    #[test]
    fn an_empty_endpoint_list_is_refused_at_start() {
        for raw in [",", " , ,"] {
            let e = Config::from_lookup(|k| (k == "UPSTREAM_URL").then(|| raw.to_string()))
                .expect_err("no endpoint");
            assert_eq!(e.name, "UPSTREAM_URL");
        }
    }
}
