//! What the link reports: the state clients see, the breaker, the endpoint in use, the
//! last failure and the attempts in the budget window (for `/health` and `/metrics`).

use super::{BreakerState, Failure, Link, UpstreamState, BREAKER_THRESHOLD};
use crate::core::feed::link::Breaker;

impl Link {
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
        } else if self.mem.breaker.state() != BreakerState::Closed
            || self.mem.breaker.failures() >= BREAKER_THRESHOLD
        {
            UpstreamState::Down
        } else {
            UpstreamState::Reconnecting
        }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.mem.breaker
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
        self.s
            .urls
            .get(self.mem.endpoint)
            .map_or("", String::as_str)
    }

    /// The most recent failure and when it happened.
    pub fn last_failure(&self) -> Option<&(i64, Failure)> {
        self.mem.last_failure.as_ref()
    }

    /// Attempts in the current budget window.
    pub fn attempts_in_window(&self, now: i64) -> usize {
        self.mem.budget.in_window(now)
    }

    /// Whether an upstream connection has ever been live.
    pub fn ever_connected(&self) -> bool {
        self.ever_connected
    }
}
