//! The clients' side of the simulated world: JSON WebSocket clients opening, speaking and
//! leaving; SSE streams opened (at a shard, once its link has the leader's snapshot, as the
//! edge waits for it), pulled whenever their object wakes them, and ended with their
//! object; and what objects send their clients.

use super::clients::SimClient;
use super::sio::Sio;
use super::upgrade;
use super::world::{key, Event, World, USERS};
use crate::core::effect::Effect;
use crate::core::ids::{ConnId, Holder, Identity, ShardId};
use crate::core::input::ClientInput;
use crate::core::wire::socketio::Nsp;
use crate::core::wire::Wire;

impl World {
    /// What an object does to its clients (frames, closes, attachments, SSE wakes); the rest
    /// (logs, the history's requests) has no client here.
    pub(super) fn client_effect(&mut self, holder: Holder, e: Effect) {
        if let Effect::Close { conn, .. }
        | Effect::SaveAttachment { conn, .. }
        | Effect::StoreAttachment { conn, .. } = &e
        {
            // The edge carries these out on the connection's socket: a polling session has
            // none (it learns of its end from its next GET) but its upgrade's probe, which a
            // close ends.
            if let Some(i) = self.polling_index(holder, *conn) {
                if matches!(e, Effect::Close { .. }) && self.clients[i].probing() {
                    self.probe_closed(i);
                }
                return;
            }
        }
        match e {
            Effect::Send { conn, frame } => self.deliver(holder, &[conn], &frame),
            Effect::Fanout { conns, frame } => self.deliver(holder, &conns, &frame),
            Effect::Close { conn, code, reason } => {
                self.trace(|| format!("conn {conn} on {holder:?} closed: {code} {reason}"));
                if reason == "ping timeout" {
                    let v = format!("conn {conn} on {holder:?}: closed for a ping timeout, though it answers every ping");
                    self.violations.push(v);
                }
                for c in self
                    .clients
                    .iter_mut()
                    .filter(|c| c.holder == holder && c.conn == conn)
                {
                    c.open = false;
                }
                self.attachments.remove(&(key(holder), conn));
            }
            Effect::SaveAttachment { conn, attachment } => {
                self.attachments.insert((key(holder), conn), attachment);
            }
            Effect::StoreAttachment { conn, whole } => match whole {
                Some(whole) => {
                    self.stored_attachments.insert((key(holder), conn), whole);
                }
                None => {
                    self.stored_attachments.remove(&(key(holder), conn));
                }
            },
            Effect::SseWake { conns } => self.woken(holder, &conns),
            _ => {}
        }
    }

    fn deliver(&mut self, holder: Holder, conns: &[ConnId], frame: &str) {
        let now = self.now;
        let unsettled = self.unsettled.clone();
        let mut replies = Vec::new();
        for (i, c) in self.clients.iter_mut().enumerate() {
            if c.open && c.holder == holder && conns.contains(&c.conn) {
                c.may_be_older.clone_from(&unsettled);
                let taken = match (c.pulls(), c.sio.is_some()) {
                    (true, _) if c.probing() => c.probe_answer(frame),
                    (true, _) => Err(format!(
                        "conn {}: a socket's frame sent to an SSE stream or polling session",
                        c.conn
                    )),
                    (false, true) => c
                        .take_sio(frame, now)
                        .map(|r| replies.extend(r.into_iter().map(|r| (i, r)))),
                    (false, false) => c.take(frame),
                };
                if let Err(v) = taken {
                    self.violations.push(v);
                }
            }
        }
        self.reply(replies);
    }

    /// Each client's reply (a Socket.IO pong) goes up after a network delay.
    pub(super) fn reply(&mut self, replies: Vec<(usize, String)>) {
        for (i, reply) in replies {
            let at = self.now + self.delay();
            self.push(at, Event::ClientSends(i, reply));
        }
    }

    // ----- time ---------------------------------------------------------------------------

    /// Opens a client on a random object (a shard when there are shards).
    pub fn open_client(&mut self) -> usize {
        let who = self.identity();
        self.open_client_as(who)
    }

    /// Opens a client of `who` on a random object.
    fn open_client_as(&mut self, who: Option<Identity>) -> usize {
        let holder = self.pick_holder();
        let now = self.now;
        let (conn, fx) = self.host(holder).client_open(Wire::Json, who.clone(), now);
        self.clients.push(SimClient::new(holder, conn).with(who));
        self.effects_of(holder, fx);
        self.clients.len() - 1
    }

    /// Opens a Socket.IO session on a random object, which joins `/` (`root`) or `/prices`.
    pub fn open_sio(&mut self, root: bool) -> usize {
        let holder = self.pick_holder();
        let now = self.now;
        let wire = Wire::SocketIo(Nsp::Pending);
        let who = self.identity();
        let (conn, fx) = self.host(holder).client_open(wire, who.clone(), now);
        let mut c = SimClient::new(holder, conn).with(who);
        let broadcast = self.cfg.socketio.broadcast.clone();
        c.sio = Some(Sio {
            root,
            broadcast,
            ..Sio::default()
        });
        self.clients.push(c);
        self.effects_of(holder, fx);
        let i = self.clients.len() - 1;
        let connect = if root { "40" } else { "40/prices," };
        self.client_says(i, connect);
        i
    }

    /// Client `i` subscribes to (or leaves) `keys`: one command on the JSON wire, one packet
    /// per key with its ack on `/prices`; a root session, or one not joined yet, sends none.
    pub fn ask(&mut self, i: usize, subscribe: bool, keys: &[String]) {
        let Some(c) = self.clients.get_mut(i) else {
            return;
        };
        let Some(sio) = c.sio.as_mut() else {
            let (symbols, channels): (Vec<&String>, Vec<&String>) =
                keys.iter().partition(|k| !k.contains(':'));
            let action = if subscribe {
                "subscribe"
            } else {
                "unsubscribe"
            };
            let mut command = serde_json::json!({ "action": action });
            for (field, keys) in [("symbols", symbols), ("channels", channels)] {
                if !keys.is_empty() {
                    command[field] = serde_json::json!(keys);
                }
            }
            return self.client_says(i, &command.to_string());
        };
        if sio.root || !sio.joined {
            return;
        }
        let packets: Vec<String> = keys.iter().map(|k| sio.command(subscribe, k)).collect();
        for p in packets {
            self.client_says(i, &p);
        }
    }

    /// Client `i` sends `text` (when it is open and not an SSE stream, which cannot speak),
    /// a command awaiting its answer.
    pub fn client_says(&mut self, i: usize, text: &str) {
        if let Some(c) = self.clients.get_mut(i).filter(|c| c.open && !c.sse) {
            c.pending += 1;
        }
        self.client_sends(i, text);
    }

    /// Client `i` sends `text`, which no answer follows (a pong); a polling session posts it.
    pub(super) fn client_sends(&mut self, i: usize, text: &str) {
        let Some(c) = self.clients.get(i).filter(|c| c.open && !c.sse) else {
            return;
        };
        if text == upgrade::PROBE || text == upgrade::UPGRADE {
            // Said on a polling session's probe socket (nothing else says them).
            return self.probe_says(i, text);
        }
        if c.polling() {
            return self.post(i, text);
        }
        let (holder, conn) = (c.holder, c.conn);
        self.trace(|| format!("conn {conn} on {holder:?} -> {text}"));
        let input = ClientInput::Text { conn, text };
        let now = self.now;
        let fx = self.host(holder).client(input, now);
        self.effects_of(holder, fx);
    }

    /// A JSON client that left comes back as a new one (the same user, a fresh token) and
    /// recovers every event channel it had events of, `since` its last offsets.
    pub fn come_back(&mut self, i: usize) {
        let Some(old) = self
            .clients
            .get_mut(i)
            .filter(|c| c.may_come_back() && !c.sse)
        else {
            return;
        };
        old.returned = true;
        let (offsets, sub) = (old.offsets.clone(), old.who.as_ref().map(|w| w.sub.clone()));
        let who = self.identity_again(sub);
        let j = self.open_client_as(who);
        let c = &mut self.clients[j];
        c.offsets = offsets.clone();
        c.recovering = offsets.keys().cloned().collect();
        let since: serde_json::Map<String, serde_json::Value> = offsets
            .iter()
            .map(|(ch, o)| (ch.clone(), serde_json::json!({"offset": o, "epoch": "sim"})))
            .collect();
        let channels: Vec<&String> = offsets.keys().collect();
        let command =
            serde_json::json!({"action": "subscribe", "channels": channels, "since": since});
        self.client_says(j, &command.to_string());
    }

    /// Client `i` goes away (a polling session says so by posting the close packet, as
    /// `socket.disconnect()` does).
    pub fn client_leaves(&mut self, i: usize) {
        if self.clients.get(i).is_some_and(|c| c.open && c.polling()) {
            self.post(i, "1");
            self.clients[i].open = false;
            return;
        }
        let Some(c) = self.clients.get_mut(i).filter(|c| c.open) else {
            return;
        };
        c.open = false;
        let (holder, conn) = (c.holder, c.conn);
        self.attachments.remove(&(key(holder), conn));
        let input = ClientInput::Closed { conn };
        let now = self.now;
        let fx = self.host(holder).client(input, now);
        self.effects_of(holder, fx);
    }

    /// The open long-polling session that is `conn` on `holder`, if it is one.
    fn polling_index(&self, holder: Holder, conn: ConnId) -> Option<usize> {
        let on = |c: &SimClient| c.open && c.holder == holder && c.conn == conn;
        self.clients.iter().position(|c| on(c) && c.polling())
    }

    /// A random object (a shard when there are shards).
    pub(super) fn pick_holder(&mut self) -> Holder {
        match self.shards.len() {
            0 => Holder::Leader,
            n => Holder::Shard(self.rng.below(n) as ShardId),
        }
    }

    /// A returning client's identity: the user it was (`sub`), with a fresh token.
    pub(super) fn identity_again(&mut self, sub: Option<String>) -> Option<Identity> {
        self.identity().map(|mut who| {
            who.sub = sub.unwrap_or(who.sub);
            who
        })
    }

    /// A new client's identity when tokens are JWTs (none otherwise): one of three users,
    /// its token expiring within a minute now and then, else in an hour.
    pub fn identity(&mut self) -> Option<Identity> {
        self.cfg.jwt_secret.as_ref()?;
        let sub = format!("u{}", self.rng.below(USERS));
        let life = if self.rng.chance(0.3) {
            self.rng.between(2_000, 60_000)
        } else {
            3_600_000
        };
        let exp_ms = self.now + life;
        Some(Identity {
            sub,
            exp_ms,
            channels: None,
        })
    }
}
