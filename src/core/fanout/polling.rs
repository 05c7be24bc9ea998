//! Engine.IO long-polling sessions in the fan-out: how a default `socket.io-client` starts,
//! before it upgrades to a WebSocket.
//!
//! A session is a client like any other (its Socket.IO packets go through the same code as
//! a WebSocket's), except where its frames go: every frame emitted for it waits in its
//! queue (prices conflated in a pending set) until its next GET takes them, joined by the
//! record separator. A GET with nothing to take is held until something arrives; the
//! heartbeat's ping arrives every ping interval, so a GET is never held longer, and a
//! session that stops polling misses its pong and ends. The upgrade: a WebSocket opened with
//! the session's id is accepted as the session's connection, `2probe` is answered `3probe`
//! on it (never a ping: the socket is not the session's yet), the held GET ends with `6`,
//! and `5` moves the session to the socket with whatever was still queued.

use std::collections::BTreeSet;

use super::session::PollState;
use super::{Carrier, Fanout};
use crate::core::effect::Effect;
use crate::core::error::ApiError;
use crate::core::fanout::session::WsFlow;
use crate::core::ids::{ConnId, Holder, Identity};
use crate::core::input::{ClientInput, PollAnswer, PollInput};
use crate::core::protocol::close;
use crate::core::wire::socketio::engine::{join_body, EnginePacket, MAX_PACKETS_PER_BODY};
use crate::core::wire::socketio::sid::Sid;
use crate::core::wire::socketio::Nsp;
use crate::core::wire::{Kind, Payload, Wire};

/// Engine.IO's refusal of a request naming no live session of this object.
fn unknown_sid() -> ApiError {
    ApiError::EngineIo {
        code: 1,
        message: "Session ID unknown",
    }
}

/// Engine.IO's refusal of a request its session cannot take now.
fn bad_request() -> ApiError {
    ApiError::EngineIo {
        code: 3,
        message: "Bad request",
    }
}

impl Fanout {
    /// One request of a long-polling session (see [`PollInput`]).
    pub fn poll(
        &mut self,
        input: PollInput<'_>,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) -> Result<PollAnswer, ApiError> {
        match input {
            PollInput::Open {
                holder,
                nonce,
                who,
                owes_token,
            } => self.poll_open(holder, nonce, (who, owes_token), now_ms, fx),
            PollInput::Get { sid, parked } => self.poll_get(sid, parked, now_ms, fx),
            PollInput::Post { sid, body } => self.poll_post(sid, body, now_ms, fx),
            PollInput::Upgrade { sid } => {
                let conn = self.session(sid).ok_or_else(unknown_sid)?;
                match self.clients.poll_mut(conn) {
                    Some(p) if !p.socket => {
                        p.socket = true;
                        Ok(PollAnswer::Upgrade(conn))
                    }
                    _ => Err(bad_request()),
                }
            }
        }
    }

    /// The handshake: a new session, answered with its `open` packet.
    fn poll_open(
        &mut self,
        holder: Holder,
        nonce: u64,
        (who, owes_token): (Option<Identity>, bool),
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) -> Result<PollAnswer, ApiError> {
        if !self.admit_client() {
            let why = "the service is at its connection limit; retry shortly";
            return Err(ApiError::AtCapacity(why.into()));
        }
        let conn = self.register(Wire::SocketIo(Nsp::Pending), who, now_ms);
        let poll = Carrier::Poll(PollState::new(nonce));
        self.clients.set_carrier(conn, poll);
        if owes_token {
            self.require_auth(conn);
        }
        let sid = Sid {
            holder,
            conn,
            nonce,
        }
        .encode();
        self.socketio_open(conn, Some(&sid), now_ms, fx);
        self.poll_get(&sid, false, now_ms, fx)
    }

    /// The session `sid` names, when this object holds it and it is polling.
    fn session(&mut self, sid: &str) -> Option<ConnId> {
        let sid = Sid::decode(sid)?;
        let nonce = self.clients.poll_mut(sid.conn)?.nonce;
        (nonce == sid.nonce).then_some(sid.conn)
    }

    /// A GET: what waits, or `Wait` until something does.
    fn poll_get(
        &mut self,
        sid: &str,
        parked: bool,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) -> Result<PollAnswer, ApiError> {
        let Some(conn) = self.session(sid) else {
            // A held GET of a session that ended meanwhile gets the close packet.
            return match parked {
                true => Ok(PollAnswer::Body(EnginePacket::Close.encode())),
                false => Err(unknown_sid()),
            };
        };
        let Some(poll) = self.clients.poll_mut(conn) else {
            return Err(unknown_sid());
        };
        if poll.waiting && !parked {
            // Two GETs at once: the protocol ends the session (the held one gets `1`).
            self.stats.client_errors += 1;
            self.close_client(conn, close::PROTOCOL, "overlapping polls", now_ms, fx);
            return Err(bad_request());
        }
        if poll.overflowed {
            self.stats.slow_consumer_closes += 1;
            self.close_client(conn, close::SLOW_CONSUMER, "slow consumer", now_ms, fx);
            return Ok(PollAnswer::Body(EnginePacket::Close.encode()));
        }
        let mut packets: Vec<String> = poll.queue.drain(..).collect();
        let pending = std::mem::take(&mut poll.pending);
        let pending = self.still_held(conn, pending);
        let prices = self.price_packets(conn, &pending, now_ms);
        if !prices.is_empty() {
            self.count_symbols(&pending, 1);
        }
        packets.extend(prices);
        let Some(poll) = self.clients.poll_mut(conn) else {
            return Err(unknown_sid());
        };
        poll.waiting = packets.is_empty() && !poll.probed;
        if poll.waiting {
            return Ok(PollAnswer::Wait(conn));
        }
        if packets.is_empty() {
            // In the upgrade: end this polling cycle at once so the client can say `5`.
            packets.push(EnginePacket::Noop.encode());
        }
        Ok(PollAnswer::Body(join_body(&packets)))
    }

    /// Of the symbols whose prices a session has pending, those it still holds: one it left
    /// since its price was noted must not reach it after the answer to its `unsubscribe`.
    fn still_held(&self, conn: ConnId, pending: BTreeSet<String>) -> BTreeSet<String> {
        pending
            .into_iter()
            .filter(|s| self.clients.holds(conn, s))
            .collect()
    }

    /// The newest value of each of `pending`, as the session's packets.
    fn price_packets(&self, conn: ConnId, pending: &BTreeSet<String>, now: i64) -> Vec<String> {
        let (Some(wire), Some((body, _))) =
            (self.clients.wire(conn), self.latest.body(pending, 0, now))
        else {
            return Vec::new();
        };
        wire.frames(Payload::new(Kind::Prices, &body), None)
    }

    /// A POST: each packet is read as a WebSocket frame of the session would be.
    fn poll_post(
        &mut self,
        sid: &str,
        body: &str,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) -> Result<PollAnswer, ApiError> {
        let conn = self.session(sid).ok_or_else(unknown_sid)?;
        let separator = crate::core::wire::socketio::engine::SEPARATOR;
        if body.split(separator).count() > MAX_PACKETS_PER_BODY {
            self.protocol_error(conn, now_ms, fx);
            return Err(bad_request());
        }
        for packet in body.split(separator) {
            if !self.clients.contains(conn) {
                break;
            }
            self.client_text(conn, packet, now_ms, fx);
        }
        Ok(PollAnswer::Taken)
    }

    /// True when `conn` is a long-polling session: what its socket says is its upgrade's.
    pub fn is_polling(&self, conn: ConnId) -> bool {
        self.clients.is_polling(conn)
    }

    /// What the upgrade's WebSocket of a polling session says or does.
    pub(super) fn probe_input(&mut self, input: ClientInput<'_>, now: i64, fx: &mut Vec<Effect>) {
        let conn = input.conn();
        let probe = EnginePacket::Ping("probe").encode();
        match input {
            ClientInput::Text { text, .. } if text == probe => {
                let Some(poll) = self.clients.poll_mut(conn) else {
                    return;
                };
                poll.probed = true;
                if poll.waiting {
                    fx.push(Effect::SseWake { conns: vec![conn] });
                }
                self.count_sent(1, 6);
                let frame = EnginePacket::Pong("probe").encode().into();
                fx.push(Effect::Send { conn, frame });
            }
            ClientInput::Text { text, .. }
                if text == EnginePacket::Upgrade.encode()
                    && self.clients.poll_mut(conn).is_some_and(|p| p.probed) =>
            {
                self.upgraded(conn, now, fx)
            }
            ClientInput::Text { .. } | ClientInput::Binary { .. } => {
                // Not the upgrade: that socket goes, the session keeps polling.
                self.probe_ended(conn);
                let (code, reason) = (close::PROTOCOL, "not an upgrade");
                fx.push(Effect::Close { conn, code, reason });
            }
            ClientInput::Closed { .. } | ClientInput::SendFailed { .. } => self.probe_ended(conn),
        }
    }

    fn probe_ended(&mut self, conn: ConnId) {
        if let Some(p) = self.clients.poll_mut(conn) {
            (p.socket, p.probed) = (false, false);
        }
    }

    /// `5`: the session is the WebSocket's from now on; what was still queued goes there,
    /// then the socket's attachment is written (it hibernates like any other).
    fn upgraded(&mut self, conn: ConnId, now: i64, fx: &mut Vec<Effect>) {
        let Some(poll) = self.clients.poll_mut(conn) else {
            return;
        };
        let queue = std::mem::take(&mut poll.queue);
        let pending = std::mem::take(&mut poll.pending);
        if poll.waiting {
            fx.push(Effect::SseWake { conns: vec![conn] });
        }
        let flow = Carrier::WebSocket(WsFlow::default());
        self.clients.set_carrier(conn, flow);
        // Counted when they were queued.
        for frame in queue {
            fx.push(Effect::Send {
                conn,
                frame: frame.into(),
            });
        }
        let pending = self.still_held(conn, pending);
        for frame in self.price_packets(conn, &pending, now) {
            self.emit(conn, frame, fx);
        }
        self.save(conn, fx);
    }

    /// One frame for one client: queued for a polling session (its held GET woken), sent
    /// to any other.
    pub(super) fn emit(&mut self, conn: ConnId, frame: String, fx: &mut Vec<Effect>) {
        self.count_sent(1, frame.len());
        match self.enqueue(conn, &frame) {
            None => fx.push(Effect::Send {
                conn,
                frame: frame.into(),
            }),
            Some(true) => fx.push(Effect::SseWake { conns: vec![conn] }),
            Some(false) => {}
        }
    }

    /// One frame for many clients: sent as one shared frame to those pushed to, queued for
    /// the polling sessions among them.
    pub(super) fn emit_all(&mut self, mut conns: Vec<ConnId>, frame: String, fx: &mut Vec<Effect>) {
        self.count_sent(conns.len(), frame.len());
        if self.clients.polling() > 0 {
            let mut wake = Vec::new();
            conns.retain(|&conn| match self.enqueue(conn, &frame) {
                None => true,
                Some(waiting) => {
                    if waiting {
                        wake.push(conn);
                    }
                    false
                }
            });
            if !wake.is_empty() {
                fx.push(Effect::SseWake { conns: wake });
            }
        }
        if !conns.is_empty() {
            fx.push(Effect::Fanout {
                conns,
                frame: frame.into(),
            });
        }
    }

    /// Queues `frame` for `conn` when it is a polling session: `None` when it is not (send
    /// it), else whether a GET is held (wake it).
    fn enqueue(&mut self, conn: ConnId, frame: &str) -> Option<bool> {
        if self.clients.polling() == 0 {
            return None;
        }
        let poll = self.clients.poll_mut(conn)?;
        if poll.queue.len() >= super::session::MAX_POLL_PACKETS {
            // Its next GET (or the heartbeat) ends it: it does not keep up.
            poll.overflowed = true;
        } else {
            poll.queue.push_back(frame.to_string());
        }
        Some(poll.waiting)
    }
}
