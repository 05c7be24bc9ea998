//! The upstream state clients and operators see: a leaf, because the feed decides it, the
//! fan-out announces it, and `/health` and `/metrics` report it.

use serde::{Deserialize, Serialize};

/// The upstream state clients and operators see (see docs/protocol.md), and `idle` for an on-demand
/// link that nobody needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
