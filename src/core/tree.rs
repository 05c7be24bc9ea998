//! The leader's side of the fan-out shards (docs/capacity.md): which shards are linked, what each
//! listens to and last reported, and the one message each flush sends them.
//!
//! A shard dials the leader while it has clients and hangs up when it has none, so a linked
//! shard is one that wants every change: a flush is encoded once and the same bytes go to
//! every linked shard. Each link is a *generation*: events of a link that has since been
//! replaced are stale and ignored. What a shard sends the leader is a [`ShardMessage`].
//!
//! Link messages are paced like client frames: a change goes out right after the input at
//! hand when the previous message left at least `FLUSH_MS` ago, otherwise it waits for the
//! end of that window with whatever else arrives meanwhile, so a fast upstream costs each shard at most one message
//! per window (every message is a receive on each shard's one thread, and the leader's send
//! per shard is the cost that grows with the tree: docs/capacity.md). A state change never
//! waits: it goes out with everything pending before it.

use std::collections::BTreeSet;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::batch::{Batch, WireKind};
use super::fanout::FanoutReport;
use super::ids::{LinkId, ShardId};

/// What a shard tells the leader over its link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ShardMessage {
    /// The symbols and channels its clients hold now (the upstream follows their union).
    Interest {
        /// Canonical symbols and channel keys, sorted.
        keys: Vec<String>,
    },
    /// Its clients and counters, and the highest `seq` it has applied (the leader's `seq`
    /// minus it is the shard's lag).
    Report {
        /// The fan-out's report.
        report: Box<FanoutReport>,
        /// Highest `seq` applied.
        seq: u64,
    },
}

impl ShardMessage {
    /// The message as sent.
    pub fn encode(&self) -> String {
        // Invariant: strings, numbers and the report's counters always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a message from a shard.
    pub fn decode(text: &str) -> Result<ShardMessage, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// One linked shard.
#[derive(Debug, Clone, PartialEq)]
struct Linked {
    generation: u64,
    interest: BTreeSet<String>,
    report: Option<(FanoutReport, u64)>,
}

/// The lowest generation a link made at `now_ms` gets: the clock in microseconds, so
/// generations grow across restarts of the object that hands them out.
pub fn generation_floor(now_ms: i64) -> u64 {
    u64::try_from(now_ms).unwrap_or(0).saturating_mul(1_000)
}

/// One shard as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardView {
    /// Its number.
    pub shard: ShardId,
    /// Whether it is linked now.
    pub linked: bool,
    /// Symbols its clients hold.
    pub interest: usize,
    /// The leader's `seq` minus the highest the shard reported applying.
    pub lag: Option<u64>,
    /// Its last report.
    pub report: Option<FanoutReport>,
}

/// What goes to the linked shards: one message, encoded once, and the links it goes to.
pub type Send = (Vec<LinkId>, Rc<str>);

/// Changes not yet sent to the shards, and when they are due.
#[derive(Debug, Default)]
struct Pending {
    batch: Batch,
    due: Option<i64>,
    last_sent: Option<i64>,
}

/// The shards of one leader.
#[derive(Debug)]
pub struct ShardTable {
    count: ShardId,
    next_generation: u64,
    linked: Vec<(ShardId, Linked)>,
    window_ms: i64,
    pending: Pending,
}

impl ShardTable {
    /// `count` shards, none linked; link messages at most one per `window_ms` while changes
    /// come faster.
    pub fn new(count: ShardId, window_ms: i64) -> ShardTable {
        ShardTable {
            count,
            next_generation: 1,
            linked: Vec::new(),
            window_ms: window_ms.max(0),
            pending: Pending::default(),
        }
    }

    /// A shard linked at `now_ms`: returns the link's generation (a newer link of the same
    /// shard replaces the older one) and the snapshot it starts from, encoded. Generations
    /// start from the clock, so a restarted leader never reuses one an old link had.
    pub fn link(&mut self, shard: ShardId, snapshot: &Batch, now_ms: i64) -> Option<(u64, String)> {
        if shard >= self.count {
            return None;
        }
        let generation = self.next_generation.max(generation_floor(now_ms));
        self.next_generation = generation + 1;
        self.linked.retain(|(s, _)| *s != shard);
        let link = Linked {
            generation,
            interest: BTreeSet::new(),
            report: None,
        };
        let at = self.linked.partition_point(|(s, _)| *s < shard);
        self.linked.insert(at, (shard, link));
        Some((generation, snapshot.encode(WireKind::Snapshot)))
    }

    /// The link of `generation` closed; returns whether it was the shard's current link
    /// (and its interest is gone with it).
    pub fn unlink(&mut self, shard: ShardId, generation: u64) -> bool {
        let before = self.linked.len();
        self.linked
            .retain(|(s, l)| !(*s == shard && l.generation == generation));
        before != self.linked.len()
    }

    fn current(&mut self, shard: ShardId, generation: u64) -> Option<&mut Linked> {
        self.linked
            .iter_mut()
            .find(|(s, l)| *s == shard && l.generation == generation)
            .map(|(_, l)| l)
    }

    /// A message from the link of `generation`; returns whether the union of interests
    /// changed. Messages of a replaced link are ignored.
    pub fn message(&mut self, shard: ShardId, generation: u64, msg: ShardMessage) -> bool {
        let before = self.union();
        let Some(link) = self.current(shard, generation) else {
            return false;
        };
        match msg {
            ShardMessage::Interest { keys } => link.interest = keys.into_iter().collect(),
            ShardMessage::Report { report, seq } => link.report = Some((*report, seq)),
        }
        before != self.union()
    }

    /// The symbols some linked shard's clients hold.
    pub fn union(&self) -> BTreeSet<String> {
        self.linked
            .iter()
            .flat_map(|(_, l)| l.interest.iter().cloned())
            .collect()
    }

    /// A batch of changes for the shards. A state change goes out at once, with what was
    /// held before it. Otherwise the batch is held: due *now* (carried out by a timer of
    /// zero delay, after the input at hand, so frames read together, such as a trade's
    /// ticker and book ticker, go in one message) when the previous message left at least a
    /// window ago, or at the end of that window. Nothing is kept while no shard is linked (a
    /// shard that links later starts from the snapshot).
    pub fn route(&mut self, batch: Batch, now_ms: i64) -> Option<Send> {
        if self.linked.is_empty() {
            self.pending = Pending::default();
            return None;
        }
        if batch.is_empty() {
            return None;
        }
        let urgent = batch.state.is_some();
        self.pending.batch.absorb(batch);
        if urgent {
            return self.flush(now_ms);
        }
        if self.pending.due.is_none() {
            let window_end = self.pending.last_sent.map(|at| at + self.window_ms);
            self.pending.due = Some(window_end.map_or(now_ms, |end| end.max(now_ms)));
        }
        None
    }

    /// When held changes are due to be sent.
    pub fn due(&self) -> Option<i64> {
        self.pending.due
    }

    /// The held changes, if they are due at `now_ms`.
    pub fn flush_due(&mut self, now_ms: i64) -> Option<Send> {
        match self.pending.due {
            Some(at) if at <= now_ms => self.flush(now_ms),
            _ => None,
        }
    }

    /// Sends whatever is held now (before a new link's snapshot, so every change reaches
    /// the links that were there when it happened, and the new one from its snapshot).
    pub fn flush(&mut self, now_ms: i64) -> Option<Send> {
        self.pending.due = None;
        let batch = std::mem::take(&mut self.pending.batch);
        if batch.is_empty() || self.linked.is_empty() {
            return None;
        }
        self.pending.last_sent = Some(now_ms);
        let to = self
            .linked
            .iter()
            .map(|(s, l)| (*s, l.generation))
            .collect();
        Some((to, batch.encode(WireKind::Batch).into()))
    }

    /// Every shard, linked or not, for `/health`, with its lag behind `seq`.
    pub fn views(&self, seq: u64) -> Vec<ShardView> {
        (0..self.count)
            .map(|shard| {
                let link = self
                    .linked
                    .iter()
                    .find(|(s, _)| *s == shard)
                    .map(|(_, l)| l);
                let report = link.and_then(|l| l.report.clone());
                ShardView {
                    shard,
                    linked: link.is_some(),
                    interest: link.map_or(0, |l| l.interest.len()),
                    lag: report.as_ref().map(|(_, s)| seq.saturating_sub(*s)),
                    report: report.map(|(r, _)| r),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::batch::{Change, StateChange};
    use crate::core::fanout::FanoutStats;
    use crate::core::upstream_state::UpstreamState;

    fn batch(seq: u64) -> Batch {
        Batch {
            prices: vec![Change {
                symbol: "BTCUSDT".into(),
                encoded: format!(r#"{{"symbol":"BTCUSDT","seq":{seq}}}"#).into(),
                seq,
                received_at: 1,
            }],
            seq,
            ..Batch::default()
        }
    }

    fn interest(symbols: &[&str]) -> ShardMessage {
        ShardMessage::Interest {
            keys: symbols.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn report(websocket: usize) -> FanoutReport {
        FanoutReport {
            websocket,
            socketio: 0,
            polling: 0,
            sse: 0,
            stored_attachments: 0,
            max_connections: 10,
            subscribers: Default::default(),
            stats: FanoutStats::default(),
        }
    }

    #[test]
    fn a_flush_is_encoded_once_for_every_linked_shard() {
        let mut t = ShardTable::new(4, 5);
        assert!(
            t.route(batch(1), 0).is_none(),
            "nobody linked: nothing sent"
        );
        assert!(t.due().is_none(), "nor kept");
        let (g2, snap) = t.link(2, &batch(1), 0).unwrap();
        assert!(snap.starts_with(r#"{"t":"snapshot""#));
        let (g0, _) = t.link(0, &batch(1), 0).unwrap();
        assert!(t.link(4, &batch(1), 0).is_none(), "no such shard");
        assert!(t.route(batch(2), 0).is_none(), "after the input at hand");
        assert_eq!(t.due(), Some(0), "which is now");
        let (to, text) = t.flush_due(0).unwrap();
        assert_eq!(to, [(0, g0), (2, g2)], "in shard order");
        assert_eq!(Batch::decode(&text).unwrap().1, batch(2));
        assert!(
            t.route(Batch::default(), 10).is_none(),
            "an empty batch is not sent"
        );
    }

    #[test]
    fn changes_within_a_window_go_out_together_at_its_end() {
        let mut t = ShardTable::new(1, 5);
        t.link(0, &batch(1), 0).unwrap();
        assert!(t.route(batch(2), 100).is_none());
        assert!(t.flush_due(100).is_some(), "the first goes right away");
        assert!(t.route(batch(3), 101).is_none(), "within the window: held");
        assert!(t.route(batch(4), 103).is_none());
        assert_eq!(t.due(), Some(105), "due when the window ends");
        assert!(t.flush_due(104).is_none(), "not yet");
        let (_, text) = t.flush_due(105).unwrap();
        let (_, sent) = Batch::decode(&text).unwrap();
        let seqs: Vec<u64> = sent.prices.iter().map(|c| c.seq).collect();
        assert_eq!((seqs, sent.seq), (vec![3, 4], 4), "both, in order");
        assert!(t.due().is_none() && t.flush_due(200).is_none());
        assert!(t.route(batch(5), 106).is_none(), "a new window from 105");
        let mut state = batch(6);
        state.state = Some(StateChange {
            state: UpstreamState::Reconnecting,
            announce: true,
        });
        let (_, text) = t.route(state, 107).expect("a state change never waits");
        let (_, sent) = Batch::decode(&text).unwrap();
        assert_eq!(sent.prices.len(), 2, "it takes what was held with it");
        assert!(sent.state.is_some() && t.due().is_none());
    }

    #[test]
    fn a_new_link_gets_held_changes_sent_to_the_others_first() {
        let mut t = ShardTable::new(2, 5);
        let (g0, _) = t.link(0, &batch(1), 0).unwrap();
        t.route(batch(2), 10);
        t.flush_due(10).unwrap();
        assert!(t.route(batch(3), 11).is_none());
        let (to, _) = t.flush(12).expect("held changes go out before a link");
        assert_eq!(to, [(0, g0)]);
        t.link(1, &batch(3), 12).unwrap();
        assert!(t.due().is_none(), "nothing left for the new link to repeat");
        t.unlink(0, g0);
        let (g1, _) = t.link(1, &batch(3), 13).unwrap();
        assert!(t.route(batch(4), 14).is_none(), "window from 12");
        t.unlink(1, g1);
        assert!(t.flush_due(20).is_none(), "no link: dropped");
    }

    #[test]
    fn interests_union_and_a_replaced_link_is_ignored() {
        let mut t = ShardTable::new(2, 5);
        let (old, _) = t.link(0, &batch(1), 0).unwrap();
        let (g1, _) = t.link(1, &batch(1), 0).unwrap();
        assert!(t.message(0, old, interest(&["BTCUSDT"])));
        assert!(t.message(1, g1, interest(&["BTCUSDT", "ETHUSDT"])));
        assert!(
            !t.message(1, g1, interest(&["ETHUSDT", "BTCUSDT"])),
            "same set"
        );
        let (new, _) = t.link(0, &batch(1), 0).unwrap();
        assert!(!t.message(0, old, interest(&["SOLUSDT"])), "stale link");
        assert!(!t.unlink(0, old), "closing a replaced link changes nothing");
        assert!(t.message(0, new, interest(&["XRPUSDT"])));
        let union: Vec<String> = t.union().into_iter().collect();
        assert_eq!(union, ["BTCUSDT", "ETHUSDT", "XRPUSDT"]);
        assert!(t.unlink(1, g1));
        let union: Vec<String> = t.union().into_iter().collect();
        assert_eq!(union, ["XRPUSDT"], "an unlinked shard's interest is gone");
    }

    #[test]
    fn views_show_every_shard_with_its_lag() {
        let mut t = ShardTable::new(2, 5);
        let (g, _) = t.link(1, &batch(1), 0).unwrap();
        let msg = ShardMessage::Report {
            report: Box::new(report(3)),
            seq: 40,
        };
        let text = msg.encode();
        t.message(1, g, ShardMessage::decode(&text).unwrap());
        let views = t.views(42);
        assert_eq!(views.len(), 2);
        assert!(!views[0].linked && views[0].report.is_none());
        assert_eq!((views[1].linked, views[1].lag), (true, Some(2)));
        assert_eq!(views[1].report.as_ref().map(|r| r.websocket), Some(3));
        assert!(ShardMessage::decode("{}").is_err());
    }
}
