//! Who listens to what: subscriptions indexed both by connection and by symbol.
//!
//! Fan-out needs "subscribers of BTCUSDT" in one lookup; closing a connection needs "all of
//! this connection's symbols". Both indexes change together so they can never disagree.

use std::collections::BTreeSet;

use super::fastmap::FastMap;

/// A connection's identity inside one hub; stored in the socket's attachment so it survives
/// hibernation.
pub type ConnId = u64;

/// The subscription registry.
#[derive(Debug, Default)]
pub struct Registry {
    by_conn: FastMap<ConnId, BTreeSet<String>>,
    by_symbol: FastMap<String, BTreeSet<ConnId>>,
}

impl Registry {
    /// Registers a connection with no subscriptions (idempotent).
    pub fn add_conn(&mut self, conn: ConnId) {
        self.by_conn.entry(conn).or_default();
    }

    /// True when the connection is known.
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.by_conn.contains_key(&conn)
    }

    /// Forgets a connection and all its subscriptions; returns the symbols it held.
    pub fn remove_conn(&mut self, conn: ConnId) -> BTreeSet<String> {
        let symbols = self.by_conn.remove(&conn).unwrap_or_default();
        for s in &symbols {
            self.unlink(s, conn);
        }
        symbols
    }

    /// Adds canonical symbols; returns those that were not yet subscribed.
    pub fn subscribe(&mut self, conn: ConnId, symbols: &[String]) -> Vec<String> {
        let held = self.by_conn.entry(conn).or_default();
        let mut added = Vec::new();
        for s in symbols {
            if held.insert(s.clone()) {
                self.by_symbol.entry(s.clone()).or_default().insert(conn);
                added.push(s.clone());
            }
        }
        added
    }

    /// Removes canonical symbols; returns those that were subscribed.
    pub fn unsubscribe(&mut self, conn: ConnId, symbols: &[String]) -> Vec<String> {
        let Some(held) = self.by_conn.get_mut(&conn) else {
            return Vec::new();
        };
        let removed: Vec<String> = symbols
            .iter()
            .filter(|s| held.remove(*s))
            .cloned()
            .collect();
        for s in &removed {
            self.unlink(s, conn);
        }
        removed
    }

    fn unlink(&mut self, symbol: &str, conn: ConnId) {
        if let Some(set) = self.by_symbol.get_mut(symbol) {
            set.remove(&conn);
            if set.is_empty() {
                self.by_symbol.remove(symbol);
            }
        }
    }

    /// The connection's symbols, sorted.
    pub fn subscriptions(&self, conn: ConnId) -> Vec<String> {
        self.by_conn
            .get(&conn)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many symbols the connection holds.
    pub fn count(&self, conn: ConnId) -> usize {
        self.by_conn.get(&conn).map_or(0, BTreeSet::len)
    }

    /// Connections subscribed to `symbol`.
    pub fn subscribers(&self, symbol: &str) -> impl Iterator<Item = ConnId> + '_ {
        self.by_symbol.get(symbol).into_iter().flatten().copied()
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.by_conn.len()
    }

    /// True when nobody is connected.
    pub fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }

    /// Symbols at least one connection listens to.
    pub fn symbols_in_use(&self) -> BTreeSet<String> {
        self.by_symbol.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn subscribe_and_unsubscribe_keep_both_indexes_in_step() {
        let mut r = Registry::default();
        r.add_conn(1);
        r.add_conn(2);
        assert_eq!(
            r.subscribe(1, &s(&["BTCUSDT", "ETHUSDT"])),
            s(&["BTCUSDT", "ETHUSDT"])
        );
        assert_eq!(
            r.subscribe(1, &s(&["BTCUSDT"])),
            Vec::<String>::new(),
            "already held"
        );
        r.subscribe(2, &s(&["BTCUSDT"]));
        let mut subs: Vec<_> = r.subscribers("BTCUSDT").collect();
        subs.sort();
        assert_eq!(subs, [1, 2]);
        assert_eq!(
            r.unsubscribe(1, &s(&["BTCUSDT", "SOLUSDT"])),
            s(&["BTCUSDT"])
        );
        assert_eq!(r.subscribers("BTCUSDT").collect::<Vec<_>>(), [2]);
        assert_eq!(r.subscriptions(1), s(&["ETHUSDT"]));
        assert_eq!(r.count(1), 1);
    }

    #[test]
    fn removing_a_connection_drops_its_symbols_everywhere() {
        let mut r = Registry::default();
        r.subscribe(1, &s(&["BTCUSDT"]));
        r.subscribe(2, &s(&["ETHUSDT"]));
        assert_eq!(
            r.remove_conn(1).into_iter().collect::<Vec<_>>(),
            s(&["BTCUSDT"])
        );
        assert_eq!(r.subscribers("BTCUSDT").count(), 0);
        assert_eq!(
            r.symbols_in_use().into_iter().collect::<Vec<_>>(),
            s(&["ETHUSDT"])
        );
        assert!(!r.has_conn(1));
        assert_eq!(r.len(), 1);
        assert!(
            r.remove_conn(42).is_empty(),
            "unknown connection is a no-op"
        );
    }
}
