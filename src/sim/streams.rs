//! The simulation's SSE streams: opened at a random object (at a shard once its link has
//! the leader's snapshot, as the edge waits for it), pulled whenever their object wakes them,
//! ended with their object, and now and then opened again with the `Last-Event-ID` of the
//! last event they got, as a reconnecting `EventSource` does.

use super::clients::SimClient;
use super::world::{Event, StreamAsk, World, SYNC_WAIT_MS};
use crate::core::fanout::SseTake;
use crate::core::ids::{ConnId, Holder, Identity};
use crate::core::input::{ClientInput, StreamOpen};

impl World {
    /// An SSE stream of `keys` (symbols and channels) asks to open on a random object;
    /// `from` is the stream it resumes (its `Last-Event-ID` and what it had).
    pub fn ask_stream(&mut self, keys: Vec<String>, who: Option<Identity>, from: Option<usize>) {
        let holder = self.pick_holder();
        let at = self.now + self.delay();
        let deadline = self.now + SYNC_WAIT_MS;
        let ask = StreamAsk {
            holder,
            keys,
            deadline,
            who,
            from,
        };
        self.push(at, Event::Stream(Box::new(ask)));
    }

    /// A stream that ended comes back where it stopped: its keys, the same user with a fresh
    /// token, and the id of the last event it got.
    pub fn resume_stream(&mut self, i: usize) {
        let Some(old) = self
            .clients
            .get_mut(i)
            .filter(|c| c.may_come_back() && c.sse)
        else {
            return;
        };
        old.returned = true;
        let keys = old.keys_held();
        let sub = old.who.as_ref().map(|w| w.sub.clone());
        let who = self.identity_again(sub);
        self.ask_stream(keys, who, Some(i));
    }

    /// The stream opens when its object is in sync (a shard waits up to `deadline` for the
    /// leader's snapshot, dialling if it must), with whatever it has then.
    pub(super) fn open_stream(&mut self, ask: Box<StreamAsk>) {
        let now = self.now;
        if let Holder::Shard(s) = ask.holder {
            if !self.shards[s as usize].synced() && now < ask.deadline {
                let fx = self.shards[s as usize].prepare(now);
                self.shard_effects(s, fx);
                return self.push(now + 10, Event::Stream(ask));
            }
        }
        let holder = ask.holder;
        let (channels, symbols): (Vec<String>, Vec<String>) =
            ask.keys.into_iter().partition(|k| k.contains(':'));
        let from = ask.from.and_then(|i| self.clients.get(i)).cloned();
        let open = StreamOpen {
            symbols: symbols.clone(),
            channels: channels.clone(),
            refused: Vec::new(),
            last: from.as_ref().and_then(|c| c.sse_id.clone()),
            who: ask.who.clone(),
        };
        let (conn, first, fx) = match self.host(holder).sse_open(&open, now) {
            Ok(opened) => opened,
            Err(_) => return,
        };
        self.trace(|| {
            format!(
                "SSE conn {conn} on {holder:?} opens: {symbols:?} {channels:?} after {:?}",
                open.last
            )
        });
        let mut c = SimClient::new(holder, conn).with(ask.who);
        if let Some(old) = from.filter(|o| o.sse_id.is_some()) {
            // It goes on from where it stopped: no `seq` again, no event missed unless told.
            c.last = old.last;
            c.times = old.times;
            c.recovering = old.offsets.keys().cloned().collect();
            c.offsets = old.offsets;
            c.sse_id = old.sse_id;
        }
        c.sse = true;
        c.may_be_older = self.unsettled.clone();
        c.subs.extend(symbols);
        c.channels.extend(channels);
        if let Err(v) = c.take_sse(&first) {
            self.violations.push(v);
        }
        self.clients.push(c);
        self.effects_of(holder, fx);
        // The body asks for more as soon as its first bytes are out.
        self.pull_soon(holder, conn);
    }

    /// Stream (or polling session) `conn` asks again soon, its last answer just taken.
    pub(super) fn pull_soon(&mut self, holder: Holder, conn: ConnId) {
        let at = self.now + self.rng.between(0, 20);
        self.push(at, Event::SsePull(holder, conn));
    }

    /// A stream's object woke it: it pulls soon.
    pub(super) fn woken(&mut self, holder: Holder, conns: &[ConnId]) {
        for conn in conns {
            let at = self.now + self.rng.between(0, 5);
            self.push(at, Event::SsePull(holder, *conn));
        }
    }

    /// Stream `conn` pulls its next bytes: after data it pulls again, when nothing is ready
    /// it waits to be woken, and when its object ends it, it is gone. (A polling session's
    /// GET goes the same way.)
    pub(super) fn pull(&mut self, holder: Holder, conn: ConnId) {
        let Some(i) = self
            .clients
            .iter()
            .position(|c| c.open && c.pulls() && c.holder == holder && c.conn == conn)
        else {
            return;
        };
        if self.clients[i].polling() {
            return self.get(i);
        }
        let now = self.now;
        let unsettled = self.unsettled.clone();
        self.clients[i].may_be_older = unsettled;
        match self.host(holder).sse_take(conn, now) {
            SseTake::Data(text) => {
                if let Err(v) = self.clients[i].take_sse(&text) {
                    self.violations.push(v);
                }
                self.pull_soon(holder, conn);
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
