//! A long-polling session's upgrade to a WebSocket, as a stock `socket.io-client` does it
//! right after its handshake: it opens a WebSocket naming its session, says `2probe` there,
//! and on `3probe` lets its GET out finish (the object ends a held one with `6`), sends no
//! other, and says `5`: the session is the socket's from then on, with whatever its object
//! still had queued. Until `5` the socket carries nothing but the probe and its answer, and
//! the session's packets still go by POST (the client buffers them; posting them is what
//! the server must take as well). A probe socket its object closes, or one its object was
//! created again without (a probe has no attachment), ends the upgrade: the session goes on
//! polling, and learns from its next GET whether it still exists.

use super::clients::SimClient;
use super::world::{Event, World};
use crate::core::error::ApiError;
use crate::core::input::{ClientInput, PollAnswer, PollInput};

/// The client's half of the probe.
pub const PROBE: &str = "2probe";
/// The object's half of the probe.
const PROBE_ANSWER: &str = "3probe";
/// The client's word that the session is the socket's now.
pub const UPGRADE: &str = "5";

impl World {
    /// Session `i` asks to upgrade, `after` ms from now (once, its handshake in, as the
    /// stock client does: a failed probe is not tried again).
    pub(super) fn upgrade_soon(&mut self, i: usize, after: i64) {
        let at = self.now + after;
        self.push(at, Event::ClientSends(i, PROBE.to_string()));
    }

    /// What session `i` says on its probe socket: `2probe` opens the socket first, `5`
    /// moves the session onto it.
    pub(super) fn probe_says(&mut self, i: usize, text: &str) {
        let Some(c) = self.clients.get(i).filter(|c| c.open) else {
            return;
        };
        let Some(poll) = c.sio.as_ref().and_then(|s| s.poll.as_ref()) else {
            return;
        };
        let (holder, conn, sid) = (c.holder, c.conn, poll.sid.clone());
        let (socket, probed) = (poll.socket, poll.probed);
        if text == PROBE {
            if socket || !self.open_probe(i, &sid) {
                return;
            }
        } else if !(socket && probed) {
            // Its probe socket went before it could say `5`: the upgrade failed.
            return;
        } else {
            self.trace(|| format!("polling conn {conn} on {holder:?} upgrades: {text}"));
            if let Some(sio) = self.clients[i].sio.as_mut() {
                sio.poll = None;
            }
        }
        let now = self.now;
        let fx = self
            .host(holder)
            .client(ClientInput::Text { conn, text }, now);
        self.effects_of(holder, fx);
    }

    /// Opens session `i`'s probe socket: whether its object took it as the session's.
    fn open_probe(&mut self, i: usize, sid: &str) -> bool {
        let (holder, conn, now) = (self.clients[i].holder, self.clients[i].conn, self.now);
        let (answer, fx) = self.host(holder).poll(PollInput::Upgrade { sid }, now);
        self.effects_of(holder, fx);
        match answer {
            Ok(PollAnswer::Upgrade(c)) if c == conn => {
                self.trace(|| format!("polling conn {conn} on {holder:?} opens its probe"));
                if let Some(p) = self.clients[i].sio.as_mut().and_then(|s| s.poll.as_mut()) {
                    p.socket = true;
                }
                true
            }
            // Its object knows it no more: its next GET will say so.
            Err(ApiError::EngineIo { code: 1, .. }) => false,
            other => {
                let v = format!("session {sid}: its upgrade answered {other:?}");
                self.violations.push(v);
                false
            }
        }
    }

    /// Session `i`'s GET came back: `true` when it is probed and says `5` now instead of
    /// sending another.
    pub(super) fn upgrades_after_get(&mut self, i: usize) -> bool {
        let probed = self.clients[i].probed();
        if probed {
            let at = self.now + self.delay();
            self.push(at, Event::ClientSends(i, UPGRADE.to_string()));
        }
        probed
    }

    /// Its object closed session `i`'s probe socket (the session itself may be over): it
    /// goes on polling, a GET out again if it had stopped for the upgrade.
    pub(super) fn probe_closed(&mut self, i: usize) {
        let Some(p) = self.clients[i].sio.as_mut().and_then(|s| s.poll.as_mut()) else {
            return;
        };
        let stopped = p.probed && !p.parked && !p.sent;
        (p.socket, p.probed) = (false, false);
        let (holder, conn) = (self.clients[i].holder, self.clients[i].conn);
        self.trace(|| format!("polling conn {conn} on {holder:?}: its probe socket closed"));
        if stopped {
            self.set_state(i, (false, true));
            self.pull_soon(holder, conn);
        }
    }
}

impl SimClient {
    /// A long-polling session with its probe socket open.
    pub fn probing(&self) -> bool {
        let poll = self.sio.as_ref().and_then(|s| s.poll.as_ref());
        poll.is_some_and(|p| p.socket)
    }

    /// A long-polling session whose probe socket answered the probe.
    pub fn probed(&self) -> bool {
        let poll = self.sio.as_ref().and_then(|s| s.poll.as_ref());
        poll.is_some_and(|p| p.socket && p.probed)
    }

    /// A frame on the probe socket: only the answer to the probe, once.
    pub fn probe_answer(&mut self, frame: &str) -> Result<(), String> {
        let conn = self.conn;
        let poll = self.sio.as_mut().and_then(|s| s.poll.as_mut());
        match poll {
            Some(p) if p.socket && !p.probed && frame == PROBE_ANSWER => {
                p.probed = true;
                Ok(())
            }
            _ => Err(format!(
                "conn {conn}: {frame:?} on its probe socket, before the session was the socket's"
            )),
        }
    }
}
