//! The fan-out's one client table: each client's transport state, rate limiter and
//! subscriptions, indexed both by connection and by symbol.
//!
//! Fan-out needs "subscribers of BTCUSDT" in one lookup; closing a connection needs "all of
//! its symbols". Both indexes change together, only inside this type, so they never disagree.

use std::collections::BTreeSet;

use crate::core::events::Event;
use crate::core::fanout::session::{PollState, RateLimiter, SseState, WsFlow, MAX_POLL_PACKETS};
use crate::core::fastmap::FastMap;
use crate::core::ids::{ConnId, Identity, Transport};
use crate::core::wire::{sse, Kind, Payload, Wire};

/// An SSE stream idle this long gets a `: keepalive` comment (docs/protocol.md: at least every 15 s).
pub const KEEPALIVE_MS: i64 = 10_000;
/// A reader that has not taken pending updates for this long is warned `SLOW_CONSUMER`.
pub const SLOW_WARN_MS: i64 = 5_000;
/// ... and closed after this long (it reconnects and resumes).
pub const SLOW_CLOSE_MS: i64 = 30_000;

/// Each transport's delivery state: a WebSocket is pushed to and acknowledges; an SSE stream
/// and a long-polling session pull, so what they have not pulled yet waits here (prices
/// conflated).
#[derive(Debug, Clone, PartialEq)]
pub enum Carrier {
    /// Flow control by acknowledgement.
    WebSocket(WsFlow),
    /// The pull-based stream's pending set and events.
    Sse(SseState),
    /// An Engine.IO long-polling session's queue and pending set.
    Poll(PollState),
}

/// Where a change for one client goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Into a frame sent now (shared with every client that has the same changes).
    Send,
    /// Held for later (a WebSocket behind its window, an SSE reader busy reading).
    Held,
    /// Into a parked SSE stream: wake it.
    Wake,
}

/// Unread events an SSE stream may hold before it counts as too slow for them.
pub const MAX_QUEUED_EVENTS: usize = 256;

/// Where an event goes for one client.
#[derive(Debug, PartialEq, Eq)]
pub enum EventRoute {
    /// Into the frame sent now; `fell_behind` when that put the WebSocket over its window.
    Send {
        /// The send put it behind.
        fell_behind: bool,
    },
    /// Queued for an SSE reader busy reading.
    Held,
    /// Queued for a parked SSE stream: wake it.
    Wake,
    /// Too slow for events: close it (an SSE stream ends at its next pull).
    TooSlow,
}

/// What the periodic check found for one client.
#[derive(Debug, PartialEq, Eq)]
pub enum Tick {
    /// Nothing to do.
    Fine,
    /// Behind for [`SLOW_WARN_MS`]: warn it (an SSE stream got its warning queued).
    Warn,
    /// Behind for [`SLOW_CLOSE_MS`]: close it (an SSE stream ends at its next pull).
    Close,
    /// A parked SSE stream is due a keepalive: wake it.
    Keepalive,
}

impl Carrier {
    /// The transport kind.
    pub fn transport(&self) -> Transport {
        match self {
            Carrier::WebSocket(_) => Transport::WebSocket,
            Carrier::Sse(_) => Transport::Sse,
            Carrier::Poll(_) => Transport::Polling,
        }
    }

    /// Routes changed symbols to this client.
    pub fn change(&mut self, symbols: &[&String], now_ms: i64) -> Route {
        match self {
            Carrier::WebSocket(flow) if flow.behind_since.is_some() => {
                flow.pending.extend(symbols.iter().map(|s| (*s).clone()));
                Route::Held
            }
            Carrier::WebSocket(_) => Route::Send,
            Carrier::Sse(sse) => {
                sse.pending.extend(symbols.iter().map(|s| (*s).clone()));
                sse.pending_since.get_or_insert(now_ms);
                if sse.waiting {
                    Route::Wake
                } else {
                    Route::Held
                }
            }
            Carrier::Poll(poll) => {
                poll.pending.extend(symbols.iter().map(|s| (*s).clone()));
                if poll.waiting {
                    Route::Wake
                } else {
                    Route::Held
                }
            }
        }
    }

    /// Routes an event. Events are never conflated or skipped: a WebSocket already behind,
    /// or an SSE reader with `MAX_QUEUED_EVENTS` unread, is too slow for them.
    pub fn event(&mut self, event: &Event, now_ms: i64) -> EventRoute {
        let at = Some((event.channel.as_str(), event.offset));
        let payload = Payload::new(Kind::Event, &event.encoded);
        self.whole(payload, at, EventRoute::TooSlow, now_ms)
    }

    /// Routes a market payload: a WebSocket behind its window skips it (the next state
    /// brings it back); an SSE reader queues it, and one with `MAX_QUEUED_EVENTS` unread is
    /// too slow and ends.
    pub fn market(&mut self, payload: Payload<'_>, now_ms: i64) -> EventRoute {
        self.whole(payload, None, EventRoute::Held, now_ms)
    }

    /// A payload that is delivered whole, never merged into another: sent to a WebSocket
    /// within its window (`behind` decides for one past it), queued for an SSE stream
    /// (moving its position in an event channel to `at`).
    fn whole(
        &mut self,
        payload: Payload<'_>,
        at: Option<(&str, u64)>,
        behind: EventRoute,
        now_ms: i64,
    ) -> EventRoute {
        match self {
            Carrier::WebSocket(flow) if flow.behind_since.is_some() => behind,
            // A polling session's packets are queued where they are emitted.
            Carrier::Poll(poll) if poll.queue.len() >= MAX_POLL_PACKETS => behind,
            Carrier::Poll(_) => EventRoute::Send { fell_behind: false },
            Carrier::WebSocket(flow) => {
                // The frame's size on the wire, near enough for the flow-control window.
                let len = payload.body.len() + 24;
                let fell_behind = flow.sent(flow.mark(), len, now_ms);
                EventRoute::Send { fell_behind }
            }
            Carrier::Sse(sse) if sse.closing => EventRoute::Held,
            Carrier::Sse(sse) if sse.events.len() >= MAX_QUEUED_EVENTS => {
                sse.closing = true;
                EventRoute::TooSlow
            }
            Carrier::Sse(sse) => {
                if let (Some(pos), Some((channel, offset))) = (&mut sse.events_at, at) {
                    pos.advance(channel, offset);
                }
                let id = sse.id();
                sse.events.push_back(sse::frame(payload, Some(&id)));
                if sse.waiting {
                    EventRoute::Wake
                } else {
                    EventRoute::Held
                }
            }
        }
    }

    /// Routes a status: sent to a WebSocket (queued for a polling session where it is
    /// emitted), queued as an event for an SSE stream.
    pub fn status(&mut self, payload: Payload<'_>) -> Route {
        match self {
            Carrier::WebSocket(_) | Carrier::Poll(_) => Route::Send,
            Carrier::Sse(sse) => {
                sse.events.push_back(sse::frame(payload, None));
                if sse.waiting {
                    Route::Wake
                } else {
                    Route::Held
                }
            }
        }
    }

    /// The periodic check of one client at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Tick {
        match self {
            Carrier::WebSocket(flow) => match flow.behind_since.map(|t| now_ms - t) {
                Some(ms) if ms >= SLOW_CLOSE_MS => Tick::Close,
                Some(ms) if ms >= SLOW_WARN_MS && !flow.warned => {
                    flow.warned = true;
                    Tick::Warn
                }
                _ => Tick::Fine,
            },
            Carrier::Sse(sse) => sse_tick(sse, now_ms),
            // The heartbeat ends a session that stops polling.
            Carrier::Poll(_) => Tick::Fine,
        }
    }

    /// True while the periodic check has something to watch: every SSE stream (keepalives),
    /// and a WebSocket that is behind.
    pub fn watched(&self) -> bool {
        match self {
            Carrier::WebSocket(flow) => flow.behind_since.is_some(),
            Carrier::Sse(_) => true,
            Carrier::Poll(_) => false,
        }
    }
}

/// An SSE stream is behind while updates wait and it is not parked waiting for them.
fn sse_tick(sse: &mut SseState, now_ms: i64) -> Tick {
    if sse.closing {
        return Tick::Fine;
    }
    let behind = sse
        .pending_since
        .filter(|_| !sse.waiting)
        .map(|t| now_ms - t);
    match behind {
        Some(ms) if ms >= SLOW_CLOSE_MS => {
            sse.closing = true;
            return Tick::Close;
        }
        Some(ms) if ms >= SLOW_WARN_MS && !sse.warned => {
            sse.warned = true;
            let warning = Payload::new(Kind::Warning, SSE_SLOW_WARNING);
            sse.events.push_back(sse::frame(warning, None));
            return Tick::Warn;
        }
        _ => {}
    }
    if now_ms - sse.last_sent >= KEEPALIVE_MS {
        sse.keepalive_due = true;
        if sse.waiting {
            return Tick::Keepalive;
        }
        // It has not come back for more in a keepalive's interval: its reader stopped (or
        // a proxy holds the stream open without reading). The keepalive it cannot take is
        // pending like an update, so a quiet stream is closed as a slow one is, instead of
        // lingering for ever.
        sse.pending_since.get_or_insert(now_ms);
    }
    Tick::Fine
}

/// The `SLOW_CONSUMER` warning an SSE reader gets.
const SSE_SLOW_WARNING: &str = r#"{"code":"SLOW_CONSUMER","message":"you are not reading fast enough; you get the newest value of each symbol, and the stream closes if this goes on"}"#;

/// One client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// How its frames are framed.
    pub wire: Wire,
    /// Its transport's delivery state.
    pub carrier: Carrier,
    /// Its message rate limiter.
    pub limiter: RateLimiter,
    /// (Socket.IO) Its upgrade presented no valid token: its `CONNECT` must.
    pub needs_auth: bool,
    /// (Socket.IO) When the pong to the last ping is due, while it has not come, and the
    /// flow-control mark of what was sent before that ping (the pong settles it).
    pub pong_due: Option<(i64, u64)>,
    /// When the last price frame went out to it (the flush pacer's crowding measure).
    pub last_price_at: Option<i64>,
    /// Whose connection it is (with `JWT_SECRET`).
    pub who: Option<Identity>,
    /// Its attachment outgrew the socket's and is kept in the object's storage.
    pub stored: bool,
    subs: BTreeSet<String>,
}

impl Client {
    /// True when it listens to a symbol or a market channel (what the feed's interest
    /// follows; event channels are not the upstream's business).
    pub fn has_subscriptions(&self) -> bool {
        self.subs
            .iter()
            .any(|k| crate::core::channel::from_upstream(k))
    }

    /// True for an SSE stream.
    pub fn is_sse(&self) -> bool {
        self.carrier.transport() == Transport::Sse
    }

    fn new(wire: Wire, rate: u32, now_ms: i64) -> Client {
        let carrier = match wire.transport() {
            Transport::WebSocket => Carrier::WebSocket(WsFlow::default()),
            Transport::Sse => Carrier::Sse(SseState {
                last_sent: now_ms,
                ..SseState::default()
            }),
            Transport::Polling => Carrier::Poll(PollState::default()),
        };
        Client {
            wire,
            carrier,
            limiter: RateLimiter::new(rate, now_ms),
            needs_auth: false,
            pong_due: None,
            last_price_at: None,
            who: None,
            stored: false,
            subs: BTreeSet::new(),
        }
    }
}

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
