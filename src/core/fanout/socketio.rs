//! Socket.IO clients in the fan-out: their Engine.IO packets read, a namespace joined
//! (`/prices` or `/`, one per connection), their `subscribe`/`unsubscribe` events carried
//! out as the JSON protocol's commands (so every limit and check is the same), and the
//! server's heartbeat: one `2` for every Socket.IO client at once, every ping interval, and
//! a client whose `3` has not come within the ping timeout closed.

use serde_json::Value;

use super::{Carrier, Fanout};
use crate::core::auth;
use crate::core::effect::Effect;
use crate::core::error::{ClientError, ErrorCode};
use crate::core::ids::ConnId;
use crate::core::protocol::{close, Command};
use crate::core::wire::socketio::engine::{EnginePacket, Handshake};
use crate::core::wire::socketio::packet::{self, Packet, PacketType};
use crate::core::wire::socketio::Nsp;
use crate::core::wire::Wire;

/// What the heartbeat does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Beat {
    /// Ping every Socket.IO client.
    Ping,
    /// Close those whose pong has not come.
    Check,
}

impl Fanout {
    /// A new Socket.IO session: the Engine.IO handshake, and the heartbeat started. A
    /// polling session (`polling` is its id) may upgrade; a WebSocket has nothing to upgrade
    /// to, and its id names nothing outside this object.
    pub(super) fn socketio_open(
        &mut self,
        conn: ConnId,
        polling: Option<&str>,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        let sio = self.cfg.socketio.clone();
        let own = format!("{conn:x}");
        let open = Handshake {
            sid: polling.unwrap_or(&own),
            upgrade: polling.is_some(),
            ping_interval_ms: sio.ping_interval_ms.unsigned_abs(),
            ping_timeout_ms: sio.ping_timeout_ms.unsigned_abs(),
            max_payload: self.cfg.max_frame_bytes,
        }
        .open_packet();
        self.raw(conn, open, fx);
        self.beat
            .get_or_insert((now_ms + sio.ping_interval_ms, Beat::Ping));
    }

    /// Whether `text` from `conn` is the transport's own and needs nothing from the leader:
    /// whatever a polling session's upgrade socket says, or a Socket.IO session's Engine.IO
    /// ping or pong. A shard carries these out while its link is down, where it holds
    /// commands: a held pong would close a session that answers every ping.
    pub fn transport_only(&self, conn: ConnId, text: &str) -> bool {
        if self.clients.is_polling(conn) {
            return true;
        }
        let heartbeat = matches!(
            EnginePacket::decode(text),
            Ok(EnginePacket::Pong(_) | EnginePacket::Ping(_))
        );
        heartbeat && matches!(self.clients.wire(conn), Some(Wire::SocketIo(_)))
    }

    /// One text frame of a Socket.IO client (of namespace `nsp`).
    pub(super) fn socketio_text(
        &mut self,
        conn: ConnId,
        nsp: Nsp,
        text: &str,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        match EnginePacket::decode(text) {
            Ok(EnginePacket::Pong(_)) => {
                // Everything sent before the ping has reached the client: it settles what
                // flow control counts (the client never acknowledges by itself).
                let due = self.clients.get_mut(conn).and_then(|c| c.pong_due.take());
                if let Some((_, mark)) = due {
                    self.ack(conn, mark, false, now_ms, fx);
                }
            }
            Ok(EnginePacket::Ping(data)) => self.raw(conn, EnginePacket::Pong(data).encode(), fx),
            Ok(EnginePacket::Message(m)) => match Packet::decode(m) {
                Ok(p) => self.socketio_packet(conn, nsp, p, now_ms, fx),
                Err(_) => self.protocol_error(conn, now_ms, fx),
            },
            Ok(EnginePacket::Close) => {
                self.close_client(conn, close::NORMAL, "closed", now_ms, fx);
            }
            Ok(EnginePacket::Open(_) | EnginePacket::Upgrade | EnginePacket::Noop) => {}
            Err(_) => self.protocol_error(conn, now_ms, fx),
        }
    }

    pub(super) fn protocol_error(&mut self, conn: ConnId, now_ms: i64, fx: &mut Vec<Effect>) {
        self.stats.client_errors += 1;
        self.close_client(conn, close::PROTOCOL, "malformed packet", now_ms, fx);
    }

    fn socketio_packet(
        &mut self,
        conn: ConnId,
        nsp: Nsp,
        p: Packet<'_>,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        match p.kind {
            PacketType::Connect => {
                if self.authenticated(conn, p.data.as_ref(), now_ms) {
                    self.socketio_connect(conn, nsp, p.nsp, now_ms, fx)
                } else {
                    let refused = packet::connect_error(p.nsp, "UNAUTHORIZED");
                    self.raw(conn, format!("4{refused}"), fx);
                }
            }
            PacketType::Disconnect if Nsp::of(p.nsp) == Some(nsp) => {
                self.set_wire(conn, Wire::SocketIo(Nsp::Pending));
                let keys = self.clients.subscriptions(conn);
                self.clients.unsubscribe(conn, &keys);
                self.interest_changed = true;
                self.save(conn, fx);
            }
            PacketType::Event if Nsp::of(p.nsp) == Some(nsp) => {
                self.socketio_event(conn, &p, now_ms, fx)
            }
            _ => {}
        }
    }

    /// A session that needs a token (its upgrade presented none that is valid) has one in its
    /// `CONNECT` packet's `auth` (`{"token":…}`): a JWT with `JWT_SECRET`, else `AUTH_TOKEN`.
    fn authenticated(&mut self, conn: ConnId, data: Option<&Value>, now_ms: i64) -> bool {
        if !self.clients.get(conn).is_some_and(|c| c.needs_auth) {
            return true;
        }
        let token = data.and_then(|d| d.get("token")).and_then(Value::as_str);
        let (jwt_secret, auth_token) = (
            self.cfg.jwt_secret.as_deref(),
            self.cfg.auth_token.as_deref(),
        );
        let Ok(who) = auth::check(jwt_secret, auth_token, token, now_ms) else {
            return false;
        };
        self.identify(conn, who);
        if let Some(c) = self.clients.get_mut(conn) {
            c.needs_auth = false;
        }
        true
    }

    /// `CONNECT` to a namespace: joined when it is served and the connection has none yet.
    fn socketio_connect(
        &mut self,
        conn: ConnId,
        held: Nsp,
        asked: &str,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        let refusal = match (Nsp::of(asked), held) {
            (None, _) => Some("Invalid namespace"),
            (Some(_), Nsp::Prices | Nsp::Root) => Some("one namespace per connection"),
            (Some(_), Nsp::Pending) => None,
        };
        if let Some(message) = refusal {
            self.raw(
                conn,
                format!("4{}", packet::connect_error(asked, message)),
                fx,
            );
            return;
        }
        let nsp = Nsp::of(asked).unwrap_or(Nsp::Prices);
        self.set_wire(conn, Wire::SocketIo(nsp));
        let sid = format!("{conn:x}");
        self.raw(conn, format!("4{}", packet::connect(asked, &sid)), fx);
        if nsp == Nsp::Root {
            // Flask-SocketIO's clients got every broadcast symbol, and `connected`.
            let connected = packet::event("/", "connected", r#"{"status":"connected"}"#);
            self.raw(conn, format!("4{connected}"), fx);
            let symbols = self.cfg.socketio.broadcast.clone();
            let cmd = Command::Subscribe {
                symbols,
                channels: Vec::new(),
                since: Vec::new(),
                id: None,
            };
            self.command(conn, cmd, now_ms, fx);
        } else {
            self.save(conn, fx);
        }
    }

    /// `subscribe` / `unsubscribe` with `{symbol}` or `{channel}`: carried out as the JSON
    /// protocol's command; the answer is the ack when the client asked for one.
    fn socketio_event(&mut self, conn: ConnId, p: &Packet<'_>, now_ms: i64, fx: &mut Vec<Effect>) {
        let id = p.id.map(Value::from);
        let Some((name, args)) = p.event() else {
            return;
        };
        let arg = args.first();
        let field = |k: &str| arg.and_then(|a| a.get(k)).and_then(Value::as_str);
        let (symbols, channels) = match (field("symbol"), field("channel"), arg) {
            (Some(s), _, _) => (vec![s.to_string()], Vec::new()),
            (None, Some(c), _) => (Vec::new(), vec![c.to_string()]),
            (None, None, Some(Value::String(s))) => (vec![s.clone()], Vec::new()),
            _ => (Vec::new(), Vec::new()),
        };
        let cmd = match name {
            "subscribe" if !(symbols.is_empty() && channels.is_empty()) => Command::Subscribe {
                symbols,
                channels,
                since: Vec::new(),
                id,
            },
            "unsubscribe" if !(symbols.is_empty() && channels.is_empty()) => Command::Unsubscribe {
                symbols,
                channels,
                id,
            },
            "subscribe" | "unsubscribe" => {
                let why = "send {symbol:'BTCUSDT'} or {channel:'trades:BTCUSDT'}";
                let e = ClientError::new(ErrorCode::BadRequest, why).with_id(id);
                return self.reject(conn, e, fx);
            }
            other => {
                let why = format!("unknown event {:?}", crate::core::text::truncate(other, 32));
                let e = ClientError::new(ErrorCode::UnknownAction, why).with_id(id);
                return self.reject(conn, e, fx);
            }
        };
        self.command(conn, cmd, now_ms, fx);
    }

    /// The heartbeat: at a ping, one `2` for every Socket.IO client (each then owes a pong
    /// within the timeout); at the check, the ones that did not answer are closed.
    pub(super) fn heartbeat(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let Some((at, beat)) = self.beat else {
            return;
        };
        if at > now_ms {
            return;
        }
        let sio = self.cfg.socketio.clone();
        let sessions: Vec<ConnId> = self.clients.socketio().collect();
        if sessions.is_empty() {
            self.beat = None;
            return;
        }
        match beat {
            Beat::Ping => {
                for conn in &sessions {
                    if let Some(c) = self.clients.get_mut(*conn) {
                        let mark = match &c.carrier {
                            Carrier::WebSocket(flow) => flow.mark(),
                            Carrier::Sse(_) | Carrier::Poll(_) => 0,
                        };
                        c.pong_due
                            .get_or_insert((now_ms + sio.ping_timeout_ms, mark));
                    }
                }
                // A polling session's ping waits for its GET; an upgrade's socket is not
                // the session's until `5`, so it is never pinged.
                self.emit_all(sessions, EnginePacket::Ping("").encode(), fx);
                self.beat = Some((now_ms + sio.ping_timeout_ms, Beat::Check));
            }
            Beat::Check => {
                let late = |c: &ConnId| {
                    let client = self.clients.get(*c);
                    let due = client.and_then(|c| c.pong_due);
                    let overflowed = client.is_some_and(|c| match &c.carrier {
                        Carrier::Poll(p) => p.overflowed,
                        _ => false,
                    });
                    overflowed || due.is_some_and(|(t, _)| t <= now_ms)
                };
                let silent: Vec<ConnId> = sessions.iter().copied().filter(late).collect();
                for conn in silent {
                    self.close_client(conn, close::NORMAL, "ping timeout", now_ms, fx);
                }
                let next = sio.ping_interval_ms - sio.ping_timeout_ms;
                self.beat = Some((now_ms + next.max(0), Beat::Ping));
            }
        }
    }

    fn set_wire(&mut self, conn: ConnId, wire: Wire) {
        if let Some(c) = self.clients.get_mut(conn) {
            c.wire = wire;
        }
    }

    /// Sends one Engine.IO packet as it is.
    fn raw(&mut self, conn: ConnId, frame: String, fx: &mut Vec<Effect>) {
        self.emit(conn, frame, fx);
    }
}
