//! The leader's storage in the simulation: what it persisted (prices, the `seq` floor) and
//! the event history it wrote (rows in the order written, as SQLite's rowid keeps them, and
//! the private channels' floor), all of which a restarted leader takes back.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::core::effect::Effect;
use crate::core::events::Event;
use crate::core::feed::cache::read_stored;
use crate::core::hub::Hub;

/// What the leader's storage holds.
#[derive(Debug, Default)]
pub struct Storage {
    prices: BTreeMap<String, Rc<str>>,
    seq_floor: u64,
    /// Event rows: channel, offset, body.
    events: Vec<(String, u64, Rc<str>)>,
    private_floor: u64,
}

impl Storage {
    /// Carries out a storage effect; any other is handed back.
    pub fn apply(&mut self, e: Effect) -> Option<Effect> {
        match e {
            Effect::Persist { prices, seq_floor } => {
                for (symbol, json, _) in prices {
                    self.prices.insert(symbol, json);
                }
                self.seq_floor = self.seq_floor.max(seq_floor);
            }
            Effect::Forget { symbols } => symbols.iter().for_each(|s| {
                self.prices.remove(s);
            }),
            Effect::StoreEvent {
                channel,
                offset,
                body,
                keep,
            } => {
                let below = offset.saturating_sub(keep as u64);
                self.events
                    .retain(|(c, o, _)| *c != channel || (*o != offset && *o > below));
                self.events.push((channel, offset, body));
            }
            Effect::ForgetEvents { through, floor } => {
                for (channel, upto) in through {
                    self.events.retain(|(c, o, _)| *c != channel || *o > upto);
                }
                self.private_floor = floor;
            }
            Effect::WipeEvents { .. } => self.events.clear(),
            other => return Some(other),
        }
        None
    }

    /// The exchange time of the price stored for `symbol`.
    pub fn price_time(&self, symbol: &str) -> Option<i64> {
        let (price, _) = read_stored(self.prices.get(symbol)?)?;
        price.event_time
    }

    /// The `seq` floor stored: a restarted leader numbers every price above it.
    pub fn seq_floor(&self) -> u64 {
        self.seq_floor
    }

    /// A new leader as a restarted instance starts: from what storage holds.
    pub fn restore(&self, hub: &mut Hub, now_ms: i64) {
        let prices: Vec<_> = self
            .prices
            .values()
            .filter_map(|j| read_stored(j))
            .collect();
        hub.restore_prices(prices, self.seq_floor, now_ms);
        hub.restore_private_floor(self.private_floor);
        let events = self
            .events
            .iter()
            .map(|(c, o, body)| Event::stored(c.clone(), *o, body));
        hub.restore_events("sim".into(), events.collect());
    }
}
