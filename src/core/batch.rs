//! What the feed hands the fan-out: the one narrow interface between the two halves.
//!
//! Prices cross it already encoded (the feed encodes each change once; the fan-out only
//! assembles frames from those bytes), with their `seq` and receive time so the fan-out can
//! keep its own latest values for snapshots; the upstream state crosses it when it changes.
//! It is plain data, so the same interface can later cross the wire to fan-out shards.

use std::rc::Rc;

use super::feed::link::UpstreamState;

/// One changed price.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Canonical symbol.
    pub symbol: String,
    /// The price's JSON, shared by every frame that carries it.
    pub encoded: Rc<str>,
    /// Its `seq`.
    pub seq: u64,
    /// When it was received (epoch ms): its age and TTL count from here.
    pub received_at: i64,
}

/// A change of the upstream state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// The state now (`idle` included: streams opened now report nothing while idle).
    pub state: UpstreamState,
    /// Whether clients are told: `idle` is not client-facing, and a return to the state
    /// clients were last told is not news to them.
    pub announce: bool,
}

/// Everything one input of the feed produced for the fan-out, in order: prices first (in
/// `seq` order), then the state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Changed prices.
    pub prices: Vec<Change>,
    /// Symbols whose price expired (TTL).
    pub expired: Vec<String>,
    /// The upstream state, when it changed.
    pub state: Option<StateChange>,
    /// The highest `seq` handed out (above every price's when a restart reserved a block).
    pub seq: u64,
}

impl Batch {
    /// True when there is nothing for the fan-out.
    pub fn is_empty(&self) -> bool {
        self.prices.is_empty() && self.expired.is_empty() && self.state.is_none()
    }
}
