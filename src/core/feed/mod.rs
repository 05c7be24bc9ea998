//! The feed: one upstream link per source, the price cache and `seq` (one for every source,
//! so `seq` orders every price the service hands out), and their persistence.
//!
//! Upstream frames, link events and the alarm come in; what the fan-out needs goes out as a
//! [`Batch`] (prices encoded once, state changes), and what the edge must do for the
//! upstream and storage as [`Effect`]s. It knows nothing about clients except the symbols
//! and market channels they listen to, which decide what the upstream carries (market
//! channels always on demand, symbols in `on-demand` mode).

use std::collections::BTreeSet;
use std::rc::Rc;

use serde::Serialize;

use crate::core::batch::{Batch, Change, StateChange};
use crate::core::config::Config;
use crate::core::effect::Effect;
use crate::core::error::ApiError;
use crate::core::groups::{self, AssetGroup};
use crate::core::ids::SourceId;
use crate::core::market::MarketUpdate;
use crate::core::rest;
use crate::core::upstream_state::UpstreamState;
use cache::{Entry, PriceCache, StoredPrice};
use source::Source;
use states::MarketStates;
use upstream::Upstream;

pub mod binance;
pub mod cache;
mod frames;
pub mod link;
#[cfg(test)]
pub mod neutral;
pub mod report;
pub mod source;
pub mod states;
pub mod twelvedata;
pub mod upstream;

/// Upstream frames larger than this are skipped unparsed: no market-stream payload comes
/// near it, so it can only be garbage, and parsing it would cost the feed for nothing.
pub const MAX_UPSTREAM_FRAME_BYTES: usize = 64 * 1024;
/// Changed prices are written to storage at most this often (one transaction each).
pub const PERSIST_EVERY_MS: i64 = 1_000;
/// `seq` values are reserved in storage this many at a time, and a new block is reserved
/// when half of the current one is used, so no update waits for a write of its own.
pub const SEQ_BLOCK: u64 = 100_000;

/// The feed's counters.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct FeedStats {
    /// Upstream frames received from the active connection.
    pub upstream_frames: u64,
    /// Upstream frames skipped as invalid.
    pub upstream_errors: u64,
    /// REST snapshot requests answered (edge cache misses).
    pub snapshot_requests: u64,
}

/// The feed.
#[derive(Debug)]
pub struct Feed {
    cfg: Rc<Config>,
    /// The sources it follows, each with its link (the first is the primary one).
    upstreams: Vec<Upstream>,
    cache: PriceCache,
    /// The state last reported to the fan-out, and the last one clients were told.
    reported: UpstreamState,
    announced: UpstreamState,
    alarm_at: Option<i64>,
    /// When the object's alarm is also wanted for something else (a token's expiry).
    also_at: Option<i64>,
    /// The symbols clients listen to.
    interest: BTreeSet<String>,
    /// Market channels' states, and the channels forgotten since the last batch.
    market: MarketStates,
    forgotten: Vec<String>,
    /// Symbols changed since the last write to storage, and when the next write is due.
    unsaved: BTreeSet<String>,
    persist_at: Option<i64>,
    /// The `seq` high-water mark last written (a restart starts above it).
    seq_reserved: u64,
    /// Every change up to this `seq` has been handed to storage.
    saved_seq: u64,
    stats: FeedStats,
}

impl Feed {
    /// A feed of `sources` with an empty cache and no upstream yet.
    pub fn new(cfg: Rc<Config>, sources: Vec<Rc<dyn Source>>) -> Feed {
        let upstreams = sources
            .into_iter()
            .map(|s| Upstream::new(&cfg, s))
            .collect();
        Feed {
            upstreams,
            cache: PriceCache::new(cfg.price_ttl_ms),
            cfg,
            reported: UpstreamState::Reconnecting,
            announced: UpstreamState::Reconnecting,
            alarm_at: None,
            also_at: None,
            interest: BTreeSet::new(),
            market: MarketStates::default(),
            forgotten: Vec::new(),
            unsaved: BTreeSet::new(),
            persist_at: None,
            seq_reserved: 0,
            saved_seq: 0,
            stats: FeedStats::default(),
        }
    }

    /// Loads persisted prices (see [`PriceCache::restore`]).
    pub fn restore_prices(&mut self, prices: Vec<StoredPrice>, seq_floor: u64, now_ms: i64) {
        let served: Vec<StoredPrice> = prices
            .into_iter()
            .filter(|(p, _)| self.cfg.symbols.contains(&p.symbol))
            .collect();
        self.cache.restore(served, seq_floor, now_ms);
    }

    /// Takes back a link's memory persisted by an earlier instance; an unreadable memory is
    /// ignored and reported.
    pub fn restore_link(&mut self, source: SourceId, json: &str) -> Result<(), String> {
        let memory = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if let Some(u) = self.upstream(source) {
            u.link.restore(memory);
        }
        Ok(())
    }

    /// The sources it follows.
    pub fn sources(&self) -> Vec<SourceId> {
        self.upstreams.iter().map(|u| u.source.id()).collect()
    }

    fn upstream(&mut self, source: SourceId) -> Option<&mut Upstream> {
        let i = self.index_of(source)?;
        self.upstreams.get_mut(i)
    }

    /// Where `source` is among the upstreams.
    fn index_of(&self, source: SourceId) -> Option<usize> {
        self.upstreams.iter().position(|u| u.source.id() == source)
    }

    /// The highest `seq` handed out.
    pub fn seq(&self) -> u64 {
        self.cache.seq()
    }

    /// Everything live now, as one batch: what a fan-out starts from.
    pub fn snapshot(&self, now_ms: i64) -> Batch {
        Batch {
            prices: self.cache.live(now_ms).map(change_of).collect(),
            expired: Vec::new(),
            state: Some(StateChange {
                state: self.reported,
                announce: false,
            }),
            seq: self.cache.seq(),
            market: self.market.all(),
            ..Batch::default()
        }
    }

    /// The latest price of `symbol`, as the exchange wrote it, while it is live.
    pub fn price_text(&self, symbol: &str, now_ms: i64) -> Option<String> {
        self.cache.get(symbol, now_ms)?.price.price.clone()
    }

    /// Keeps a market channel's state computed outside the feed (the heat map), so a new
    /// link's snapshot carries it like the states the upstream sends.
    pub fn keep_market(&mut self, update: &MarketUpdate) {
        self.market.keep(update);
    }

    /// The upstream state clients are told: `connected`, `reconnecting`, `down`, or `idle`
    /// (of several sources, see [`upstream::combined`]).
    pub fn state(&self) -> UpstreamState {
        upstream::combined(self.upstreams.iter().map(|u| u.link.state()))
    }

    /// The symbols clients listen to changed: an on-demand upstream follows them.
    pub fn want(&mut self, interest: BTreeSet<String>, now_ms: i64, fx: &mut Vec<Effect>) {
        if interest != self.interest {
            self.interest = interest;
            let gone = self.market.retain(&self.interest);
            self.forgotten.extend(gone);
            self.refresh(now_ms, fx);
        }
    }

    fn refresh(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        for u in &mut self.upstreams {
            let wanted = u.wanted(self.cfg.upstream_mode, &self.interest);
            u.link.want(wanted, now_ms, fx);
        }
        self.schedule(now_ms, fx);
    }

    /// Starts (or re-checks) the upstream. Cheap and safe to call on every event: it does
    /// something only when the wanted streams are not being served.
    pub fn start(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        // A new instance reserves its first block of `seq` before it hands any out.
        if self.seq_reserved == 0 {
            self.persist(now_ms, fx);
        }
        let down = |u: &Upstream| !u.link.is_connected() && !u.link.is_idle();
        if self.alarm_at.is_none() || self.upstreams.iter().any(down) {
            self.refresh(now_ms, fx);
        }
    }

    /// Remembers a changed price for the next write to storage. The write is due within
    /// [`PERSIST_EVERY_MS`], or now when half of the reserved `seq` block is used; either way
    /// it happens on the timer, after this change's fan-out: nothing durable stands between
    /// an update and its fan-out.
    fn changed(&mut self, symbol: &str, now_ms: i64) {
        self.unsaved.insert(symbol.to_string());
        if self.cache.seq() + SEQ_BLOCK / 2 > self.seq_reserved {
            self.persist_at = Some(now_ms);
        } else if self.persist_at.is_none() {
            self.persist_at = Some(now_ms + PERSIST_EVERY_MS);
        }
    }

    /// Writes the prices changed since the last write, and reserves a new block of `seq`
    /// when half of the reserved one is used.
    fn persist(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        self.persist_at = None;
        let seq = self.cache.seq();
        self.saved_seq = seq;
        if seq + SEQ_BLOCK / 2 > self.seq_reserved {
            self.seq_reserved = seq + SEQ_BLOCK;
        }
        let prices = std::mem::take(&mut self.unsaved)
            .into_iter()
            .filter_map(|s| self.cache.get(&s, now_ms))
            .map(|e| (e.price.symbol.clone(), e.stored(), e.price.seq))
            .collect();
        fx.push(Effect::Persist {
            prices,
            seq_floor: self.seq_reserved,
        });
    }

    /// When the feed next needs the in-memory timer: the next write to storage.
    pub fn timer_due(&self) -> Option<i64> {
        self.persist_at
    }

    /// The in-memory timer fired: write to storage when due.
    pub fn timer(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        if self.persist_at.is_some_and(|t| t <= now_ms) {
            self.persist(now_ms, fx);
        }
    }

    /// The object's alarm fired: expire prices, and drive the link's timers.
    pub fn alarm(&mut self, now_ms: i64, jitter: f64, fx: &mut Vec<Effect>, out: &mut Batch) {
        if self.seq_reserved == 0 {
            self.persist(now_ms, fx);
        }
        self.alarm_at = None;
        let expired = self.cache.sweep(now_ms);
        if !expired.is_empty() {
            fx.push(Effect::Forget {
                symbols: expired.clone(),
            });
            out.expired = expired;
        }
        for u in &mut self.upstreams {
            let wanted = u.wanted(self.cfg.upstream_mode, &self.interest);
            u.link.want(wanted, now_ms, fx);
            u.link.tick(now_ms, jitter, fx);
        }
        self.schedule(now_ms, fx);
    }

    /// Keeps exactly one alarm set, at the earliest time the feed has something to do: the
    /// link's next deadline, the next TTL expiry, or what the hub asked for. With nothing to
    /// do (an idle on-demand feed with an empty cache, no token to expire) no alarm is set and
    /// the object may hibernate.
    fn schedule(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        for u in &mut self.upstreams {
            if u.link.take_dirty() {
                // Invariant: LinkMemory holds only numbers, strings and enums of them.
                let json = serde_json::to_string(u.link.memory()).unwrap_or_default();
                let source = u.source.id();
                fx.push(Effect::SaveLink { source, json });
            }
        }
        let links = self.upstreams.iter().filter_map(|u| u.link.next_wake());
        let want = links
            .chain(self.cache.next_expiry())
            .chain(self.also_at)
            .min()
            .map(|t| t.max(now_ms + 1));
        let Some(want) = want else {
            return;
        };
        match self.alarm_at {
            Some(t) if t > now_ms && t <= want => {}
            _ => {
                self.alarm_at = Some(want);
                fx.push(Effect::SetAlarm { at_ms: want });
            }
        }
    }

    /// The object has one alarm, which the feed keeps: it is also wanted at `at` (or no
    /// longer, with `None`), for the hub's own use.
    pub fn alarm_also_at(&mut self, at: Option<i64>, now_ms: i64, fx: &mut Vec<Effect>) {
        if self.also_at != at {
            self.also_at = at;
            self.schedule(now_ms, fx);
        }
    }

    /// The hub's due time, updated before the alarm it fired is handled (so the alarm is not
    /// set again for a time already dealt with).
    pub fn set_alarm_also(&mut self, at: Option<i64>) {
        self.also_at = at;
    }

    /// Reports a change of the upstream state into `out`: every change for the fan-out's
    /// own record, and as news for clients when it is client-facing and differs from what
    /// they were last told (`idle` is not: whoever is connected then listens to nothing).
    pub fn report_state(&mut self, out: &mut Batch) {
        out.expired.append(&mut self.forgotten);
        let state = self.state();
        if state == self.reported {
            return;
        }
        self.reported = state;
        let announce = state != UpstreamState::Idle && state != self.announced;
        if announce {
            self.announced = state;
        }
        out.state = Some(StateChange { state, announce });
        out.seq = self.cache.seq();
    }

    /// Body and weak ETag of `GET /api/prices` (all live symbols, or the requested ones that
    /// have data).
    pub fn rest_prices(&mut self, symbols: Option<&[String]>, now_ms: i64) -> (String, String) {
        self.stats.snapshot_requests += 1;
        let entries: Vec<&Entry> = match symbols {
            None => self.cache.live(now_ms).collect(),
            Some(list) => list
                .iter()
                .filter_map(|s| self.cache.get(s, now_ms))
                .collect(),
        };
        let tag = rest::etag(
            entries
                .iter()
                .map(|e| (e.price.symbol.as_str(), e.price.seq)),
        );
        let parts: Vec<String> = entries.iter().map(|e| e.with_age(now_ms)).collect();
        let body = format!(
            r#"{{"prices":[{}],"upstream":"{}","as_of":{now_ms}}}"#,
            parts.join(","),
            self.state()
        );
        (body, tag)
    }

    /// Body and weak ETag of a group's route: its live prices (see [`groups::group_body`]).
    pub fn rest_group(&mut self, group: AssetGroup, now_ms: i64) -> (String, String) {
        self.stats.snapshot_requests += 1;
        let mine = |e: &&Entry| AssetGroup::of_price(&e.price) == group;
        let entries: Vec<&Entry> = self.cache.live(now_ms).filter(mine).collect();
        let tag = rest::etag(
            entries
                .iter()
                .map(|e| (e.price.symbol.as_str(), e.price.seq)),
        );
        (
            groups::group_body(group, entries.iter().map(|e| &e.price)),
            tag,
        )
    }

    /// Body and weak ETag of `GET /api/prices/{symbol}` for a canonical, served symbol.
    pub fn rest_price(&mut self, symbol: &str, now_ms: i64) -> Result<(String, String), ApiError> {
        self.stats.snapshot_requests += 1;
        match self.cache.get(symbol, now_ms) {
            Some(e) => Ok((e.with_age(now_ms), rest::etag([(symbol, e.price.seq)]))),
            None => Err(ApiError::NoData {
                message: format!(
                    "no price for {symbol} yet; the upstream is {}",
                    self.state()
                ),
                retry_after_s: if self.connected_for(symbol) { 1 } else { 5 },
            }),
        }
    }

    /// True while the link of `symbol`'s source delivers.
    fn connected_for(&self, symbol: &str) -> bool {
        let mine = |u: &&Upstream| u.symbols.contains(symbol);
        self.upstreams
            .iter()
            .find(mine)
            .is_some_and(|u| u.link.is_connected())
    }

    /// Counters so far.
    pub fn stats(&self) -> &FeedStats {
        &self.stats
    }
}

/// A cache entry as the fan-out receives it.
fn change_of(e: &Entry) -> Change {
    Change {
        symbol: e.price.symbol.clone(),
        encoded: e.encoded.clone(),
        seq: e.price.seq,
        received_at: e.price.received_at,
    }
}

#[cfg(test)]
mod tests;
