//! The circuit breaker and the attempt budget: how often the link may try at all.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

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

/// The breaker's phase as reported: what `/health` and `/metrics` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerPhase {
    /// Attempts flow.
    Closed,
    /// Attempts wait.
    Open,
    /// A trial connection must prove itself.
    HalfOpen,
}

impl BreakerPhase {
    /// Every phase, in the order `/metrics` lists them.
    pub const ALL: [BreakerPhase; 3] = [
        BreakerPhase::Closed,
        BreakerPhase::Open,
        BreakerPhase::HalfOpen,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerPhase::Closed => "closed",
            BreakerPhase::Open => "open",
            BreakerPhase::HalfOpen => "half_open",
        }
    }
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

    /// The phase, without its data.
    pub fn phase(&self) -> BreakerPhase {
        match self.state {
            BreakerState::Closed => BreakerPhase::Closed,
            BreakerState::Open { .. } => BreakerPhase::Open,
            BreakerState::HalfOpen { .. } => BreakerPhase::HalfOpen,
        }
    }

    /// Wire name for `/health` and logs.
    pub fn name(&self) -> &'static str {
        self.phase().as_str()
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

    /// When a full budget frees its oldest attempt; `None` while there is room.
    pub fn full_until(&self) -> Option<i64> {
        self.times
            .front()
            .filter(|_| self.times.len() >= MAX_ATTEMPTS_PER_WINDOW)
            .map(|t| t + ATTEMPT_WINDOW_MS)
    }

    /// Attempts in the window ending at `now`.
    pub fn in_window(&self, now: i64) -> usize {
        self.times
            .iter()
            .filter(|t| now - **t < ATTEMPT_WINDOW_MS)
            .count()
    }
}
