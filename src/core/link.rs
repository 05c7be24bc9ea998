//! The upstream link: one logical connection to the exchange, kept alive through every fault
//! Binance produces (see docs/upstream.md), as a pure state machine.
//!
//! - Each connection attempt is a *generation*; events of a generation that is neither the
//!   active connection nor the pending one are stale and ignored.
//! - Failures back off (capped exponential, full jitter), open a circuit breaker after
//!   [`BREAKER_THRESHOLD`] in a row, and honour a refusal's `Retry-After`. Every attempt is
//!   counted against a budget far below Binance's 300 per 5 minutes.
//! - A silence watchdog replaces a connection that stays open but sends nothing.
//! - Rotation is make-before-break: on `serverShutdown` or at [`LinkSettings::max_age_ms`],
//!   a replacement is opened while the active connection keeps delivering, and becomes
//!   active when it delivers its first frame; only then is the old one closed.
//! - Live `SUBSCRIBE`/`UNSUBSCRIBE` requests are batched and spaced so the connection never
//!   comes near Binance's 5 incoming messages per second (pongs included).

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::backoff;
use super::effect::{Effect, Level};
use super::upstream::promised_cadence_ms;

/// A connect that has not opened (or a replacement that has not delivered) within this
/// long has failed.
pub const CONNECT_TIMEOUT_MS: i64 = 15_000;
/// Consecutive failures that open the breaker.
pub const BREAKER_THRESHOLD: u32 = 5;
/// How long the breaker stays open before a trial connection.
pub const BREAKER_OPEN_MS: i64 = 60_000;
/// Successes in half-open state that close the breaker.
pub const BREAKER_CLOSE_SUCCESSES: u32 = 3;
/// In half-open state, frames count as successes only this far apart, so "3 successes"
/// means a connection that kept delivering for several seconds, not one burst.
pub const SUCCESS_SPACING_MS: i64 = 2_000;
/// The attempt budget's window (Binance counts 300 attempts per 5 minutes per IP).
pub const ATTEMPT_WINDOW_MS: i64 = 300_000;
/// Attempts allowed per window: a fifth of Binance's limit, whatever happens.
pub const MAX_ATTEMPTS_PER_WINDOW: usize = 60;
/// Minimum time between our own requests on one connection: at most 2.5 per second, which
/// leaves room for pongs under Binance's 5 per second.
pub const MIN_REQUEST_SPACING_MS: i64 = 400;
/// Consecutive failures on one endpoint before the next endpoint is tried.
pub const FAILURES_PER_ENDPOINT: u32 = 3;
/// A connection whose streams promise a cadence is silent after this many missed cadences.
pub const SILENCE_CADENCES: i64 = 5;
/// ... but never sooner than this, so a scheduling hiccup is not taken for a dead stream.
pub const MIN_SILENCE_MS: i64 = 3_000;

/// Why a connection ended or never started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The upgrade was answered with an HTTP status (429, 418, 451, ...).
    Refused {
        /// The status.
        status: u16,
        /// `Retry-After`, when the exchange gave one.
        retry_after_ms: Option<i64>,
    },
    /// The connection could not be made, or errored.
    Network(String),
    /// The exchange closed the connection.
    Closed {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The connect did not open in time.
    ConnectTimeout,
    /// Open but silent for longer than the watchdog allows.
    Silent {
        /// How long it was silent.
        for_ms: i64,
    },
}

impl Failure {
    /// Stable name for `/health` and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Refused { .. } => "refused",
            Failure::Network(_) => "network",
            Failure::Closed { .. } => "closed",
            Failure::ConnectTimeout => "connect_timeout",
            Failure::Silent { .. } => "silent",
        }
    }

    /// A sentence for `/health` and logs.
    pub fn describe(&self) -> String {
        match self {
            Failure::Refused {
                status,
                retry_after_ms,
            } => match retry_after_ms {
                Some(ms) => format!("HTTP {status} (Retry-After {} s)", ms / 1000),
                None => format!("HTTP {status}"),
            },
            Failure::Network(m) => m.clone(),
            Failure::Closed { code, reason } => format!("closed by the exchange: {code} {reason}"),
            Failure::ConnectTimeout => format!("no connection within {CONNECT_TIMEOUT_MS} ms"),
            Failure::Silent { for_ms } => format!("open but silent for {for_ms} ms"),
        }
    }
}

/// The upstream state clients and operators see (see docs/protocol.md), and `idle` for an on-demand
/// link that nobody needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    /// A connection delivers (or is open, when it is the only one).
    Connected,
    /// No connection; the next attempt is coming.
    Reconnecting,
    /// No connection, and the breaker is open: attempts wait.
    Down,
    /// On-demand and nobody listens: no connection, by design.
    Idle,
}

impl UpstreamState {
    /// The wire name, as in `status` frames and `/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamState::Connected => "connected",
            UpstreamState::Reconnecting => "reconnecting",
            UpstreamState::Down => "down",
            UpstreamState::Idle => "idle",
        }
    }
}

impl std::fmt::Display for UpstreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for UpstreamState {
    /// Compares with a wire name (tests read better that way).
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakerState {
    /// Attempts flow (with backoff).
    Closed,
    /// No attempts before `until`.
    Open {
        /// When a trial is allowed.
        until: i64,
    },
    /// A trial connection is allowed; it must prove itself.
    HalfOpen {
        /// Successes counted so far.
        successes: u32,
        /// When the last one was counted.
        last: Option<i64>,
    },
}

/// Opens after [`BREAKER_THRESHOLD`] consecutive failures, half-opens after
/// [`BREAKER_OPEN_MS`], closes after [`BREAKER_CLOSE_SUCCESSES`] spaced successes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    state: BreakerState,
    failures: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: BreakerState::Closed,
            failures: 0,
        }
    }
}

impl Breaker {
    /// Records a failure; a failure while half-open re-opens at once.
    pub fn failure(&mut self, now: i64) {
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            BreakerState::Closed => self.failures >= BREAKER_THRESHOLD,
            BreakerState::HalfOpen { .. } => true,
            BreakerState::Open { .. } => false,
        };
        if open {
            self.state = BreakerState::Open {
                until: now + BREAKER_OPEN_MS,
            };
        }
    }

    /// Records a success (a delivered frame); returns whether anything changed. A delivered
    /// frame ends the run of consecutive failures in every state. An open breaker that sees
    /// one (a connection that delivers although the breaker opened, e.g. after failed
    /// replacement attempts, or with the memory of an earlier instance) is half-open from
    /// then on, so a healthy connection always closes it after
    /// [`BREAKER_CLOSE_SUCCESSES`] spaced successes instead of reporting trouble forever.
    pub fn success(&mut self, now: i64) -> bool {
        let before = (self.state, self.failures);
        self.failures = 0;
        match &mut self.state {
            BreakerState::Closed => {}
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen {
                    successes: 1,
                    last: Some(now),
                };
            }
            BreakerState::HalfOpen { successes, last } => {
                if last.is_none_or(|t| now - t >= SUCCESS_SPACING_MS) {
                    *successes += 1;
                    *last = Some(now);
                }
                if *successes >= BREAKER_CLOSE_SUCCESSES {
                    self.state = BreakerState::Closed;
                }
            }
        }
        before != (self.state, self.failures)
    }

    /// `None` when an attempt may be made now (moving Open to HalfOpen when its time has
    /// come); otherwise the earliest time one may be made.
    pub fn admit(&mut self, now: i64) -> Option<i64> {
        match self.state {
            BreakerState::Open { until } if now < until => Some(until),
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen {
                    successes: 0,
                    last: None,
                };
                None
            }
            _ => None,
        }
    }

    /// When an open breaker will allow a trial.
    pub fn open_until(&self) -> Option<i64> {
        match self.state {
            BreakerState::Open { until } => Some(until),
            _ => None,
        }
    }

    /// Wire name for `/health`.
    pub fn name(&self) -> &'static str {
        match self.state {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }

    /// Consecutive failures (reset by a success while closed).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The state.
    pub fn state(&self) -> BreakerState {
        self.state
    }
}

/// Sliding-window count of connection attempts.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptBudget {
    times: VecDeque<i64>,
}

impl AttemptBudget {
    fn prune(&mut self, now: i64) {
        while self
            .times
            .front()
            .is_some_and(|t| now - t >= ATTEMPT_WINDOW_MS)
        {
            self.times.pop_front();
        }
    }

    /// The earliest time another attempt fits in the budget.
    pub fn next_allowed(&mut self, now: i64) -> i64 {
        self.prune(now);
        if self.times.len() < MAX_ATTEMPTS_PER_WINDOW {
            now
        } else {
            self.times.front().map_or(now, |t| t + ATTEMPT_WINDOW_MS)
        }
    }

    /// Counts an attempt.
    pub fn record(&mut self, now: i64) {
        self.prune(now);
        self.times.push_back(now);
    }

    /// Attempts in the window ending at `now`.
    pub fn in_window(&self, now: i64) -> usize {
        self.times
            .iter()
            .filter(|t| now - **t < ATTEMPT_WINDOW_MS)
            .count()
    }
}

/// Link configuration (from `Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// Combined-stream endpoints, in order of preference.
    pub urls: Vec<String>,
    /// Silence after which an open connection is replaced.
    pub watchdog_ms: i64,
    /// Age at which a connection is rotated (before Binance's 24 h cut).
    pub max_age_ms: i64,
    /// On-demand: how long the link stays open with nothing wanted before closing.
    pub idle_close_ms: i64,
    /// Whether the wanted set follows listeners (on-demand) or is fixed (always).
    pub on_demand: bool,
}

#[derive(Debug, Clone)]
struct Conn {
    generation: u64,
    started_at: i64,
    opened_at: Option<i64>,
    last_frame_at: Option<i64>,
    streams: BTreeSet<String>,
}

impl Conn {
    fn quiet_since(&self) -> i64 {
        self.last_frame_at
            .or(self.opened_at)
            .unwrap_or(self.started_at)
    }
}

/// What to do with a frame of a given generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameVerdict {
    /// From the active connection: apply it.
    Apply,
    /// From the replacement, which has just become active: apply it (timers changed).
    Switched,
    /// The active connection's first frame: apply it. Its silence limit shrinks to what its
    /// streams promise, so the wake-up time changed.
    FirstFrame,
    /// From a connection that is no longer active: drop it.
    Ignore,
}

/// What the link must remember across an eviction of the object: without it a restarted
/// leader would forget an open breaker and a spent attempt budget, and hammer an exchange
/// that is refusing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkMemory {
    /// Last generation handed out.
    pub generation: u64,
    /// The breaker.
    pub breaker: Breaker,
    /// Attempt times in the budget window.
    pub budget: AttemptBudget,
    /// No attempt before this.
    pub retry_at: i64,
    /// Endpoint in use, and failures on it.
    pub endpoint: usize,
    /// Consecutive failures on that endpoint.
    pub endpoint_failures: u32,
    /// The most recent failure.
    pub last_failure: Option<(i64, Failure)>,
}

/// The link.
#[derive(Debug)]
pub struct Link {
    s: LinkSettings,
    generation: u64,
    active: Option<Conn>,
    pending: Option<Conn>,
    retry_at: i64,
    endpoint: usize,
    endpoint_failures: u32,
    breaker: Breaker,
    budget: AttemptBudget,
    last_failure: Option<(i64, Failure)>,
    wanted: BTreeSet<String>,
    last_request_at: Option<i64>,
    next_request_id: u64,
    idle_since: Option<i64>,
    ever_connected: bool,
    connected_since: Option<i64>,
    /// Connections that replaced a failed one.
    pub reconnects: u64,
    /// Make-before-break switches.
    pub rotations: u64,
    /// Live requests sent.
    pub requests_sent: u64,
    dirty: bool,
}

impl Link {
    /// A link with nothing wanted yet.
    pub fn new(s: LinkSettings) -> Link {
        Link {
            s,
            generation: 0,
            active: None,
            pending: None,
            retry_at: 0,
            endpoint: 0,
            endpoint_failures: 0,
            breaker: Breaker::default(),
            budget: AttemptBudget::default(),
            last_failure: None,
            wanted: BTreeSet::new(),
            last_request_at: None,
            next_request_id: 1,
            idle_since: None,
            ever_connected: false,
            connected_since: None,
            reconnects: 0,
            rotations: 0,
            requests_sent: 0,
            dirty: false,
        }
    }

    /// The state worth keeping across an eviction.
    pub fn memory(&self) -> LinkMemory {
        LinkMemory {
            generation: self.generation,
            breaker: self.breaker.clone(),
            budget: self.budget.clone(),
            retry_at: self.retry_at,
            endpoint: self.endpoint,
            endpoint_failures: self.endpoint_failures,
            last_failure: self.last_failure.clone(),
        }
    }

    /// Takes back what a previous instance remembered (before anything is connected).
    pub fn restore(&mut self, m: LinkMemory) {
        self.generation = m.generation;
        self.breaker = m.breaker;
        self.budget = m.budget;
        self.retry_at = m.retry_at;
        self.endpoint = m.endpoint % self.s.urls.len();
        self.endpoint_failures = m.endpoint_failures;
        self.last_failure = m.last_failure;
    }

    /// True when the memory changed since it was last taken.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// True once after the memory changed, so the caller persists it only then.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Sets the streams that should be subscribed, connecting, subscribing or unsubscribing
    /// as needed.
    pub fn want(&mut self, streams: BTreeSet<String>, now: i64, fx: &mut Vec<Effect>) {
        if streams == self.wanted && (self.active.is_some() || self.pending.is_some()) {
            return;
        }
        self.wanted = streams;
        if self.wanted.is_empty() {
            self.idle_since.get_or_insert(now);
        } else {
            self.idle_since = None;
        }
        self.sync_requests(now, fx);
        self.ensure(now, fx);
    }

    fn ensure(&mut self, now: i64, fx: &mut Vec<Effect>) {
        if !self.wanted.is_empty() && self.active.is_none() && self.pending.is_none() {
            self.attempt(now, fx);
        }
    }

    /// Opens a new connection (a first connect, a reconnect or a replacement) if the
    /// backoff, the breaker and the budget allow it now.
    fn attempt(&mut self, now: i64, fx: &mut Vec<Effect>) {
        let not_before = self.retry_at.max(self.budget.next_allowed(now));
        if now < not_before {
            return;
        }
        if let Some(until) = self.breaker.admit(now) {
            self.retry_at = until;
            return;
        }
        self.dirty = true;
        self.budget.record(now);
        self.generation += 1;
        let streams = self.wanted.clone();
        let list: Vec<&str> = streams.iter().map(String::as_str).collect();
        let url = format!("{}?streams={}", self.endpoint(), list.join("/"));
        fx.push(Effect::Log {
            level: Level::Info,
            event: "upstream_connecting",
            detail: format!(
                "generation {} to {} ({} streams{})",
                self.generation,
                self.endpoint(),
                streams.len(),
                if self.active.is_some() {
                    ", replacement"
                } else {
                    ""
                }
            ),
        });
        fx.push(Effect::ConnectUpstream {
            generation: self.generation,
            url,
        });
        self.pending = Some(Conn {
            generation: self.generation,
            started_at: now,
            opened_at: None,
            last_frame_at: None,
            streams,
        });
    }

    /// The socket of `generation` is open.
    pub fn opened(&mut self, generation: u64, now: i64, fx: &mut Vec<Effect>) {
        match &mut self.pending {
            Some(p) if p.generation == generation => {
                p.opened_at = Some(now);
                if self.active.is_none() {
                    self.promote(now, fx);
                }
            }
            _ => fx.push(Effect::CloseUpstream { generation }),
        }
    }

    fn promote(&mut self, now: i64, fx: &mut Vec<Effect>) {
        let Some(new) = self.pending.take() else {
            return;
        };
        let generation = new.generation;
        match self.active.replace(new) {
            Some(old) => {
                self.rotations += 1;
                fx.push(Effect::CloseUpstream {
                    generation: old.generation,
                });
                fx.push(Effect::Log {
                    level: Level::Info,
                    event: "upstream_rotated",
                    detail: format!("generation {} replaced {}", generation, old.generation),
                });
            }
            None => {
                if self.ever_connected {
                    self.reconnects += 1;
                }
                self.connected_since = Some(now);
                fx.push(Effect::Log {
                    level: Level::Info,
                    event: "upstream_connected",
                    detail: format!("generation {generation}"),
                });
            }
        }
        self.ever_connected = true;
        self.endpoint_failures = 0;
        self.dirty = true;
        self.sync_requests(now, fx);
    }

    /// A frame of `generation` arrived.
    pub fn frame(&mut self, generation: u64, now: i64, fx: &mut Vec<Effect>) -> FrameVerdict {
        if let Some(a) = &mut self.active {
            if a.generation == generation {
                let first = a.last_frame_at.replace(now).is_none();
                self.dirty |= self.breaker.success(now);
                return if first {
                    FrameVerdict::FirstFrame
                } else {
                    FrameVerdict::Apply
                };
            }
        }
        match &mut self.pending {
            Some(p) if p.generation == generation && p.opened_at.is_some() => {
                p.last_frame_at = Some(now);
                self.dirty |= self.breaker.success(now);
                self.promote(now, fx);
                FrameVerdict::Switched
            }
            _ => FrameVerdict::Ignore,
        }
    }

    /// Binance announced that `generation` will be cut: replace it make-before-break.
    pub fn server_shutdown(&mut self, generation: u64, now: i64, fx: &mut Vec<Effect>) {
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.generation == generation)
            && self.pending.is_none()
        {
            fx.push(Effect::Log {
                level: Level::Info,
                event: "upstream_server_shutdown",
                detail: format!("generation {generation}: opening a replacement"),
            });
            self.attempt(now, fx);
        }
    }

    /// `generation` failed to open, errored, closed, or was found dead.
    pub fn failed(
        &mut self,
        generation: u64,
        failure: Failure,
        now: i64,
        jitter: f64,
        fx: &mut Vec<Effect>,
    ) {
        let was_active = self
            .active
            .as_ref()
            .is_some_and(|a| a.generation == generation);
        let was_pending = self
            .pending
            .as_ref()
            .is_some_and(|p| p.generation == generation);
        if !was_active && !was_pending {
            return;
        }
        if was_active {
            self.active = None;
            self.connected_since = None;
        } else {
            self.pending = None;
        }
        fx.push(Effect::CloseUpstream { generation });
        self.breaker.failure(now);
        self.endpoint_failures += 1;
        let refused_here = matches!(failure, Failure::Refused { status: 451, .. });
        if refused_here || self.endpoint_failures >= FAILURES_PER_ENDPOINT {
            self.endpoint = (self.endpoint + 1) % self.s.urls.len();
            self.endpoint_failures = 0;
        }
        let mut delay = backoff::delay_ms(self.breaker.failures().max(1), jitter);
        if let Failure::Refused {
            retry_after_ms: Some(ms),
            ..
        } = failure
        {
            delay = delay.max(ms);
        }
        self.retry_at = now + delay;
        self.dirty = true;
        let next = self.retry_at.max(self.breaker.open_until().unwrap_or(0)) - now;
        fx.push(Effect::Log {
            level: Level::Warn,
            event: "upstream_failed",
            detail: format!(
                "generation {generation}: {}; breaker {} after {} failures; next attempt in {next} ms",
                failure.describe(),
                self.breaker.name(),
                self.breaker.failures()
            ),
        });
        self.last_failure = Some((now, failure));
        // The active connection died while its replacement is already open: switch now.
        if was_active && self.pending.as_ref().is_some_and(|p| p.opened_at.is_some()) {
            self.promote(now, fx);
        }
        self.ensure(now, fx);
    }

    /// Timer work: connect time-outs, the watchdog, rotation by age, idle close, paced
    /// requests and retries. Call it whenever [`Link::next_wake`] comes due.
    pub fn tick(&mut self, now: i64, jitter: f64, fx: &mut Vec<Effect>) {
        if let Some(p) = &self.pending {
            let waited = now - p.opened_at.unwrap_or(p.started_at);
            if waited >= CONNECT_TIMEOUT_MS {
                let g = p.generation;
                self.failed(g, Failure::ConnectTimeout, now, jitter, fx);
            }
        }
        if let Some(a) = &self.active {
            let quiet = now - a.quiet_since();
            if !a.streams.is_empty() && quiet >= self.silence_limit(a) {
                let g = a.generation;
                self.failed(g, Failure::Silent { for_ms: quiet }, now, jitter, fx);
            }
        }
        let old_enough = self
            .active
            .as_ref()
            .and_then(|a| a.opened_at)
            .is_some_and(|t| now - t >= self.s.max_age_ms);
        if old_enough && self.pending.is_none() {
            self.attempt(now, fx);
        }
        if self.s.on_demand && self.wanted.is_empty() {
            if let Some(since) = self.idle_since {
                if now - since >= self.s.idle_close_ms {
                    for c in [self.active.take(), self.pending.take()]
                        .into_iter()
                        .flatten()
                    {
                        fx.push(Effect::CloseUpstream {
                            generation: c.generation,
                        });
                    }
                    if self.connected_since.take().is_some() {
                        fx.push(Effect::Log {
                            level: Level::Info,
                            event: "upstream_idle_closed",
                            detail: "nobody listens; closed so the object can hibernate".into(),
                        });
                    }
                }
            }
        }
        self.sync_requests(now, fx);
        self.ensure(now, fx);
    }

    /// Sends the next batched `SUBSCRIBE` or `UNSUBSCRIBE` if the active connection's
    /// streams differ from the wanted ones and the spacing allows it.
    fn sync_requests(&mut self, now: i64, fx: &mut Vec<Effect>) {
        let Some(a) = &mut self.active else {
            return;
        };
        if self
            .last_request_at
            .is_some_and(|t| now - t < MIN_REQUEST_SPACING_MS)
        {
            return;
        }
        let add: Vec<String> = self.wanted.difference(&a.streams).cloned().collect();
        let remove: Vec<String> = a.streams.difference(&self.wanted).cloned().collect();
        let (subscribe, params) = if !add.is_empty() {
            (true, add)
        } else if !remove.is_empty() {
            (false, remove)
        } else {
            return;
        };
        for p in &params {
            if subscribe {
                a.streams.insert(p.clone());
            } else {
                a.streams.remove(p);
            }
        }
        let method = if subscribe {
            "SUBSCRIBE"
        } else {
            "UNSUBSCRIBE"
        };
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.last_request_at = Some(now);
        self.requests_sent += 1;
        // A silence window starts when streams are added to a connection that had none.
        if subscribe && a.last_frame_at.is_none() {
            a.opened_at = Some(now);
        }
        fx.push(Effect::SendUpstream {
            generation: a.generation,
            text: json!({"method": method, "params": params, "id": id}).to_string(),
        });
    }

    fn requests_due(&self) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| a.streams != self.wanted)
    }

    /// When [`Link::tick`] next has something to do.
    pub fn next_wake(&self) -> Option<i64> {
        let mut at: Vec<i64> = Vec::new();
        if !self.wanted.is_empty() && self.active.is_none() && self.pending.is_none() {
            at.push(
                self.retry_at
                    .max(self.breaker.open_until().unwrap_or(0))
                    .max(
                        self.budget
                            .times
                            .front()
                            .filter(|_| self.budget.times.len() >= MAX_ATTEMPTS_PER_WINDOW)
                            .map_or(0, |t| t + ATTEMPT_WINDOW_MS),
                    ),
            );
        }
        if let Some(p) = &self.pending {
            at.push(p.opened_at.unwrap_or(p.started_at) + CONNECT_TIMEOUT_MS);
        }
        if let Some(a) = &self.active {
            if !a.streams.is_empty() {
                at.push(a.quiet_since() + self.silence_limit(a));
            }
            if let (Some(t), None) = (a.opened_at, &self.pending) {
                at.push(t + self.s.max_age_ms);
            }
        }
        if self.requests_due() {
            at.push(
                self.last_request_at
                    .map_or(0, |t| t + MIN_REQUEST_SPACING_MS),
            );
        }
        if let (true, Some(since), true) = (
            self.s.on_demand && self.wanted.is_empty(),
            self.idle_since,
            self.active.is_some() || self.pending.is_some(),
        ) {
            at.push(since + self.s.idle_close_ms);
        }
        at.into_iter().min()
    }

    /// How long `c` may stay silent before the watchdog replaces it. Once it has delivered,
    /// streams that promise a cadence (the tickers: every second) bound it to a few missed
    /// cadences, so a dead stream is noticed in seconds; a quiet market never trips it,
    /// because the cadence holds when nothing trades. Streams without a cadence, and a
    /// connection that has not delivered yet, get `UPSTREAM_WATCHDOG_SECONDS`, which is
    /// also the ceiling.
    pub fn silence_limit_of(&self, streams: &BTreeSet<String>, delivered: bool) -> i64 {
        let promised = streams.iter().filter_map(|s| promised_cadence_ms(s)).min();
        match promised {
            Some(ms) if delivered => (ms * SILENCE_CADENCES)
                .max(MIN_SILENCE_MS)
                .min(self.s.watchdog_ms),
            _ => self.s.watchdog_ms,
        }
    }

    fn silence_limit(&self, c: &Conn) -> i64 {
        self.silence_limit_of(&c.streams, c.last_frame_at.is_some())
    }

    /// The active connection's current silence limit, for `/health`.
    pub fn active_silence_limit(&self) -> Option<i64> {
        self.active.as_ref().map(|a| self.silence_limit(a))
    }

    /// True while a connection is delivering (or open, when it is the only one).
    pub fn is_connected(&self) -> bool {
        self.active.is_some()
    }

    /// True when on-demand mode has nothing to do (no listeners, no connection).
    pub fn is_idle(&self) -> bool {
        self.s.on_demand
            && self.wanted.is_empty()
            && self.active.is_none()
            && self.pending.is_none()
    }

    /// Client-facing state of docs/protocol.md: `connected`, `reconnecting` or `down` (and `idle`
    /// for an on-demand link that nobody needs).
    pub fn state(&self) -> UpstreamState {
        if self.active.is_some() {
            UpstreamState::Connected
        } else if self.is_idle() {
            UpstreamState::Idle
        } else if self.breaker.state() != BreakerState::Closed
            || self.breaker.failures() >= BREAKER_THRESHOLD
        {
            UpstreamState::Down
        } else {
            UpstreamState::Reconnecting
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// When the active connection became live.
    pub fn connected_since(&self) -> Option<i64> {
        self.connected_since
    }

    /// Last frame of the active connection.
    pub fn last_frame_at(&self) -> Option<i64> {
        self.active.as_ref().and_then(|a| a.last_frame_at)
    }

    /// The endpoint currently preferred.
    pub fn endpoint(&self) -> &str {
        // The configuration refuses an empty endpoint list, and `endpoint` is kept in range.
        self.s.urls.get(self.endpoint).map_or("", String::as_str)
    }

    /// The most recent failure and when it happened.
    pub fn last_failure(&self) -> Option<&(i64, Failure)> {
        self.last_failure.as_ref()
    }

    /// Attempts in the current budget window.
    pub fn attempts_in_window(&self, now: i64) -> usize {
        self.budget.in_window(now)
    }

    /// Whether an upstream connection has ever been live.
    pub fn ever_connected(&self) -> bool {
        self.ever_connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(on_demand: bool) -> LinkSettings {
        LinkSettings {
            urls: vec!["ws://a/stream".into(), "ws://b/stream".into()],
            watchdog_ms: 30_000,
            max_age_ms: 3_600_000,
            idle_close_ms: 10_000,
            on_demand,
        }
    }

    fn streams(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn connects(fx: &[Effect]) -> Vec<(u64, String)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::ConnectUpstream { generation, url } => Some((*generation, url.clone())),
                _ => None,
            })
            .collect()
    }

    fn closes(fx: &[Effect]) -> Vec<u64> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::CloseUpstream { generation } => Some(*generation),
                _ => None,
            })
            .collect()
    }

    fn sends(fx: &[Effect]) -> Vec<serde_json::Value> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::SendUpstream { text, .. } => Some(serde_json::from_str(text).unwrap()),
                _ => None,
            })
            .collect()
    }

    /// A link with generation 1 connected and delivering at t=0.
    fn live() -> Link {
        let mut l = Link::new(settings(false));
        let mut fx = Vec::new();
        l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
        l.opened(1, 0, &mut fx);
        l.frame(1, 0, &mut fx);
        l
    }

    #[test]
    fn breaker_opens_after_five_half_opens_after_a_minute_closes_after_three_successes() {
        let mut b = Breaker::default();
        for i in 0..4 {
            b.failure(i);
            assert_eq!(b.name(), "closed");
        }
        b.failure(4);
        assert_eq!(b.state(), BreakerState::Open { until: 60_004 });
        assert_eq!(b.admit(60_003), Some(60_004));
        assert_eq!(b.admit(60_004), None);
        assert_eq!(b.name(), "half_open");
        b.success(61_000);
        b.success(61_500);
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen {
                successes: 1,
                last: Some(61_000)
            },
            "too close together"
        );
        assert_eq!(
            b.failures(),
            0,
            "a delivered frame ends the run of failures"
        );
        b.success(63_000);
        b.success(65_000);
        assert_eq!(b.name(), "closed");
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn a_delivering_connection_closes_a_breaker_restored_open() {
        let mut b = Breaker::default();
        (0..5).for_each(|i| b.failure(i));
        assert_eq!(b.name(), "open");
        // A connection delivers anyway (memory of an earlier instance, or a replacement
        // that failed while the active one kept delivering).
        assert!(b.success(10_000));
        assert_eq!((b.name(), b.failures()), ("half_open", 0));
        b.success(12_000);
        b.success(14_000);
        assert_eq!(b.name(), "closed", "closes as after any trial");
    }

    #[test]
    fn a_failure_while_half_open_reopens_at_once() {
        let mut b = Breaker::default();
        (0..5).for_each(|i| b.failure(i));
        b.admit(70_000);
        b.failure(70_001);
        assert_eq!(b.state(), BreakerState::Open { until: 130_001 });
    }

    #[test]
    fn a_success_while_closed_resets_the_count() {
        let mut b = Breaker::default();
        (0..4).for_each(|i| b.failure(i));
        b.success(5);
        b.failure(6);
        assert_eq!((b.name(), b.failures()), ("closed", 1));
    }

    #[test]
    fn refusals_for_an_hour_stay_far_under_binances_attempt_limit() {
        let mut l = Link::new(settings(false));
        let mut fx = Vec::new();
        l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
        let mut attempts: Vec<i64> = Vec::new();
        let mut now = 0;
        while now < 3_600_000 {
            for (g, _) in connects(&fx) {
                attempts.push(now);
                let mut more = Vec::new();
                l.failed(
                    g,
                    Failure::Refused {
                        status: 429,
                        retry_after_ms: None,
                    },
                    now,
                    0.0,
                    &mut more,
                );
                fx.extend(more);
            }
            fx.clear();
            now = l
                .next_wake()
                .expect("a retry is always scheduled")
                .max(now + 1);
            l.tick(now, 0.0, &mut fx);
        }
        let worst = attempts
            .iter()
            .map(|t| {
                attempts
                    .iter()
                    .filter(|u| **u >= *t && **u < t + 300_000)
                    .count()
            })
            .max()
            .unwrap();
        assert!(
            worst <= MAX_ATTEMPTS_PER_WINDOW,
            "{worst} attempts in 5 minutes"
        );
        assert!(
            worst <= 10,
            "the breaker should keep it to a handful: {worst}"
        );
        assert!(attempts.len() > 10, "it keeps trying: {}", attempts.len());
        assert_eq!(l.state(), "down");
    }

    #[test]
    fn the_budget_caps_attempts_even_without_backoff() {
        let mut b = AttemptBudget::default();
        for t in 0..MAX_ATTEMPTS_PER_WINDOW as i64 {
            assert_eq!(b.next_allowed(t), t);
            b.record(t);
        }
        assert_eq!(b.next_allowed(100), ATTEMPT_WINDOW_MS);
        assert_eq!(b.next_allowed(ATTEMPT_WINDOW_MS), ATTEMPT_WINDOW_MS);
    }

    #[test]
    fn retry_after_is_honoured_and_451_moves_to_the_next_endpoint() {
        let mut l = Link::new(settings(false));
        let mut fx = Vec::new();
        l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
        fx.clear();
        l.failed(
            1,
            Failure::Refused {
                status: 429,
                retry_after_ms: Some(30_000),
            },
            0,
            0.0,
            &mut fx,
        );
        assert_eq!(l.next_wake(), Some(30_000));
        l.tick(29_999, 0.0, &mut fx);
        assert!(connects(&fx).is_empty());
        l.tick(30_000, 0.0, &mut fx);
        assert_eq!(connects(&fx)[0].1, "ws://a/stream?streams=btcusdt@ticker");
        fx.clear();
        l.failed(
            2,
            Failure::Refused {
                status: 451,
                retry_after_ms: None,
            },
            30_000,
            1.0,
            &mut fx,
        );
        l.tick(l.next_wake().unwrap(), 0.0, &mut fx);
        assert!(connects(&fx)[0].1.starts_with("ws://b/stream"), "{fx:?}");
        assert_eq!(l.last_failure().unwrap().1.kind(), "refused");
    }

    #[test]
    fn the_watchdog_replaces_a_silent_connection() {
        let mut l = live();
        let mut fx = Vec::new();
        l.frame(1, 10_000, &mut fx);
        // Ticker streams promise a frame every second: five missed cadences is silence.
        assert_eq!(l.next_wake(), Some(15_000));
        l.tick(14_999, 0.5, &mut fx);
        assert!(closes(&fx).is_empty());
        l.tick(15_000, 0.5, &mut fx);
        assert_eq!(closes(&fx), [1]);
        assert_eq!(
            l.last_failure().unwrap().1,
            Failure::Silent { for_ms: 5_000 }
        );
        assert_eq!(l.state(), "reconnecting");
        fx.clear();
        l.tick(l.next_wake().unwrap(), 0.5, &mut fx);
        assert_eq!(connects(&fx).len(), 1, "reconnects after the backoff");
    }

    #[test]
    fn the_silence_limit_follows_what_the_streams_promise() {
        let l = Link::new(settings(false));
        let s = |v: &[&str]| streams(v);
        // Tickers every second: 5 s once the connection has delivered.
        assert_eq!(
            l.silence_limit_of(&s(&["btcusdt@ticker", "btcusdt@bookTicker"]), true),
            5_000
        );
        // Klines every 2 s: 10 s.
        assert_eq!(l.silence_limit_of(&s(&["btcusdt@kline_1m"]), true), 10_000);
        // Only event streams (a quiet market silences them): the configured 30 s.
        assert_eq!(
            l.silence_limit_of(&s(&["btcusdt@bookTicker", "btcusdt@aggTrade"]), true),
            30_000
        );
        // Not delivered yet (an exchange with nothing to say at first): the configured 30 s.
        assert_eq!(l.silence_limit_of(&s(&["btcusdt@ticker"]), false), 30_000);
        // A configured watchdog shorter than the derived limit wins.
        let short = Link::new(LinkSettings {
            watchdog_ms: 3_000,
            ..settings(false)
        });
        assert_eq!(short.silence_limit_of(&s(&["btcusdt@ticker"]), true), 3_000);
    }

    #[test]
    fn server_shutdown_rotates_make_before_break() {
        let mut l = live();
        let mut fx = Vec::new();
        l.server_shutdown(1, 1_000, &mut fx);
        assert_eq!(connects(&fx).len(), 1, "the replacement opens at once");
        assert!(closes(&fx).is_empty(), "the old one keeps delivering");
        fx.clear();
        l.opened(2, 1_100, &mut fx);
        assert!(
            closes(&fx).is_empty(),
            "not before the replacement delivers"
        );
        assert_eq!(l.frame(1, 1_150, &mut fx), FrameVerdict::Apply);
        assert_eq!(l.frame(2, 1_200, &mut fx), FrameVerdict::Switched);
        assert_eq!(closes(&fx), [1]);
        assert_eq!(
            l.frame(1, 1_250, &mut fx),
            FrameVerdict::Ignore,
            "late frames of the old one"
        );
        assert_eq!(l.rotations, 1);
        assert_eq!(l.state(), "connected");
        // The old connection's close afterwards is not a failure.
        fx.clear();
        l.failed(
            1,
            Failure::Closed {
                code: 1000,
                reason: "bye".into(),
            },
            1_300,
            0.0,
            &mut fx,
        );
        assert!(fx.is_empty());
        assert_eq!(l.breaker().failures(), 0);
    }

    #[test]
    fn rotation_by_age_and_a_replacement_that_never_delivers() {
        let mut l = live();
        let mut fx = Vec::new();
        l.frame(1, 3_599_000, &mut fx);
        l.tick(3_600_000, 0.0, &mut fx);
        assert_eq!(connects(&fx).len(), 1, "rotated before the exchange's cut");
        fx.clear();
        l.opened(2, 3_600_100, &mut fx);
        l.frame(1, 3_614_000, &mut fx);
        l.tick(3_600_100 + CONNECT_TIMEOUT_MS, 0.0, &mut fx);
        assert_eq!(closes(&fx), [2], "a silent replacement is dropped");
        assert_eq!(l.state(), "connected", "the old connection still serves");
    }

    #[test]
    fn the_active_dying_during_rotation_switches_to_the_open_replacement() {
        let mut l = live();
        let mut fx = Vec::new();
        l.server_shutdown(1, 1_000, &mut fx);
        l.opened(2, 1_100, &mut fx);
        fx.clear();
        l.failed(
            1,
            Failure::Closed {
                code: 1000,
                reason: "shutdown".into(),
            },
            1_200,
            0.0,
            &mut fx,
        );
        assert_eq!(l.state(), "connected");
        assert_eq!(
            l.frame(2, 1_300, &mut fx),
            FrameVerdict::FirstFrame,
            "promoted without a frame: its first one shortens the silence limit"
        );
    }

    #[test]
    fn on_demand_batches_spaced_requests_and_closes_when_idle() {
        let mut l = Link::new(settings(true));
        let mut fx = Vec::new();
        l.want(BTreeSet::new(), 0, &mut fx);
        assert!(fx.is_empty(), "nothing wanted, nothing opened");
        assert_eq!(l.state(), "idle");
        l.want(streams(&["btcusdt@ticker"]), 10, &mut fx);
        assert_eq!(connects(&fx)[0].1, "ws://a/stream?streams=btcusdt@ticker");
        l.opened(1, 20, &mut fx);
        fx.clear();
        l.want(streams(&["btcusdt@ticker", "ethusdt@ticker"]), 30, &mut fx);
        assert_eq!(
            sends(&fx),
            [json!({"method":"SUBSCRIBE","params":["ethusdt@ticker"],"id":1})]
        );
        fx.clear();
        // Three changes inside the spacing window become one request.
        l.want(
            streams(&["btcusdt@ticker", "ethusdt@ticker", "solusdt@ticker"]),
            100,
            &mut fx,
        );
        l.want(
            streams(&[
                "btcusdt@ticker",
                "ethusdt@ticker",
                "solusdt@ticker",
                "xrpusdt@ticker",
            ]),
            200,
            &mut fx,
        );
        assert!(sends(&fx).is_empty());
        assert_eq!(l.next_wake(), Some(30 + MIN_REQUEST_SPACING_MS));
        l.tick(430, 0.0, &mut fx);
        assert_eq!(
            sends(&fx),
            [json!({"method":"SUBSCRIBE","params":["solusdt@ticker","xrpusdt@ticker"],"id":2})]
        );
        fx.clear();
        l.want(BTreeSet::new(), 1_000, &mut fx);
        assert_eq!(sends(&fx)[0]["method"], "UNSUBSCRIBE");
        assert!(
            closes(&fx).is_empty(),
            "kept open for the idle grace period"
        );
        fx.clear();
        l.tick(1_000 + 10_000, 0.0, &mut fx);
        assert_eq!(closes(&fx), [1]);
        assert_eq!(l.state(), "idle");
        assert_eq!(
            l.next_wake(),
            None,
            "nothing to wake for: the object may hibernate"
        );
        assert_eq!(
            l.breaker().failures(),
            0,
            "closing when idle is not a failure"
        );
    }

    #[test]
    fn requests_never_exceed_the_rate_under_churn() {
        let mut l = Link::new(settings(true));
        let mut fx = Vec::new();
        l.want(streams(&["s0@ticker"]), 0, &mut fx);
        l.opened(1, 0, &mut fx);
        let mut sent_at = Vec::new();
        for t in 0..10_000i64 {
            let mut f = Vec::new();
            let n = (t / 7) % 5;
            let set: BTreeSet<String> = (0..=n).map(|i| format!("s{i}@ticker")).collect();
            l.want(set, t, &mut f);
            if l.next_wake().is_some_and(|w| w <= t) {
                l.tick(t, 0.0, &mut f);
            }
            sent_at.extend(sends(&f).iter().map(|_| t));
        }
        for w in sent_at.windows(2) {
            assert!(w[1] - w[0] >= MIN_REQUEST_SPACING_MS, "{w:?}");
        }
        assert!(sent_at.len() > 10);
    }

    #[test]
    fn an_evicted_link_remembers_its_breaker_and_budget() {
        let mut l = Link::new(settings(false));
        let mut fx = Vec::new();
        l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
        for g in 1..=5 {
            let refused = Failure::Refused {
                status: 429,
                retry_after_ms: None,
            };
            l.failed(g, refused, 1_000 * g as i64, 0.0, &mut fx);
            if g < 5 {
                l.tick(l.next_wake().unwrap(), 0.0, &mut fx);
            }
        }
        assert_eq!(l.breaker().name(), "open");
        assert!(l.take_dirty());
        let json = serde_json::to_string(&l.memory()).unwrap();
        // A new instance, as after an eviction: it must not try again before the breaker allows.
        let mut fresh = Link::new(settings(false));
        fresh.restore(serde_json::from_str(&json).unwrap());
        let mut fx = Vec::new();
        fresh.want(streams(&["btcusdt@ticker"]), 6_000, &mut fx);
        assert!(connects(&fx).is_empty(), "{fx:?}");
        assert_eq!(fresh.state(), "down");
        let until = fresh.breaker().open_until().unwrap();
        assert_eq!(fresh.next_wake(), Some(until));
        fresh.tick(until, 0.0, &mut fx);
        assert_eq!(connects(&fx)[0].0, 6, "generations continue");
        assert_eq!(fresh.breaker().name(), "half_open");
        // The trial connection delivers: the errors end at once, the breaker closes after
        // three spaced successes, and this instance has reconnected nothing yet.
        fresh.opened(6, until + 50, &mut fx);
        fresh.frame(6, until + 100, &mut fx);
        assert_eq!(fresh.breaker().failures(), 0);
        fresh.frame(6, until + 2_100, &mut fx);
        fresh.frame(6, until + 4_100, &mut fx);
        assert_eq!(
            (fresh.state(), fresh.breaker().name()),
            (UpstreamState::Connected, "closed")
        );
        assert_eq!(fresh.reconnects, 0, "a restart is not a reconnect");
        assert!(fresh.take_dirty(), "the closed breaker is to be written");
    }

    #[test]
    fn connect_timeout_counts_as_a_failure() {
        let mut l = Link::new(settings(false));
        let mut fx = Vec::new();
        l.want(streams(&["btcusdt@ticker"]), 0, &mut fx);
        assert_eq!(l.next_wake(), Some(CONNECT_TIMEOUT_MS));
        fx.clear();
        l.tick(CONNECT_TIMEOUT_MS, 0.0, &mut fx);
        assert_eq!(closes(&fx), [1]);
        assert_eq!(l.last_failure().unwrap().1, Failure::ConnectTimeout);
        // A late open of the abandoned attempt is closed, not adopted.
        fx.clear();
        l.opened(1, CONNECT_TIMEOUT_MS + 5, &mut fx);
        assert_eq!(closes(&fx), [1]);
        assert!(!l.is_connected());
    }
}
