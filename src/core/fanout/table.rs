//! The fan-out's one client table: each client, indexed both by connection and by symbol.
//!
//! Fan-out needs "subscribers of BTCUSDT" in one lookup; closing a connection needs "all of
//! its symbols". Both indexes change together, only inside this type, so they never disagree.

use std::collections::BTreeSet;

use super::clients::{Carrier, Client};
use super::session::PollState;
use crate::core::fastmap::FastMap;
use crate::core::ids::{ConnId, Transport};
use crate::core::wire::Wire;

/// The client table.
#[derive(Debug, Default)]
pub struct Clients {
    by_conn: FastMap<ConnId, Client>,
    by_symbol: FastMap<String, BTreeSet<ConnId>>,
    sse: usize,
    polling: usize,
}

impl Clients {
    /// Adds a client with no subscriptions (an existing one is kept as it is).
    pub fn insert(&mut self, conn: ConnId, wire: Wire, rate: u32, now_ms: i64) {
        if !self.by_conn.contains_key(&conn) {
            self.sse += usize::from(wire.transport() == Transport::Sse);
            let client = Client::new(wire, rate, now_ms);
            self.by_conn.insert(conn, client);
        }
    }

    /// The wire of `conn`, when it is known.
    pub fn wire(&self, conn: ConnId) -> Option<Wire> {
        self.by_conn.get(&conn).map(|c| c.wire)
    }

    /// True when the connection is known.
    pub fn contains(&self, conn: ConnId) -> bool {
        self.by_conn.contains_key(&conn)
    }

    /// A client.
    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut Client> {
        self.by_conn.get_mut(&conn)
    }

    /// A client, to read.
    pub fn get(&self, conn: ConnId) -> Option<&Client> {
        self.by_conn.get(&conn)
    }

    /// Switches a client to another delivery (a Socket.IO session that starts polling, then
    /// upgrades to its WebSocket).
    pub fn set_carrier(&mut self, conn: ConnId, carrier: Carrier) {
        if let Some(c) = self.by_conn.get_mut(&conn) {
            let polling = |c: &Carrier| usize::from(c.transport() == Transport::Polling);
            self.polling = self.polling - polling(&c.carrier) + polling(&carrier);
            c.carrier = carrier;
        }
    }

    /// The long-polling side of a session, when it is polling.
    pub fn poll_mut(&mut self, conn: ConnId) -> Option<&mut PollState> {
        match self.by_conn.get_mut(&conn).map(|c| &mut c.carrier) {
            Some(Carrier::Poll(p)) => Some(p),
            _ => None,
        }
    }

    /// True when `conn` is a long-polling session.
    pub fn is_polling(&self, conn: ConnId) -> bool {
        self.polling > 0
            && self
                .by_conn
                .get(&conn)
                .is_some_and(|c| matches!(c.carrier, Carrier::Poll(_)))
    }

    /// Long-polling sessions.
    pub fn polling(&self) -> usize {
        self.polling
    }

    /// The Socket.IO sessions, in a deterministic order.
    pub fn socketio(&self) -> impl Iterator<Item = ConnId> + '_ {
        let sio = |(id, c): (&ConnId, &Client)| matches!(c.wire, Wire::SocketIo(_)).then_some(*id);
        self.by_conn.iter().filter_map(sio)
    }

    /// Clients whose attachment is kept in storage.
    pub fn stored(&self) -> usize {
        self.by_conn.values().filter(|c| c.stored).count()
    }

    /// Every client, in a deterministic order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&ConnId, &mut Client)> {
        self.by_conn.iter_mut()
    }

    /// Forgets a client; returns it (with its subscriptions) when it was known.
    pub fn remove(&mut self, conn: ConnId) -> Option<Client> {
        let client = self.by_conn.remove(&conn)?;
        self.sse -= usize::from(client.carrier.transport() == Transport::Sse);
        self.polling -= usize::from(client.carrier.transport() == Transport::Polling);
        for s in &client.subs {
            self.unlink(s, conn);
        }
        Some(client)
    }

    /// Adds canonical symbols; returns those that were not yet subscribed.
    pub fn subscribe(&mut self, conn: ConnId, symbols: &[String]) -> Vec<String> {
        let Some(client) = self.by_conn.get_mut(&conn) else {
            return Vec::new();
        };
        let mut added = Vec::new();
        for s in symbols {
            if client.subs.insert(s.clone()) {
                self.by_symbol.entry(s.clone()).or_default().insert(conn);
                added.push(s.clone());
            }
        }
        added
    }

    /// Removes canonical symbols; returns those that were subscribed.
    pub fn unsubscribe(&mut self, conn: ConnId, symbols: &[String]) -> Vec<String> {
        let Some(client) = self.by_conn.get_mut(&conn) else {
            return Vec::new();
        };
        let removed: Vec<String> = symbols
            .iter()
            .filter(|s| client.subs.remove(*s))
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
            .map(|c| c.subs.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// True when the connection holds `symbol`.
    pub fn holds(&self, conn: ConnId, symbol: &str) -> bool {
        self.by_conn
            .get(&conn)
            .is_some_and(|c| c.subs.contains(symbol))
    }

    /// How many symbols the connection holds.
    pub fn count(&self, conn: ConnId) -> usize {
        self.by_conn.get(&conn).map_or(0, |c| c.subs.len())
    }

    /// Connections subscribed to `symbol`, in id order.
    pub fn subscribers(&self, symbol: &str) -> impl Iterator<Item = ConnId> + '_ {
        self.by_symbol.get(symbol).into_iter().flatten().copied()
    }

    /// Clients by transport: (pushed to, SSE); long-polling sessions count with the first
    /// (see [`Clients::polling`]).
    pub fn counts(&self) -> (usize, usize) {
        (self.by_conn.len() - self.sse, self.sse)
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.by_conn.len()
    }

    /// Symbols and market channels at least one client listens to: what the upstream must
    /// carry (event channels are not its business).
    pub fn symbols_in_use(&self) -> BTreeSet<String> {
        self.by_symbol
            .keys()
            .filter(|k| crate::core::channel::from_upstream(k))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fanout::clients::Route;
    use crate::core::fanout::session::{SseState, WsFlow};
    use crate::core::wire::{Kind, Payload};

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn table(conns: &[(ConnId, Transport)]) -> Clients {
        let mut c = Clients::default();
        for (id, t) in conns {
            let wire = if *t == Transport::Sse {
                Wire::Sse
            } else {
                Wire::Json
            };
            c.insert(*id, wire, 10, 0);
        }
        c
    }

    #[test]
    fn subscribe_and_unsubscribe_keep_both_indexes_in_step() {
        let mut r = table(&[(1, Transport::WebSocket), (2, Transport::Sse)]);
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
        assert_eq!(r.subscribers("BTCUSDT").collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            r.unsubscribe(1, &s(&["BTCUSDT", "SOLUSDT"])),
            s(&["BTCUSDT"])
        );
        assert_eq!(r.subscribers("BTCUSDT").collect::<Vec<_>>(), [2]);
        assert_eq!(r.subscriptions(1), s(&["ETHUSDT"]));
        assert_eq!(r.count(1), 1);
        assert!(r.holds(1, "ETHUSDT") && !r.holds(1, "BTCUSDT"));
        assert_eq!(r.counts(), (1, 1));
        assert!(
            r.subscribe(9, &s(&["BTCUSDT"])).is_empty(),
            "an unknown connection subscribes nothing"
        );
    }

    #[test]
    fn removing_a_connection_drops_its_symbols_everywhere() {
        let mut r = table(&[(1, Transport::Sse), (2, Transport::WebSocket)]);
        r.subscribe(1, &s(&["BTCUSDT"]));
        r.subscribe(2, &s(&["ETHUSDT"]));
        let gone = r.remove(1).map(|c| c.subs.into_iter().collect::<Vec<_>>());
        assert_eq!(gone, Some(s(&["BTCUSDT"])));
        assert_eq!(r.subscribers("BTCUSDT").count(), 0);
        assert_eq!(
            r.symbols_in_use().into_iter().collect::<Vec<_>>(),
            s(&["ETHUSDT"])
        );
        assert!(!r.contains(1));
        assert_eq!((r.len(), r.counts()), (1, (1, 0)));
        assert!(r.remove(42).is_none(), "unknown connection is a no-op");
    }

    #[test]
    fn each_transport_routes_changes_its_own_way() {
        let sym = "BTCUSDT".to_string();
        let mut ws = Carrier::WebSocket(WsFlow::default());
        assert_eq!(ws.change(&[&sym], 0), Route::Send);
        assert!(!ws.watched());
        if let Carrier::WebSocket(flow) = &mut ws {
            flow.behind_since = Some(0);
        }
        assert_eq!(ws.change(&[&sym], 0), Route::Held, "behind: held");
        assert!(ws.watched());
        let mut sse = Carrier::Sse(SseState::default());
        assert_eq!(sse.change(&[&sym], 5), Route::Held, "busy reader");
        if let Carrier::Sse(st) = &mut sse {
            assert_eq!(st.pending_since, Some(5));
            st.waiting = true;
        }
        assert_eq!(sse.change(&[&sym], 6), Route::Wake, "parked reader");
        let status = Payload::new(Kind::Status, "{}");
        assert_eq!(sse.status(status), Route::Wake);
        assert_eq!(ws.status(status), Route::Send);
    }
}
