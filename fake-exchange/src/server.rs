//! The Binance-compatible server: `/stream?streams=` (combined) and `/ws` (raw) WebSockets
//! with live `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS`, pings, Binance's incoming
//! message limit, and `/control/*` endpoints that inject faults and report what it saw.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{
    rejection::WebSocketUpgradeRejection, Message, WebSocket, WebSocketUpgrade,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::market::{parse_stream, Market, SymbolState};

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

struct Conn {
    tx: UnboundedSender<Out>,
    /// Open but silent (the `stall` fault): pings continue, data does not.
    stalled: bool,
    streams: BTreeSet<String>,
    combined: bool,
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
        };
        Arc::new(Exchange {
            rate_millis: AtomicU64::new((settings.rate * 1000.0) as u64),
            market: Mutex::new(Market::new(settings.seed)),
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
            .route("/control/state", get(state))
            .route("/control/{action}", get(control).post(control))
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
                .filter(|s| !quiet.contains(s))
                .collect();
            if symbols.is_empty() {
                continue;
            }
            let symbol = &symbols[turn % symbols.len()];
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
        let sent = self.send_closed(&state) + self.send_streams(&state, |_| true);
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
        for conn in lock(&self.conns).values().filter(|c| !c.stalled) {
            for stream in conn
                .streams
                .iter()
                .filter(|s| s.split('@').next() == Some(&lower))
            {
                let kind = &stream[lower.len() + 1..];
                let Some(data) = payload(kind) else {
                    continue;
                };
                let text = if conn.combined {
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

    fn upgrade(
        self: Arc<Self>,
        ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
        streams: Vec<String>,
        combined: bool,
    ) -> Response {
        {
            let mut st = lock(&self.stats);
            st.attempts += 1;
            st.attempt_times_ms.push_back(now_ms());
            if st.attempt_times_ms.len() > ATTEMPT_LOG {
                st.attempt_times_ms.pop_front();
            }
        }
        if let Some(r) = self.take_refusal() {
            lock(&self.stats).refused += 1;
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            let mut resp = (
                status,
                Json(json!({"code": -1003, "msg": "refused by fake-exchange fault control"})),
            )
                .into_response();
            if let Some(secs) = r.retry_after {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert("Retry-After", v);
                }
            }
            return resp;
        }
        let ws = match ws {
            Ok(ws) => ws,
            Err(rejection) => return rejection.into_response(),
        };
        if streams.len() > MAX_STREAMS || streams.iter().any(|s| parse_stream(s).is_none()) {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"code": -1121, "msg": "Invalid symbol."})),
            )
                .into_response();
        }
        lock(&self.stats).accepted += 1;
        ws.on_upgrade(move |socket| self.serve(socket, streams, combined))
    }

    async fn serve(self: Arc<Self>, socket: WebSocket, streams: Vec<String>, combined: bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = unbounded_channel();
        let open = {
            let mut conns = lock(&self.conns);
            conns.insert(
                id,
                Conn {
                    tx: tx.clone(),
                    stalled: false,
                    streams: streams.into_iter().collect(),
                    combined,
                    opened_ms: now_ms(),
                },
            );
            conns.len()
        };
        {
            let mut st = lock(&self.stats);
            st.peak_connections = st.peak_connections.max(open);
        }
        let (mut sink, mut incoming) = socket.split();
        let mut ping = tokio::time::interval(self.settings.ping_interval);
        ping.tick().await;
        let mut awaiting_pong: Option<Instant> = None;
        let mut window = (Instant::now(), 0u32);
        loop {
            tokio::select! {
                out = rx.recv() => match out {
                    Some(Out::Text(t)) => { if sink.send(Message::Text(t.into())).await.is_err() { break; } }
                    Some(Out::Binary(b)) => { if sink.send(Message::Binary(b.into())).await.is_err() { break; } }
                    Some(Out::Close(code, reason)) => {
                        let frame = axum::extract::ws::CloseFrame { code, reason: reason.into() };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        break;
                    }
                    Some(Out::Drop) | None => break,
                },
                _ = ping.tick() => {
                    if awaiting_pong.is_some_and(|t| t.elapsed() >= self.settings.pong_timeout) {
                        lock(&self.stats).pong_timeouts += 1;
                        break;
                    }
                    if sink.send(Message::Ping(b"fake-exchange".to_vec().into())).await.is_err() { break; }
                    awaiting_pong.get_or_insert_with(Instant::now);
                }
                msg = incoming.next() => {
                    let Some(Ok(msg)) = msg else { break };
                    let counted = matches!(msg, Message::Text(_) | Message::Pong(_) | Message::Binary(_));
                    if counted {
                        if window.0.elapsed() >= Duration::from_secs(1) {
                            window = (Instant::now(), 0);
                        }
                        window.1 += 1;
                        let violated = {
                            let mut st = lock(&self.stats);
                            st.messages_in += 1;
                            st.max_incoming_in_one_second = st.max_incoming_in_one_second.max(window.1);
                            let violated = window.1 > self.settings.max_incoming_per_sec;
                            st.rate_violations += u64::from(violated);
                            violated
                        };
                        if violated {
                            let frame = axum::extract::ws::CloseFrame { code: 1008, reason: "Too many requests".into() };
                            let _ = sink.send(Message::Close(Some(frame))).await;
                            break;
                        }
                    }
                    match msg {
                        Message::Text(t) => {
                            let answer = self.request(id, t.as_str());
                            if sink.send(Message::Text(answer.into())).await.is_err() { break; }
                        }
                        Message::Pong(_) => {
                            awaiting_pong = None;
                            lock(&self.stats).pongs += 1;
                        }
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
            }
        }
        lock(&self.conns).remove(&id);
    }

    /// Answers one JSON request of Binance's live-subscription API.
    fn request(&self, conn: u64, text: &str) -> String {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return json!({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"})
                .to_string();
        };
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        let method = v
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let params: Vec<String> = v
            .get("params")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        {
            let mut st = lock(&self.stats);
            match method.as_str() {
                "SUBSCRIBE" => st.subscribe_requests += 1,
                "UNSUBSCRIBE" => st.unsubscribe_requests += 1,
                "LIST_SUBSCRIPTIONS" => st.list_requests += 1,
                _ => {}
            }
            st.requests.push_back(json!({"at_ms": now_ms(), "conn": conn, "method": method, "params": params, "id": id}));
            if st.requests.len() > REQUEST_LOG {
                st.requests.pop_front();
            }
        }
        let mut conns = lock(&self.conns);
        let Some(c) = conns.get_mut(&conn) else {
            return json!({"code": 1, "msg": "connection gone", "id": id}).to_string();
        };
        match method.as_str() {
            "SUBSCRIBE" | "UNSUBSCRIBE" => {
                if let Some(bad) = params.iter().find(|p| parse_stream(p).is_none()) {
                    return json!({"code": 2, "msg": format!("Invalid request: unknown stream {bad}"), "id": id}).to_string();
                }
                if method == "SUBSCRIBE" {
                    c.streams.extend(params);
                    if c.streams.len() > MAX_STREAMS {
                        return json!({"code": 2, "msg": "Invalid request: too many streams", "id": id}).to_string();
                    }
                } else {
                    for p in &params {
                        c.streams.remove(p);
                    }
                }
                json!({"result": null, "id": id}).to_string()
            }
            "LIST_SUBSCRIPTIONS" => json!({"result": c.streams, "id": id}).to_string(),
            "SET_PROPERTY" => json!({"result": null, "id": id}).to_string(),
            "GET_PROPERTY" => json!({"result": false, "id": id}).to_string(),
            _ => json!({"code": 2, "msg": format!("Invalid request: unknown method {method:?}"), "id": id}).to_string(),
        }
    }

    fn broadcast(&self, make: impl Fn() -> Vec<Out>) -> usize {
        let conns = lock(&self.conns);
        for c in conns.values() {
            for out in make() {
                let _ = c.tx.send(out);
            }
        }
        conns.len()
    }

    fn snapshot(&self) -> Value {
        let stats = serde_json::to_value(&*lock(&self.stats)).unwrap_or(Value::Null);
        let conns: Vec<Value> = lock(&self.conns)
            .iter()
            .map(|(id, c)| json!({"id": id, "streams": c.streams, "combined": c.combined, "opened_ms": c.opened_ms, "stalled": c.stalled}))
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
            },
            "rate": self.rate_millis.load(Ordering::Relaxed) as f64 / 1000.0,
        })
    }
}

async fn help() -> &'static str {
    "fake-exchange: Binance-compatible market streams.\n\
     WebSocket: /stream?streams=btcusdt@ticker/ethusdt@bookTicker/btcusdt@aggTrade/btcusdt@kline_1m/btcusdt@depth10@100ms (combined), /ws (raw)\n\
     Control: GET /control/state; POST /control/{drop,stall,pause,quiet,garbage,refuse,shutdown,tick,rate,reset,candle-close}\n"
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
    ex.upgrade(ws, streams, true)
}

async fn raw_stream(
    State(ex): State<Arc<Exchange>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    ex.upgrade(ws, Vec::new(), false)
}

async fn state(State(ex): State<Arc<Exchange>>) -> Json<Value> {
    Json(ex.snapshot())
}

fn flag(q: &HashMap<String, String>, name: &str, default: bool) -> bool {
    q.get(name).map_or(default, |v| {
        matches!(v.as_str(), "1" | "true" | "on" | "yes")
    })
}

fn number(q: &HashMap<String, String>, name: &str) -> Option<u64> {
    q.get(name).and_then(|v| v.parse().ok())
}

async fn control(
    State(ex): State<Arc<Exchange>>,
    Path(action): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let done = match action.as_str() {
        "drop" => {
            let clean = q.get("mode").is_some_and(|m| m == "close");
            let n = ex.broadcast(|| {
                vec![if clean {
                    Out::Close(1001, "going away")
                } else {
                    Out::Drop
                }]
            });
            json!({"dropped": n, "clean": clean})
        }
        "stall" => {
            // Default: the connections open now go silent, new ones flow (a stream that died
            // without closing). `all=1`: every connection, new ones too.
            let on = flag(&q, "on", true);
            let all = flag(&q, "all", false);
            let mut n = 0;
            for c in lock(&ex.conns).values_mut() {
                c.stalled = on;
                n += 1;
            }
            if all || !on {
                lock(&ex.faults).stalled = on && all;
            }
            json!({"stalled": on, "connections": n, "all": all})
        }
        "candle-close" => {
            // Closes every candle of `symbol` now: each kline stream gets the closed candle
            // (`x: true`) once, then the new open one.
            let symbol = q
                .get("symbol")
                .map(|s| s.to_ascii_uppercase())
                .unwrap_or_default();
            let state = lock(&ex.market).close_candles(&symbol, now_ms());
            let sent =
                ex.send_closed(&state) + ex.send_streams(&state, |k| k.starts_with("kline_"));
            json!({"symbol": symbol, "sent": sent})
        }
        "pause" => {
            let on = flag(&q, "on", true);
            lock(&ex.faults).paused = on;
            json!({"paused": on})
        }
        "quiet" => {
            // A halted symbol: nothing is sent for it, not even the ticker's cadence, while
            // the others keep flowing. `symbol=A,B` (default on=1); `on=0` without a symbol
            // releases all.
            let on = flag(&q, "on", true);
            let mut f = lock(&ex.faults);
            let named: Vec<String> = q
                .get("symbol")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_ascii_uppercase())
                        .collect()
                })
                .unwrap_or_default();
            match (on, named.is_empty()) {
                (false, true) => f.quiet.clear(),
                (true, _) => f.quiet.extend(named),
                (false, false) => named.iter().for_each(|s| {
                    f.quiet.remove(s);
                }),
            }
            json!({"quiet": f.quiet})
        }
        "garbage" => {
            let count = number(&q, "count").unwrap_or(5) as usize;
            let n = ex.broadcast(|| {
                (0..count)
                    .map(|i| match i % 5 {
                        0 => Out::Text("this is not json {".into()),
                        1 => Out::Text(r#"{"stream":"btcusdt@depth","data":{"s":"BTCUSDT"}}"#.into()),
                        2 => Out::Text(r#"{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","E":1,"s":"BTCUSDT","c":"NaN"}}"#.into()),
                        3 => Out::Binary(vec![0, 159, 146, 150]),
                        _ => Out::Text(format!(r#"{{"stream":"btcusdt@ticker","pad":"{}"}}"#, "x".repeat(100_000))),
                    })
                    .collect()
            });
            json!({"connections": n, "frames_each": count})
        }
        "refuse" => {
            let status = number(&q, "status").unwrap_or(429) as u16;
            let mut f = lock(&ex.faults);
            if status == 0 {
                f.refuse = None;
                json!({"refusing": null})
            } else {
                f.refuse = Some(Refusal {
                    status,
                    remaining: number(&q, "count"),
                    until: number(&q, "seconds").map(|s| Instant::now() + Duration::from_secs(s)),
                    retry_after: number(&q, "retry_after"),
                });
                json!({"refusing": status})
            }
        }
        "shutdown" => {
            let after = number(&q, "close_after_ms").unwrap_or(1_000);
            let msg = json!({"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": now_ms()}}).to_string();
            let n = ex.broadcast(|| vec![Out::Text(msg.clone())]);
            let senders: Vec<UnboundedSender<Out>> =
                lock(&ex.conns).values().map(|c| c.tx.clone()).collect();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after)).await;
                for tx in senders {
                    let _ = tx.send(Out::Close(1000, "server shutdown"));
                }
            });
            json!({"announced": n, "close_after_ms": after})
        }
        "tick" => match q.get("symbol") {
            Some(s) => {
                ex.tick(&s.to_ascii_uppercase());
                json!({"ticked": s.to_ascii_uppercase()})
            }
            None => return (StatusCode::BAD_REQUEST, "tick needs ?symbol=").into_response(),
        },
        "rate" => match q.get("value").and_then(|v| v.parse::<f64>().ok()) {
            Some(r) if r >= 0.0 => {
                ex.rate_millis.store((r * 1000.0) as u64, Ordering::Relaxed);
                json!({"rate": r})
            }
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    "rate needs ?value=<updates per second>",
                )
                    .into_response()
            }
        },
        "reset" => {
            let open = lock(&ex.conns).len();
            *lock(&ex.stats) = Stats {
                peak_connections: open,
                ..Stats::default()
            };
            json!({"reset": true})
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                format!("unknown control action {action:?}"),
            )
                .into_response()
        }
    };
    Json(done).into_response()
}
