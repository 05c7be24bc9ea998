//! Market channels in the fan-out: trades gathered per flush into one frame per channel,
//! every closed candle once, the newest open candle and book per flush, and each state
//! channel's current value for a new subscriber.
//!
//! Every body is encoded once per channel and flush, framed once per wire and shared by all
//! its subscribers of that wire. A
//! WebSocket behind its flow-control window skips market frames until it catches up (trade
//! ids show the gap; the next candle or book frame brings the state back); an SSE reader
//! queues them like events.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use super::{Carrier, Fanout};
use crate::core::batch::Batch;
use crate::core::channel;
use crate::core::effect::Effect;
use crate::core::market::{trades_body, MarketKind};
use crate::core::wire::{Kind, Payload};

/// What a state channel's payload is: the book of a `book:` channel, the map of a
/// `heatmap:` channel, else a candle.
pub(super) fn state_kind(channel: &str) -> Kind {
    if channel.starts_with("book:") {
        Kind::Book
    } else if channel.starts_with("heatmap:") {
        Kind::Heatmap
    } else {
        Kind::Candle
    }
}

/// Market frames waiting for the next flush, and each state channel's current frame.
#[derive(Debug, Default)]
pub struct MarketOut {
    states: BTreeMap<String, Rc<str>>,
    trades: BTreeMap<String, Vec<Rc<str>>>,
    closed: Vec<(String, Rc<str>)>,
    dirty: BTreeSet<String>,
}

impl MarketOut {
    fn is_pending(&self) -> bool {
        !self.trades.is_empty() || !self.closed.is_empty() || !self.dirty.is_empty()
    }
}

impl Fanout {
    /// Keeps the batch's market states and, with `deliver`, gathers what its subscribers
    /// get at the next flush; forgets the states of channels the feed dropped.
    pub(super) fn apply_market(&mut self, batch: &Batch, deliver: bool) -> bool {
        for key in batch.expired.iter().filter(|k| channel::is_market(k)) {
            self.market.states.remove(key);
        }
        for u in &batch.market {
            if u.kind.is_state() {
                self.market
                    .states
                    .insert(u.channel.clone(), u.encoded.clone());
            }
            if !deliver || self.clients.subscribers(&u.channel).next().is_none() {
                continue;
            }
            let out = &mut self.market;
            match u.kind {
                MarketKind::Trade => {
                    let list = out.trades.entry(u.channel.clone()).or_default();
                    list.push(u.encoded.clone());
                }
                MarketKind::ClosedCandle => {
                    out.closed.push((u.channel.clone(), u.encoded.clone()));
                    out.dirty.remove(&u.channel);
                }
                MarketKind::Candle | MarketKind::Book | MarketKind::Heatmap => {
                    out.dirty.insert(u.channel.clone());
                }
            }
        }
        self.market.is_pending()
    }

    /// Sends what gathered since the last flush: each channel's trades in one frame, every
    /// closed candle, then the newest state of each changed state channel.
    pub(super) fn flush_market(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let out = std::mem::take(&mut self.market.trades);
        for (ch, trades) in out {
            let body = trades_body(&ch, &trades);
            self.deliver_market(&ch, Payload::new(Kind::Trades, &body), now_ms, fx);
        }
        for (ch, body) in std::mem::take(&mut self.market.closed) {
            self.deliver_market(&ch, Payload::new(Kind::Candle, &body), now_ms, fx);
        }
        for ch in std::mem::take(&mut self.market.dirty) {
            let Some(body) = self.market.states.get(&ch).cloned() else {
                continue;
            };
            self.deliver_market(&ch, Payload::new(state_kind(&ch), &body), now_ms, fx);
        }
    }

    fn deliver_market(
        &mut self,
        channel: &str,
        payload: Payload<'_>,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        let route = |c: &mut Carrier, now: i64| c.market(payload, now);
        // An SSE reader too slow for market frames ends.
        let slow = self.deliver_whole(channel, None, payload, route, now_ms, fx);
        self.end_streams(slow, now_ms, fx);
    }

    /// The current bodies of the state channels among `channels` (a new subscriber's first).
    pub(super) fn market_states(&self, channels: &[String]) -> Vec<(String, Rc<str>)> {
        channels
            .iter()
            .filter_map(|c| Some((c.clone(), self.market.states.get(c)?.clone())))
            .collect()
    }
}
