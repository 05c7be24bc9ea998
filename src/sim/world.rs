//! The simulated tree: the leader [`Hub`], its fan-out shards, the exchange, the clients and
//! the network between them, driven in virtual time. Every message between objects goes
//! through the real encoding and arrives later, in order per link (a WebSocket is FIFO);
//! every timer and alarm an object asks for fires when it is due; storage keeps what the
//! leader persisted, and attachments what each socket saved, for restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::clients::SimClient;
use super::rng::Rng;
use super::storage::Storage;
use super::twelve::{self, Twelve};
use crate::core::attachment::Attachment;
use crate::core::config::Config;
use crate::core::effect::Effect;
use crate::core::feed::neutral;
use crate::core::host::ClientHost;
use crate::core::hub::Hub;
use crate::core::ids::{ConnId, Holder, Identity, ShardId, SourceId};
use crate::core::input::UpstreamEvent;
use crate::core::shard::Shard;

/// An object as a map key: `None` for the leader.
pub(super) fn key(holder: Holder) -> Option<ShardId> {
    match holder {
        Holder::Leader => None,
        Holder::Shard(s) => Some(s),
    }
}

/// When a message on connection `key` due at `at` arrives: never before the one before it.
pub(super) fn in_order<K: Ord>(last: &mut BTreeMap<K, i64>, key: K, at: i64) -> i64 {
    let last = last.entry(key).or_insert(0);
    *last = (*last).max(at);
    *last
}

/// Something on its way.
#[derive(Debug, Clone)]
pub enum Event {
    /// The exchange accepted upstream connection `generation`.
    UpstreamOpened(u64),
    /// A frame from the exchange on connection `generation`.
    UpstreamText(u64, String),
    /// A shard's dial of `generation` reaches the leader.
    Dialed(ShardId, u64),
    /// A message of the leader to a shard, on the leader's link `generation`.
    ToShard(ShardId, u64, Rc<str>),
    /// A message of a shard to the leader, on the leader's link `generation`.
    ToLeader(ShardId, u64, String),
    /// An SSE stream asks to open on an object.
    Stream(Box<StreamAsk>),
    /// An SSE stream pulls its next bytes.
    SsePull(Holder, ConnId),
    /// Client `i` sends a reply that no answer follows (a Socket.IO pong).
    ClientSends(usize, String),
    /// Twelve Data's connection `generation` opens (`None`) or a frame on it arrives.
    Td(u64, Option<String>),
}

/// An SSE stream asking to open.
#[derive(Debug, Clone)]
pub struct StreamAsk {
    /// The object it opens on.
    pub holder: Holder,
    /// Its symbols and channels.
    pub keys: Vec<String>,
    /// Until when a shard's snapshot is waited for.
    pub deadline: i64,
    /// Whose it is (with JWTs).
    pub who: Option<Identity>,
    /// The stream it resumes (by index among the clients).
    pub from: Option<usize>,
}

/// The users clients are (with JWTs): `u0`, `u1`, `u2`.
pub const USERS: usize = 3;

/// How long a stream opening at a shard waits for the leader's snapshot (as the edge does).
pub const SYNC_WAIT_MS: i64 = 5_000;

/// The exchange: the latest price of each symbol, and its one upstream connection.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Symbol → (price, event time).
    pub prices: BTreeMap<String, (String, i64)>,
    /// The connection it streams to.
    pub conn: Option<u64>,
    /// A connection it keeps open and sends nothing on.
    pub stalled: Option<u64>,
    /// Market channel → its last trade id or book version.
    pub markets: BTreeMap<String, u64>,
    /// Per connection, when its last market frame arrives (they arrive in order).
    pub market_last: BTreeMap<u64, i64>,
}

/// The world.
pub struct World {
    /// The randomness.
    pub rng: Rng,
    /// Virtual time (ms).
    pub now: i64,
    /// The configuration every object runs.
    pub cfg: Config,
    /// The leader.
    pub leader: Hub,
    /// The shards.
    pub shards: Vec<Shard>,
    /// Per shard, its link while open: (the shard's generation, the leader's).
    pub links: Vec<Option<(u64, u64)>>,
    /// Every client ever opened.
    pub clients: Vec<SimClient>,
    /// The exchange.
    pub exchange: Exchange,
    /// Twelve Data, when the seed runs it.
    pub td: Twelve,
    pub(super) queue: BTreeMap<(i64, u64), Event>,
    pub(super) order: u64,
    pub(super) leader_timer: Option<i64>,
    pub(super) leader_alarm: Option<i64>,
    pub(super) shard_timers: Vec<Option<i64>>,
    /// Each shard's alarm (kept through a restart, as the platform keeps an alarm).
    pub(super) shard_alarms: Vec<Option<i64>>,
    /// The time of the last message queued on each link direction (FIFO).
    pub(super) fifo: BTreeMap<(bool, ShardId, u64), i64>,
    /// The leader's storage.
    pub(super) storage: Storage,
    /// The top offset of each event channel, as the publisher's answers said.
    pub published: BTreeMap<String, u64>,
    /// Every offset each event channel was published at.
    pub published_all: BTreeMap<String, BTreeSet<u64>>,
    /// Each socket's attachment.
    pub(super) attachments: BTreeMap<(Option<ShardId>, ConnId), Attachment>,
    /// The attachments that outgrew a socket's, in their object's storage (kept through
    /// restarts, as storage is).
    pub(super) stored_attachments: BTreeMap<(Option<ShardId>, ConnId), Attachment>,
    /// Symbols whose latest price a restarted leader lost, with the newest exchange time then
    /// and the new leader's `seq` floor (see [`SimClient::may_be_older`]).
    pub(super) unsettled: BTreeMap<String, (i64, u64)>,
    /// Until when no shard's dial reaches the leader ([`World::leader_out_of_reach`]).
    pub(super) unreachable_until: i64,
    /// Violations found so far.
    pub violations: Vec<String>,
}

impl World {
    /// A world of `cfg` with no client yet, the leader started.
    pub fn new(cfg: Config, seed: u64) -> World {
        let shards = cfg.fanout_shards as usize;
        let mut w = World {
            rng: Rng::new(seed),
            now: 1_000_000,
            leader: twelve::leader(&cfg),
            shards: (0..shards).map(|_| Shard::new(cfg.clone())).collect(),
            links: vec![None; shards],
            cfg,
            clients: Vec::new(),
            exchange: Exchange::default(),
            td: Twelve::default(),
            queue: BTreeMap::new(),
            order: 0,
            leader_timer: None,
            leader_alarm: None,
            shard_timers: vec![None; shards],
            shard_alarms: vec![None; shards],
            fifo: BTreeMap::new(),
            storage: Storage::default(),
            published: BTreeMap::new(),
            published_all: BTreeMap::new(),
            attachments: BTreeMap::new(),
            stored_attachments: BTreeMap::new(),
            unsettled: BTreeMap::new(),
            unreachable_until: 0,
            violations: Vec::new(),
        };
        w.leader.restore_events("sim".into(), Vec::new());
        let fx = w.leader.start(w.now);
        w.leader_effects(fx);
        w
    }

    /// Queues `event` at `at`.
    pub fn push(&mut self, at: i64, event: Event) {
        self.order += 1;
        self.queue.insert((at.max(self.now), self.order), event);
    }

    /// A delay on the network: usually a few ms, now and then much longer.
    pub fn delay(&mut self) -> i64 {
        if self.rng.chance(0.05) {
            self.rng.between(50, 1_500)
        } else {
            self.rng.between(0, 20)
        }
    }

    /// When a message on a link direction arrives: after a delay, never before the last one.
    fn fifo_at(&mut self, to_shard: bool, shard: ShardId, generation: u64) -> i64 {
        let at = self.now + self.delay();
        in_order(&mut self.fifo, (to_shard, shard, generation), at)
    }

    // ----- effects ------------------------------------------------------------------------

    /// Carries out the leader's effects.
    pub fn leader_effects(&mut self, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::ConnectUpstream {
                    source: SourceId::TwelveData,
                    generation,
                    ..
                } => self.td_connect(generation),
                Effect::CloseUpstream {
                    source: SourceId::TwelveData,
                    generation,
                } => self.td_closed(generation),
                Effect::SendUpstream {
                    source: SourceId::TwelveData,
                    generation,
                    text,
                } => self.td_request(generation, &text),
                Effect::ConnectUpstream { generation, .. } => {
                    let at = self.now + self.delay();
                    self.push(at, Event::UpstreamOpened(generation));
                }
                Effect::CloseUpstream { generation, .. } => {
                    if self.exchange.conn == Some(generation) {
                        self.exchange.conn = None;
                    }
                }
                e @ (Effect::Persist { .. }
                | Effect::Forget { .. }
                | Effect::StoreEvent { .. }
                | Effect::ForgetEvents { .. }
                | Effect::WipeEvents { .. }) => {
                    self.storage.apply(e);
                }
                Effect::Timer { at_ms } => self.leader_timer = Some(at_ms),
                Effect::SetAlarm { at_ms } => self.leader_alarm = Some(at_ms),
                Effect::SendShards { links, text } => {
                    for (shard, generation) in links {
                        let at = self.fifo_at(true, shard, generation);
                        self.push(at, Event::ToShard(shard, generation, text.clone()));
                    }
                }
                other => self.client_effect(Holder::Leader, other),
            }
        }
    }

    /// Carries out shard `s`'s effects.
    pub fn shard_effects(&mut self, s: ShardId, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::DialLeader { generation } => {
                    let at = self.now + self.delay();
                    self.push(at, Event::Dialed(s, generation));
                }
                Effect::SendLeader { generation, text } => {
                    if let Some((g, lg)) = self.links[s as usize] {
                        if g == generation {
                            let at = self.fifo_at(false, s, lg);
                            self.push(at, Event::ToLeader(s, lg, text));
                        }
                    }
                }
                Effect::HangUpLeader { generation } => {
                    if let Some((g, lg)) = self.links[s as usize] {
                        if g == generation {
                            self.links[s as usize] = None;
                            let fx = self.leader.shard_closed(s, lg, self.now);
                            self.leader_effects(fx);
                        }
                    }
                }
                Effect::Timer { at_ms } => self.shard_timers[s as usize] = Some(at_ms),
                Effect::SetAlarm { at_ms } => self.shard_alarms[s as usize] = Some(at_ms),
                other => self.client_effect(Holder::Shard(s), other),
            }
        }
    }

    /// The earliest thing due: a queued event, or an object's timer or alarm.
    fn next_due(&self) -> Option<i64> {
        let timers = self.shard_timers.iter().chain(&self.shard_alarms);
        let timers = timers.flatten().copied();
        let queued = self.queue.keys().next().map(|(at, _)| *at);
        [queued, self.leader_timer, self.leader_alarm]
            .into_iter()
            .flatten()
            .chain(timers)
            .min()
    }

    /// Runs everything due up to `t`, in time order, then sets the clock to `t`.
    pub fn advance_to(&mut self, t: i64) {
        let mut fired_now = 0;
        while let Some(at) = self.next_due().filter(|at| *at <= t) {
            fired_now = if at <= self.now { fired_now + 1 } else { 0 };
            if fired_now > 10_000 {
                let what = self.what_is_due(at);
                self.violations.push(format!(
                    "a livelock at {}: {what} keeps coming due",
                    self.now
                ));
                return;
            }
            self.now = self.now.max(at);
            self.fire(at);
        }
        self.now = self.now.max(t);
    }

    /// What is due at `at` (for a livelock's report).
    fn what_is_due(&self, at: i64) -> String {
        if self.leader_timer == Some(at) {
            return "the leader's timer".into();
        }
        if self.leader_alarm == Some(at) {
            return "the leader's alarm".into();
        }
        if let Some(s) = self.shard_timers.iter().position(|t| *t == Some(at)) {
            return format!("shard {s}'s timer");
        }
        if let Some(s) = self.shard_alarms.iter().position(|t| *t == Some(at)) {
            return format!("shard {s}'s alarm");
        }
        format!("{:?}", self.queue.values().next())
    }

    fn fire(&mut self, at: i64) {
        let jitter = self.rng.unit();
        if self.leader_timer == Some(at) {
            self.leader_timer = None;
            let fx = self.leader.timer(self.now);
            return self.leader_effects(fx);
        }
        if self.leader_alarm == Some(at) {
            self.leader_alarm = None;
            let fx = self.leader.alarm(self.now, jitter);
            return self.leader_effects(fx);
        }
        if let Some(s) = self.shard_timers.iter().position(|t| *t == Some(at)) {
            self.shard_timers[s] = None;
            let fx = self.shards[s].timer(self.now);
            return self.shard_effects(s as ShardId, fx);
        }
        if let Some(s) = self.shard_alarms.iter().position(|t| *t == Some(at)) {
            self.shard_alarms[s] = None;
            let fx = self.shards[s].alarm(self.now);
            return self.shard_effects(s as ShardId, fx);
        }
        let Some(key) = self.queue.keys().next().copied() else {
            return;
        };
        if let Some(event) = self.queue.remove(&key) {
            self.event(event, jitter);
        }
    }

    fn event(&mut self, event: Event, jitter: f64) {
        let now = self.now;
        match event {
            Event::UpstreamOpened(generation) => {
                self.exchange.conn = Some(generation);
                let opened = UpstreamEvent::Opened { generation };
                let fx = self.leader.upstream(SourceId::Neutral, opened, now, jitter);
                self.leader_effects(fx);
            }
            Event::UpstreamText(generation, text) => {
                let frame = UpstreamEvent::Text {
                    generation,
                    text: &text,
                };
                let fx = self.leader.upstream(SourceId::Neutral, frame, now, jitter);
                self.leader_effects(fx);
            }
            Event::Dialed(s, generation) => self.dialed(s, generation),
            Event::Td(generation, frame) => self.td_event(generation, frame, jitter),
            Event::ToShard(s, lg, text) => {
                self.trace(|| {
                    format!(
                        "leader -> shard {s} ({lg}): {}",
                        &text[..text.len().min(150)]
                    )
                });
                if let Some((g, _)) = self.links[s as usize].filter(|(_, l)| *l == lg) {
                    let fx = self.shards[s as usize].leader_text(g, &text, now);
                    self.shard_effects(s, fx);
                }
            }
            Event::Stream(ask) => self.open_stream(ask),
            Event::SsePull(holder, conn) => self.pull(holder, conn),
            Event::ClientSends(i, text) => self.client_sends(i, &text),
            Event::ToLeader(s, lg, text) => {
                self.trace(|| {
                    format!(
                        "shard {s} -> leader ({lg}): {}",
                        &text[..text.len().min(150)]
                    )
                });
                if self.links[s as usize].is_some_and(|(_, l)| l == lg) {
                    let fx = self.leader.shard_text(s, lg, &text, now);
                    self.leader_effects(fx);
                }
            }
        }
    }

    /// Prints `what` with the time when `SIM_TRACE` is set (a replay's log).
    pub fn trace(&self, what: impl FnOnce() -> String) {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("{} {}", self.now, what());
        }
    }

    // ----- what the exchange and the clients do -------------------------------------------

    /// The exchange moves `symbol` and sends it on its connection, if it has one.
    pub fn tick(&mut self, symbol: &str) {
        self.trace(|| format!("tick {symbol}"));
        if self.is_td(symbol) {
            return self.td_tick(symbol);
        }
        let last_at = self.exchange.prices.get(symbol).map_or(0, |p| p.1);
        let at = self.now.max(last_at + 1);
        let cents = self.rng.between(10_000, 20_000);
        let price = format!("{}.{:02}", cents / 100, cents % 100);
        self.exchange
            .prices
            .insert(symbol.to_string(), (price.clone(), at));
        if let Some(conn) = self.exchange.conn {
            self.send_ticker(conn, symbol, &price, at);
        }
    }

    /// The exchange's ticker of `symbol` on connection `conn`, a few ms from now.
    fn send_ticker(&mut self, conn: u64, symbol: &str, price: &str, at: i64) {
        if self.exchange.stalled == Some(conn) {
            return;
        }
        let when = self.now + self.rng.between(0, 5);
        let frame = neutral::ticker(symbol, price, at);
        self.push(when, Event::UpstreamText(conn, frame));
    }

    /// The exchange sends every symbol's latest ticker again (Binance's `@ticker` comes every
    /// second even in a quiet market), on its connection if it has one.
    pub fn cadence(&mut self) {
        let Some(conn) = self.exchange.conn else {
            return;
        };
        let latest: Vec<(String, String, i64)> = self
            .exchange
            .prices
            .iter()
            .filter(|(s, _)| !self.is_td(s))
            .map(|(s, (p, at))| (s.clone(), p.clone(), *at))
            .collect();
        for (symbol, price, at) in latest {
            self.send_ticker(conn, &symbol, &price, at);
        }
    }

    /// The object `holder` names.
    pub(super) fn host(&mut self, holder: Holder) -> &mut dyn ClientHost {
        match holder {
            Holder::Leader => &mut self.leader,
            Holder::Shard(s) => &mut self.shards[s as usize],
        }
    }

    /// Routes `fx` to the effects of `holder`.
    pub fn effects_of(&mut self, holder: Holder, fx: Vec<Effect>) {
        match holder {
            Holder::Leader => self.leader_effects(fx),
            Holder::Shard(s) => self.shard_effects(s, fx),
        }
    }
}
