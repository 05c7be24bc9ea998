//! Per-symbol counters of the fan-out, as the heat-map relay edgetick replaces exposed them:
//! price messages sent and slow consumers by symbol (and, in the report, subscribers by
//! symbol). Bounded by the served symbols: channels and event names never become a label.

use std::collections::BTreeMap;

use super::Fanout;
use crate::core::channel;
use crate::core::ids::ConnId;

impl Fanout {
    /// `clients` clients were sent a message carrying each of `symbols`.
    pub(super) fn count_symbols<'a>(
        &mut self,
        symbols: impl IntoIterator<Item = &'a String>,
        clients: usize,
    ) {
        // On the flush's path: no allocation once a symbol has its entry.
        for s in symbols {
            if let Some(c) = self.stats.by_symbol.get_mut(s.as_str()) {
                c.messages_sent += clients as u64;
            } else if self.cfg.symbols.contains(s) {
                let c = self.stats.by_symbol.entry(s.clone()).or_default();
                c.messages_sent += clients as u64;
            }
        }
    }

    /// `conn` was warned as a slow reader: each of its symbols counts one.
    pub(super) fn count_slow(&mut self, conn: ConnId) {
        for s in self.clients.subscriptions(conn) {
            if channel::is_symbol(&s) && self.cfg.symbols.contains(&s) {
                self.stats.by_symbol.entry(s).or_default().slow_consumers += 1;
            }
        }
    }

    /// Subscribers of each served symbol that has any.
    pub(super) fn subscribers_by_symbol(&self) -> BTreeMap<String, usize> {
        self.cfg
            .symbols
            .iter()
            .map(|s| (s.clone(), self.clients.subscribers(s).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}
