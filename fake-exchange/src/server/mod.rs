//! The Binance-compatible server: `/stream?streams=` (combined) and `/ws` (raw) WebSockets
//! with live `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS`, pings, Binance's incoming
//! message limit, and `/control/*` endpoints that inject faults and report what it saw; and
//! Twelve Data's price WebSocket beside it (`twelvedata`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::klines::History;
use crate::market::{parse_stream, Market, SymbolState};

mod control;
mod rest;
mod session;
mod twelvedata;

/// Binance's limit of streams per connection.
const MAX_STREAMS: usize = 1024;
/// Incoming requests remembered for `/control/state`.
const REQUEST_LOG: usize = 500;
/// Connection attempts remembered (their times) for `/control/state`.
const ATTEMPT_LOG: usize = 2_000;

/// Start-up settings (CLI flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Updates per second across all subscribed symbols.
    pub rate: f64,
    /// Seed of the random walk.
    pub seed: u64,
    /// Interval between WebSocket pings.
    pub ping_interval: Duration,
    /// A connection that has not answered a ping for this long is dropped.
    pub pong_timeout: Duration,
    /// Incoming messages (requests and pongs) per second before the connection is cut.
    pub max_incoming_per_sec: u32,
    /// Refuse every upgrade with this HTTP status from the start.
    pub refuse: Option<u16>,
    /// Start stalled (connections open, no data).
    pub stall: bool,
    /// Send a garbage frame after every N updates (0 = never).
    pub garbage_every: u64,
    /// The 24 h ticker streams' cadence: a symbol quiet this long gets its ticker again,
    /// as on Binance (zero: only on updates).
    pub cadence: Duration,
    /// Symbols halted from the start (see the `quiet` control).
    pub quiet: Vec<String>,
    /// The API key Twelve Data connections must present (any, when unset).
    pub twelvedata_key: Option<String>,
    /// The symbols Twelve Data lists (comma-separated; the seed's when unset).
    pub twelvedata_symbols: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rate: 20.0,
            seed: 1,
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(60),
            max_incoming_per_sec: 5,
            refuse: None,
            stall: false,
            garbage_every: 0,
            cadence: Duration::from_secs(1),
            quiet: Vec::new(),
            twelvedata_key: None,
            twelvedata_symbols: None,
        }
    }
}

enum Out {
    Text(String),
    Binary(Vec<u8>),
    /// Cut the TCP connection without a close frame, like a network failure.
    Drop,
    Close(u16, &'static str),
}

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Flavor {
    /// Binance's combined streams (`{"stream","data"}`).
    Combined,
    /// Binance's raw streams (the payload alone).
    Raw,
    /// Twelve Data's price events.
    TwelveData,
}

struct Conn {
    tx: UnboundedSender<Out>,
    /// Open but silent (the `stall` fault): pings continue, data does not.
    stalled: bool,
    /// Binance streams, or Twelve Data symbols.
    streams: BTreeSet<String>,
    flavor: Flavor,
    opened_ms: i64,
}

#[derive(Debug, Clone)]
struct Refusal {
    status: u16,
    remaining: Option<u64>,
    until: Option<Instant>,
    retry_after: Option<u64>,
}

#[derive(Default)]
struct Faults {
    stalled: bool,
    paused: bool,
    /// Halted symbols: neither the ticker nor the cadence sends them (explicit `tick`s do).
    quiet: BTreeSet<String>,
    refuse: Option<Refusal>,
    garbage_every: u64,
    /// Twelve Data's market is closed: no prices, heartbeats still answered.
    closed_market: bool,
    /// The REST endpoints' fault.
    rest: rest::RestFault,
    /// Open interest held at a value, by symbol (the `open-interest` control).
    open_interest: BTreeMap<String, String>,
}

#[derive(Default, Serialize)]
struct Stats {
    attempts: u64,
    accepted: u64,
    refused: u64,
    messages_in: u64,
    subscribe_requests: u64,
    unsubscribe_requests: u64,
    list_requests: u64,
    rate_violations: u64,
    max_incoming_in_one_second: u32,
    pongs: u64,
    pong_timeouts: u64,
    frames_sent: u64,
    updates: u64,
    rest_requests: u64,
    rest_refused: u64,
    open_interest_requests: u64,
    /// Most connections open at once (2 during a make-before-break rotation).
    peak_connections: usize,
    attempt_times_ms: VecDeque<i64>,
    requests: VecDeque<Value>,
}

/// The exchange's shared state.
pub struct Exchange {
    settings: Settings,
    rate_millis: AtomicU64,
    market: Mutex<Market>,
    history: Mutex<History>,
    conns: Mutex<HashMap<u64, Conn>>,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
    next_id: AtomicU64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the fake's state
/// stays usable for the test that is inspecting it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Exchange {
    /// A new exchange with no connections.
    pub fn new(settings: Settings) -> Arc<Exchange> {
        let faults = Faults {
            stalled: settings.stall,
            paused: false,
            quiet: settings.quiet.iter().cloned().collect(),
            refuse: settings.refuse.map(|status| Refusal {
                status,
                remaining: None,
                until: None,
                retry_after: None,
            }),
            garbage_every: settings.garbage_every,
            closed_market: false,
            rest: rest::RestFault::default(),
            open_interest: BTreeMap::new(),
        };
        Arc::new(Exchange {
            rate_millis: AtomicU64::new((settings.rate * 1000.0) as u64),
            market: Mutex::new(Market::new(settings.seed)),
            history: Mutex::new(History::default()),
            conns: Mutex::new(HashMap::new()),
            faults: Mutex::new(faults),
            stats: Mutex::new(Stats::default()),
            next_id: AtomicU64::new(1),
            settings,
        })
    }

    /// The HTTP/WebSocket routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/", get(help))
            .route("/stream", get(combined_stream))
            .route("/ws", get(raw_stream))
            .route("/v1/quotes/price", get(twelvedata::price_stream))
            .route("/api/v3/klines", get(rest::klines))
            .route("/fapi/v1/openInterest", get(rest::open_interest_of))
            .route("/control/state", get(control::state))
            .route(
                "/control/{action}",
                get(control::control).post(control::control),
            )
            .with_state(self.clone())
    }

    /// Emits updates at the configured rate until the process ends.
    pub async fn run_ticker(self: Arc<Self>) {
        let mut turn: usize = 0;
        loop {
            let rate = self.rate_millis.load(Ordering::Relaxed) as f64 / 1000.0;
            let wait = if rate > 0.0 { 1.0 / rate } else { 0.5 };
            tokio::time::sleep(Duration::from_secs_f64(wait.min(60.0))).await;
            if rate <= 0.0 || lock(&self.faults).paused {
                continue;
            }
            let quiet = lock(&self.faults).quiet.clone();
            let symbols: Vec<String> = self
                .subscribed_symbols()
                .into_iter()
                .chain(self.twelvedata_symbols())
                .filter(|s| !quiet.contains(s))
                .collect();
            let Some(symbol) = symbols.get(turn % symbols.len().max(1)) else {
                continue;
            };
            turn = turn.wrapping_add(1);
            self.tick(symbol);
        }
    }

    /// Keeps the cadence streams' promise: Binance sends each 24 h ticker every second
    /// whether or not anything traded, so they go on in a quiet market (and while `pause`d)
    /// and stop only under the `stall` fault.
    pub async fn run_cadence(self: Arc<Self>) {
        let every = self.settings.cadence;
        if every.is_zero() {
            return;
        }
        let mut interval = tokio::time::interval(every / 4);
        loop {
            interval.tick().await;
            let (stalled, quiet) = {
                let f = lock(&self.faults);
                (f.stalled, f.quiet.clone())
            };
            if stalled {
                continue;
            }
            let due = lock(&self.market).refresh_due(now_ms(), every.as_millis() as i64);
            let mut sent = 0;
            for state in due.iter().filter(|s| !quiet.contains(&s.symbol)) {
                sent += self.send_streams(state, |kind| {
                    kind == "ticker" || kind == "miniTicker" || kind.starts_with("kline_")
                });
            }
            lock(&self.stats).frames_sent += sent;
        }
    }

    fn subscribed_symbols(&self) -> Vec<String> {
        let conns = lock(&self.conns);
        let set: BTreeSet<String> = conns
            .values()
            .flat_map(|c| c.streams.iter())
            .filter_map(|s| parse_stream(s).map(|(sym, _)| sym))
            .collect();
        set.into_iter().collect()
    }

    /// Moves one symbol and sends its payloads to every connection subscribed to it.
    fn tick(&self, symbol: &str) {
        let state = lock(&self.market).step_taking_closed(symbol, now_ms());
        lock(&self.history).record(&state);
        let (stalled, garbage_every) = {
            let f = lock(&self.faults);
            (f.stalled, f.garbage_every)
        };
        let updates = {
            let mut st = lock(&self.stats);
            st.updates += 1;
            st.updates
        };
        if stalled {
            return;
        }
        let sent = self.send_closed(&state)
            + self.send_streams(&state, |_| true)
            + self.send_twelvedata(&state);
        if garbage_every > 0 && updates % garbage_every == 0 {
            for conn in lock(&self.conns).values().filter(|c| !c.stalled) {
                let _ = conn.tx.send(Out::Text("{\"stream\":garbage".into()));
            }
        }
        lock(&self.stats).frames_sent += sent;
    }

    /// Sends `state`'s payload on every subscribed stream of its symbol whose kind `wanted`
    /// accepts; returns the frames sent.
    fn send_streams(&self, state: &SymbolState, wanted: impl Fn(&str) -> bool) -> u64 {
        self.send_payloads(&state.symbol, |kind| {
            state.payload(kind).filter(|_| wanted(kind))
        })
    }

    /// Sends the candles `state` closed (`x: true`, once each) on their kline streams.
    pub fn send_closed(&self, state: &SymbolState) -> u64 {
        let closed = state.closed_payloads();
        self.send_payloads(&state.symbol, |kind| {
            closed
                .iter()
                .find(|(k, _)| k == kind)
                .map(|(_, v)| v.clone())
        })
    }

    /// Sends what `payload` gives for each subscribed stream kind of `symbol`.
    fn send_payloads(&self, symbol: &str, payload: impl Fn(&str) -> Option<Value>) -> u64 {
        let lower = symbol.to_ascii_lowercase();
        let mut sent = 0;
        let conns = lock(&self.conns);
        let binance = conns
            .values()
            .filter(|c| !c.stalled && c.flavor != Flavor::TwelveData);
        for conn in binance {
            for stream in conn
                .streams
                .iter()
                .filter(|s| s.split('@').next() == Some(&lower))
            {
                let kind = &stream[lower.len() + 1..];
                let Some(data) = payload(kind) else {
                    continue;
                };
                let text = if conn.flavor == Flavor::Combined {
                    json!({"stream": stream, "data": data}).to_string()
                } else {
                    data.to_string()
                };
                if conn.tx.send(Out::Text(text)).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    }

    fn take_refusal(&self) -> Option<Refusal> {
        let mut f = lock(&self.faults);
        let r = f.refuse.as_mut()?;
        if r.until.is_some_and(|u| Instant::now() >= u) || r.remaining == Some(0) {
            f.refuse = None;
            return None;
        }
        if let Some(n) = r.remaining.as_mut() {
            *n -= 1;
        }
        Some(r.clone())
    }

    fn broadcast(&self, make: impl Fn() -> Vec<Out>) -> usize {
        self.broadcast_to(|_| true, make)
    }

    /// Sends what `make` makes to every connection of a flavor `to` accepts.
    fn broadcast_to(&self, to: impl Fn(Flavor) -> bool, make: impl Fn() -> Vec<Out>) -> usize {
        let conns = lock(&self.conns);
        let mut n = 0;
        for c in conns.values().filter(|c| to(c.flavor)) {
            n += 1;
            for out in make() {
                let _ = c.tx.send(out);
            }
        }
        n
    }

    fn snapshot(&self) -> Value {
        let stats = serde_json::to_value(&*lock(&self.stats)).unwrap_or(Value::Null);
        let conns: Vec<Value> = lock(&self.conns)
            .iter()
            .map(|(id, c)| json!({"id": id, "streams": c.streams, "combined": c.flavor == Flavor::Combined, "flavor": c.flavor, "opened_ms": c.opened_ms, "stalled": c.stalled}))
            .collect();
        let prices: serde_json::Map<String, Value> = lock(&self.market)
            .latest()
            .map(|s| {
                (
                    s.symbol.clone(),
                    json!({"price": crate::market::fmt_units(s.last), "event_time": s.event_time}),
                )
            })
            .collect();
        let f = lock(&self.faults);
        json!({
            "connections": conns.len(),
            "conns": conns,
            "prices": prices,
            "stats": stats,
            "faults": {
                "stalled": f.stalled,
                "paused": f.paused,
                "refusing": f.refuse.as_ref().map(|r| r.status),
                "garbage_every": f.garbage_every,
                "closed_market": f.closed_market,
            },
            "rate": self.rate_millis.load(Ordering::Relaxed) as f64 / 1000.0,
        })
    }
}

async fn help() -> &'static str {
    "fake-exchange: Binance-compatible market streams.\n\
     WebSocket: /stream?streams=btcusdt@ticker/ethusdt@bookTicker/btcusdt@aggTrade/btcusdt@kline_1m/btcusdt@depth10@100ms (combined), /ws (raw)\n\
     Twelve Data: /v1/quotes/price?apikey=KEY (subscribe, unsubscribe, reset, heartbeat)\n\
     REST: /api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=, /fapi/v1/openInterest?symbol=\n\
     Control: GET /control/state; POST /control/{drop,stall,pause,quiet,garbage,refuse,shutdown,tick,rate,reset,candle-close,closed-market,rest}\n"
}

async fn combined_stream(
    State(ex): State<Arc<Exchange>>,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let streams: Vec<String> = q
        .get("streams")
        .map(|s| {
            s.split('/')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    ex.upgrade(ws, streams, Flavor::Combined)
}

async fn raw_stream(
    State(ex): State<Arc<Exchange>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    ex.upgrade(ws, Vec::new(), Flavor::Raw)
}
