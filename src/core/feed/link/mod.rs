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
//! - Live subscribe/unsubscribe requests are batched and spaced so the connection never
//!   comes near the source's limit on incoming messages (Binance: 5 a second, pongs
//!   included).
//!
//! What differs between exchanges (URLs, requests, their spacing, cadences) is asked of the
//! link's [`Source`]; the rest is the same for every source.
//!
//! # Layout
//! - this file: the link's connections, attempts, promotion and failures;
//! - `timing`: what the clock drives (time-outs, watchdog, rotation by age, idle close,
//!   paced requests) and when the next wake-up is due;
//! - `breaker`: the circuit breaker and the attempt budget;
//! - `failure`: why a connection ended;
//! - `status`: what the link reports (its state, breaker, endpoint, last failure).

use std::collections::BTreeSet;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::source::{Source, StreamChange};
use crate::core::backoff;
use crate::core::effect::{Effect, Level};

mod breaker;
mod failure;
mod status;
#[cfg(test)]
mod tests;
mod timing;

use crate::core::upstream_state::UpstreamState;
pub use breaker::{
    AttemptBudget, Breaker, BreakerPhase, BreakerState, ATTEMPT_WINDOW_MS, BREAKER_CLOSE_SUCCESSES,
    BREAKER_OPEN_MS, BREAKER_THRESHOLD, MAX_ATTEMPTS_PER_WINDOW, SUCCESS_SPACING_MS,
};
pub use failure::{Failure, CONNECT_TIMEOUT_MS};

/// Consecutive failures on one endpoint before the next endpoint is tried.
pub const FAILURES_PER_ENDPOINT: u32 = 3;
/// A connection whose streams promise a cadence is silent after this many missed cadences.
pub const SILENCE_CADENCES: i64 = 5;
/// ... but never sooner than this, so a scheduling hiccup is not taken for a dead stream.
pub const MIN_SILENCE_MS: i64 = 3_000;

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
    /// The shortest cadence its streams promise, kept with them so the watchdog does not
    /// re-read stream names on every check.
    cadence: Option<i64>,
    /// When the client last sent the source's heartbeat on it.
    beat_at: Option<i64>,
}

impl Conn {
    /// The shortest cadence any of `streams` promises; a source kept alive by heartbeats
    /// promises their answers.
    fn cadence_of(source: &dyn Source, streams: &BTreeSet<String>) -> Option<i64> {
        let beat = source.heartbeat().map(|(every, _)| every);
        let promised = streams.iter().filter_map(|s| source.cadence_ms(s));
        promised.chain(beat).min()
    }

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
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    source: Rc<dyn Source>,
    /// What survives an eviction, kept in the form it is persisted in.
    mem: LinkMemory,
    active: Option<Conn>,
    pending: Option<Conn>,
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
    /// A link to `source` with nothing wanted yet.
    pub fn new(s: LinkSettings, source: Rc<dyn Source>) -> Link {
        Link {
            s,
            source,
            mem: LinkMemory::default(),
            active: None,
            pending: None,
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

    /// The source this link follows.
    pub fn source(&self) -> &dyn Source {
        self.source.as_ref()
    }

    /// Closing the connection of `generation`.
    pub(super) fn close(&self, generation: u64) -> Effect {
        Effect::CloseUpstream {
            source: self.source.id(),
            generation,
        }
    }

    /// The state worth keeping across an eviction.
    pub fn memory(&self) -> &LinkMemory {
        &self.mem
    }

    /// Takes back what a previous instance remembered (before anything is connected).
    pub fn restore(&mut self, m: LinkMemory) {
        let endpoint = m.endpoint % self.s.urls.len().max(1);
        self.mem = LinkMemory { endpoint, ..m };
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

    pub(super) fn ensure(&mut self, now: i64, fx: &mut Vec<Effect>) {
        if !self.wanted.is_empty() && self.active.is_none() && self.pending.is_none() {
            self.attempt(now, fx);
        }
    }

    /// Opens a new connection (a first connect, a reconnect or a replacement) if the
    /// backoff, the breaker and the budget allow it now.
    pub(super) fn attempt(&mut self, now: i64, fx: &mut Vec<Effect>) {
        let not_before = self.mem.retry_at.max(self.mem.budget.next_allowed(now));
        if now < not_before {
            return;
        }
        if let Some(until) = self.mem.breaker.admit(now) {
            self.mem.retry_at = until;
            return;
        }
        self.dirty = true;
        self.mem.budget.record(now);
        self.mem.generation += 1;
        let streams = self.wanted.clone();
        let url = self.source.connect_url(self.endpoint(), &streams);
        // A source whose URL cannot carry streams subscribes them once the socket is open.
        let carried = match self.source.streams_in_url() {
            true => streams.clone(),
            false => BTreeSet::new(),
        };
        fx.push(Effect::Log {
            level: Level::Info,
            event: "upstream_connecting",
            detail: format!(
                "generation {} to {} ({} streams{})",
                self.mem.generation,
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
            source: self.source.id(),
            generation: self.mem.generation,
            url,
        });
        self.pending = Some(Conn {
            generation: self.mem.generation,
            started_at: now,
            opened_at: None,
            last_frame_at: None,
            cadence: Conn::cadence_of(self.source.as_ref(), &carried),
            streams: carried,
            beat_at: None,
        });
    }

    /// The socket of `generation` is open.
    pub fn opened(&mut self, generation: u64, now: i64, fx: &mut Vec<Effect>) {
        match &mut self.pending {
            Some(p) if p.generation == generation => {
                p.opened_at = Some(now);
                if self.active.is_none() {
                    self.promote(now, fx);
                } else if p.streams.is_empty() && !self.wanted.is_empty() {
                    // A replacement of a source that cannot put streams in its URL: it asks
                    // for them now, and takes over when they deliver.
                    p.streams = self.wanted.clone();
                    p.cadence = Conn::cadence_of(self.source.as_ref(), &p.streams);
                    let streams: Vec<String> = p.streams.iter().cloned().collect();
                    let id = self.next_request_id;
                    self.next_request_id += 1;
                    self.requests_sent += 1;
                    fx.push(Effect::SendUpstream {
                        source: self.source.id(),
                        generation,
                        text: self.source.request(StreamChange::Subscribe, &streams, id),
                    });
                }
            }
            _ => fx.push(self.close(generation)),
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
                fx.push(self.close(old.generation));
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
        self.mem.endpoint_failures = 0;
        self.dirty = true;
        self.sync_requests(now, fx);
    }

    /// A frame of `generation` arrived.
    pub fn frame(&mut self, generation: u64, now: i64, fx: &mut Vec<Effect>) -> FrameVerdict {
        if let Some(a) = &mut self.active {
            if a.generation == generation {
                let first = a.last_frame_at.replace(now).is_none();
                self.dirty |= self.mem.breaker.success(now);
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
                self.dirty |= self.mem.breaker.success(now);
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

    /// Counts a failure against the breaker and the endpoint (moving to the next endpoint
    /// after [`FAILURES_PER_ENDPOINT`], or at once on a 451), and sets the next attempt's
    /// time: backoff with jitter, never sooner than a `Retry-After`.
    fn back_off(&mut self, failure: &Failure, now: i64, jitter: f64) {
        self.mem.breaker.failure(now);
        self.mem.endpoint_failures += 1;
        let refused_here = matches!(failure, Failure::Refused { status: 451, .. });
        if refused_here || self.mem.endpoint_failures >= FAILURES_PER_ENDPOINT {
            self.mem.endpoint = (self.mem.endpoint + 1) % self.s.urls.len().max(1);
            self.mem.endpoint_failures = 0;
        }
        let mut delay = backoff::delay_ms(self.mem.breaker.failures().max(1), jitter);
        if let Failure::Refused {
            retry_after_ms: Some(ms),
            ..
        } = failure
        {
            delay = delay.max(*ms);
        }
        self.mem.retry_at = now + delay;
        self.dirty = true;
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
        fx.push(self.close(generation));
        self.back_off(&failure, now, jitter);
        let next = self
            .mem
            .retry_at
            .max(self.mem.breaker.open_until().unwrap_or(0))
            - now;
        fx.push(Effect::Log {
            level: Level::Warn,
            event: "upstream_failed",
            detail: format!(
                "generation {generation}: {}; breaker {} after {} failures; next attempt in {next} ms",
                failure.describe(),
                self.mem.breaker.name(),
                self.mem.breaker.failures()
            ),
        });
        self.mem.last_failure = Some((now, failure));
        // The active connection died while its replacement is already open: switch now.
        if was_active && self.pending.as_ref().is_some_and(|p| p.opened_at.is_some()) {
            self.promote(now, fx);
        }
        self.ensure(now, fx);
    }
}
