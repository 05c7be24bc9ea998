//! The market channels' states the feed keeps (each one's open or last closed candle, its
//! book), whatever source they came from: a new link's snapshot carries them.

use std::collections::{BTreeMap, BTreeSet};

use crate::core::market::{MarketKind, MarketUpdate};

/// The state of each market channel the upstream serves (its open or last closed candle,
/// its book): what a new link's snapshot carries, so a shard's new subscriber gets it at once.
#[derive(Debug, Default)]
pub struct MarketStates {
    states: BTreeMap<String, MarketUpdate>,
}

impl MarketStates {
    /// Keeps `u` when it is a channel's state (a trade is not).
    pub fn keep(&mut self, u: &MarketUpdate) {
        if u.kind.is_state() {
            self.states.insert(u.channel.clone(), u.clone());
        }
    }

    /// Forgets the channels no longer in `interest` (their streams are being unsubscribed,
    /// so what is kept would only grow stale); returns them.
    pub fn retain(&mut self, interest: &BTreeSet<String>) -> Vec<String> {
        let gone: Vec<String> = self
            .states
            .keys()
            .filter(|k| !interest.contains(*k))
            .cloned()
            .collect();
        for k in &gone {
            self.states.remove(k);
        }
        gone
    }

    /// Every state kept, as updates (a closed candle is sent as the channel's state).
    pub fn all(&self) -> Vec<MarketUpdate> {
        self.states
            .values()
            .map(|u| MarketUpdate {
                kind: match u.kind {
                    MarketKind::ClosedCandle => MarketKind::Candle,
                    k => k,
                },
                ..u.clone()
            })
            .collect()
    }
}
