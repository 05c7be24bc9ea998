//! The simulation's long-polling Socket.IO sessions (on the seeds that also run Twelve Data),
//! as a stock `socket.io-client` starts before it upgrades: the handshake is a GET, its
//! packets go up by POST, and one GET is always out, held by its object until it has packets
//! (woken as an SSE stream is). Half of them upgrade to a WebSocket ([`super::upgrade`]). It
//! ends when a GET brings the close packet or is refused (its object was created again and
//! knows it no more).

use serde_json::Value;

use super::clients::SimClient;
use super::sio::{Poll, Sio};
use super::world::World;
use crate::core::ids::Holder;
use crate::core::input::{PollAnswer, PollInput};
use crate::core::wire::socketio::engine::EnginePacket;
use crate::core::wire::socketio::sid::Sid;

/// Engine.IO's separator of the packets in one polling body.
const SEPARATOR: char = '\u{1e}';

impl World {
    /// Whether this seed opens long-polling sessions too.
    pub fn with_polling(&self) -> bool {
        self.cfg.twelvedata.is_some()
    }

    /// Opens a long-polling Socket.IO session on a random object, which joins `/`
    /// (`root`) or `/prices`: the handshake, then its `CONNECT` by POST and a GET.
    pub fn open_polling(&mut self, root: bool) -> Option<usize> {
        let holder = self.pick_holder();
        let (now, who) = (self.now, self.identity());
        let nonce = self.rng.next_u64();
        let open = PollInput::Open {
            holder,
            nonce,
            who: who.clone(),
            owes_token: false,
        };
        let (answer, fx) = self.host(holder).poll(open, now);
        let body = match answer {
            Ok(PollAnswer::Body(body)) => body,
            other => {
                let v = format!("a polling handshake on {holder:?} answered {other:?}");
                self.violations.push(v);
                self.effects_of(holder, fx);
                return None;
            }
        };
        let sid = handshake_sid(&body);
        let Some(conn) = sid.as_deref().and_then(Sid::decode).map(|s| s.conn) else {
            let v = format!("a polling handshake on {holder:?} gave no session id: {body}");
            self.violations.push(v);
            self.effects_of(holder, fx);
            return None;
        };
        let mut c = SimClient::new(holder, conn).with(who);
        c.sio = Some(Sio {
            root,
            broadcast: self.cfg.socketio.broadcast.clone(),
            poll: sid.map(|sid| Poll {
                sid,
                parked: false,
                sent: true,
                socket: false,
                probed: false,
            }),
            ..Sio::default()
        });
        self.clients.push(c);
        let i = self.clients.len() - 1;
        self.trace(|| format!("polling conn {conn} on {holder:?} opens"));
        self.effects_of(holder, fx);
        self.polled(i, &body);
        self.client_says(i, if root { "40" } else { "40/prices," });
        self.pull_soon(holder, conn);
        if self.rng.chance(0.5) {
            let after = self.rng.between(0, 50);
            self.upgrade_soon(i, after);
        }
        Some(i)
    }

    /// Session `i` sends `text` by POST; a refused POST ends it (its object lost it).
    pub(super) fn post(&mut self, i: usize, text: &str) {
        let Some((holder, sid)) = self.session(i) else {
            return;
        };
        let post = PollInput::Post {
            sid: &sid,
            body: text,
        };
        let now = self.now;
        let (answer, fx) = self.host(holder).poll(post, now);
        self.effects_of(holder, fx);
        match answer {
            Ok(PollAnswer::Taken) => {}
            Ok(other) => {
                let v = format!("session {sid}: a POST answered {other:?}");
                self.violations.push(v);
            }
            Err(e) => self.session_ends(i, &format!("its POST refused: {e}")),
        }
    }

    /// Session `i`'s GET (sent, or held and woken): the packets waiting for it, or held
    /// until its object wakes it.
    pub(super) fn get(&mut self, i: usize) {
        let Some((holder, sid)) = self.session(i) else {
            return;
        };
        let (parked, sent) = self.state(i);
        if !parked && !sent {
            return;
        }
        let get = PollInput::Get { sid: &sid, parked };
        let now = self.now;
        let (answer, fx) = self.host(holder).poll(get, now);
        self.set_state(i, (false, false));
        match answer {
            Ok(PollAnswer::Body(body)) => {
                self.polled(i, &body);
                if self.clients[i].open && !self.upgrades_after_get(i) {
                    self.set_state(i, (false, true));
                    self.pull_soon(holder, self.clients[i].conn);
                }
            }
            Ok(PollAnswer::Wait(_)) if self.clients[i].probed() => {
                let v = format!("session {sid}: a GET held after its probe was answered");
                self.violations.push(v);
                self.set_state(i, (true, false));
            }
            Ok(PollAnswer::Wait(_)) => self.set_state(i, (true, false)),
            Ok(other) => {
                let v = format!("session {sid}: a GET answered {other:?}");
                self.violations.push(v);
            }
            Err(e) => self.session_ends(i, &format!("its GET refused: {e}")),
        }
        self.effects_of(holder, fx);
    }

    /// The packets of one GET's body, each checked as a WebSocket frame of the session's
    /// would be; its pongs go up by POST; the close packet ends it.
    fn polled(&mut self, i: usize, body: &str) {
        let now = self.now;
        let unsettled = self.unsettled.clone();
        let c = &mut self.clients[i];
        c.may_be_older = unsettled;
        let mut replies = Vec::new();
        for packet in body.split(SEPARATOR).filter(|p| !p.is_empty()) {
            if matches!(EnginePacket::decode(packet), Ok(EnginePacket::Close)) {
                c.open = false;
                let conn = c.conn;
                self.trace(|| format!("polling conn {conn} ends: the close packet"));
                break;
            }
            match c.take_sio(packet, now) {
                Ok(r) => replies.extend(r),
                Err(v) => self.violations.push(v),
            }
        }
        self.reply(replies.into_iter().map(|r| (i, r)).collect());
    }

    /// Session `i` learns that it ended.
    fn session_ends(&mut self, i: usize, why: &str) {
        let c = &mut self.clients[i];
        c.open = false;
        let (conn, holder) = (c.conn, c.holder);
        self.trace(|| format!("polling conn {conn} on {holder:?} ends: {why}"));
    }

    /// Open session `i`'s object and id.
    fn session(&self, i: usize) -> Option<(Holder, String)> {
        let c = self.clients.get(i).filter(|c| c.open)?;
        let poll = c.sio.as_ref()?.poll.as_ref()?;
        Some((c.holder, poll.sid.clone()))
    }

    /// Session `i`'s GET: (held by its object, on its way).
    fn state(&self, i: usize) -> (bool, bool) {
        let poll = self.clients[i].sio.as_ref().and_then(|s| s.poll.as_ref());
        poll.map_or((false, false), |p| (p.parked, p.sent))
    }

    pub(super) fn set_state(&mut self, i: usize, (parked, sent): (bool, bool)) {
        if let Some(p) = self.clients[i].sio.as_mut().and_then(|s| s.poll.as_mut()) {
            (p.parked, p.sent) = (parked, sent);
        }
    }
}

impl SimClient {
    /// A long-polling Socket.IO session (not a WebSocket).
    pub fn polling(&self) -> bool {
        self.sio.as_ref().is_some_and(|s| s.poll.is_some())
    }

    /// An SSE stream or a polling session: it takes what its object keeps for it when it
    /// asks (a pull, a GET), never a socket's frame, and learns of its end only then.
    pub fn pulls(&self) -> bool {
        self.sse || self.polling()
    }
}

/// The session id of a handshake's body (its first packet, `0{"sid":…}`).
fn handshake_sid(body: &str) -> Option<String> {
    let first = body.split(SEPARATOR).next()?;
    let json = first.strip_prefix('0')?;
    let v: Value = serde_json::from_str(json).ok()?;
    v.get("sid")?.as_str().map(str::to_string)
}
