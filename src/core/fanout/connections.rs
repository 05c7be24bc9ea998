//! Client connections in the fan-out: admitted under `MAX_CONNECTIONS`, opened on a wire,
//! restored after hibernation, identified (and closed when their token expires), closed and
//! forgotten.

use super::socketio::Beat;
use super::Fanout;
use crate::core::attachment::Attachment;
use crate::core::channel;
use crate::core::effect::Effect;
use crate::core::ids::{ConnId, Identity, Transport};
use crate::core::protocol::close;
use crate::core::wire::socketio::Nsp;
use crate::core::wire::Wire;

impl Fanout {
    /// True while another client fits under `MAX_CONNECTIONS`; a refusal is counted.
    pub fn admit_client(&mut self) -> bool {
        let ok = self.clients.len() < self.cfg.max_connections;
        if !ok {
            self.stats.refused_at_capacity += 1;
        }
        ok
    }

    /// Registers a new connection and returns its id; a WebSocket's attachment (its id,
    /// wire and identity) is written at once.
    pub fn client_open(
        &mut self,
        wire: Wire,
        who: Option<Identity>,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) -> ConnId {
        let id = self.register(wire, who, now_ms);
        self.save(id, fx);
        if let Wire::SocketIo(_) = wire {
            self.socketio_open(id, None, now_ms, fx);
        }
        id
    }

    /// Adds a client of `wire` to the table and returns its id.
    pub(super) fn register(&mut self, wire: Wire, who: Option<Identity>, now_ms: i64) -> ConnId {
        self.stats.connections_opened += 1;
        let id = self.next_conn;
        self.next_conn += 1;
        let rate = self.cfg.client_messages_per_second;
        self.clients.insert(id, wire, rate, now_ms);
        self.identify(id, who);
        self.churn(true, now_ms);
        if wire.transport() == Transport::Sse {
            self.watch(now_ms);
        }
        id
    }

    /// Re-registers a WebSocket found after the object woke from hibernation, from its
    /// attachment (the whole one, read back from storage by the edge when it was stored).
    pub fn client_restore(&mut self, a: Attachment) {
        let (conn, wire) = (a.id, a.wire);
        let served: Vec<String> = a
            .subs
            .into_iter()
            .filter(|s| self.cfg.symbols.contains(s) || channel::resolve(&self.cfg, s).is_ok())
            .collect();
        let rate = self.cfg.client_messages_per_second;
        self.clients.insert(conn, wire, rate, 0);
        let auth = self.cfg.jwt_secret.is_some() || self.cfg.auth_token.is_some();
        if wire == Wire::SocketIo(Nsp::Pending) && auth {
            // Woken before its CONNECT: its upgrade's token cannot be told apart any more.
            self.require_auth(conn);
        }
        if let Wire::SocketIo(_) = wire {
            // A woken object pings its Socket.IO sessions at once: their clients give up
            // after a ping interval and timeout without one.
            self.beat.get_or_insert((0, Beat::Ping));
        }
        self.identify(conn, a.who);
        if let Some(c) = self.clients.get_mut(conn) {
            c.stored = a.stored;
        }
        let added = self.clients.subscribe(conn, &served);
        self.interest_changed |= added.iter().any(|k| channel::from_upstream(k));
        self.next_conn = self.next_conn.max(conn + 1);
    }

    /// See [`crate::core::host::ClientHost::require_auth`].
    pub fn require_auth(&mut self, conn: ConnId) {
        if let Some(c) = self.clients.get_mut(conn) {
            c.needs_auth = true;
        }
    }

    /// A connection's subscriptions, sorted: symbols and channel keys.
    pub fn subscriptions(&self, conn: ConnId) -> Vec<String> {
        self.clients.subscriptions(conn)
    }

    /// True when the connection is registered.
    pub fn has_client(&self, conn: ConnId) -> bool {
        self.clients.contains(conn)
    }

    /// A connection closed or errored; an attachment it kept in storage is forgotten there.
    pub(super) fn client_closed(&mut self, conn: ConnId, now_ms: i64, fx: &mut Vec<Effect>) {
        if let Some(client) = self.clients.remove(conn) {
            if let Some(who) = &client.who {
                self.expiries.remove(&(who.exp_ms, conn));
            }
            if client.stored {
                fx.push(Effect::StoreAttachment { conn, whole: None });
            }
            self.churn(false, now_ms);
            self.interest_changed |= client.has_subscriptions();
        }
    }

    /// Closes a connection and forgets it at once: the edge then has nothing to reconcile,
    /// whatever the client does with the close handshake.
    pub(super) fn close_client(
        &mut self,
        conn: ConnId,
        code: u16,
        reason: &'static str,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        let polling = self.clients.is_polling(conn);
        self.client_closed(conn, now_ms, fx);
        fx.push(Effect::Close { conn, code, reason });
        if polling {
            // Its held GET ends with the close packet.
            fx.push(Effect::SseWake { conns: vec![conn] });
        }
    }

    /// Ends SSE streams: forgotten now, and woken so that a pull parked in one ends its
    /// response (a later pull finds nothing and ends it too). Forgotten at once, not at the
    /// stream's next pull, because that pull may never come: wrangler's local proxy has been
    /// seen holding the runtime's side of a stream whose reader left, open and unread, and a
    /// stream kept until then would be a client that lingers for ever.
    pub(super) fn end_streams(&mut self, conns: Vec<ConnId>, now_ms: i64, fx: &mut Vec<Effect>) {
        if conns.is_empty() {
            return;
        }
        for &conn in &conns {
            self.client_closed(conn, now_ms, fx);
        }
        fx.push(Effect::SseWake { conns });
    }

    /// A send to the client failed: close it with 1011 (its client retries) and forget it.
    pub(super) fn send_failed(&mut self, conn: ConnId, now_ms: i64, fx: &mut Vec<Effect>) {
        if self.clients.contains(conn) {
            self.close_client(conn, close::INTERNAL, "send failed", now_ms, fx);
        }
    }

    /// Keeps whose connection `conn` is, and when its token expires.
    pub(super) fn identify(&mut self, conn: ConnId, who: Option<Identity>) {
        if let (Some(w), Some(c)) = (&who, self.clients.get_mut(conn)) {
            self.expiries.insert((w.exp_ms, conn));
            c.who = who;
        }
    }

    /// Closes the connections whose token expired by `now_ms`: 4401 for a WebSocket (the
    /// client reconnects with a fresh token), the end for an SSE stream.
    pub(super) fn expire(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        while let Some(&(at, conn)) = self.expiries.first() {
            if at > now_ms {
                break;
            }
            self.expiries.pop_first();
            let sse = self.clients.get_mut(conn).is_some_and(|c| c.is_sse());
            if sse {
                self.end_streams(vec![conn], now_ms, fx);
            } else {
                self.close_client(conn, close::TOKEN_EXPIRED, "token expired", now_ms, fx);
            }
        }
    }
}
