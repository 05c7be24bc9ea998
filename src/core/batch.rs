//! What the feed hands the fan-out: the one narrow interface between the two halves.
//!
//! Prices cross it already encoded (the feed encodes each change once; the fan-out only
//! assembles frames from those bytes), with their `seq` and receive time so the fan-out can
//! keep its own latest values for snapshots; the upstream state crosses it when it changes.
//! It is plain data, so the same interface can later cross the wire to fan-out shards.

use std::fmt::Write;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::events::Event;
use super::market::{MarketKind, MarketUpdate};
use super::upstream_state::UpstreamState;

/// One changed price.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Canonical symbol.
    pub symbol: String,
    /// The price's JSON, shared by every frame that carries it.
    pub encoded: Rc<str>,
    /// Its `seq`.
    pub seq: u64,
    /// When it was received (epoch ms): its age and TTL count from here.
    pub received_at: i64,
}

/// A change of the upstream state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    /// The state now (`idle` included: streams opened now report nothing while idle).
    pub state: UpstreamState,
    /// Whether clients are told: `idle` is not client-facing, and a return to the state
    /// clients were last told is not news to them.
    pub announce: bool,
}

/// Everything one input of the feed produced for the fan-out, in order: prices first (in
/// `seq` order), then the state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Changed prices.
    pub prices: Vec<Change>,
    /// Symbols whose price expired (TTL).
    pub expired: Vec<String>,
    /// The upstream state, when it changed.
    pub state: Option<StateChange>,
    /// The highest `seq` handed out (above every price's when a restart reserved a block).
    pub seq: u64,
    /// Published events, in offset order per channel (after the prices).
    pub events: Vec<Event>,
    /// The events' epoch: with every event, and in every link snapshot (a fan-out's copy of
    /// the history starts over when it changes).
    pub epoch: Option<String>,
    /// Market channel updates, in the order they were read.
    pub market: Vec<MarketUpdate>,
}

impl Batch {
    /// True when there is nothing for the fan-out.
    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
            && self.expired.is_empty()
            && self.state.is_none()
            && self.events.is_empty()
            && self.market.is_empty()
    }

    /// Adds a later batch's changes after this one's (prices stay in `seq` order; a later
    /// state replaces an earlier one, and clients are told if either was news).
    pub fn absorb(&mut self, later: Batch) {
        self.prices.extend(later.prices);
        self.expired.extend(later.expired);
        self.state = match (self.state, later.state) {
            (Some(a), Some(b)) => Some(StateChange {
                state: b.state,
                announce: a.announce || b.announce,
            }),
            (a, b) => b.or(a),
        };
        self.seq = self.seq.max(later.seq);
        self.events.extend(later.events);
        self.epoch = later.epoch.or(self.epoch.take());
        self.market.extend(later.market);
    }
}

/// What a leader's message to a shard is: the state to start from, or what changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireKind {
    /// Everything live: sent when a link opens (a shard catches up from it).
    Snapshot,
    /// A flush's changes.
    Batch,
}

/// Why a message on the leader→shard link could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Not the link's JSON.
    #[error("unreadable link message: {0}")]
    Json(String),
    /// Headers and their prices or events do not pair up.
    #[error("{meta} headers for {prices} prices and events")]
    Unpaired {
        /// Headers.
        meta: usize,
        /// Prices.
        prices: usize,
    },
}

#[derive(Deserialize)]
struct Wire<'a> {
    t: WireKind,
    seq: u64,
    #[serde(default)]
    state: Option<StateChange>,
    #[serde(default)]
    expired: Vec<String>,
    #[serde(default)]
    meta: Vec<(String, u64, i64)>,
    #[serde(borrow, default)]
    prices: Vec<&'a RawValue>,
    #[serde(default)]
    epoch: Option<String>,
    #[serde(default)]
    evm: Vec<(String, u64)>,
    #[serde(borrow, default)]
    evs: Vec<&'a RawValue>,
    #[serde(default)]
    mkm: Vec<(String, String)>,
    #[serde(borrow, default)]
    mks: Vec<&'a RawValue>,
}

impl Batch {
    /// The batch as one leader→shard message. Each price goes in as the bytes the feed
    /// encoded, next to a small header (symbol, `seq`, receive time), so the shard takes
    /// both without parsing, let alone re-encoding, a price.
    pub fn encode(&self, kind: WireKind) -> String {
        let kind = match kind {
            WireKind::Snapshot => "snapshot",
            WireKind::Batch => "batch",
        };
        let size: usize = self.prices.iter().map(|c| c.encoded.len() + 48).sum();
        let mut out = String::with_capacity(96 + size);
        let _ = write!(out, r#"{{"t":"{kind}","seq":{}"#, self.seq);
        if let Some(s) = &self.state {
            let _ = write!(
                out,
                r#","state":{{"state":"{}","announce":{}}}"#,
                s.state.as_str(),
                s.announce
            );
        }
        if !self.expired.is_empty() {
            // Invariant: a list of strings always serialises.
            let expired = serde_json::to_string(&self.expired).unwrap_or_default();
            let _ = write!(out, r#","expired":{expired}"#);
        }
        // Symbols are canonical (A-Z, 0-9): nothing to escape.
        let price_head = |c: &Change, o: &mut String| {
            let _ = write!(o, r#"["{}",{},{}]"#, c.symbol, c.seq, c.received_at);
        };
        pairs(
            &mut out,
            ("meta", "prices"),
            &self.prices,
            price_head,
            |c| &c.encoded,
        );
        if let Some(epoch) = &self.epoch {
            // Epochs are letters and digits: nothing to escape.
            let _ = write!(out, r#","epoch":"{epoch}""#);
        }
        if !self.market.is_empty() {
            // Market channel keys are canonical (A-Z, 0-9, `:` and an interval).
            let head = |m: &MarketUpdate, o: &mut String| {
                let _ = write!(o, r#"["{}","{}"]"#, m.channel, m.kind.code());
            };
            pairs(&mut out, ("mkm", "mks"), &self.market, head, |m| &m.encoded);
        }
        if !self.events.is_empty() {
            // Channel names are `events:`/`user:` and a-z, 0-9, - _ . @: nothing to escape.
            let head = |e: &Event, o: &mut String| {
                let _ = write!(o, r#"["{}",{}]"#, e.channel, e.offset);
            };
            pairs(&mut out, ("evm", "evs"), &self.events, head, |e| &e.encoded);
        }
        out.push('}');
        out
    }

    /// Reads a leader→shard message.
    pub fn decode(text: &str) -> Result<(WireKind, Batch), WireError> {
        let w: Wire<'_> = serde_json::from_str(text).map_err(|e| WireError::Json(e.to_string()))?;
        if w.meta.len() != w.prices.len()
            || w.evm.len() != w.evs.len()
            || w.mkm.len() != w.mks.len()
        {
            return Err(WireError::Unpaired {
                meta: w.meta.len() + w.evm.len() + w.mkm.len(),
                prices: w.prices.len() + w.evs.len() + w.mks.len(),
            });
        }
        let market = w
            .mkm
            .into_iter()
            .zip(w.mks)
            .map(|((channel, code), raw)| {
                let kind = MarketKind::of_code(&code)
                    .ok_or_else(|| WireError::Json(format!("market kind {code:?}")))?;
                Ok(MarketUpdate {
                    channel,
                    kind,
                    encoded: Rc::from(raw.get()),
                })
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        let events = w
            .evm
            .into_iter()
            .zip(w.evs)
            .map(|((channel, offset), raw)| Event {
                channel,
                offset,
                encoded: Rc::from(raw.get()),
            })
            .collect();
        let prices = w
            .meta
            .into_iter()
            .zip(w.prices)
            .map(|((symbol, seq, received_at), raw)| Change {
                symbol,
                encoded: Rc::from(raw.get()),
                seq,
                received_at,
            })
            .collect();
        let batch = Batch {
            prices,
            expired: w.expired,
            state: w.state,
            seq: w.seq,
            events,
            epoch: w.epoch,
            market,
        };
        Ok((w.t, batch))
    }
}

/// Writes `,"<heads>":[..],"<bodies>":[..]`: a small header per item, then each item's
/// encoding untouched. Prices, events and market updates all cross the link this way, so a
/// shard takes each without parsing (let alone re-encoding) it.
fn pairs<T>(
    out: &mut String,
    (heads, bodies): (&str, &str),
    items: &[T],
    head: impl Fn(&T, &mut String),
    body: impl Fn(&T) -> &str,
) {
    let _ = write!(out, r#","{heads}":["#);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        head(item, out);
    }
    let _ = write!(out, r#"],"{bodies}":["#);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(body(item));
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(symbol: &str, seq: u64) -> Change {
        Change {
            symbol: symbol.into(),
            encoded: format!(r#"{{"symbol":"{symbol}","price":"1.50","seq":{seq}}}"#).into(),
            seq,
            received_at: 1_700_000_000_000 + seq as i64,
        }
    }

    #[test]
    fn a_batch_crosses_the_link_with_its_price_bytes_untouched() {
        let batch = Batch {
            prices: vec![change("BTCUSDT", 7), change("ETHUSDT", 8)],
            expired: vec!["SOLUSDT".into()],
            state: Some(StateChange {
                state: UpstreamState::Reconnecting,
                announce: true,
            }),
            seq: 9,
            events: vec![Event {
                channel: "events:signals".into(),
                offset: 3,
                encoded: r#"{"type":"event","offset":3,"data":{"q":"0.10"}}"#.into(),
            }],
            epoch: Some("e1".into()),
            market: vec![MarketUpdate {
                channel: "trades:BTCUSDT".into(),
                kind: MarketKind::Trade,
                encoded: r#"{"id":1,"price":"1.50"}"#.into(),
            }],
        };
        let text = batch.encode(WireKind::Batch);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["prices"][1]["price"], "1.50");
        let (kind, back) = Batch::decode(&text).unwrap();
        assert_eq!((kind, &back), (WireKind::Batch, &batch));
        assert!(Rc::ptr_eq(
            &batch.prices[0].encoded,
            &batch.prices[0].encoded
        ));
        assert_eq!(
            &*back.prices[0].encoded, &*batch.prices[0].encoded,
            "same bytes"
        );
    }

    #[test]
    fn an_empty_snapshot_and_bad_messages() {
        let empty = Batch {
            seq: 3,
            ..Batch::default()
        };
        let (kind, back) = Batch::decode(&empty.encode(WireKind::Snapshot)).unwrap();
        assert_eq!((kind, back), (WireKind::Snapshot, empty));
        assert!(matches!(Batch::decode("nope"), Err(WireError::Json(_))));
        let unpaired = r#"{"t":"batch","seq":1,"meta":[["BTCUSDT",1,1]],"prices":[]}"#;
        assert_eq!(
            Batch::decode(unpaired),
            Err(WireError::Unpaired { meta: 1, prices: 0 })
        );
    }
}
