//! The hub state machine: inputs (client frames, upstream frames, alarms) in, [`Effect`]s out.
//!
//! It owns the cache, the registry and the upstream [`Link`], and decides everything; the
//! edge carries effects out in order and feeds results back in. Time (`now_ms`) and
//! randomness (`jitter`) are arguments, so every decision can be replayed in a unit test.

use std::collections::BTreeSet;
use std::rc::Rc;

use serde_json::{json, Value};

pub use super::effect::{Effect, Level};

use super::cache::{Entry, PriceCache};
use super::config::{Config, UpstreamMode};
use super::error::{ApiError, ClientError, ErrorCode};
use super::fastmap::FastMap;
use super::link::{BreakerState, Failure, FrameVerdict, Link, LinkSettings, UpstreamState};
use super::metrics::{Exposition, Histogram};
use super::pacer::{Pace, Pacer};
use super::price::Price;
use super::protocol::{self, close, sse_event, Command};
use super::registry::{ConnId, Registry};
use super::rest;
use super::session::{RateVerdict, Session, Transport};
use super::symbol::canonical;
use super::upstream::{parse_frame, stream_name, StreamKind, UpstreamFrame};

/// Connected but silent for this long: `/health` says `degraded` (the watchdog replaces the
/// connection later, at `UPSTREAM_WATCHDOG_SECONDS`).
pub const SILENT_MS: i64 = 10_000;
/// Upstream frames larger than this are skipped unparsed: no market-stream payload comes
/// near it, so it can only be garbage, and parsing it would cost the hub for nothing.
pub const MAX_UPSTREAM_FRAME_BYTES: usize = 64 * 1024;
/// Streams subscribed per symbol: 24 h statistics and the real-time best bid/ask.
pub const STREAM_KINDS: [StreamKind; 2] = [StreamKind::Ticker, StreamKind::BookTicker];
/// Changed prices are written to storage at most this often (one transaction each).
pub const PERSIST_EVERY_MS: i64 = 1_000;
/// `seq` values are reserved in storage this many at a time, and a new block is reserved
/// when half of the current one is used, so no update waits for a write of its own.
pub const SEQ_BLOCK: u64 = 100_000;
/// Connections opened and closed are logged as one summary line at most this often: a line
/// per connection costs more than the connection itself in a storm (each line crosses to
/// the log sink, and under `wrangler dev` through its inspector).
pub const CHURN_LOG_MS: i64 = 1_000;
/// Capacity above which `/health` raises an alert.
const CAPACITY_ALERT_PCT: f64 = 80.0;
/// An SSE stream idle this long gets a `: keepalive` comment (docs/protocol.md: at least every 15 s).
pub const KEEPALIVE_MS: i64 = 10_000;
/// How often SSE streams are checked for keepalives and slow readers.
pub const SSE_TICK_MS: i64 = 2_000;
/// An SSE reader that has not pulled pending updates for this long is warned `SLOW_CONSUMER`.
pub const SLOW_WARN_MS: i64 = 5_000;
/// ... and closed after this long (it reconnects and resumes with `Last-Event-ID`).
pub const SLOW_CLOSE_MS: i64 = 30_000;

/// Counters for `/health` and `/metrics`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stats {
    /// Upstream frames received from the active connection.
    pub upstream_frames: u64,
    /// Upstream frames skipped as invalid.
    pub upstream_errors: u64,
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
    /// REST snapshot requests the leader answered (edge cache misses).
    pub snapshot_requests: u64,
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
}

/// The hub.
#[derive(Debug)]
pub struct Hub {
    cfg: Config,
    cache: PriceCache,
    registry: Registry,
    link: Link,
    announced: UpstreamState,
    alarm_at: Option<i64>,
    next_conn: ConnId,
    stats: Stats,
    sessions: FastMap<ConnId, Session>,
    /// Symbols changed since the last flush.
    dirty: BTreeSet<String>,
    /// When changes are sent: at once, or gathered into windows under load.
    pacer: Pacer,
    /// Symbols changed since the last write to storage.
    unsaved: BTreeSet<String>,
    /// When the next write to storage is due.
    persist_at: Option<i64>,
    /// The `seq` high-water mark last written (a restart starts above it).
    seq_reserved: u64,
    /// Every change up to this `seq` has been handed to storage.
    saved_seq: u64,
    /// Connections opened and closed since the last churn log line.
    churn: (u64, u64),
    /// When the next churn line is due.
    churn_due: Option<i64>,
    /// The in-memory timer currently requested.
    timer_at: Option<i64>,
}

/// What an SSE stream gets when it asks for more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseTake {
    /// Bytes to send.
    Data(String),
    /// Nothing yet: park until an [`Effect::SseWake`].
    Pending,
    /// End the stream.
    Closed,
}

impl Hub {
    /// A hub with an empty cache and no connections.
    pub fn new(cfg: Config) -> Hub {
        let cache = PriceCache::new(cfg.price_ttl_ms);
        let pacer = Pacer::new(cfg.flush_ms);
        let link = Link::new(LinkSettings {
            urls: cfg.upstream_urls.clone(),
            watchdog_ms: cfg.watchdog_ms,
            max_age_ms: cfg.max_age_ms,
            idle_close_ms: cfg.idle_close_ms,
            on_demand: cfg.upstream_mode == UpstreamMode::OnDemand,
        });
        Hub {
            cfg,
            cache,
            registry: Registry::default(),
            link,
            announced: UpstreamState::Reconnecting,
            alarm_at: None,
            next_conn: 1,
            stats: Stats::default(),
            sessions: FastMap::default(),
            dirty: BTreeSet::new(),
            pacer,
            unsaved: BTreeSet::new(),
            persist_at: None,
            seq_reserved: 0,
            saved_seq: 0,
            churn: (0, 0),
            churn_due: None,
            timer_at: None,
        }
    }

    /// The configuration the hub runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Loads persisted prices (see [`PriceCache::restore`]).
    pub fn restore_prices(&mut self, prices: Vec<Price>, seq_floor: u64, now_ms: i64) {
        let served: Vec<Price> = prices
            .into_iter()
            .filter(|p| self.cfg.symbols.contains(&p.symbol))
            .collect();
        self.cache.restore(served, seq_floor, now_ms);
    }

    /// The highest `seq` handed out.
    pub fn seq(&self) -> u64 {
        self.cache.seq()
    }

    /// Takes back the upstream link's memory persisted by an earlier instance (see
    /// [`super::link::LinkMemory`]); an unreadable memory is ignored and reported.
    pub fn restore_link(&mut self, json: &str) -> Result<(), String> {
        let memory = serde_json::from_str(json).map_err(|e| e.to_string())?;
        self.link.restore(memory);
        Ok(())
    }

    // ----- upstream -------------------------------------------------------------------

    /// The streams the upstream should carry: every whitelisted symbol (`always`), or the
    /// symbols someone listens to (`on-demand`).
    fn wanted_streams(&self) -> BTreeSet<String> {
        let symbols: Vec<String> = match self.cfg.upstream_mode {
            UpstreamMode::Always => self.cfg.symbols.iter().cloned().collect(),
            UpstreamMode::OnDemand => self.registry.symbols_in_use().into_iter().collect(),
        };
        symbols
            .iter()
            .flat_map(|s| STREAM_KINDS.iter().map(move |k| stream_name(s, *k)))
            .collect()
    }

    fn refresh_wanted(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let wanted = self.wanted_streams();
        self.link.want(wanted, now_ms, fx);
        self.announce(now_ms, fx);
        self.schedule(now_ms, fx);
    }

    /// Starts (or re-checks) the upstream. Cheap and safe to call on every event: it does
    /// something only when the wanted streams are not being served.
    pub fn start(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        // A new instance reserves its first block of `seq` before it hands any out.
        if self.seq_reserved == 0 {
            self.persist(now_ms, &mut fx);
        }
        if self.alarm_at.is_none() || (!self.link.is_connected() && !self.link.is_idle()) {
            self.refresh_wanted(now_ms, &mut fx);
        }
        fx
    }

    /// The upstream WebSocket of `generation` is open.
    pub fn upstream_opened(&mut self, generation: u64, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.link.opened(generation, now_ms, &mut fx);
        self.announce(now_ms, &mut fx);
        self.schedule(now_ms, &mut fx);
        fx
    }

    /// The upstream of `generation` failed to open, errored or closed.
    pub fn upstream_failed(
        &mut self,
        generation: u64,
        failure: Failure,
        now_ms: i64,
        jitter: f64,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.link
            .failed(generation, failure, now_ms, jitter, &mut fx);
        self.announce(now_ms, &mut fx);
        self.schedule(now_ms, &mut fx);
        fx
    }

    /// One text frame from the upstream of `generation`.
    pub fn upstream_text(&mut self, generation: u64, text: &str, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let verdict = self.link.frame(generation, now_ms, &mut fx);
        if verdict == FrameVerdict::Ignore {
            return fx;
        }
        self.stats.upstream_frames += 1;
        if text.len() > MAX_UPSTREAM_FRAME_BYTES {
            self.skip(
                format!("{} byte frame skipped unparsed", text.len()),
                &mut fx,
            );
        } else {
            match parse_frame(text) {
                Ok(UpstreamFrame::Update(u)) if self.cfg.symbols.contains(&u.symbol) => {
                    if let Some(entry) = self.cache.apply(&u, now_ms) {
                        let entry = entry.clone();
                        self.publish(&entry, now_ms, &mut fx);
                    }
                }
                Ok(UpstreamFrame::Update(u)) => {
                    self.skip(format!("unrequested symbol {}", u.symbol), &mut fx)
                }
                Ok(UpstreamFrame::ServerShutdown { .. }) => {
                    self.link.server_shutdown(generation, now_ms, &mut fx);
                    self.schedule(now_ms, &mut fx);
                }
                Ok(UpstreamFrame::Ack { .. }) => {}
                Ok(UpstreamFrame::Refusal { code, msg }) => self.skip(
                    format!("refusal {code}: {}", protocol::truncate(&msg, 200)),
                    &mut fx,
                ),
                Err(e) => self.skip(e.to_string(), &mut fx),
            }
        }
        // A switch changes timers; a breaker change is written at once, so a restarted
        // instance never starts from a breaker this one already closed.
        let timers_changed = matches!(verdict, FrameVerdict::Switched | FrameVerdict::FirstFrame);
        if timers_changed || self.link.is_dirty() {
            self.announce(now_ms, &mut fx);
            self.schedule(now_ms, &mut fx);
        }
        fx
    }

    /// A binary upstream frame: Binance sends none on market streams, so it is skipped.
    pub fn upstream_binary(&mut self, generation: u64, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.link.frame(generation, now_ms, &mut fx) != FrameVerdict::Ignore {
            self.stats.upstream_frames += 1;
            self.skip("binary frame skipped".into(), &mut fx);
        }
        fx
    }

    fn skip(&mut self, detail: String, fx: &mut Vec<Effect>) {
        self.stats.upstream_errors += 1;
        fx.push(Effect::Log {
            level: Level::Warn,
            event: "upstream_bad_frame",
            detail: protocol::truncate(&detail, 200),
        });
    }

    /// Fans a changed price out, then remembers it for the next write to storage: nothing
    /// durable stands between an update and its fan-out.
    fn publish(&mut self, entry: &Entry, now_ms: i64, fx: &mut Vec<Effect>) {
        let symbol = &entry.price.symbol;
        let mut arm = false;
        if self.registry.subscribers(symbol).next().is_some() {
            self.dirty.insert(symbol.clone());
            match self.pacer.change(now_ms) {
                Pace::Now => {
                    self.stats.flushes_immediate += 1;
                    self.flush(now_ms, fx);
                }
                Pace::At(_) => arm = true,
                Pace::Pending => {}
            }
        }
        self.unsaved.insert(symbol.clone());
        if self.cache.seq() + SEQ_BLOCK / 2 > self.seq_reserved {
            // Half of the reserved block is used: write now, but after this change's fan-out
            // (the timer flushes before it writes).
            self.persist_at = Some(now_ms);
            arm = true;
        } else if self.persist_at.is_none() {
            self.persist_at = Some(now_ms + PERSIST_EVERY_MS);
            arm = true;
        }
        if arm {
            self.arm_timer(now_ms, fx);
        }
    }

    /// Writes the prices changed since the last write, and reserves a new block of `seq`
    /// when half of the reserved one is used.
    fn persist(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        self.persist_at = None;
        let seq = self.cache.seq();
        self.saved_seq = seq;
        if seq + SEQ_BLOCK / 2 > self.seq_reserved {
            self.seq_reserved = seq + SEQ_BLOCK;
        }
        let prices = std::mem::take(&mut self.unsaved)
            .into_iter()
            .filter_map(|s| self.cache.get(&s, now_ms))
            .map(|e| (e.price.symbol.clone(), e.encoded.clone(), e.price.seq))
            .collect();
        fx.push(Effect::Persist {
            prices,
            seq_floor: self.seq_reserved,
        });
    }

    /// Sends every change gathered since the last flush: clients with the same changed
    /// symbols share one frame, assembled from the prices' encodings; SSE readers get the
    /// symbols added to their pending set and are woken if they wait.
    fn flush(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let dirty = std::mem::take(&mut self.dirty);
        let mut per_conn: FastMap<ConnId, Vec<&String>> = FastMap::default();
        for symbol in &dirty {
            for conn in self.registry.subscribers(symbol) {
                per_conn.entry(conn).or_default().push(symbol);
            }
        }
        let mut groups: FastMap<Vec<&String>, Vec<ConnId>> = FastMap::default();
        let mut wake = Vec::new();
        for (conn, symbols) in per_conn {
            let Some(session) = self.sessions.get_mut(&conn) else {
                continue;
            };
            match &mut session.sse {
                None if session.flow.behind_since.is_some() => {
                    session.flow.pending.extend(symbols.into_iter().cloned());
                }
                None => groups.entry(symbols).or_default().push(conn),
                Some(sse) => {
                    sse.pending.extend(symbols.into_iter().cloned());
                    sse.pending_since.get_or_insert(now_ms);
                    if sse.waiting {
                        wake.push(conn);
                    }
                }
            }
        }
        let mut fell_behind = false;
        let (mut frames, mut crowded) = (0, 0);
        for (symbols, conns) in groups {
            let changes = symbols.len();
            let Some((frame, max_seq)) = prices_frame_of(&self.cache, symbols, 0, now_ms) else {
                continue;
            };
            let frame: Rc<str> = frame.into();
            self.stats.messages_sent += conns.len() as u64;
            self.stats.bytes_sent += (conns.len() * frame.len()) as u64;
            for conn in &conns {
                if let Some(session) = self.sessions.get_mut(conn) {
                    fell_behind |= session.flow.sent(max_seq, frame.len(), now_ms);
                    let gap = session.last_price_at.replace(now_ms).map(|t| now_ms - t);
                    crowded += usize::from(self.pacer.crowded(changes, gap));
                }
            }
            frames += conns.len();
            fx.push(Effect::Fanout { conns, frame });
        }
        self.pacer.flushed(now_ms, frames, crowded);
        if fell_behind {
            self.arm_timer(now_ms, fx);
        }
        if !wake.is_empty() {
            fx.push(Effect::SseWake { conns: wake });
        }
    }

    /// Keeps one in-memory timer requested, at the earliest of the flush and the SSE tick.
    fn arm_timer(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let sse_tick = self
            .sessions
            .values()
            .any(|s| s.sse.is_some() || s.flow.behind_since.is_some())
            .then_some(now_ms + SSE_TICK_MS);
        let want = [self.pacer.due(), self.persist_at, self.churn_due, sse_tick]
            .into_iter()
            .flatten()
            .min();
        if let Some(want) = want {
            if self.timer_at.is_none_or(|t| t <= now_ms || want < t) {
                self.timer_at = Some(want);
                fx.push(Effect::Timer { at_ms: want });
            }
        }
    }

    /// The in-memory timer fired: flush what is due, keep SSE streams alive and find slow
    /// readers.
    pub fn timer(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.timer_at = None;
        if self.pacer.due().is_some_and(|t| t <= now_ms) {
            if self.pacer.windowed() {
                self.stats.flushes_windowed += 1;
            } else {
                self.stats.flushes_immediate += 1;
            }
            self.flush(now_ms, &mut fx);
        }
        if self.persist_at.is_some_and(|t| t <= now_ms) {
            self.persist(now_ms, &mut fx);
        }
        if self.churn_due.is_some_and(|t| t <= now_ms) {
            self.log_churn(&mut fx);
        }
        let mut wake = Vec::new();
        let mut warn = Vec::new();
        let mut too_slow = Vec::new();
        for (conn, session) in &mut self.sessions {
            if let Some(since) = session.flow.behind_since {
                if now_ms - since >= SLOW_CLOSE_MS {
                    too_slow.push(*conn);
                } else if now_ms - since >= SLOW_WARN_MS && !session.flow.warned {
                    session.flow.warned = true;
                    warn.push(*conn);
                }
            }
            let Some(sse) = &mut session.sse else {
                continue;
            };
            if sse.closing {
                continue;
            }
            let behind = sse
                .pending_since
                .filter(|_| !sse.waiting)
                .map(|t| now_ms - t);
            match behind {
                Some(ms) if ms >= SLOW_CLOSE_MS => {
                    sse.closing = true;
                    self.stats.slow_consumer_closes += 1;
                    wake.push(*conn);
                }
                Some(ms) if ms >= SLOW_WARN_MS && !sse.warned => {
                    sse.warned = true;
                    self.stats.slow_consumers += 1;
                    sse.events.push_back(sse_event(
                        "warning",
                        None,
                        r#"{"type":"warning","code":"SLOW_CONSUMER","message":"you are not reading fast enough; you get the newest value of each symbol, and the stream closes if this goes on"}"#,
                    ));
                }
                _ => {}
            }
            if sse.waiting && now_ms - sse.last_sent >= KEEPALIVE_MS {
                sse.keepalive_due = true;
                wake.push(*conn);
            }
        }
        if !wake.is_empty() {
            fx.push(Effect::SseWake { conns: wake });
        }
        for conn in warn {
            self.stats.slow_consumers += 1;
            let frame = protocol::warning_frame(
                "SLOW_CONSUMER",
                "you are not acknowledging fast enough; updates are held and sent as the newest \
                 value per symbol when you catch up (send {\"action\":\"ack\",\"seq\":N}); \
                 the connection closes with 4009 if this goes on",
            );
            self.send(conn, frame, &mut fx);
        }
        for conn in too_slow {
            self.stats.slow_consumer_closes += 1;
            self.close_client(conn, close::SLOW_CONSUMER, "slow consumer", now_ms, &mut fx);
        }
        self.arm_timer(now_ms, &mut fx);
        fx
    }

    /// The object's alarm fired.
    pub fn alarm(&mut self, now_ms: i64, jitter: f64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.seq_reserved == 0 {
            self.persist(now_ms, &mut fx);
        }
        self.alarm_at = None;
        let expired = self.cache.sweep(now_ms);
        if !expired.is_empty() {
            fx.push(Effect::Forget { symbols: expired });
        }
        let wanted = self.wanted_streams();
        self.link.want(wanted, now_ms, &mut fx);
        self.link.tick(now_ms, jitter, &mut fx);
        self.announce(now_ms, &mut fx);
        self.schedule(now_ms, &mut fx);
        fx
    }

    /// Keeps exactly one alarm set, at the earliest time the hub has something to do: the
    /// link's next deadline or the next TTL expiry. With nothing to do (an idle on-demand hub
    /// with an empty cache) no alarm is set and the object may hibernate.
    fn schedule(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        if self.link.take_dirty() {
            // Invariant: LinkMemory holds only numbers, strings and enums of them.
            let json = serde_json::to_string(&self.link.memory()).unwrap_or_default();
            fx.push(Effect::SaveLink { json });
        }
        let want = [self.link.next_wake(), self.cache.next_expiry()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(now_ms + 1));
        let Some(want) = want else {
            return;
        };
        match self.alarm_at {
            Some(t) if t > now_ms && t <= want => {}
            _ => {
                self.alarm_at = Some(want);
                fx.push(Effect::SetAlarm { at_ms: want });
            }
        }
    }

    /// Upstream state: `connected`, `reconnecting`, `down`, or `idle` (on-demand, unused).
    pub fn upstream_status(&self) -> UpstreamState {
        self.link.state()
    }

    fn announce(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let status = self.upstream_status();
        // `idle` is not a client-facing state: whoever is connected then listens to nothing.
        if status == self.announced || status == UpstreamState::Idle {
            return;
        }
        self.announced = status;
        let frame = protocol::status_frame(status.as_str(), now_ms);
        let mut ws = Vec::new();
        let mut wake = Vec::new();
        for (conn, session) in &mut self.sessions {
            match &mut session.sse {
                None => ws.push(*conn),
                Some(sse) => {
                    sse.events.push_back(sse_event("status", None, &frame));
                    if sse.waiting {
                        wake.push(*conn);
                    }
                }
            }
        }
        if !ws.is_empty() {
            self.stats.messages_sent += ws.len() as u64;
            self.stats.bytes_sent += (ws.len() * frame.len()) as u64;
            fx.push(Effect::Fanout {
                conns: ws,
                frame: frame.into(),
            });
        }
        if !wake.is_empty() {
            fx.push(Effect::SseWake { conns: wake });
        }
    }

    // ----- clients --------------------------------------------------------------------

    /// True while another client connection fits under `MAX_CONNECTIONS`; a refusal is
    /// counted.
    pub fn admit_client(&mut self) -> bool {
        let ok = self.sessions.len() < self.cfg.max_connections;
        if !ok {
            self.stats.refused_at_capacity += 1;
        }
        ok
    }

    /// Counts a connection opened (`true`) or closed, for the next churn line.
    fn churn(&mut self, opened: bool, now_ms: i64, fx: &mut Vec<Effect>) {
        if opened {
            self.churn.0 += 1;
        } else {
            self.churn.1 += 1;
        }
        if self.churn_due.is_none() {
            self.churn_due = Some(now_ms + CHURN_LOG_MS);
            self.arm_timer(now_ms, fx);
        }
    }

    fn log_churn(&mut self, fx: &mut Vec<Effect>) {
        self.churn_due = None;
        let (opened, closed) = std::mem::take(&mut self.churn);
        let (ws, sse) = self.client_counts();
        fx.push(Effect::Log {
            level: Level::Info,
            event: "clients",
            detail: format!(
                "{opened} opened, {closed} closed in the last second; now {ws} websocket, {sse} sse"
            ),
        });
    }

    /// Records how long the edge took to carry out one fan-out.
    pub fn observe_fanout(&mut self, seconds: f64) {
        self.stats.fanout.observe(seconds);
    }

    /// Registers a new connection and returns its id. The edge stores the id (with the empty
    /// subscription set) in the socket's attachment.
    pub fn client_open(&mut self, transport: Transport, now_ms: i64) -> (ConnId, Vec<Effect>) {
        let mut fx = Vec::new();
        self.churn(true, now_ms, &mut fx);
        (self.open_session(transport, now_ms), fx)
    }

    fn open_session(&mut self, transport: Transport, now_ms: i64) -> ConnId {
        self.stats.connections_opened += 1;
        let id = self.next_conn;
        self.next_conn += 1;
        self.registry.add_conn(id);
        let rate = self.cfg.client_messages_per_second;
        self.sessions
            .insert(id, Session::new(transport, rate, now_ms));
        id
    }

    /// Client connections by transport: (WebSocket, SSE).
    pub fn client_counts(&self) -> (usize, usize) {
        let sse = self.sessions.values().filter(|s| s.sse.is_some()).count();
        (self.sessions.len() - sse, sse)
    }

    /// Re-registers a connection found after the object woke from hibernation.
    pub fn client_restore(&mut self, conn: ConnId, symbols: &[String]) {
        let served: Vec<String> = symbols
            .iter()
            .filter(|s| self.cfg.symbols.contains(s))
            .cloned()
            .collect();
        self.registry.add_conn(conn);
        self.registry.subscribe(conn, &served);
        self.next_conn = self.next_conn.max(conn + 1);
        let rate = self.cfg.client_messages_per_second;
        self.sessions
            .entry(conn)
            .or_insert_with(|| Session::new(Transport::WebSocket, rate, 0));
    }

    /// True when the connection is registered.
    pub fn has_client(&self, conn: ConnId) -> bool {
        self.registry.has_conn(conn)
    }

    /// A connection closed or errored.
    pub fn client_closed(&mut self, conn: ConnId, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.sessions.remove(&conn).is_some() {
            self.churn(false, now_ms, &mut fx);
        }
        if !self.registry.remove_conn(conn).is_empty() {
            self.listeners_changed(now_ms, &mut fx);
        }
        fx
    }

    /// In on-demand mode the upstream follows the listeners; in `always` mode it does not.
    fn listeners_changed(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        if self.cfg.upstream_mode == UpstreamMode::OnDemand {
            self.refresh_wanted(now_ms, fx);
        }
    }

    /// Applies the per-connection message rate: `RATE_LIMITED` for a message over the rate,
    /// close 4008 for a client that keeps it up.
    fn rate_ok(&mut self, conn: ConnId, now_ms: i64, fx: &mut Vec<Effect>) -> bool {
        let rate = self.cfg.client_messages_per_second;
        let verdict = match self.sessions.get_mut(&conn) {
            Some(s) => s.limiter.check(rate, now_ms),
            None => RateVerdict::Allow,
        };
        match verdict {
            RateVerdict::Allow => true,
            RateVerdict::Reject { tell } => {
                self.stats.rate_limited += 1;
                if tell {
                    let e = ClientError::new(
                        ErrorCode::RateLimited,
                        format!("at most {rate} messages per second; this one was dropped"),
                    );
                    self.reject(conn, e, fx);
                }
                false
            }
            RateVerdict::Close => {
                self.stats.rate_limited += 1;
                self.stats.rate_limit_closes += 1;
                self.close_client(conn, close::RATE_LIMITED, "rate limited", now_ms, fx);
                false
            }
        }
    }

    /// A binary frame from a client: the protocol is JSON text only.
    pub fn client_binary(&mut self, conn: ConnId, len: usize, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if len > self.cfg.max_frame_bytes {
            self.close_client(conn, close::TOO_LARGE, "frame too large", now_ms, &mut fx);
            return fx;
        }
        if !self.rate_ok(conn, now_ms, &mut fx) {
            return fx;
        }
        self.reject(
            conn,
            ClientError::new(
                ErrorCode::BadRequest,
                "binary frames are not accepted; send JSON text",
            ),
            &mut fx,
        );
        fx
    }

    /// A text frame from a client.
    pub fn client_text(&mut self, conn: ConnId, text: &str, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if text.len() > self.cfg.max_frame_bytes {
            self.close_client(conn, close::TOO_LARGE, "frame too large", now_ms, &mut fx);
            return fx;
        }
        if !self.rate_ok(conn, now_ms, &mut fx) {
            return fx;
        }
        let cmd = match protocol::parse_command(text) {
            Ok(cmd) => cmd,
            Err(e) => {
                self.reject(conn, e, &mut fx);
                return fx;
            }
        };
        let named = match &cmd {
            Command::Subscribe { symbols, .. } | Command::Unsubscribe { symbols, .. } => {
                symbols.len()
            }
            _ => 0,
        };
        let cap = self.cfg.max_symbols_per_connection;
        if named > cap {
            let e = ClientError::new(
                ErrorCode::TooManySymbols,
                format!("a request may name at most {cap} symbols; this one names {named}"),
            );
            self.reject(conn, e.with_id(cmd.id()), &mut fx);
            return fx;
        }
        match cmd {
            Command::Subscribe { symbols, id } => match self.resolve(&symbols) {
                Err(e) => self.reject(conn, e.with_id(id), &mut fx),
                Ok(wanted) => self.subscribe(conn, wanted, id, now_ms, &mut fx),
            },
            Command::Unsubscribe { symbols, id } => match self.resolve(&symbols) {
                Err(e) => self.reject(conn, e.with_id(id), &mut fx),
                Ok(wanted) => {
                    let removed = self.registry.unsubscribe(conn, &wanted);
                    fx.push(self.save(conn));
                    if !removed.is_empty() {
                        self.listeners_changed(now_ms, &mut fx);
                    }
                    self.send(
                        conn,
                        protocol::symbols_frame("unsubscribed", &wanted, &id),
                        &mut fx,
                    );
                }
            },
            Command::List { id } => {
                let held = self.registry.subscriptions(conn);
                self.send(
                    conn,
                    protocol::symbols_frame("subscriptions", &held, &id),
                    &mut fx,
                );
            }
            Command::Ping { id } => self.send(conn, protocol::pong_frame(&id, now_ms), &mut fx),
            Command::Ack { seq } => self.ack(conn, seq, now_ms, &mut fx),
        }
        fx
    }

    /// A client acknowledged frames up to `seq`; one that was behind and has caught up gets
    /// the newest value of everything that changed meanwhile, in one frame.
    fn ack(&mut self, conn: ConnId, seq: u64, now_ms: i64, fx: &mut Vec<Effect>) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if !session.flow.ack(seq) {
            return;
        }
        let pending = std::mem::take(&mut session.flow.pending);
        let Some((frame, max_seq)) = prices_frame_of(&self.cache, &pending, 0, now_ms) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.flow.sent(max_seq, frame.len(), now_ms);
        }
        self.send(conn, frame, fx);
    }

    fn subscribe(
        &mut self,
        conn: ConnId,
        wanted: Vec<String>,
        id: Option<Value>,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        let new = wanted
            .iter()
            .filter(|s| !self.registry.subscriptions(conn).contains(s))
            .count();
        let total = self.registry.count(conn) + new;
        if total > self.cfg.max_symbols_per_connection {
            let e = ClientError::new(
                ErrorCode::TooManySymbols,
                format!(
                    "a connection may hold at most {} symbols; this would make {total}",
                    self.cfg.max_symbols_per_connection
                ),
            );
            self.reject(conn, e.with_id(id), fx);
            return;
        }
        let added = self.registry.subscribe(conn, &wanted);
        fx.push(self.save(conn));
        if !added.is_empty() {
            self.listeners_changed(now_ms, fx);
        }
        self.send(
            conn,
            protocol::symbols_frame("subscribed", &wanted, &id),
            fx,
        );
        let parts: Vec<Rc<str>> = wanted
            .iter()
            .filter_map(|s| self.cache.get(s, now_ms).map(|e| e.encoded.clone()))
            .collect();
        self.send(conn, protocol::prices_frame("snapshot", &parts), fx);
    }

    /// Canonicalises and whitelists symbols, keeping request order and dropping repeats.
    /// All-or-nothing: one unknown symbol rejects the whole request.
    fn resolve(&self, raw: &[String]) -> Result<Vec<String>, ClientError> {
        let mut out: Vec<String> = Vec::with_capacity(raw.len());
        let mut unknown = Vec::new();
        for s in raw {
            match self.cfg.symbols.resolve(s) {
                Some(c) if !out.contains(&c) => out.push(c),
                Some(_) => {}
                None => unknown.push(protocol::truncate(s, 24)),
            }
        }
        if unknown.is_empty() {
            return Ok(out);
        }
        let shown: Vec<String> = unknown.iter().take(5).map(|s| format!("{s:?}")).collect();
        Err(ClientError::new(
            ErrorCode::UnknownSymbol,
            format!(
                "not served: {}{}; nothing was changed",
                shown.join(", "),
                if unknown.len() > 5 { ", ..." } else { "" }
            ),
        ))
    }

    /// Closes a connection and forgets it at once: the edge then has nothing to reconcile,
    /// whatever the client does with the close handshake.
    fn close_client(
        &mut self,
        conn: ConnId,
        code: u16,
        reason: &'static str,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        if self.sessions.remove(&conn).is_some() {
            self.churn(false, now_ms, fx);
        }
        fx.push(Effect::Close { conn, code, reason });
        if !self.registry.remove_conn(conn).is_empty() {
            self.listeners_changed(now_ms, fx);
        }
    }

    fn save(&self, conn: ConnId) -> Effect {
        Effect::SaveSubscriptions {
            conn,
            symbols: self.registry.subscriptions(conn),
        }
    }

    fn send(&mut self, conn: ConnId, frame: String, fx: &mut Vec<Effect>) {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += frame.len() as u64;
        fx.push(Effect::Send {
            conn,
            frame: frame.into(),
        });
    }

    fn reject(&mut self, conn: ConnId, err: ClientError, fx: &mut Vec<Effect>) {
        self.stats.client_errors += 1;
        self.send(conn, protocol::error_frame(&err), fx);
    }

    // ----- Server-Sent Events -----------------------------------------------------------

    /// Opens an SSE stream for canonical `symbols`. Returns its id, the first bytes
    /// (`retry:`, then the snapshot, only symbols with a `seq` above `last_event_id` when the
    /// client resumes, then the upstream status if it is not `connected`), and the effects of
    /// a new listener.
    pub fn sse_open(
        &mut self,
        symbols: &[String],
        last_event_id: Option<u64>,
        now_ms: i64,
    ) -> Result<(ConnId, String, Vec<Effect>), ApiError> {
        if symbols.len() > self.cfg.max_symbols_per_connection {
            return Err(ApiError::TooManySymbols(format!(
                "a stream may carry at most {} symbols; {} were asked for",
                self.cfg.max_symbols_per_connection,
                symbols.len()
            )));
        }
        if !self.admit_client() {
            return Err(ApiError::AtCapacity(
                "the service is at its connection limit; retry shortly".into(),
            ));
        }
        let conn = self.open_session(Transport::Sse, now_ms);
        self.registry.subscribe(conn, symbols);
        let delivered = self.cache.seq();
        if let Some(sse) = self.sessions.get_mut(&conn).and_then(|s| s.sse.as_mut()) {
            sse.delivered = delivered;
        }
        let parts: Vec<Rc<str>> = symbols
            .iter()
            .filter_map(|s| self.cache.get(s, now_ms))
            .filter(|e| last_event_id.is_none_or(|id| e.price.seq > id))
            .map(|e| e.encoded.clone())
            .collect();
        let mut first = String::from("retry: 1000\n\n");
        let snapshot = protocol::prices_frame("snapshot", &parts);
        first.push_str(&sse_event("snapshot", Some(self.cache.seq()), &snapshot));
        let status = self.upstream_status();
        if !matches!(status, UpstreamState::Connected | UpstreamState::Idle) {
            first.push_str(&sse_event(
                "status",
                None,
                &protocol::status_frame(status.as_str(), now_ms),
            ));
        }
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += first.len() as u64;
        let mut fx = Vec::new();
        self.churn(true, now_ms, &mut fx);
        self.listeners_changed(now_ms, &mut fx);
        self.arm_timer(now_ms, &mut fx);
        Ok((conn, first, fx))
    }

    /// The stream of `conn` asks for its next bytes. The newest value of every pending
    /// symbol is assembled from the cache's encodings now, so a reader that was slow gets
    /// one up-to-date event instead of a backlog.
    pub fn sse_take(&mut self, conn: ConnId, now_ms: i64) -> SseTake {
        let Some(sse) = self.sessions.get_mut(&conn).and_then(|s| s.sse.as_mut()) else {
            return SseTake::Closed;
        };
        if sse.closing {
            return SseTake::Closed;
        }
        let mut out = String::new();
        while let Some(e) = sse.events.pop_front() {
            out.push_str(&e);
        }
        let pending = std::mem::take(&mut sse.pending);
        sse.pending_since = None;
        sse.warned = false;
        if let Some((frame, max_seq)) =
            prices_frame_of(&self.cache, &pending, sse.delivered, now_ms)
        {
            sse.delivered = max_seq;
            out.push_str(&sse_event("prices", Some(max_seq), &frame));
        }
        if out.is_empty() && sse.keepalive_due {
            out.push_str(": keepalive\n\n");
        }
        sse.keepalive_due = false;
        if out.is_empty() {
            sse.waiting = true;
            return SseTake::Pending;
        }
        sse.waiting = false;
        sse.last_sent = now_ms;
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += out.len() as u64;
        SseTake::Data(out)
    }

    /// The SSE stream ended (the reader went away, or it was closed).
    pub fn sse_closed(&mut self, conn: ConnId, now_ms: i64) -> Vec<Effect> {
        self.client_closed(conn, now_ms)
    }

    // ----- REST and health ------------------------------------------------------------

    /// Parses a `symbols=` list for REST: 400 for something that is not a symbol, 404 for a
    /// symbol that is not served.
    pub fn parse_symbol_query(&self, raw: &str) -> Result<Vec<String>, ApiError> {
        parse_symbol_query(&self.cfg, raw)
    }

    /// Body and weak ETag of `GET /api/prices` (all live symbols, or the requested ones that
    /// have data).
    pub fn rest_prices(&mut self, symbols: Option<&[String]>, now_ms: i64) -> (String, String) {
        self.stats.snapshot_requests += 1;
        let entries: Vec<&Entry> = match symbols {
            None => self.cache.live(now_ms).collect(),
            Some(list) => list
                .iter()
                .filter_map(|s| self.cache.get(s, now_ms))
                .collect(),
        };
        let tag = rest::etag(
            entries
                .iter()
                .map(|e| (e.price.symbol.as_str(), e.price.seq)),
        );
        let parts: Vec<String> = entries.iter().map(|e| e.with_age(now_ms)).collect();
        let body = format!(
            r#"{{"prices":[{}],"upstream":"{}","as_of":{now_ms}}}"#,
            parts.join(","),
            self.upstream_status()
        );
        (body, tag)
    }

    /// Body and weak ETag of `GET /api/prices/{symbol}` for a canonical, served symbol.
    pub fn rest_price(&mut self, symbol: &str, now_ms: i64) -> Result<(String, String), ApiError> {
        self.stats.snapshot_requests += 1;
        match self.cache.get(symbol, now_ms) {
            Some(e) => Ok((e.with_age(now_ms), rest::etag([(symbol, e.price.seq)]))),
            None => Err(ApiError::NoData {
                message: format!(
                    "no price for {symbol} yet; the upstream is {}",
                    self.upstream_status()
                ),
                retry_after_s: if self.link.is_connected() { 1 } else { 5 },
            }),
        }
    }

    /// `GET /metrics` in Prometheus text format.
    pub fn metrics(&self, now_ms: i64) -> String {
        let (ws, sse_clients) = self.client_counts();
        let st = &self.stats;
        let link = &self.link;
        let mut e = Exposition::default();
        e.family(
            "edgetick_connections",
            "gauge",
            "Client connections held, by transport.",
        )
        .sample(
            "edgetick_connections",
            &[("transport", "websocket")],
            ws as f64,
        )
        .sample(
            "edgetick_connections",
            &[("transport", "sse")],
            sse_clients as f64,
        );
        e.family(
            "edgetick_flushes_total",
            "counter",
            "Price fan-outs, by how they were paced: sent at once, or after a window of changes.",
        )
        .sample(
            "edgetick_flushes_total",
            &[("mode", "immediate")],
            st.flushes_immediate as f64,
        )
        .sample(
            "edgetick_flushes_total",
            &[("mode", "windowed")],
            st.flushes_windowed as f64,
        );
        e.single(
            "edgetick_connections_opened_total",
            "counter",
            "Client connections accepted.",
            st.connections_opened as f64,
        );
        e.family(
            "edgetick_clients_refused_total",
            "counter",
            "Client connections refused, by reason.",
        )
        .sample(
            "edgetick_clients_refused_total",
            &[("reason", "at_capacity")],
            st.refused_at_capacity as f64,
        );
        e.single(
            "edgetick_rate_limited_messages_total",
            "counter",
            "Client messages dropped by the per-connection rate limit.",
            st.rate_limited as f64,
        );
        e.family(
            "edgetick_clients_closed_total",
            "counter",
            "Clients closed by the server, by reason.",
        )
        .sample(
            "edgetick_clients_closed_total",
            &[("reason", "rate_limited")],
            st.rate_limit_closes as f64,
        )
        .sample(
            "edgetick_clients_closed_total",
            &[("reason", "slow_consumer")],
            st.slow_consumer_closes as f64,
        );
        e.single(
            "edgetick_slow_consumers_total",
            "counter",
            "Readers warned SLOW_CONSUMER.",
            st.slow_consumers as f64,
        );
        e.single(
            "edgetick_messages_sent_total",
            "counter",
            "Frames sent to clients.",
            st.messages_sent as f64,
        );
        e.single(
            "edgetick_sent_bytes_total",
            "counter",
            "Bytes of frames sent to clients.",
            st.bytes_sent as f64,
        );
        e.single(
            "edgetick_client_errors_total",
            "counter",
            "Client frames answered with an error frame.",
            st.client_errors as f64,
        );
        e.single(
            "edgetick_upstream_frames_total",
            "counter",
            "Frames received from the upstream exchange.",
            st.upstream_frames as f64,
        );
        e.single(
            "edgetick_upstream_frame_errors_total",
            "counter",
            "Upstream frames skipped as invalid.",
            st.upstream_errors as f64,
        );
        e.single(
            "edgetick_upstream_reconnects_total",
            "counter",
            "Upstream connections that replaced a failed one.",
            link.reconnects as f64,
        );
        e.single(
            "edgetick_upstream_rotations_total",
            "counter",
            "Make-before-break upstream rotations.",
            link.rotations as f64,
        );
        e.single(
            "edgetick_upstream_subscribe_requests_total",
            "counter",
            "Live SUBSCRIBE/UNSUBSCRIBE requests sent upstream.",
            link.requests_sent as f64,
        );
        e.single(
            "edgetick_upstream_connected",
            "gauge",
            "1 while an upstream connection delivers.",
            f64::from(u8::from(link.is_connected())),
        );
        e.single(
            "edgetick_upstream_consecutive_failures",
            "gauge",
            "Upstream failures since the last success.",
            f64::from(link.breaker().failures()),
        );
        let breaker = link.breaker().name();
        let fam = e.family(
            "edgetick_upstream_breaker_state",
            "gauge",
            "Circuit breaker state (1 for the current one).",
        );
        for state in ["closed", "open", "half_open"] {
            fam.sample(
                "edgetick_upstream_breaker_state",
                &[("state", state)],
                f64::from(u8::from(state == breaker)),
            );
        }
        let (fresh, acceptable, stale) = self.cache.freshness_counts(now_ms);
        e.family("edgetick_symbols", "gauge", "Cached symbols by freshness.")
            .sample("edgetick_symbols", &[("freshness", "fresh")], fresh as f64)
            .sample(
                "edgetick_symbols",
                &[("freshness", "acceptable")],
                acceptable as f64,
            )
            .sample("edgetick_symbols", &[("freshness", "stale")], stale as f64);
        e.single(
            "edgetick_seq",
            "gauge",
            "Highest price sequence number handed out.",
            self.cache.seq() as f64,
        );
        e.single(
            "edgetick_leader_snapshot_requests_total",
            "counter",
            "REST snapshot requests answered by the leader (edge cache misses).",
            st.snapshot_requests as f64,
        );
        e.histogram(
            "edgetick_fanout_duration_seconds",
            "Time to hand one update to every subscriber.",
            &st.fanout,
        );
        e.finish()
    }

    /// `GET /health`: HTTP status and body (see docs/protocol.md).
    ///
    /// - `healthy`: upstream connected and a frame within [`SILENT_MS`]; or an on-demand
    ///   upstream closed because nobody listens.
    /// - `down` (503): the circuit breaker is open, or the upstream is not connected and no
    ///   cached price is younger than 60 s.
    /// - `degraded`: anything between (serving usable cached prices while reconnecting,
    ///   or connected but silent).
    pub fn health(&self, now_ms: i64) -> (u16, String) {
        let (ws, sse_clients) = self.client_counts();
        let (fresh, acceptable, stale) = self.cache.freshness_counts(now_ms);
        let tracked = fresh + acceptable + stale;
        let link = &self.link;
        let connected = link.is_connected();
        let idle = link.is_idle();
        let breaker = link.breaker();
        let last_age = link.last_frame_at().map(|t| (now_ms - t).max(0));
        let silent = connected
            && last_age
                .or(link.connected_since().map(|t| now_ms - t))
                .is_some_and(|a| a >= SILENT_MS);
        let used_pct =
            ((ws + sse_clients) as f64 * 1000.0 / self.cfg.max_connections as f64).round() / 10.0;
        let mut alerts = Vec::new();
        if idle {
            alerts.push("upstream idle: on-demand and nobody listens".to_string());
        } else if !connected {
            let why = link
                .last_failure()
                .map(|(_, f)| f.describe())
                .unwrap_or_else(|| "connecting".into());
            alerts.push(format!(
                "upstream not connected ({} consecutive failures; last: {why})",
                breaker.failures()
            ));
        }
        if breaker.state() != BreakerState::Closed {
            alerts.push(format!("circuit breaker {}", breaker.name()));
        }
        if silent {
            alerts.push(format!(
                "upstream silent for {} ms",
                last_age.unwrap_or_default()
            ));
        }
        if stale > 0 {
            alerts.push(format!("{stale} symbols stale"));
        }
        let missing = self.cfg.symbols.len().saturating_sub(tracked);
        if missing > 0 && link.ever_connected() && self.cfg.upstream_mode == UpstreamMode::Always {
            alerts.push(format!("{missing} symbols have no price"));
        }
        if used_pct >= CAPACITY_ALERT_PCT {
            alerts.push(format!("capacity at {used_pct}%"));
        }
        let status = if (connected && !silent) || idle {
            "healthy"
        } else if matches!(breaker.state(), BreakerState::Open { .. })
            || (!connected && fresh + acceptable == 0)
        {
            "down"
        } else {
            "degraded"
        };
        let last_failure = link.last_failure().map(|(at, f)| {
            let status = match f {
                Failure::Refused { status, .. } => Some(*status),
                _ => None,
            };
            json!({"kind": f.kind(), "detail": f.describe(), "status": status, "at": at})
        });
        let body = json!({
            "status": status,
            "upstream": {
                "state": self.upstream_status().as_str(),
                "mode": match self.cfg.upstream_mode { UpstreamMode::Always => "always", UpstreamMode::OnDemand => "on-demand" },
                "endpoint": link.endpoint(),
                "connected_since": link.connected_since(),
                "consecutive_errors": breaker.failures(),
                "circuit_breaker": {
                    "state": breaker.name(),
                    "failures": breaker.failures(),
                    "open_until": breaker.open_until(),
                },
                "last_message_age_ms": last_age,
                "last_failure": last_failure,
                "attempts_last_5m": link.attempts_in_window(now_ms),
                "reconnects": link.reconnects,
                "rotations": link.rotations,
                "subscribe_requests": link.requests_sent,
                "frames": self.stats.upstream_frames,
                "frame_errors": self.stats.upstream_errors,
            },
            "clients": {"websocket": ws, "sse": sse_clients},
            "symbols": {
                "tracked": tracked,
                "fresh": fresh,
                "acceptable": acceptable,
                "stale": stale,
                "missing": missing,
            },
            "capacity": {"used_pct": used_pct, "max_connections": self.cfg.max_connections},
            "seq": self.cache.seq(),
            "storage": {"saved_seq": self.saved_seq, "seq_reserved": self.seq_reserved},
            "alerts": alerts,
        });
        (if status == "down" { 503 } else { 200 }, body.to_string())
    }
}

/// The live entries of `symbols` newer than `after`, as one `prices` frame assembled from
/// their encodings, with the highest `seq` in it; `None` when there is nothing to send.
fn prices_frame_of<'a>(
    cache: &PriceCache,
    symbols: impl IntoIterator<Item = &'a String>,
    after: u64,
    now_ms: i64,
) -> Option<(String, u64)> {
    let entries: Vec<&Entry> = symbols
        .into_iter()
        .filter_map(|s| cache.get(s, now_ms))
        .filter(|e| e.price.seq > after)
        .collect();
    let max_seq = entries.iter().map(|e| e.price.seq).max()?;
    let parts: Vec<&str> = entries.iter().map(|e| &*e.encoded).collect();
    Some((protocol::prices_frame("prices", &parts), max_seq))
}

/// Parses a REST `symbols=` list against the whitelist (shared by the Worker and the hub).
pub fn parse_symbol_query(cfg: &Config, raw: &str) -> Result<Vec<String>, ApiError> {
    parse_symbols_capped(cfg, raw, usize::MAX)
}

/// Parses the `symbols=` list of a stream: like [`parse_symbol_query`], but a list longer than
/// `MAX_SYMBOLS_PER_CONNECTION` is refused `TOO_MANY_SYMBOLS` before any name is looked at.
pub fn parse_stream_symbols(cfg: &Config, raw: &str) -> Result<Vec<String>, ApiError> {
    parse_symbols_capped(cfg, raw, cfg.max_symbols_per_connection)
}

/// Caps before content: the count is checked first, so an oversized request costs nothing
/// and always gets the same answer whatever names it carries.
fn parse_symbols_capped(cfg: &Config, raw: &str, cap: usize) -> Result<Vec<String>, ApiError> {
    let named = raw.split(',').filter(|s| !s.trim().is_empty()).count();
    if named > cap {
        return Err(ApiError::TooManySymbols(format!(
            "a stream may carry at most {cap} symbols; {named} were asked for"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for s in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(c) = canonical(s) else {
            return Err(ApiError::BadRequest(format!(
                "{:?} is not a symbol such as BTCUSDT",
                protocol::truncate(s, 24)
            )));
        };
        if !cfg.symbols.contains(&c) {
            return Err(ApiError::UnknownSymbol(format!("{c} is not served")));
        }
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(ApiError::BadRequest(
            "symbols= must name at least one symbol, e.g. symbols=BTCUSDT,ETHUSDT".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::link::CONNECT_TIMEOUT_MS;
    use std::collections::HashMap;

    const BTC: &str = r#"{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","E":1000,"s":"BTCUSDT","p":"1","P":"0.10","c":"100.5","o":"100","h":"101","l":"99","v":"10","q":"1000","b":"100.4","a":"100.6"}}"#;

    fn hub() -> Hub {
        let map: HashMap<&str, &str> = [
            ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
            (
                "UPSTREAM_URL",
                "ws://127.0.0.1:1/stream,ws://127.0.0.1:2/stream",
            ),
            ("MAX_SYMBOLS_PER_CONNECTION", "2"),
            ("MAX_FRAME_BYTES", "256"),
            ("MAX_CONNECTIONS", "2"),
            ("FLUSH_MS", "0"),
        ]
        .into_iter()
        .collect();
        Hub::new(Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap())
    }

    fn connected() -> Hub {
        let mut h = hub();
        h.start(0);
        h.upstream_opened(1, 0);
        h
    }

    fn ticker(symbol: &str, price: &str, event_time: i64) -> String {
        BTC.replace("btcusdt", &symbol.to_lowercase())
            .replace("BTCUSDT", symbol)
            .replace("100.5", price)
            .replace("\"E\":1000", &format!("\"E\":{event_time}"))
    }

    fn frames(fx: &[Effect], conn: ConnId) -> Vec<Value> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Send { conn: c, frame } if *c == conn => Some(frame.clone()),
                Effect::Fanout { conns, frame } if conns.contains(&conn) => Some(frame.clone()),
                _ => None,
            })
            .map(|f| serde_json::from_str(&f).unwrap())
            .collect()
    }

    #[test]
    fn start_connects_once_to_the_first_endpoint_with_every_stream() {
        let mut h = hub();
        let fx = h.start(0);
        let url = fx
            .iter()
            .find_map(|e| match e {
                Effect::ConnectUpstream { generation: 1, url } => Some(url.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            url,
            "ws://127.0.0.1:1/stream?streams=btcusdt@bookTicker/btcusdt@ticker/\
             ethusdt@bookTicker/ethusdt@ticker/solusdt@bookTicker/solusdt@ticker"
        );
        assert!(fx.iter().any(|e| matches!(e, Effect::SetAlarm { .. })));
        assert!(
            h.start(1).is_empty(),
            "already connecting: nothing more to do"
        );
    }

    #[test]
    fn subscribe_answers_subscribed_then_snapshot_then_live_prices() {
        let mut h = connected();
        h.upstream_text(1, &ticker("BTCUSDT", "100.5", 1), 10);
        let c = h.client_open(Transport::WebSocket, 0).0;
        let fx = h.client_text(
            c,
            r#"{"action":"subscribe","symbols":["btc/usdt","ETH-USDT"],"id":1}"#,
            20,
        );
        let f = frames(&fx, c);
        assert_eq!(
            f[0],
            json!({"type":"subscribed","symbols":["BTCUSDT","ETHUSDT"],"id":1})
        );
        assert_eq!(f[1]["type"], "snapshot");
        assert_eq!(
            f[1]["prices"].as_array().unwrap().len(),
            1,
            "only BTC has a value"
        );
        assert_eq!(f[1]["prices"][0]["price"], "100.5");
        assert!(fx.contains(&Effect::SaveSubscriptions {
            conn: c,
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()]
        }));
        let fx = h.upstream_text(1, &ticker("ETHUSDT", "2000.1", 2), 30);
        let f = frames(&fx, c);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0]["type"], "prices");
        assert_eq!(f[0]["prices"][0]["symbol"], "ETHUSDT");
        assert_eq!(f[0]["prices"][0]["price"], "2000.1");
        assert_eq!(f[0]["prices"][0]["seq"], 2);
    }

    #[test]
    fn each_client_gets_only_its_symbols_and_one_update_is_encoded_once() {
        let mut h = connected();
        let a = h.client_open(Transport::WebSocket, 0).0;
        let b = h.client_open(Transport::WebSocket, 0).0;
        let c = h.client_open(Transport::WebSocket, 0).0;
        h.client_text(a, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
        h.client_text(b, r#"{"action":"subscribe","symbols":["ETHUSDT"]}"#, 0);
        h.client_text(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
        let fx = h.upstream_text(1, &ticker("BTCUSDT", "1.5", 5), 1);
        let fanouts: Vec<_> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Fanout { conns, .. } => Some(conns.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(fanouts.len(), 1, "one encoded frame for all subscribers");
        let mut to = fanouts[0].clone();
        to.sort();
        assert_eq!(to, [a, c]);
        assert!(frames(&fx, b).is_empty());
    }

    #[test]
    fn unknown_symbol_is_an_error_and_changes_nothing() {
        let mut h = connected();
        let c = h.client_open(Transport::WebSocket, 0).0;
        let fx = h.client_text(
            c,
            r#"{"action":"subscribe","symbols":["BTCUSDT","DOGEUSDT"],"id":7}"#,
            0,
        );
        let f = frames(&fx, c);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0]["type"], "error");
        assert_eq!(f[0]["code"], "UNKNOWN_SYMBOL");
        assert_eq!(f[0]["id"], 7);
        assert!(f[0]["message"].as_str().unwrap().contains("DOGEUSDT"));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Close { .. })));
        let f = frames(&h.client_text(c, r#"{"action":"list"}"#, 0), c);
        assert_eq!(f[0], json!({"type":"subscriptions","symbols":[]}));
    }

    #[test]
    fn unsubscribe_list_and_ping() {
        let mut h = connected();
        let c = h.client_open(Transport::WebSocket, 0).0;
        h.client_text(
            c,
            r#"{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT"]}"#,
            0,
        );
        let f = frames(
            &h.client_text(
                c,
                r#"{"action":"unsubscribe","symbols":["ethusdt"],"id":2}"#,
                0,
            ),
            c,
        );
        assert_eq!(
            f[0],
            json!({"type":"unsubscribed","symbols":["ETHUSDT"],"id":2})
        );
        let f = frames(&h.client_text(c, r#"{"action":"list","id":3}"#, 0), c);
        assert_eq!(
            f[0],
            json!({"type":"subscriptions","symbols":["BTCUSDT"],"id":3})
        );
        let f = frames(&h.client_text(c, r#"{"action":"ping","id":4}"#, 1234), c);
        assert_eq!(f[0], json!({"type":"pong","id":4,"ts":1234}));
        let fx = h.upstream_text(1, &ticker("ETHUSDT", "3", 9), 1);
        assert!(
            frames(&fx, c).is_empty(),
            "unsubscribed symbol no longer arrives"
        );
    }

    #[test]
    fn limits_on_symbols_and_frame_size() {
        let mut h = connected();
        let c = h.client_open(Transport::WebSocket, 0).0;
        let f = frames(
            &h.client_text(
                c,
                r#"{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT","SOLUSDT"]}"#,
                0,
            ),
            c,
        );
        assert_eq!(f[0]["code"], "TOO_MANY_SYMBOLS");
        let big = format!(r#"{{"action":"list","pad":"{}"}}"#, "x".repeat(300));
        assert_eq!(
            h.client_text(c, &big, 0),
            vec![Effect::Close {
                conn: c,
                code: close::TOO_LARGE,
                reason: "frame too large"
            }]
        );
        assert!(!h.has_client(c), "a closed connection is forgotten at once");
        let c = h.client_open(Transport::WebSocket, 0).0;
        let f = frames(&h.client_binary(c, 3, 0), c);
        assert_eq!(f[0]["code"], "BAD_REQUEST");
        assert!(h.admit_client());
        h.client_open(Transport::WebSocket, 0);
        assert!(!h.admit_client(), "MAX_CONNECTIONS is 2");
        assert_eq!(h.stats().refused_at_capacity, 1);
        assert_eq!(
            h.client_binary(c, 300, 0).len(),
            1,
            "an oversized binary frame closes too"
        );
    }

    fn persists(fx: &[Effect]) -> Vec<(Vec<(String, u64)>, u64)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Persist { prices, seq_floor } => Some((
                    prices.iter().map(|(s, _, q)| (s.clone(), *q)).collect(),
                    *seq_floor,
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn prices_are_written_in_batches_after_their_fan_out() {
        let mut h = hub();
        let fx = h.start(0);
        assert_eq!(
            persists(&fx),
            [(vec![], SEQ_BLOCK)],
            "a block is reserved first"
        );
        h.upstream_opened(1, 0);
        let c = h.client_open(Transport::WebSocket, 0).0;
        h.client_text(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
        let fx = h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 100);
        assert_eq!(frames(&fx, c).len(), 1, "sent at once");
        assert!(
            persists(&fx).is_empty(),
            "no write between an update and its fan-out"
        );
        for (i, t) in [(2, 300), (3, 600)] {
            let fx = h.upstream_text(1, &ticker("BTCUSDT", &i.to_string(), i), t);
            assert!(persists(&fx).is_empty());
        }
        h.upstream_text(1, &ticker("ETHUSDT", "9", 1), 700);
        assert!(persists(&h.timer(1_099)).is_empty(), "not due yet");
        let fx = h.timer(1_100);
        assert_eq!(
            persists(&fx),
            [(
                vec![("BTCUSDT".to_string(), 3), ("ETHUSDT".to_string(), 4)],
                SEQ_BLOCK
            )],
            "one write with the newest value of each changed symbol"
        );
        assert!(
            persists(&h.timer(2_200)).is_empty(),
            "nothing changed, nothing written"
        );
    }

    #[test]
    fn seq_is_reserved_in_blocks_ahead_of_use() {
        let mut h = hub();
        h.restore_prices(vec![], 7_000_000, 0);
        assert_eq!(persists(&h.start(0)), [(vec![], 7_000_000 + SEQ_BLOCK)]);
        h.upstream_opened(1, 0);
        let mut writes = Vec::new();
        for i in 1..=SEQ_BLOCK / 2 + 1 {
            let fx = h.upstream_text(1, &ticker("BTCUSDT", &i.to_string(), i as i64), 0);
            writes.extend(persists(&fx));
        }
        assert!(
            writes.is_empty(),
            "never a write in the same step as an update"
        );
        writes.extend(persists(&h.timer(0)));
        assert_eq!(h.seq(), 7_000_000 + SEQ_BLOCK / 2 + 1);
        assert_eq!(
            writes.len(),
            1,
            "half a block used: the next block is reserved at once"
        );
        assert_eq!(writes[0].1, h.seq() + SEQ_BLOCK);
        assert!(
            writes[0].1 > h.seq(),
            "the stored floor is always above every seq handed out"
        );
    }

    #[test]
    fn the_first_frame_brings_the_watchdog_alarm_forward_to_the_cadence_limit() {
        let mut h = hub();
        h.start(0);
        // Nothing delivered yet: the alarm waits for the configured 30 s ceiling (or the
        // connect time-out before it).
        h.upstream_opened(1, 0);
        let fx = h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 1_000);
        assert!(
            fx.contains(&Effect::SetAlarm { at_ms: 6_000 }),
            "tickers promise a frame a second: 5 s after the first one, {fx:?}"
        );
    }

    #[test]
    fn caps_are_checked_before_symbols_are_resolved() {
        let mut h = connected();
        let c = h.client_open(Transport::WebSocket, 0).0;
        // Three unknown names over a cap of two: the count answers, not the content.
        let f = frames(
            &h.client_text(
                c,
                r#"{"action":"subscribe","symbols":["NOPE1","NOPE2","NOPE3"],"id":7}"#,
                0,
            ),
            c,
        );
        assert_eq!(f[0]["code"], "TOO_MANY_SYMBOLS", "{f:?}");
        assert_eq!(f[0]["id"], 7);
        let f = frames(
            &h.client_text(c, r#"{"action":"unsubscribe","symbols":["x","y","z"]}"#, 0),
            c,
        );
        assert_eq!(f[0]["code"], "TOO_MANY_SYMBOLS");
        // Within the cap, content is judged.
        let f = frames(
            &h.client_text(c, r#"{"action":"subscribe","symbols":["NOPE1"]}"#, 0),
            c,
        );
        assert_eq!(f[0]["code"], "UNKNOWN_SYMBOL");
        // Streams: the same order.
        let cfg = h.config().clone();
        assert!(matches!(
            parse_stream_symbols(&cfg, "a,b,<c>"),
            Err(ApiError::TooManySymbols(_))
        ));
        assert!(matches!(
            parse_stream_symbols(&cfg, "NOPEUSDT"),
            Err(ApiError::UnknownSymbol(_))
        ));
        assert_eq!(
            parse_stream_symbols(&cfg, "btc-usdt,ETHUSDT").unwrap(),
            ["BTCUSDT", "ETHUSDT"]
        );
    }

    #[test]
    fn bad_upstream_frames_are_counted_and_never_reach_the_cache() {
        let mut h = connected();
        let c = h.client_open(Transport::WebSocket, 0).0;
        h.client_text(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
        h.upstream_text(1, &ticker("BTCUSDT", "5", 1), 1);
        for garbage in [
            "{{{",
            &ticker("BTCUSDT", "NaN", 2),
            r#"{"stream":"x@depth","data":{}}"#,
        ] {
            let fx = h.upstream_text(1, garbage, 2);
            assert!(frames(&fx, c).is_empty());
        }
        h.upstream_binary(1, 3);
        assert_eq!(h.stats().upstream_errors, 4);
        let body: Value = serde_json::from_str(&h.rest_price("BTCUSDT", 3).unwrap().0).unwrap();
        assert_eq!(body["price"], "5");
    }

    #[test]
    fn upstream_failure_backs_off_announces_and_reconnects_on_the_alarm() {
        let mut h = connected();
        let c = h.client_open(Transport::WebSocket, 0).0;
        let fx = h.upstream_failed(
            1,
            Failure::Closed {
                code: 1006,
                reason: String::new(),
            },
            100,
            0.5,
        );
        assert!(fx.contains(&Effect::CloseUpstream { generation: 1 }));
        assert_eq!(frames(&fx, c)[0]["upstream"], "reconnecting");
        assert!(fx.contains(&Effect::SetAlarm { at_ms: 600 }), "{fx:?}");
        assert!(h
            .upstream_failed(1, Failure::Network("late duplicate".into()), 101, 0.5)
            .is_empty());
        assert!(!h
            .alarm(599, 0.5)
            .iter()
            .any(|e| matches!(e, Effect::ConnectUpstream { .. })));
        let fx = h.alarm(600, 0.5);
        assert!(fx
            .iter()
            .any(|e| matches!(e, Effect::ConnectUpstream { generation: 2, .. })));
        // Events of the replaced connection are ignored.
        assert!(h
            .upstream_text(1, &ticker("BTCUSDT", "1", 1), 601)
            .is_empty());
        let fx = h.upstream_opened(2, 700);
        assert_eq!(frames(&fx, c)[0]["upstream"], "connected");
        assert_eq!(h.link.reconnects, 1);
    }

    #[test]
    fn repeated_failures_move_to_the_next_endpoint_and_report_down() {
        let mut h = hub();
        h.start(0);
        let mut now = 0;
        let mut urls = Vec::new();
        for gen in 1..=6 {
            h.upstream_failed(
                gen,
                Failure::Refused {
                    status: 429,
                    retry_after_ms: None,
                },
                now,
                1.0,
            );
            now += 120_000;
            for e in h.alarm(now, 1.0) {
                if let Effect::ConnectUpstream { url, .. } = e {
                    urls.push(url);
                }
            }
        }
        assert!(urls[1].starts_with("ws://127.0.0.1:1/"));
        assert!(urls[2].starts_with("ws://127.0.0.1:2/"), "{urls:?}");
        // The last alarm came after the breaker's minute: a half-open trial is in flight.
        // It fails too, which re-opens the breaker at once.
        let refused = Failure::Refused {
            status: 429,
            retry_after_ms: None,
        };
        h.upstream_failed(7, refused, now, 1.0);
        assert_eq!(h.upstream_status(), "down");
        let (code, body) = h.health(now);
        assert_eq!(code, 503);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "down");
        assert_eq!(v["upstream"]["circuit_breaker"]["state"], "open");
    }

    #[test]
    fn a_connect_that_hangs_times_out() {
        let mut h = hub();
        h.start(0);
        let fx = h.alarm(CONNECT_TIMEOUT_MS, 0.0);
        assert!(fx.contains(&Effect::CloseUpstream { generation: 1 }));
        assert_eq!(h.upstream_status(), "reconnecting");
    }

    #[test]
    fn health_by_state() {
        let mut h = hub();
        let (code, body) = h.health(0);
        assert_eq!(code, 503, "never connected, no data: down, but it answers");
        assert!(body.contains(r#""status":"down""#));
        h.start(0);
        h.upstream_opened(1, 0);
        h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 1_000);
        let v: Value = serde_json::from_str(&h.health(2_000).1).unwrap();
        assert_eq!(v["status"], "healthy");
        assert_eq!(v["upstream"]["state"], "connected");
        assert_eq!(v["upstream"]["last_message_age_ms"], 1_000);
        assert_eq!(v["symbols"]["fresh"], 1);
        assert_eq!(v["clients"]["sse"], 0);
        let v: Value = serde_json::from_str(&h.health(20_000).1).unwrap();
        assert_eq!(v["status"], "degraded", "connected but silent");
        h.upstream_failed(1, Failure::Network("gone".into()), 20_000, 0.5);
        let (code, body) = h.health(21_000);
        assert_eq!(
            (code, body.contains("degraded")),
            (200, true),
            "cached value still usable"
        );
        let (code, _) = h.health(70_000);
        assert_eq!(code, 503, "nothing younger than 60 s and no upstream");
    }

    #[test]
    fn ttl_sweep_on_the_alarm_forgets_expired_prices() {
        let mut h = connected();
        h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 0);
        let fx = h.alarm(300_001, 0.0);
        assert!(fx.contains(&Effect::Forget {
            symbols: vec!["BTCUSDT".into()]
        }));
        assert!(matches!(
            h.rest_price("BTCUSDT", 300_001),
            Err(ApiError::NoData { .. })
        ));
    }

    #[test]
    fn restored_clients_and_prices_continue_where_they_were() {
        let mut h = hub();
        let p = Price {
            symbol: "BTCUSDT".into(),
            price: Some("7".into()),
            received_at: 0,
            seq: 41,
            ..Price::default()
        };
        h.restore_prices(vec![p], 50, 1_000);
        h.client_restore(9, &["BTCUSDT".to_string(), "NOTSERVED".to_string()]);
        assert_eq!(
            h.client_open(Transport::WebSocket, 0).0,
            10,
            "new ids continue above restored ones"
        );
        let body: Value = serde_json::from_str(&h.rest_price("BTCUSDT", 1_000).unwrap().0).unwrap();
        assert_eq!(body["price"], "7");
        h.start(1_000);
        h.upstream_opened(1, 1_000);
        let fx = h.upstream_text(1, &ticker("BTCUSDT", "8", 2), 1_100);
        let f = frames(&fx, 9);
        assert_eq!(
            f[0]["prices"][0]["seq"], 51,
            "seq continues above the persisted floor"
        );
    }

    fn hub_with(pairs: &[(&str, &str)]) -> Hub {
        let mut map: HashMap<&str, &str> = [
            ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT"),
            ("UPSTREAM_URL", "ws://127.0.0.1:1/stream"),
            ("FLUSH_MS", "0"),
        ]
        .into_iter()
        .collect();
        map.extend(pairs.iter().copied());
        Hub::new(Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap())
    }

    fn upstream_sends(fx: &[Effect]) -> Vec<Value> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::SendUpstream { text, .. } => Some(serde_json::from_str(text).unwrap()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn on_demand_follows_listeners() {
        let mut h = hub_with(&[
            ("UPSTREAM_MODE", "on-demand"),
            ("UPSTREAM_IDLE_CLOSE_SECONDS", "5"),
        ]);
        assert!(h
            .start(0)
            .iter()
            .all(|e| !matches!(e, Effect::ConnectUpstream { .. })));
        assert_eq!(h.upstream_status(), "idle");
        let a = h.client_open(Transport::WebSocket, 0).0;
        let fx = h.client_text(a, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 10);
        let url = fx
            .iter()
            .find_map(|e| match e {
                Effect::ConnectUpstream { url, .. } => Some(url.clone()),
                _ => None,
            })
            .expect("the first listener opens the upstream");
        assert!(
            url.ends_with("?streams=btcusdt@bookTicker/btcusdt@ticker"),
            "{url}"
        );
        h.upstream_opened(1, 20);
        let b = h.client_open(Transport::WebSocket, 0).0;
        let fx = h.client_text(b, r#"{"action":"subscribe","symbols":["ETHUSDT"]}"#, 1_000);
        assert_eq!(
            upstream_sends(&fx),
            [json!({"method":"SUBSCRIBE","params":["ethusdt@bookTicker","ethusdt@ticker"],"id":1})]
        );
        let fx = h.client_closed(b, 2_000);
        assert_eq!(upstream_sends(&fx)[0]["method"], "UNSUBSCRIBE");
        let fx = h.client_closed(a, 3_000);
        assert_eq!(
            upstream_sends(&fx),
            [
                json!({"method":"UNSUBSCRIBE","params":["btcusdt@bookTicker","btcusdt@ticker"],"id":3})
            ]
        );
        let fx = h.alarm(7_999, 0.0);
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::CloseUpstream { .. })),
            "grace period"
        );
        let fx = h.alarm(8_000, 0.0);
        assert!(
            fx.contains(&Effect::CloseUpstream { generation: 1 }),
            "{fx:?}"
        );
        assert_eq!(h.upstream_status(), "idle");
        let v: Value = serde_json::from_str(&h.health(8_000).1).unwrap();
        assert_eq!(v["status"], "healthy", "idle by design is not a fault");
    }

    #[test]
    fn rotation_delivers_every_change_once_with_growing_seq() {
        let mut h = connected();
        let c = h.client_open(Transport::WebSocket, 0).0;
        h.client_text(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
        let mut seen: Vec<u64> = Vec::new();
        let mut collect = |fx: &[Effect]| {
            for f in frames(fx, c) {
                if f["type"] == "prices" {
                    seen.push(f["prices"][0]["seq"].as_u64().unwrap());
                }
                assert_ne!(f["type"], "status", "no state change is visible: {f}");
            }
        };
        collect(&h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 10));
        let shutdown = r#"{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":11}}"#;
        let fx = h.upstream_text(1, shutdown, 11);
        assert!(fx
            .iter()
            .any(|e| matches!(e, Effect::ConnectUpstream { generation: 2, .. })));
        collect(&fx);
        collect(&h.upstream_opened(2, 12));
        collect(&h.upstream_text(1, &ticker("BTCUSDT", "2", 2), 13));
        // Both connections now carry the same update; only one reaches the client.
        let fx = h.upstream_text(2, &ticker("BTCUSDT", "2", 2), 14);
        assert!(fx.contains(&Effect::CloseUpstream { generation: 1 }));
        collect(&fx);
        collect(&h.upstream_text(1, &ticker("BTCUSDT", "3", 3), 15));
        collect(&h.upstream_text(2, &ticker("BTCUSDT", "3", 3), 16));
        collect(&h.upstream_failed(
            1,
            Failure::Closed {
                code: 1000,
                reason: "shutdown".into(),
            },
            17,
            0.0,
        ));
        assert_eq!(seen, [1, 2, 3], "every change once, in order");
        assert_eq!(h.upstream_status(), "connected");
    }

    #[test]
    fn book_ticker_merges_bid_and_ask_into_the_price() {
        let mut h = connected();
        h.upstream_text(1, &ticker("BTCUSDT", "100.5", 1_000), 10);
        let book = r#"{"stream":"btcusdt@bookTicker","data":{"u":5,"s":"BTCUSDT","b":"100.40","B":"1","a":"100.70","A":"2"}}"#;
        h.upstream_text(1, book, 20);
        let v: Value = serde_json::from_str(&h.rest_price("BTCUSDT", 20).unwrap().0).unwrap();
        assert_eq!(
            (v["price"].as_str(), v["bid"].as_str(), v["ask"].as_str()),
            (Some("100.5"), Some("100.40"), Some("100.70"))
        );
        assert_eq!(
            v["event_time"], 20,
            "book changes carry the hub's receive time"
        );
        assert_eq!(v["seq"], 2);
    }

    #[test]
    fn oversized_upstream_frames_are_skipped_unparsed() {
        let mut h = connected();
        let big = format!(
            r#"{{"stream":"btcusdt@ticker","pad":"{}"}}"#,
            "x".repeat(MAX_UPSTREAM_FRAME_BYTES)
        );
        assert!(h.upstream_text(1, &big, 1).iter().any(|e| matches!(
            e,
            Effect::Log {
                event: "upstream_bad_frame",
                ..
            }
        )));
        assert_eq!(h.stats().upstream_errors, 1);
    }

    #[test]
    fn etag_follows_seq_and_metrics_count_what_happened() {
        let mut h = connected();
        h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 1_000);
        let (_, a) = h.rest_price("BTCUSDT", 1_000).unwrap();
        let (_, b) = h.rest_price("BTCUSDT", 2_000).unwrap();
        assert_eq!(a, b, "age changes, data does not");
        h.upstream_text(1, &ticker("BTCUSDT", "2", 2), 2_500);
        assert_ne!(h.rest_price("BTCUSDT", 3_000).unwrap().1, a);
        let c = h.client_open(Transport::WebSocket, 0).0;
        h.client_text(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 3_000);
        h.upstream_text(1, &ticker("BTCUSDT", "3", 3), 3_100);
        h.observe_fanout(0.002);
        let m = h.metrics(3_200);
        for line in [
            "edgetick_connections{transport=\"websocket\"} 1",
            "edgetick_connections{transport=\"sse\"} 0",
            "edgetick_leader_snapshot_requests_total 3",
            "edgetick_upstream_frames_total 3",
            "edgetick_upstream_connected 1",
            "edgetick_upstream_breaker_state{state=\"closed\"} 1",
            "edgetick_symbols{freshness=\"fresh\"} 1",
            "edgetick_fanout_duration_seconds_count 1",
            "edgetick_messages_sent_total 3",
        ] {
            assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
        }
    }

    fn live_with(pairs: &[(&str, &str)]) -> Hub {
        let mut h = hub_with(pairs);
        h.start(0);
        h.upstream_opened(1, 0);
        h
    }

    #[test]
    fn an_idle_hub_sends_at_once_and_a_burst_shares_one_frame_per_client() {
        let mut h = live_with(&[("FLUSH_MS", "20")]);
        let (a, _) = h.client_open(Transport::WebSocket, 0);
        let (b, _) = h.client_open(Transport::WebSocket, 0);
        let (c, _) = h.client_open(Transport::WebSocket, 0);
        h.client_text(
            a,
            r#"{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT"]}"#,
            0,
        );
        h.client_text(
            b,
            r#"{"action":"subscribe","symbols":["BTCUSDT","ETHUSDT"]}"#,
            0,
        );
        h.client_text(c, r#"{"action":"subscribe","symbols":["ETHUSDT"]}"#, 0);
        // Nothing was sent recently: the flush is due at once, after the input at hand.
        let fx = h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 100);
        assert!(fx.contains(&Effect::Timer { at_ms: 100 }), "{fx:?}");
        let fx = h.upstream_text(1, &ticker("ETHUSDT", "2", 1), 100);
        assert!(
            frames(&fx, a).is_empty(),
            "arrived together: joins the same flush"
        );
        let fx = h.timer(100);
        assert_eq!(frames(&fx, a).len(), 1, "one frame for both: {fx:?}");
        assert_eq!(frames(&fx, a)[0]["prices"].as_array().unwrap().len(), 2);
        // More changes in the instant of that flush (it is still being carried out) open a
        // window, and what arrives during it is sent together at its end.
        let fx = h.upstream_text(1, &ticker("ETHUSDT", "2.5", 2), 100);
        assert!(fx.contains(&Effect::Timer { at_ms: 120 }), "{fx:?}");
        h.upstream_text(1, &ticker("BTCUSDT", "3", 2), 110);
        h.upstream_text(1, &ticker("ETHUSDT", "2", 3), 115);
        let fx = h.timer(120);
        let fanouts: Vec<(Vec<ConnId>, Value)> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Fanout { conns, frame } => {
                    let mut c = conns.clone();
                    c.sort();
                    Some((c, serde_json::from_str(frame).unwrap()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            fanouts.len(),
            2,
            "one frame per distinct set of changes: {fanouts:?}"
        );
        let ab = fanouts
            .iter()
            .find(|(c, _)| *c == vec![a, b])
            .expect("a and b share a frame");
        let prices: Vec<(&str, &str)> = ab.1["prices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["symbol"].as_str().unwrap(), p["price"].as_str().unwrap()))
            .collect();
        assert_eq!(
            prices,
            [("BTCUSDT", "3"), ("ETHUSDT", "2")],
            "newest value per symbol, conflated"
        );
        let only_c = fanouts.iter().find(|(cs, _)| *cs == vec![c]).unwrap();
        assert_eq!(only_c.1["prices"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn sse_streams_snapshot_then_conflated_pulls_then_resume() {
        let mut h = live_with(&[]);
        h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 10);
        h.upstream_text(1, &ticker("ETHUSDT", "2", 1), 11);
        let (conn, first, _) = h
            .sse_open(&["BTCUSDT".into(), "ETHUSDT".into()], None, 20)
            .unwrap();
        assert!(
            first
                .starts_with("retry: 1000\n\nevent: snapshot\nid: 2\ndata: {\"type\":\"snapshot\""),
            "{first}"
        );
        assert!(first.contains("\"BTCUSDT\"") && first.contains("\"ETHUSDT\""));
        assert_eq!(h.client_counts(), (0, 1));
        assert_eq!(h.sse_take(conn, 21), SseTake::Pending, "nothing new: park");
        let fx = h.upstream_text(1, &ticker("BTCUSDT", "3", 2), 30);
        assert!(fx.contains(&Effect::SseWake { conns: vec![conn] }));
        // A reader that does not pull gets the newest value once, not a backlog.
        h.upstream_text(1, &ticker("BTCUSDT", "4", 3), 31);
        h.upstream_text(1, &ticker("BTCUSDT", "5", 4), 32);
        let SseTake::Data(d) = h.sse_take(conn, 40) else {
            panic!("data expected")
        };
        assert_eq!(d.matches("event: prices").count(), 1, "{d}");
        assert!(d.starts_with("event: prices\nid: 5\n"), "{d}");
        assert!(d.contains("\"price\":\"5\"") && !d.contains("\"price\":\"4\""));
        // Resume: only what changed after the given id.
        h.upstream_text(1, &ticker("ETHUSDT", "6", 2), 50);
        let (_, resumed, _) = h
            .sse_open(&["BTCUSDT".into(), "ETHUSDT".into()], Some(5), 60)
            .unwrap();
        assert!(
            resumed.contains("\"ETHUSDT\"") && !resumed.contains("\"BTCUSDT\""),
            "{resumed}"
        );
        h.sse_closed(conn, 70);
        assert_eq!(h.client_counts(), (0, 1));
        assert_eq!(h.sse_take(conn, 71), SseTake::Closed);
    }

    #[test]
    fn sse_never_repeats_what_the_snapshot_carried() {
        let mut h = live_with(&[("FLUSH_MS", "20")]);
        let a = h.client_open(Transport::WebSocket, 0).0;
        h.client_text(a, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
        h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 100);
        // The stream opens inside the flush window: its snapshot already has seq 1.
        let (conn, first, _) = h.sse_open(&["BTCUSDT".into()], None, 105).unwrap();
        assert!(first.contains("id: 1\n"));
        h.timer(120);
        assert_eq!(
            h.sse_take(conn, 121),
            SseTake::Pending,
            "nothing new for this stream"
        );
        h.upstream_text(1, &ticker("BTCUSDT", "2", 2), 130);
        h.timer(150);
        let SseTake::Data(d) = h.sse_take(conn, 151) else {
            panic!()
        };
        assert!(d.starts_with("event: prices\nid: 2\n"), "{d}");
    }

    #[test]
    fn sse_keepalive_slow_warning_and_close() {
        let mut h = live_with(&[]);
        let (conn, _, _) = h.sse_open(&["BTCUSDT".into()], None, 0).unwrap();
        assert_eq!(h.sse_take(conn, 0), SseTake::Pending);
        let fx = h.timer(KEEPALIVE_MS);
        assert!(fx.contains(&Effect::SseWake { conns: vec![conn] }));
        assert_eq!(
            h.sse_take(conn, KEEPALIVE_MS),
            SseTake::Data(": keepalive\n\n".into())
        );
        // Now the reader stops pulling while prices change.
        h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 20_000);
        h.timer(20_000 + SLOW_WARN_MS);
        assert_eq!(h.stats().slow_consumers, 1);
        let fx = h.timer(20_000 + SLOW_CLOSE_MS);
        assert!(fx.contains(&Effect::SseWake { conns: vec![conn] }));
        assert_eq!(h.sse_take(conn, 20_000 + SLOW_CLOSE_MS), SseTake::Closed);
        assert_eq!(h.stats().slow_consumer_closes, 1);
        let m = h.metrics(60_000);
        assert!(m.contains("edgetick_clients_closed_total{reason=\"slow_consumer\"} 1"));
    }

    #[test]
    fn a_warned_reader_that_catches_up_gets_the_warning_first() {
        let mut h = live_with(&[]);
        let (conn, _, _) = h.sse_open(&["BTCUSDT".into()], None, 0).unwrap();
        h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 1_000);
        h.timer(1_000 + SLOW_WARN_MS);
        let SseTake::Data(d) = h.sse_take(conn, 7_000) else {
            panic!()
        };
        assert!(
            d.starts_with("event: warning\ndata: {\"type\":\"warning\",\"code\":\"SLOW_CONSUMER\""),
            "{d}"
        );
        assert!(d.contains("event: prices"));
    }

    #[test]
    fn sse_limits() {
        let mut h = live_with(&[
            ("MAX_SYMBOLS_PER_CONNECTION", "1"),
            ("MAX_CONNECTIONS", "1"),
        ]);
        let two = ["BTCUSDT".to_string(), "ETHUSDT".to_string()];
        assert!(matches!(
            h.sse_open(&two, None, 0),
            Err(ApiError::TooManySymbols(_))
        ));
        h.sse_open(&two[..1], None, 0).unwrap();
        let e = h.sse_open(&two[..1], None, 0).unwrap_err();
        assert_eq!(e.status(), 503);
    }

    #[test]
    fn status_changes_reach_sse_readers_as_events() {
        let mut h = live_with(&[]);
        let (conn, _, _) = h.sse_open(&["BTCUSDT".into()], None, 0).unwrap();
        assert_eq!(h.sse_take(conn, 0), SseTake::Pending);
        let fx = h.upstream_failed(1, Failure::Network("gone".into()), 10, 0.5);
        assert!(fx.contains(&Effect::SseWake { conns: vec![conn] }));
        let SseTake::Data(d) = h.sse_take(conn, 11) else {
            panic!()
        };
        assert!(
            d.starts_with(
                "event: status\ndata: {\"type\":\"status\",\"upstream\":\"reconnecting\""
            ),
            "{d}"
        );
    }

    #[test]
    fn a_websocket_client_that_stops_acking_is_held_warned_caught_up_and_closed() {
        use crate::core::session::ACK_WINDOW_BYTES;
        let mut h = live_with(&[("CLIENT_MESSAGES_PER_SECOND", "1000")]);
        let slow = h.client_open(Transport::WebSocket, 0).0;
        let bystander = h.client_open(Transport::WebSocket, 0).0;
        for c in [slow, bystander] {
            h.client_text(c, r#"{"action":"subscribe","symbols":["BTCUSDT"]}"#, 0);
        }
        h.client_text(slow, r#"{"action":"ack","seq":0}"#, 0);
        let mut sent_bytes = 0;
        let mut last_seq = 0;
        let mut i = 0;
        // Feed until the slow client stops getting frames (its window is full).
        loop {
            i += 1;
            let fx = h.upstream_text(1, &ticker("BTCUSDT", &i.to_string(), i), 10);
            let got = frames(&fx, slow);
            assert_eq!(
                frames(&fx, bystander).len(),
                1,
                "the bystander always gets its frame"
            );
            if got.is_empty() {
                break;
            }
            last_seq = got[0]["prices"][0]["seq"].as_u64().unwrap();
            sent_bytes += got[0].to_string().len();
            assert!(i < 100_000, "never fell behind");
        }
        assert!(sent_bytes > ACK_WINDOW_BYTES - 1_000, "{sent_bytes}");
        for j in 0..10 {
            h.upstream_text(1, &ticker("BTCUSDT", &format!("9{j}"), i + 1 + j), 20);
        }
        let fx = h.timer(10 + SLOW_WARN_MS);
        let w = frames(&fx, slow);
        assert_eq!(
            (w[0]["type"].as_str(), w[0]["code"].as_str()),
            (Some("warning"), Some("SLOW_CONSUMER"))
        );
        // It acknowledges what it has: one frame with the newest value catches it up.
        let fx = h.client_text(
            slow,
            &format!(r#"{{"action":"ack","seq":{last_seq}}}"#),
            6_000,
        );
        let f = frames(&fx, slow);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0]["prices"][0]["price"], "99",
            "conflated to the newest value"
        );
        // Falling behind again and staying there: closed with 4009.
        let mut k = 100;
        while !frames(
            &h.upstream_text(1, &ticker("BTCUSDT", &k.to_string(), i + k), 7_000),
            slow,
        )
        .is_empty()
        {
            k += 1;
        }
        let fx = h.timer(7_000 + SLOW_CLOSE_MS);
        assert!(fx.contains(&Effect::Close {
            conn: slow,
            code: close::SLOW_CONSUMER,
            reason: "slow consumer"
        }));
        assert_eq!(h.stats().slow_consumer_closes, 1);
        assert!(h.has_client(bystander));
    }

    #[test]
    fn the_rate_limit_answers_rate_limited_then_closes_4008() {
        let mut h = live_with(&[("CLIENT_MESSAGES_PER_SECOND", "3")]);
        let c = h.client_open(Transport::WebSocket, 0).0;
        let bystander = h.client_open(Transport::WebSocket, 0).0;
        let ping = r#"{"action":"ping"}"#;
        for _ in 0..3 {
            assert_eq!(frames(&h.client_text(c, ping, 0), c)[0]["type"], "pong");
        }
        let f = frames(&h.client_text(c, ping, 0), c);
        assert_eq!(f[0]["code"], "RATE_LIMITED");
        let mut closed = false;
        for _ in 0..10 {
            let fx = h.client_text(c, ping, 0);
            if fx.iter().any(|e| {
                matches!(
                    e,
                    Effect::Close {
                        code: close::RATE_LIMITED,
                        ..
                    }
                )
            }) {
                closed = true;
                break;
            }
        }
        assert!(closed, "persisting closes with 4008");
        assert!(!h.has_client(c));
        assert_eq!(
            frames(&h.client_text(bystander, ping, 0), bystander)[0]["type"],
            "pong"
        );
    }

    #[test]
    fn rest_bodies() {
        let mut h = connected();
        h.upstream_text(1, &ticker("BTCUSDT", "1.25", 1), 1_000);
        let v: Value = serde_json::from_str(&h.rest_prices(None, 3_000).0).unwrap();
        assert_eq!(v["upstream"], "connected");
        assert_eq!(v["as_of"], 3_000);
        assert_eq!(v["prices"][0]["price"], "1.25");
        assert_eq!(v["prices"][0]["age_ms"], 2_000);
        assert_eq!(v["prices"][0]["freshness"], "fresh");
        let only = h.parse_symbol_query("eth-usdt").unwrap();
        let v: Value = serde_json::from_str(&h.rest_prices(Some(&only), 3_000).0).unwrap();
        assert_eq!(v["prices"], json!([]));
        assert!(matches!(
            h.parse_symbol_query("DOGEUSDT"),
            Err(ApiError::UnknownSymbol(_))
        ));
        assert!(matches!(
            h.parse_symbol_query("<x>"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            h.parse_symbol_query(","),
            Err(ApiError::BadRequest(_))
        ));
        let e = h.rest_price("ETHUSDT", 3_000).unwrap_err();
        assert_eq!(
            (e.status(), e.code(), e.retry_after()),
            (503, "NO_DATA", Some(1))
        );
    }
}
