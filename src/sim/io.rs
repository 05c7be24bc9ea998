//! The clients' side of the simulated world: JSON WebSocket clients opening, speaking and
//! leaving; SSE streams opened (at a shard, once its link has the leader's snapshot, as the
//! edge waits for it), pulled whenever their object wakes them, and ended with their
//! object; and what objects send their clients.

use super::clients::SimClient;
use super::world::{key, Event, World, SYNC_WAIT_MS};
use crate::core::effect::Effect;
use crate::core::fanout::SseTake;
use crate::core::ids::{ConnId, Holder, ShardId};
use crate::core::input::{ClientInput, StreamOpen};
use crate::core::wire::Wire;

impl World {
    /// What an object does to its clients (frames, closes, attachments, SSE wakes); the rest
    /// (logs, the history's requests) has no client here.
    pub(super) fn client_effect(&mut self, holder: Holder, e: Effect) {
        match e {
            Effect::Send { conn, frame } => self.deliver(holder, &[conn], &frame),
            Effect::Fanout { conns, frame } => self.deliver(holder, &conns, &frame),
            Effect::Close { conn, .. } => {
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
        for c in self.clients.iter_mut() {
            if c.open && c.holder == holder && conns.contains(&c.conn) {
                let taken = if c.sse {
                    Err(format!(
                        "conn {}: a socket's frame sent to an SSE stream",
                        c.conn
                    ))
                } else {
                    c.take(frame)
                };
                if let Err(v) = taken {
                    self.violations.push(v);
                }
            }
        }
    }

    // ----- time ---------------------------------------------------------------------------

    /// Opens a client on a random object (a shard when there are shards).
    pub fn open_client(&mut self) -> usize {
        let holder = self.pick_holder();
        let now = self.now;
        let (conn, fx) = self.host(holder).client_open(Wire::Json, None, now);
        self.clients.push(SimClient::new(holder, conn));
        self.effects_of(holder, fx);
        self.clients.len() - 1
    }

    /// Client `i` sends `text` (when it is open and not an SSE stream, which cannot speak).
    pub fn client_says(&mut self, i: usize, text: &str) {
        let Some(c) = self.clients.get(i).filter(|c| c.open && !c.sse) else {
            return;
        };
        let (holder, conn) = (c.holder, c.conn);
        self.trace(|| format!("conn {conn} on {holder:?} -> {text}"));
        if let Some(c) = self.clients.get_mut(i) {
            c.pending += 1;
        }
        let input = ClientInput::Text { conn, text };
        let now = self.now;
        let fx = self.host(holder).client(input, now);
        self.effects_of(holder, fx);
    }

    /// Client `i` goes away.
    pub fn client_leaves(&mut self, i: usize) {
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

    /// A random object (a shard when there are shards).
    fn pick_holder(&mut self) -> Holder {
        match self.shards.len() {
            0 => Holder::Leader,
            n => Holder::Shard(self.rng.below(n) as ShardId),
        }
    }

    /// An SSE stream of `keys` (symbols and channels) asks to open on a random object.
    pub fn ask_stream(&mut self, keys: Vec<String>) {
        let holder = self.pick_holder();
        let at = self.now + self.delay();
        self.push(at, Event::Stream(holder, keys, self.now + SYNC_WAIT_MS));
    }

    /// The stream opens when its object is in sync (a shard waits up to `deadline` for the
    /// leader's snapshot, dialling if it must), with whatever it has then.
    pub(super) fn open_stream(&mut self, holder: Holder, keys: Vec<String>, deadline: i64) {
        let now = self.now;
        if let Holder::Shard(s) = holder {
            if !self.shards[s as usize].synced() && now < deadline {
                let fx = self.shards[s as usize].prepare(now);
                self.shard_effects(s, fx);
                return self.push(now + 10, Event::Stream(holder, keys, deadline));
            }
        }
        let (channels, symbols): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|k| k.contains(':'));
        let open = StreamOpen {
            symbols: symbols.clone(),
            channels: channels.clone(),
            refused: Vec::new(),
            last: None,
            who: None,
        };
        let (conn, first, fx) = match self.host(holder).sse_open(&open, now) {
            Ok(opened) => opened,
            Err(_) => return,
        };
        self.trace(|| format!("SSE conn {conn} on {holder:?} opens: {symbols:?} {channels:?}"));
        let mut c = SimClient::new(holder, conn);
        c.sse = true;
        c.subs.extend(symbols);
        c.channels.extend(channels);
        if let Err(v) = c.take_sse(&first) {
            self.violations.push(v);
        }
        self.clients.push(c);
        self.effects_of(holder, fx);
        // The body asks for more as soon as its first bytes are out.
        let at = now + self.rng.between(0, 20);
        self.push(at, Event::SsePull(holder, conn));
    }

    /// A stream's object woke it: it pulls soon.
    fn woken(&mut self, holder: Holder, conns: &[ConnId]) {
        for conn in conns {
            let at = self.now + self.rng.between(0, 5);
            self.push(at, Event::SsePull(holder, *conn));
        }
    }

    /// Stream `conn` pulls its next bytes: after data it pulls again, when nothing is ready
    /// it waits to be woken, and when its object ends it, it is gone.
    pub(super) fn pull(&mut self, holder: Holder, conn: ConnId) {
        let Some(i) = self
            .clients
            .iter()
            .position(|c| c.open && c.sse && c.holder == holder && c.conn == conn)
        else {
            return;
        };
        let now = self.now;
        match self.host(holder).sse_take(conn, now) {
            SseTake::Data(text) => {
                if let Err(v) = self.clients[i].take_sse(&text) {
                    self.violations.push(v);
                }
                let at = now + self.rng.between(0, 20);
                self.push(at, Event::SsePull(holder, conn));
            }
            SseTake::Pending => {}
            SseTake::Closed => {
                self.clients[i].open = false;
                let fx = self.host(holder).client(ClientInput::Closed { conn }, now);
                self.effects_of(holder, fx);
            }
        }
    }
}
