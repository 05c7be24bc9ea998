//! The simulation's faults: the leader or a shard evicted and created again (memory lost,
//! storage kept, sockets surviving through their attachments, as hibernation keeps them), a
//! shard's link broken, the leader out of the shards' reach for a while, and the exchange
//! sending garbage or stalling its connection; and a shard's dial reaching the leader.

use super::twelve;
use super::world::Event;
use super::world::{key, World};
use crate::core::feed::link::Failure;
use crate::core::feed::neutral;
use crate::core::host::ClientHost;
use crate::core::ids::{Holder, ShardId, SourceId};
use crate::core::input::UpstreamEvent;
use crate::core::shard::Shard;

impl World {
    /// The leader is evicted and created again: memory lost, storage kept; its links and its
    /// upstream end; its own sockets survive (hibernation) and come back from attachments.
    pub fn restart_leader(&mut self) {
        self.trace(|| "the leader restarts".into());
        for s in 0..self.shards.len() {
            if let Some((g, _)) = self.links[s].take() {
                let jitter = self.rng.unit();
                let fx = self.shards[s].leader_closed(g, self.now, jitter);
                self.shard_effects(s as ShardId, fx);
            }
        }
        self.exchange.conn = None;
        self.td.conn = None;
        self.td.subscribed.clear();
        self.leader_timer = None;
        // Prices the old instance applied but had not stored yet are lost with it: until a
        // client has had a price as new from the new one, it may get an older one (the stored
        // one, or a stale frame). What it held counts, not only the exchange's latest: a stale
        // frame it took for a symbol not ticked yet is lost the same way (seed 61271).
        let held: Vec<(String, Option<i64>)> = (self.symbols().into_iter())
            .map(|s| (s.clone(), self.held_time(&s)))
            .collect();
        let unstored: Vec<(String, i64)> = (held.into_iter())
            .filter_map(|(s, held)| {
                let latest = self.exchange.prices.get(&s).map(|p| p.1);
                let stored = self.storage.price_time(&s);
                let lost =
                    (latest.is_some() && latest != stored) || (held.is_some() && held != stored);
                lost.then(|| (s, latest.max(held).unwrap_or(0)))
            })
            .collect();
        self.trace(|| format!("unsettled after the restart: {unstored:?}"));
        let floor = self.storage.seq_floor();
        for (s, newest) in unstored {
            // What a client had before does not count: it must reach `newest` from now on.
            for c in &mut self.clients {
                c.reached.remove(&s);
            }
            let t = self.unsettled.entry(s).or_insert((newest, floor));
            *t = (t.0.max(newest), floor);
        }
        let mut hub = twelve::leader(&self.cfg);
        self.storage.restore(&mut hub, self.now);
        self.restore_clients(Holder::Leader, &mut hub);
        self.leader = hub;
        let fx = self.leader.start(self.now);
        self.leader_effects(fx);
    }

    /// The exchange time of the price the leader holds for `symbol`.
    fn held_time(&mut self, symbol: &str) -> Option<i64> {
        let (body, _etag) = self.leader.rest_price(symbol, self.now).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v["event_time"].as_i64()
    }

    /// Shard `s` is evicted and created again: its link ends, its sockets survive and come
    /// back from their attachments.
    pub fn restart_shard(&mut self, s: ShardId) {
        self.trace(|| format!("shard {s} restarts"));
        if let Some((_, lg)) = self.links[s as usize].take() {
            let fx = self.leader.shard_closed(s, lg, self.now);
            self.leader_effects(fx);
        }
        self.shard_timers[s as usize] = None;
        let mut shard = Shard::new(self.cfg.clone());
        self.restore_clients(Holder::Shard(s), &mut shard);
        self.shards[s as usize] = shard;
        // As the edge does for a shard created again with surviving sockets: link at once.
        if self
            .clients
            .iter()
            .any(|c| c.open && c.holder == Holder::Shard(s))
        {
            let fx = self.shards[s as usize].prepare(self.now);
            self.shard_effects(s, fx);
        }
    }

    /// Re-registers `holder`'s open sockets from their attachments; one without an
    /// attachment is closed, as the edge does.
    fn restore_clients(&mut self, holder: Holder, host: &mut dyn ClientHost) {
        for c in self
            .clients
            .iter_mut()
            .filter(|c| c.open && c.holder == holder)
        {
            let stored = |conn| self.stored_attachments.get(&(key(holder), conn)).cloned();
            let attachment = self.attachments.get(&(key(holder), c.conn)).cloned();
            match attachment.and_then(|a| a.restored(stored)) {
                Some(a) => {
                    host.client_restore(a);
                    c.may_repeat = c.subs.clone();
                    c.events_may_repeat = c.channels.clone();
                    // What the old instance held unanswered (its link down) died with it,
                    // a recovery among it: positions it never had again are dropped.
                    c.pending = 0;
                    c.recovering.clear();
                    let held = c.channels.clone();
                    c.offsets.retain(|ch, _| held.contains(ch));
                }
                None => c.open = false,
            }
        }
    }

    /// The leader is out of the shards' reach for `ms` while time passes: every link breaks
    /// and no dial gets through (each hangs until its shard gives it up). The shards' clients
    /// must live through it: a Socket.IO session answers every ping, so none may be closed
    /// for a ping timeout, however long the outage.
    pub fn leader_out_of_reach(&mut self, ms: i64) {
        self.trace(|| format!("the leader is out of the shards' reach for {ms} ms"));
        for s in 0..self.shards.len() {
            self.break_link(s as ShardId);
        }
        self.unreachable_until = self.now + ms;
        self.advance_to(self.now + ms);
    }

    /// A shard's dial reaches the leader: the link opens at both ends.
    pub(super) fn dialed(&mut self, s: ShardId, generation: u64) {
        if self.now < self.unreachable_until {
            // It hangs: the shard gives the link up and dials again.
            return self.trace(|| format!("shard {s} dial {generation} is lost"));
        }
        self.trace(|| format!("shard {s} dial {generation} reaches the leader"));
        let Some((lg, lfx)) = self.leader.shard_linked(s, self.now) else {
            return;
        };
        // The leader closes the link this one replaces (as the edge does), and the shard
        // hears of it.
        if let Some((old_g, old)) = self.links[s as usize].replace((generation, lg)) {
            let fx = self.leader.shard_closed(s, old, self.now);
            self.leader_effects(fx);
            let jitter = self.rng.unit();
            let fx = self.shards[s as usize].leader_closed(old_g, self.now, jitter);
            self.shard_effects(s, fx);
        }
        self.leader_effects(lfx);
        let fx = self.shards[s as usize].leader_opened(generation, self.now);
        self.shard_effects(s, fx);
    }

    /// Breaks shard `s`'s link, if it has one.
    pub fn break_link(&mut self, s: ShardId) {
        self.trace(|| format!("shard {s}'s link breaks"));
        if let Some((g, lg)) = self.links[s as usize].take() {
            let jitter = self.rng.unit();
            let fx = self.shards[s as usize].leader_closed(g, self.now, jitter);
            self.shard_effects(s, fx);
            let fx = self.leader.shard_closed(s, lg, self.now);
            self.leader_effects(fx);
        }
    }
}

impl World {
    /// The exchange sends something that is not a good price on its connection: text that is
    /// not JSON, a frame cut short, a price of a symbol not served or not a number, or one
    /// symbol's price from seconds ago (stale: it must never take the latest one's place).
    pub fn garbage(&mut self, symbol: &str) {
        if self.is_td(symbol) {
            return self.td_garbage(symbol);
        }
        let Some(conn) = self.exchange.conn else {
            return;
        };
        let at = self.exchange.prices.get(symbol).map_or(self.now, |p| p.1);
        let good = neutral::ticker(symbol, "123.45", at);
        let frame = match self.rng.below(6) {
            0 => String::new(),
            1 => "not json {".to_string(),
            2 => good[..self.rng.below(good.len())].to_string(),
            3 => neutral::ticker("DOGEUSDT", "0.1", at),
            4 => neutral::ticker(symbol, "a lot", at + 1),
            _ => neutral::ticker(symbol, "99.99", at - self.rng.between(1, 5_000)),
        };
        self.trace(|| format!("the exchange sends garbage: {frame}"));
        let when = self.now + self.rng.between(0, 5);
        self.push(when, Event::UpstreamText(conn, frame));
    }

    /// `source`'s connection `generation` drops (1006, no close frame): the leader hears it.
    pub fn dropped(&mut self, source: SourceId, generation: u64) {
        let failure = Failure::Closed {
            code: 1006,
            reason: "sim: dropped".into(),
        };
        let event = UpstreamEvent::Failed {
            generation,
            failure,
        };
        let jitter = self.rng.unit();
        let fx = self.leader.upstream(source, event, self.now, jitter);
        self.leader_effects(fx);
    }

    /// The exchange goes silent on its connection (it stays open): only the leader's
    /// watchdog can tell, and replace it.
    pub fn stall(&mut self) {
        if self.cfg.twelvedata.is_some() && self.rng.chance(0.3) {
            self.trace(|| "Twelve Data stalls its connection".into());
            self.td.stalled = self.td.conn;
            return;
        }
        self.trace(|| "the exchange stalls its connection".into());
        self.exchange.stalled = self.exchange.conn;
    }
}
