//! The fan-out: every client, and getting the feed's changes to them.
//!
//! It consumes [`Batch`]es (prices already encoded, upstream state changes) and owns
//! everything on the client side: the client table, the flush pacing, flow control of slow
//! readers, SSE streams, limits and close codes. It never encodes a price and never touches
//! storage. What it needs from the feed is the set of symbols its clients listen to
//! ([`Fanout::interest`]), which it flags when it changes.
//!
//! # Layout
//! - this file: applying batches, flushing, status announcements, the periodic check;
//! - `clients`: the client table and each transport's delivery rules;
//! - `commands`: client connections and their protocol commands;
//! - `streams`: Server-Sent Events streams;
//! - `latest`: the latest value per symbol, for snapshots and catch-up frames.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::core::batch::Batch;
use crate::core::config::Config;
use crate::core::effect::{Effect, Level};
use crate::core::events::History;
use crate::core::fastmap::FastMap;
use crate::core::histogram::Histogram;
use crate::core::ids::{ConnId, Transport};
use crate::core::protocol::close;
use crate::core::upstream_state::UpstreamState;
use crate::core::wire::{body, Kind, Payload, Wire};
use pacer::Pacer;

mod clients;
mod commands;
mod connections;
mod delivery;
mod latest;
mod market;
pub mod pacer;
mod polling;
pub mod session;
mod socketio;
mod streams;
mod symbols;
mod table;

pub use clients::{Carrier, KEEPALIVE_MS, SLOW_CLOSE_MS, SLOW_WARN_MS};
use clients::{Route, Tick};
use latest::Latest;
pub use session::SseTake;
pub use session::SymbolCounts;
use table::Clients;

/// Connections opened and closed are logged as one summary line at most this often: a line
/// per connection costs more than the connection itself in a storm (each line crosses to
/// the log sink, and under `wrangler dev` through its inspector).
pub const CHURN_LOG_MS: i64 = 1_000;

/// How often SSE streams and WebSockets that are behind are checked.
pub const SSE_TICK_MS: i64 = 2_000;

/// The fan-out's counters, for `/health` and `/metrics`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutStats {
    /// Frames sent to clients.
    pub messages_sent: u64,
    /// Bytes of those frames.
    pub bytes_sent: u64,
    /// Client frames answered with an error.
    pub client_errors: u64,
    /// Client connections accepted.
    pub connections_opened: u64,
    /// Client connections refused at `MAX_CONNECTIONS`.
    pub refused_at_capacity: u64,
    /// Fan-out duration, observed by the edge around each fan-out.
    pub fanout: Histogram,
    /// Client messages rejected by the rate limiter.
    pub rate_limited: u64,
    /// Clients closed for exceeding the rate limit persistently.
    pub rate_limit_closes: u64,
    /// Slow readers warned.
    pub slow_consumers: u64,
    /// Slow readers closed.
    pub slow_consumer_closes: u64,
    /// Flushes sent as soon as the input at hand was processed.
    pub flushes_immediate: u64,
    /// Flushes that gathered a window of changes (clients crowded, or a burst).
    pub flushes_windowed: u64,
    /// Counters by served symbol.
    #[serde(default)]
    pub by_symbol: BTreeMap<String, SymbolCounts>,
}

/// The fan-out's part of `/health` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutReport {
    /// WebSocket clients (Socket.IO sessions included).
    pub websocket: usize,
    /// Socket.IO sessions (on a WebSocket or still polling).
    #[serde(default)]
    pub socketio: usize,
    /// Of those, the ones still long-polling (not counted as WebSockets).
    #[serde(default)]
    pub polling: usize,
    /// SSE clients.
    pub sse: usize,
    /// WebSockets whose attachment outgrew the socket's and is kept in storage.
    #[serde(default)]
    pub stored_attachments: usize,
    /// `MAX_CONNECTIONS`.
    pub max_connections: usize,
    /// Subscribers of each served symbol that has any.
    #[serde(default)]
    pub subscribers: BTreeMap<String, usize>,
    /// Counters.
    pub stats: FanoutStats,
}

/// The fan-out.
#[derive(Debug)]
pub struct Fanout {
    cfg: Rc<Config>,
    clients: Clients,
    latest: Latest,
    /// The upstream state as the feed last reported it.
    state: UpstreamState,
    next_conn: ConnId,
    /// Symbols changed since the last flush.
    dirty: BTreeSet<String>,
    /// When changes are sent: at once, or gathered into windows under load.
    pacer: Pacer,
    /// Connections opened and closed since the last churn log line, and when it is due.
    churn: (u64, u64),
    churn_due: Option<i64>,
    /// When SSE streams and WebSockets that are behind are next checked.
    tick_at: Option<i64>,
    /// The Socket.IO heartbeat's next step, while there are Socket.IO clients.
    beat: Option<(i64, socketio::Beat)>,
    /// The clients' symbols changed since the feed last asked.
    interest_changed: bool,
    stats: FanoutStats,
    /// This fan-out's copy of the event history (for recovery where the client is).
    history: History,
    /// Market channels' states and the frames gathered for the next flush.
    market: market::MarketOut,
    /// When each identified connection's token expires.
    expiries: BTreeSet<(i64, ConnId)>,
}

impl Fanout {
    /// This object's copy of the event history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// A fan-out with no clients.
    pub fn new(cfg: Rc<Config>) -> Fanout {
        Fanout {
            history: History::new(String::new(), cfg.events.history)
                .bound_private(cfg.events.private_history.0, cfg.events.private_history.1),
            market: market::MarketOut::default(),
            expiries: BTreeSet::new(),
            latest: Latest::new(cfg.price_ttl_ms),
            pacer: Pacer::new(cfg.flush_ms),
            cfg,
            clients: Clients::default(),
            state: UpstreamState::Reconnecting,
            next_conn: 1,
            dirty: BTreeSet::new(),
            churn: (0, 0),
            churn_due: None,
            tick_at: None,
            beat: None,
            interest_changed: false,
            stats: FanoutStats::default(),
        }
    }

    /// Takes in a batch without sending anything (a restart's restored prices).
    pub fn load(&mut self, batch: &Batch) {
        self.latest.apply(batch);
        if let Some(s) = batch.state {
            self.state = s.state;
        }
        self.apply_events(batch, false, 0, &mut Vec::new());
        self.apply_market(batch, false);
    }

    /// Takes in a batch from the feed: changed prices newer than the ones held are flushed
    /// to their subscribers (at once or in a window, as the pacer says), then a state change
    /// is announced.
    pub fn apply(&mut self, batch: &Batch, now_ms: i64, fx: &mut Vec<Effect>) {
        // An object that slept past a token's expiry closes it before delivering anything.
        self.expire(now_ms, fx);
        for symbol in self.latest.apply(batch) {
            if self.clients.subscribers(symbol).next().is_none() {
                continue;
            }
            self.dirty.insert(symbol.clone());
            self.pacer.change(now_ms);
        }
        if let Some(s) = batch.state {
            self.state = s.state;
            if s.announce {
                self.announce(now_ms, fx);
            }
        }
        self.apply_events(batch, true, now_ms, fx);
        if self.apply_market(batch, true) {
            self.pacer.change(now_ms);
        }
    }

    /// Sends every change gathered since the last flush: clients with the same changed
    /// symbols share one frame, assembled from the prices' encodings; SSE readers get the
    /// symbols added to their pending set and are woken if they wait.
    fn flush(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let dirty = std::mem::take(&mut self.dirty);
        let mut per_conn: FastMap<ConnId, Vec<&String>> = FastMap::default();
        for symbol in &dirty {
            for conn in self.clients.subscribers(symbol) {
                per_conn.entry(conn).or_default().push(symbol);
            }
        }
        // Clients of the same wire with the same changed symbols share one frame.
        let mut groups: FastMap<(Wire, Vec<&String>), Vec<ConnId>> = FastMap::default();
        let mut wake = Vec::new();
        for (conn, symbols) in per_conn {
            let Some(client) = self.clients.get_mut(conn) else {
                continue;
            };
            match client.carrier.change(&symbols, now_ms) {
                Route::Send => groups.entry((client.wire, symbols)).or_default().push(conn),
                Route::Wake => wake.push(conn),
                Route::Held => {}
            }
        }
        let (mut frames, mut crowded, mut fell_behind) = (0, 0, false);
        for ((wire, symbols), conns) in groups {
            let changes = symbols.len();
            let Some((body, max_seq)) = self.latest.body(symbols.iter().copied(), 0, now_ms) else {
                continue;
            };
            let framed = wire.frames(Payload::new(Kind::Prices, &body), None);
            let bytes: usize = framed.iter().map(String::len).sum();
            for conn in &conns {
                if let Some(client) = self.clients.get_mut(*conn) {
                    if let Carrier::WebSocket(flow) = &mut client.carrier {
                        fell_behind |= flow.sent(max_seq, bytes, now_ms);
                    }
                    let gap = client.last_price_at.replace(now_ms).map(|t| now_ms - t);
                    crowded += usize::from(self.pacer.crowded(changes, gap));
                }
            }
            frames += conns.len();
            self.count_symbols(symbols, conns.len());
            self.push_frames(conns, framed, fx);
        }
        self.pacer.flushed(now_ms, frames, crowded);
        if fell_behind {
            self.watch(now_ms);
        }
        if !wake.is_empty() {
            fx.push(Effect::SseWake { conns: wake });
        }
        self.flush_market(now_ms, fx);
    }

    /// Tells every client the upstream state: one frame per wire for the clients pushed to,
    /// an event queued for each SSE stream.
    fn announce(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let body = body::status(self.state.as_str(), now_ms);
        let payload = Payload::new(Kind::Status, &body);
        let (mut pushed, mut wake) = (BTreeMap::<Wire, Vec<ConnId>>::new(), Vec::new());
        for (conn, client) in self.clients.iter_mut() {
            match client.carrier.status(payload) {
                Route::Send => pushed.entry(client.wire).or_default().push(*conn),
                Route::Wake => wake.push(*conn),
                Route::Held => {}
            }
        }
        self.push_per_wire(pushed, payload, fx);
        if !wake.is_empty() {
            fx.push(Effect::SseWake { conns: wake });
        }
    }

    /// Sends `payload` to the clients pushed to, framed once per wire.
    fn push_per_wire(
        &mut self,
        pushed: BTreeMap<Wire, Vec<ConnId>>,
        payload: Payload<'_>,
        fx: &mut Vec<Effect>,
    ) {
        for (wire, conns) in pushed {
            let framed = wire.frames(payload, None);
            self.push_frames(conns, framed, fx);
        }
    }

    /// Sends each of `frames`, in order, to all of `conns` (one shared frame each).
    fn push_frames(&mut self, conns: Vec<ConnId>, frames: Vec<String>, fx: &mut Vec<Effect>) {
        let last = frames.len().saturating_sub(1);
        let mut conns = Some(conns);
        for (i, frame) in frames.into_iter().enumerate() {
            let targets = if i == last {
                conns.take().unwrap_or_default()
            } else {
                conns.clone().unwrap_or_default()
            };
            self.emit_all(targets, frame, fx);
        }
    }

    /// Counts `n` frames of `bytes` each.
    fn count_sent(&mut self, n: usize, bytes: usize) {
        self.stats.messages_sent += n as u64;
        self.stats.bytes_sent += (n * bytes) as u64;
    }

    /// Makes sure the periodic check runs within [`SSE_TICK_MS`].
    fn watch(&mut self, now_ms: i64) {
        self.tick_at.get_or_insert(now_ms + SSE_TICK_MS);
    }

    /// When the fan-out next needs [`Fanout::timer`]: a flush, the churn line or the check.
    pub fn timer_due(&self) -> Option<i64> {
        let beat = self.beat.map(|(at, _)| at);
        [self.pacer.due(), self.churn_due, self.tick_at, beat]
            .into_iter()
            .flatten()
            .min()
    }

    /// When a connection's token next expires. That is the object's alarm, not its in-memory
    /// timer: a pending timer keeps an object from hibernating for as long as a token lives
    /// (an hour, say), an alarm wakes it when it is due.
    pub fn expiry_due(&self) -> Option<i64> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// The object's alarm fired: the connections whose token expired are closed.
    pub fn alarm(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        self.expire(now_ms, fx);
    }

    /// The timer fired: flush what is due, log churn, and run the periodic check when due.
    pub fn timer(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        self.expire(now_ms, fx);
        if self.pacer.due().is_some_and(|t| t <= now_ms) {
            if self.pacer.windowed() {
                self.stats.flushes_windowed += 1;
            } else {
                self.stats.flushes_immediate += 1;
            }
            self.flush(now_ms, fx);
        }
        if self.churn_due.is_some_and(|t| t <= now_ms) {
            self.log_churn(fx);
        }
        self.heartbeat(now_ms, fx);
        if self.tick_at.is_some_and(|t| t <= now_ms) {
            self.tick(now_ms, fx);
        }
    }

    /// The periodic check: keeps SSE streams alive, warns and then closes readers that stay
    /// behind.
    fn tick(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let (mut wake, mut warn, mut too_slow) = (Vec::new(), Vec::new(), Vec::new());
        let (mut warn_sse, mut ended) = (Vec::new(), Vec::new());
        let mut watched = false;
        for (conn, client) in self.clients.iter_mut() {
            let sse = client.carrier.transport() == Transport::Sse;
            match (client.carrier.tick(now_ms), sse) {
                (Tick::Fine, _) => {}
                (Tick::Keepalive, _) => wake.push(*conn),
                (Tick::Warn, true) => {
                    self.stats.slow_consumers += 1;
                    warn_sse.push(*conn);
                }
                (Tick::Warn, false) => warn.push(*conn),
                (Tick::Close, true) => {
                    self.stats.slow_consumer_closes += 1;
                    ended.push(*conn);
                }
                (Tick::Close, false) => too_slow.push(*conn),
            }
            watched |= client.carrier.watched();
        }
        self.tick_at = watched.then_some(now_ms + SSE_TICK_MS);
        if !wake.is_empty() {
            fx.push(Effect::SseWake { conns: wake });
        }
        for conn in warn_sse {
            self.count_slow(conn);
        }
        self.end_streams(ended, now_ms, fx);
        for conn in warn {
            self.stats.slow_consumers += 1;
            self.count_slow(conn);
            let body = body::warning(
                "SLOW_CONSUMER",
                "you are not acknowledging fast enough; updates are held and sent as the newest \
                 value per symbol when you catch up (send {\"action\":\"ack\",\"seq\":N}); \
                 the connection closes with 4009 if this goes on",
            );
            self.send(conn, Payload::new(Kind::Warning, &body), fx);
        }
        for conn in too_slow {
            self.stats.slow_consumer_closes += 1;
            self.close_client(conn, close::SLOW_CONSUMER, "slow consumer", now_ms, fx);
        }
    }

    /// Counts a connection opened (`true`) or closed, for the next churn line.
    fn churn(&mut self, opened: bool, now_ms: i64) {
        if opened {
            self.churn.0 += 1;
        } else {
            self.churn.1 += 1;
        }
        self.churn_due.get_or_insert(now_ms + CHURN_LOG_MS);
    }

    fn log_churn(&mut self, fx: &mut Vec<Effect>) {
        self.churn_due = None;
        let (opened, closed) = std::mem::take(&mut self.churn);
        let (ws, sse) = self.clients.counts();
        fx.push(Effect::Log {
            level: Level::Info,
            event: "clients",
            detail: format!(
                "{opened} opened, {closed} closed in the last second; now {ws} websocket, {sse} sse"
            ),
        });
    }

    /// The symbols clients listen to (what an on-demand upstream must carry).
    pub fn interest(&self) -> BTreeSet<String> {
        self.clients.symbols_in_use()
    }

    /// True once after [`Fanout::interest`] changed.
    pub fn take_interest_changed(&mut self) -> bool {
        std::mem::take(&mut self.interest_changed)
    }

    /// Records how long the edge took to carry out one fan-out.
    pub fn observe_fanout(&mut self, seconds: f64) {
        self.stats.fanout.observe(seconds);
    }

    /// Counters so far.
    pub fn stats(&self) -> &FanoutStats {
        &self.stats
    }

    /// The upstream state as last reported by the feed.
    pub fn state(&self) -> UpstreamState {
        self.state
    }

    /// The highest `seq` taken in.
    pub fn seq(&self) -> u64 {
        self.latest.seq()
    }

    /// Client connections by transport: (WebSocket, SSE).
    pub fn client_counts(&self) -> (usize, usize) {
        self.clients.counts()
    }

    /// The fan-out's part of `/health` and `/metrics`.
    pub fn report(&self) -> FanoutReport {
        let (pushed, sse) = self.clients.counts();
        let polling = self.clients.polling();
        FanoutReport {
            websocket: pushed - polling,
            socketio: self.clients.socketio().count(),
            polling,
            sse,
            stored_attachments: self.clients.stored(),
            max_connections: self.cfg.max_connections,
            subscribers: self.subscribers_by_symbol(),
            stats: self.stats.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
