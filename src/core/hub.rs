//! The hub state machine: inputs (client frames, upstream frames, alarms) in, [`Effect`]s out.
//!
//! It owns the cache, the registry and the upstream connection state, and decides everything;
//! the edge carries effects out in order and feeds results back in. Time (`now_ms`) and
//! randomness (`jitter`) are arguments, so every decision can be replayed in a unit test.

use std::rc::Rc;

use serde_json::{json, Value};

use super::backoff;
use super::cache::{Entry, Freshness, PriceCache};
use super::config::Config;
use super::error::{ApiError, ClientError, ErrorCode};
use super::price::Price;
use super::protocol::{self, close, Command};
use super::registry::{ConnId, Registry};
use super::symbol::canonical;
use super::upstream::{parse_frame, stream_name, StreamKind, UpstreamFrame};

/// Housekeeping cadence: TTL sweep and connect time-out checks.
pub const HOUSEKEEPING_MS: i64 = 30_000;
/// A connect attempt that has not opened within this long counts as failed.
pub const CONNECT_TIMEOUT_MS: i64 = 15_000;
/// Connected but silent for this long: `/health` says `degraded`.
pub const SILENT_MS: i64 = 10_000;
/// Consecutive failures after which clients are told the upstream is `down`.
pub const DOWN_AFTER_FAILURES: u32 = 5;
/// Consecutive failures on one endpoint before the next one in `UPSTREAM_URL` is tried.
pub const FAILURES_PER_ENDPOINT: u32 = 3;
/// Capacity above which `/health` raises an alert.
const CAPACITY_ALERT_PCT: f64 = 80.0;

/// Log severity, mapped by the edge to `console.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine state changes.
    Info,
    /// Something failed and will be retried.
    Warn,
}

/// Something the edge must do. Effects are ordered: carry them out in sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send one frame to one connection.
    Send {
        /// Target.
        conn: ConnId,
        /// The text frame.
        frame: Rc<str>,
    },
    /// Send the same bytes to many connections (encoded once).
    Fanout {
        /// Targets.
        conns: Vec<ConnId>,
        /// The text frame.
        frame: Rc<str>,
    },
    /// Close a client connection.
    Close {
        /// Target.
        conn: ConnId,
        /// A close code from [`protocol::close`].
        code: u16,
        /// Short reason text.
        reason: &'static str,
    },
    /// Store the connection's subscriptions where they survive hibernation.
    SaveSubscriptions {
        /// Whose.
        conn: ConnId,
        /// Its full, sorted subscription set.
        symbols: Vec<String>,
    },
    /// Open an upstream WebSocket; report back with the same `generation`.
    ConnectUpstream {
        /// Identifies this attempt; events of older generations are stale.
        generation: u64,
        /// Full URL including `?streams=`.
        url: String,
    },
    /// Close the upstream connection of this generation.
    CloseUpstream {
        /// Which one.
        generation: u64,
    },
    /// Write a changed price through to durable storage.
    Persist {
        /// Canonical symbol.
        symbol: String,
        /// The price's JSON.
        encoded: Rc<str>,
        /// Its `seq`, which is also the new high-water mark.
        seq: u64,
    },
    /// Delete expired prices from durable storage.
    Forget {
        /// Expired symbols.
        symbols: Vec<String>,
    },
    /// Wake the hub at this absolute time (ms).
    SetAlarm {
        /// Epoch milliseconds.
        at_ms: i64,
    },
    /// A structured log line.
    Log {
        /// Severity.
        level: Level,
        /// Stable event name.
        event: &'static str,
        /// Details for a person.
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Connecting { started: i64 },
    Connected,
    Backoff { until: i64 },
}

/// Counters for `/health` and `/metrics`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Upstream frames received.
    pub upstream_frames: u64,
    /// Upstream frames skipped as invalid.
    pub upstream_errors: u64,
    /// Upstream connections opened after the first.
    pub reconnects: u64,
    /// Frames sent to clients.
    pub messages_sent: u64,
    /// Client frames answered with an error.
    pub client_errors: u64,
}

/// The hub.
#[derive(Debug)]
pub struct Hub {
    cfg: Config,
    cache: PriceCache,
    registry: Registry,
    phase: Phase,
    generation: u64,
    failures: u32,
    connected_since: Option<i64>,
    last_message_at: Option<i64>,
    ever_connected: bool,
    announced: &'static str,
    alarm_at: Option<i64>,
    next_conn: ConnId,
    stats: Stats,
}

impl Hub {
    /// A hub with an empty cache and no connections.
    pub fn new(cfg: Config) -> Hub {
        let cache = PriceCache::new(cfg.price_ttl_ms);
        Hub {
            cfg,
            cache,
            registry: Registry::default(),
            phase: Phase::Idle,
            generation: 0,
            failures: 0,
            connected_since: None,
            last_message_at: None,
            ever_connected: false,
            announced: "down",
            alarm_at: None,
            next_conn: 1,
            stats: Stats::default(),
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

    // ----- upstream -------------------------------------------------------------------

    /// Starts the upstream if it is not running. Safe to call on every event.
    pub fn start(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.phase == Phase::Idle {
            self.connect(now_ms, &mut fx);
            self.schedule(now_ms, &mut fx);
        }
        fx
    }

    fn upstream_url(&self) -> String {
        let endpoint =
            (self.failures / FAILURES_PER_ENDPOINT) as usize % self.cfg.upstream_urls.len();
        let streams: Vec<String> = self
            .cfg
            .symbols
            .iter()
            .map(|s| stream_name(s, StreamKind::Ticker))
            .collect();
        format!(
            "{}?streams={}",
            self.cfg.upstream_urls[endpoint],
            streams.join("/")
        )
    }

    fn connect(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        self.generation += 1;
        self.phase = Phase::Connecting { started: now_ms };
        let url = self.upstream_url();
        fx.push(Effect::Log {
            level: Level::Info,
            event: "upstream_connecting",
            detail: format!("generation {} to {}", self.generation, url_host(&url)),
        });
        fx.push(Effect::ConnectUpstream {
            generation: self.generation,
            url,
        });
        self.announce(now_ms, fx);
    }

    /// The upstream WebSocket of `generation` is open.
    pub fn upstream_opened(&mut self, generation: u64, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if generation != self.generation || !matches!(self.phase, Phase::Connecting { .. }) {
            fx.push(Effect::CloseUpstream { generation });
            return fx;
        }
        if self.ever_connected {
            self.stats.reconnects += 1;
        }
        self.ever_connected = true;
        self.phase = Phase::Connected;
        self.failures = 0;
        self.connected_since = Some(now_ms);
        self.last_message_at = None;
        fx.push(Effect::Log {
            level: Level::Info,
            event: "upstream_connected",
            detail: format!("generation {generation}"),
        });
        self.announce(now_ms, &mut fx);
        self.schedule(now_ms, &mut fx);
        fx
    }

    /// The upstream of `generation` failed to open, errored or closed.
    pub fn upstream_failed(
        &mut self,
        generation: u64,
        reason: &str,
        now_ms: i64,
        jitter: f64,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        if generation != self.generation
            || !matches!(self.phase, Phase::Connecting { .. } | Phase::Connected)
        {
            return fx;
        }
        self.fail(reason, now_ms, jitter, &mut fx);
        fx
    }

    fn fail(&mut self, reason: &str, now_ms: i64, jitter: f64, fx: &mut Vec<Effect>) {
        fx.push(Effect::CloseUpstream {
            generation: self.generation,
        });
        self.failures = self.failures.saturating_add(1);
        let delay = backoff::delay_ms(self.failures, jitter);
        self.phase = Phase::Backoff {
            until: now_ms + delay,
        };
        self.connected_since = None;
        fx.push(Effect::Log {
            level: Level::Warn,
            event: "upstream_failed",
            detail: format!(
                "generation {}: {}; retry {} in {} ms",
                self.generation,
                protocol::truncate(reason, 200),
                self.failures,
                delay
            ),
        });
        self.announce(now_ms, fx);
        self.schedule(now_ms, fx);
    }

    /// One text frame from the upstream of `generation`.
    pub fn upstream_text(&mut self, generation: u64, text: &str, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if generation != self.generation || self.phase != Phase::Connected {
            return fx;
        }
        self.stats.upstream_frames += 1;
        self.last_message_at = Some(now_ms);
        match parse_frame(text) {
            Ok(UpstreamFrame::Update(u)) if self.cfg.symbols.contains(&u.symbol) => {
                if let Some(entry) = self.cache.apply(&u.symbol, &u.fields, now_ms) {
                    let entry = entry.clone();
                    self.publish(&entry, &mut fx);
                }
            }
            Ok(UpstreamFrame::Update(u)) => {
                self.stats.upstream_errors += 1;
                fx.push(Effect::Log {
                    level: Level::Warn,
                    event: "upstream_unrequested_symbol",
                    detail: u.symbol,
                });
            }
            Ok(UpstreamFrame::ServerShutdown { .. }) => fx.push(Effect::Log {
                level: Level::Info,
                event: "upstream_server_shutdown",
                detail: "exchange announced a cut; reconnecting when it closes".into(),
            }),
            Ok(UpstreamFrame::Ack { .. }) => {}
            Ok(UpstreamFrame::Refusal { code, msg }) => {
                self.stats.upstream_errors += 1;
                fx.push(Effect::Log {
                    level: Level::Warn,
                    event: "upstream_refusal",
                    detail: format!("{code}: {}", protocol::truncate(&msg, 200)),
                });
            }
            Err(e) => {
                self.stats.upstream_errors += 1;
                fx.push(Effect::Log {
                    level: Level::Warn,
                    event: "upstream_bad_frame",
                    detail: protocol::truncate(&e.to_string(), 200),
                });
            }
        }
        fx
    }

    /// A binary upstream frame: Binance sends none on market streams, so it is skipped.
    pub fn upstream_binary(&mut self, generation: u64, now_ms: i64) -> Vec<Effect> {
        if generation == self.generation && self.phase == Phase::Connected {
            self.stats.upstream_frames += 1;
            self.stats.upstream_errors += 1;
            self.last_message_at = Some(now_ms);
        }
        vec![Effect::Log {
            level: Level::Warn,
            event: "upstream_bad_frame",
            detail: "binary frame skipped".into(),
        }]
    }

    fn publish(&mut self, entry: &Entry, fx: &mut Vec<Effect>) {
        fx.push(Effect::Persist {
            symbol: entry.price.symbol.clone(),
            encoded: entry.encoded.clone(),
            seq: entry.price.seq,
        });
        let conns: Vec<ConnId> = self.registry.subscribers(&entry.price.symbol).collect();
        if !conns.is_empty() {
            let frame: Rc<str> = protocol::prices_frame("prices", &[&entry.encoded]).into();
            self.stats.messages_sent += conns.len() as u64;
            fx.push(Effect::Fanout { conns, frame });
        }
    }

    /// The object's alarm fired.
    pub fn alarm(&mut self, now_ms: i64, jitter: f64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.alarm_at = None;
        let expired = self.cache.sweep(now_ms);
        if !expired.is_empty() {
            fx.push(Effect::Forget { symbols: expired });
        }
        match self.phase {
            Phase::Idle => self.connect(now_ms, &mut fx),
            Phase::Backoff { until } if now_ms >= until => self.connect(now_ms, &mut fx),
            Phase::Connecting { started } if now_ms - started >= CONNECT_TIMEOUT_MS => {
                self.fail("connect timed out", now_ms, jitter, &mut fx)
            }
            _ => {}
        }
        self.schedule(now_ms, &mut fx);
        fx
    }

    /// Keeps exactly one alarm set, at the earliest time the hub has something to do.
    fn schedule(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let want = match self.phase {
            Phase::Backoff { until } => until,
            Phase::Connecting { started } => {
                (started + CONNECT_TIMEOUT_MS).min(now_ms + HOUSEKEEPING_MS)
            }
            Phase::Idle | Phase::Connected => now_ms + HOUSEKEEPING_MS,
        };
        match self.alarm_at {
            Some(t) if t > now_ms && t <= want => {}
            _ => {
                self.alarm_at = Some(want);
                fx.push(Effect::SetAlarm { at_ms: want });
            }
        }
    }

    /// Client-facing upstream state of DESIGN §3.
    pub fn upstream_status(&self) -> &'static str {
        match self.phase {
            Phase::Connected => "connected",
            Phase::Idle => "down",
            _ if self.failures >= DOWN_AFTER_FAILURES => "down",
            _ => "reconnecting",
        }
    }

    fn announce(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let status = self.upstream_status();
        if status == self.announced {
            return;
        }
        self.announced = status;
        let conns: Vec<ConnId> = self.registry.conns().collect();
        if !conns.is_empty() {
            self.stats.messages_sent += conns.len() as u64;
            fx.push(Effect::Fanout {
                conns,
                frame: protocol::status_frame(status, now_ms).into(),
            });
        }
    }

    // ----- clients --------------------------------------------------------------------

    /// True while another client connection fits under `MAX_CONNECTIONS`.
    pub fn has_capacity(&self) -> bool {
        self.registry.len() < self.cfg.max_connections
    }

    /// Registers a new connection and returns its id. The edge stores the id (with the empty
    /// subscription set) in the socket's attachment.
    pub fn client_open(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.registry.add_conn(id);
        id
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
    }

    /// True when the connection is registered.
    pub fn has_client(&self, conn: ConnId) -> bool {
        self.registry.has_conn(conn)
    }

    /// Number of client WebSocket connections.
    pub fn client_count(&self) -> usize {
        self.registry.len()
    }

    /// A connection closed or errored.
    pub fn client_closed(&mut self, conn: ConnId) {
        self.registry.remove_conn(conn);
    }

    /// A binary frame from a client: the protocol is JSON text only.
    pub fn client_binary(&mut self, conn: ConnId, len: usize) -> Vec<Effect> {
        let mut fx = Vec::new();
        if len > self.cfg.max_frame_bytes {
            self.close_client(conn, close::TOO_LARGE, "frame too large", &mut fx);
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
            self.close_client(conn, close::TOO_LARGE, "frame too large", &mut fx);
            return fx;
        }
        let cmd = match protocol::parse_command(text) {
            Ok(cmd) => cmd,
            Err(e) => {
                self.reject(conn, e, &mut fx);
                return fx;
            }
        };
        match cmd {
            Command::Subscribe { symbols, id } => match self.resolve(&symbols) {
                Err(e) => self.reject(conn, e.with_id(id), &mut fx),
                Ok(wanted) => self.subscribe(conn, wanted, id, now_ms, &mut fx),
            },
            Command::Unsubscribe { symbols, id } => match self.resolve(&symbols) {
                Err(e) => self.reject(conn, e.with_id(id), &mut fx),
                Ok(wanted) => {
                    self.registry.unsubscribe(conn, &wanted);
                    fx.push(self.save(conn));
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
        }
        fx
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
        self.registry.subscribe(conn, &wanted);
        fx.push(self.save(conn));
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
        fx: &mut Vec<Effect>,
    ) {
        self.registry.remove_conn(conn);
        fx.push(Effect::Close { conn, code, reason });
    }

    fn save(&self, conn: ConnId) -> Effect {
        Effect::SaveSubscriptions {
            conn,
            symbols: self.registry.subscriptions(conn),
        }
    }

    fn send(&mut self, conn: ConnId, frame: String, fx: &mut Vec<Effect>) {
        self.stats.messages_sent += 1;
        fx.push(Effect::Send {
            conn,
            frame: frame.into(),
        });
    }

    fn reject(&mut self, conn: ConnId, err: ClientError, fx: &mut Vec<Effect>) {
        self.stats.client_errors += 1;
        self.send(conn, protocol::error_frame(&err), fx);
    }

    // ----- REST and health ------------------------------------------------------------

    /// Parses a `symbols=` list for REST: 400 for something that is not a symbol, 404 for a
    /// symbol that is not served.
    pub fn parse_symbol_query(&self, raw: &str) -> Result<Vec<String>, ApiError> {
        parse_symbol_query(&self.cfg, raw)
    }

    /// Body of `GET /api/prices` (all live symbols, or the requested ones that have data).
    pub fn rest_prices(&self, symbols: Option<&[String]>, now_ms: i64) -> String {
        let parts: Vec<String> = match symbols {
            None => self
                .cache
                .live(now_ms)
                .map(|e| e.with_age(now_ms))
                .collect(),
            Some(list) => list
                .iter()
                .filter_map(|s| self.cache.get(s, now_ms))
                .map(|e| e.with_age(now_ms))
                .collect(),
        };
        format!(
            r#"{{"prices":[{}],"upstream":"{}","as_of":{now_ms}}}"#,
            parts.join(","),
            self.upstream_status()
        )
    }

    /// Body of `GET /api/prices/{symbol}` for a canonical, served symbol.
    pub fn rest_price(&self, symbol: &str, now_ms: i64) -> Result<String, ApiError> {
        match self.cache.get(symbol, now_ms) {
            Some(e) => Ok(e.with_age(now_ms)),
            None => Err(ApiError::NoData {
                message: format!(
                    "no price for {symbol} yet; the upstream is {}",
                    self.upstream_status()
                ),
                retry_after_s: if self.phase == Phase::Connected { 1 } else { 5 },
            }),
        }
    }

    /// `GET /health`: HTTP status and body (DESIGN §5).
    ///
    /// - `healthy`: upstream connected and not silent for [`SILENT_MS`].
    /// - `down`: upstream not connected and no cached price is younger than 60 s.
    /// - `degraded`: anything between (serving usable cached prices while reconnecting,
    ///   or connected but silent).
    pub fn health(&self, now_ms: i64, sse_clients: usize) -> (u16, String) {
        let mut fresh = 0;
        let mut acceptable = 0;
        let mut stale = 0;
        for e in self.cache.live(now_ms) {
            match Freshness::of_age(e.age_ms(now_ms)) {
                Freshness::Fresh => fresh += 1,
                Freshness::Acceptable => acceptable += 1,
                Freshness::Stale => stale += 1,
            }
        }
        let tracked = fresh + acceptable + stale;
        let connected = self.phase == Phase::Connected;
        let last_age = self.last_message_at.map(|t| (now_ms - t).max(0));
        let silent = connected
            && last_age
                .or(self.connected_since.map(|t| now_ms - t))
                .is_some_and(|a| a >= SILENT_MS);
        let ws = self.registry.len();
        let used_pct = ((ws + sse_clients) as f64 * 100.0 / self.cfg.max_connections as f64 * 10.0)
            .round()
            / 10.0;
        let mut alerts = Vec::new();
        if !connected {
            alerts.push(format!(
                "upstream not connected ({} consecutive failures)",
                self.failures
            ));
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
        if missing > 0 && self.ever_connected {
            alerts.push(format!("{missing} symbols have no price"));
        }
        if used_pct >= CAPACITY_ALERT_PCT {
            alerts.push(format!("capacity at {used_pct}%"));
        }
        let status = if connected && !silent {
            "healthy"
        } else if !connected && fresh + acceptable == 0 {
            "down"
        } else {
            "degraded"
        };
        let breaker = if self.failures >= DOWN_AFTER_FAILURES {
            "open"
        } else {
            "closed"
        };
        let body = json!({
            "status": status,
            "upstream": {
                "state": self.upstream_status(),
                "connected_since": self.connected_since,
                "consecutive_errors": self.failures,
                "circuit_breaker": {"state": breaker, "failures": self.failures},
                "last_message_age_ms": last_age,
                "frames": self.stats.upstream_frames,
                "frame_errors": self.stats.upstream_errors,
                "reconnects": self.stats.reconnects,
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
            "alerts": alerts,
        });
        (if status == "down" { 503 } else { 200 }, body.to_string())
    }
}

/// Parses a REST `symbols=` list against the whitelist (shared by the Worker and the hub).
pub fn parse_symbol_query(cfg: &Config, raw: &str) -> Result<Vec<String>, ApiError> {
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

fn url_host(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;
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
            "ws://127.0.0.1:1/stream?streams=btcusdt@ticker/ethusdt@ticker/solusdt@ticker"
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
        let c = h.client_open();
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
        let a = h.client_open();
        let b = h.client_open();
        let c = h.client_open();
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
        let c = h.client_open();
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
        let c = h.client_open();
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
        let c = h.client_open();
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
        let c = h.client_open();
        let f = frames(&h.client_binary(c, 3), c);
        assert_eq!(f[0]["code"], "BAD_REQUEST");
        assert!(h.has_capacity());
        h.client_open();
        assert!(!h.has_capacity(), "MAX_CONNECTIONS is 2");
        assert_eq!(
            h.client_binary(c, 300).len(),
            1,
            "an oversized binary frame closes too"
        );
    }

    #[test]
    fn bad_upstream_frames_are_counted_and_never_reach_the_cache() {
        let mut h = connected();
        let c = h.client_open();
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
        let body: Value = serde_json::from_str(&h.rest_price("BTCUSDT", 3).unwrap()).unwrap();
        assert_eq!(body["price"], "5");
    }

    #[test]
    fn upstream_failure_backs_off_announces_and_reconnects_on_the_alarm() {
        let mut h = connected();
        let c = h.client_open();
        let fx = h.upstream_failed(1, "closed 1006", 100, 0.5);
        assert!(fx.contains(&Effect::CloseUpstream { generation: 1 }));
        assert_eq!(frames(&fx, c)[0]["upstream"], "reconnecting");
        assert!(fx.contains(&Effect::SetAlarm { at_ms: 600 }), "{fx:?}");
        assert!(h.upstream_failed(1, "late duplicate", 101, 0.5).is_empty());
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
        assert_eq!(h.stats().reconnects, 1);
    }

    #[test]
    fn repeated_failures_move_to_the_next_endpoint_and_report_down() {
        let mut h = hub();
        h.start(0);
        let mut now = 0;
        let mut urls = Vec::new();
        for gen in 1..=6 {
            h.upstream_failed(gen, "refused", now, 1.0);
            now += 120_000;
            for e in h.alarm(now, 1.0) {
                if let Effect::ConnectUpstream { url, .. } = e {
                    urls.push(url);
                }
            }
        }
        assert!(urls[1].starts_with("ws://127.0.0.1:1/"));
        assert!(urls[2].starts_with("ws://127.0.0.1:2/"), "{urls:?}");
        assert_eq!(h.upstream_status(), "down");
        let (code, body) = h.health(now, 0);
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
        let (code, body) = h.health(0, 0);
        assert_eq!(code, 503, "never connected, no data: down, but it answers");
        assert!(body.contains(r#""status":"down""#));
        h.start(0);
        h.upstream_opened(1, 0);
        h.upstream_text(1, &ticker("BTCUSDT", "1", 1), 1_000);
        let v: Value = serde_json::from_str(&h.health(2_000, 3).1).unwrap();
        assert_eq!(v["status"], "healthy");
        assert_eq!(v["upstream"]["state"], "connected");
        assert_eq!(v["upstream"]["last_message_age_ms"], 1_000);
        assert_eq!(v["symbols"]["fresh"], 1);
        assert_eq!(v["clients"]["sse"], 3);
        let v: Value = serde_json::from_str(&h.health(20_000, 0).1).unwrap();
        assert_eq!(v["status"], "degraded", "connected but silent");
        h.upstream_failed(1, "gone", 20_000, 0.5);
        let (code, body) = h.health(21_000, 0);
        assert_eq!(
            (code, body.contains("degraded")),
            (200, true),
            "cached value still usable"
        );
        let (code, _) = h.health(70_000, 0);
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
        assert_eq!(h.client_open(), 10, "new ids continue above restored ones");
        let body: Value = serde_json::from_str(&h.rest_price("BTCUSDT", 1_000).unwrap()).unwrap();
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

    #[test]
    fn rest_bodies() {
        let mut h = connected();
        h.upstream_text(1, &ticker("BTCUSDT", "1.25", 1), 1_000);
        let v: Value = serde_json::from_str(&h.rest_prices(None, 3_000)).unwrap();
        assert_eq!(v["upstream"], "connected");
        assert_eq!(v["as_of"], 3_000);
        assert_eq!(v["prices"][0]["price"], "1.25");
        assert_eq!(v["prices"][0]["age_ms"], 2_000);
        assert_eq!(v["prices"][0]["freshness"], "fresh");
        let only = h.parse_symbol_query("eth-usdt").unwrap();
        let v: Value = serde_json::from_str(&h.rest_prices(Some(&only), 3_000)).unwrap();
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
