//! A fan-out shard (docs/capacity.md): the whole client side ([`Fanout`]) for the clients the
//! Worker hands it, fed over one link to the leader.
//!
//! The shard dials the leader when it gets clients and hangs up after it has had none for
//! [`IDLE_UNLINK_MS`], so an idle shard receives nothing and can hibernate. A link starts
//! with the leader's snapshot: client commands that arrive before it are held and carried
//! out, in order, once it is in, so a snapshot is never answered from values the shard
//! kept from an earlier link. A broken link is re-dialled with backoff; clients are told
//! the upstream is `reconnecting` meanwhile, and the next snapshot catches them up without
//! a `seq` repeated or going backwards (the fan-out drops what it already has).

use std::rc::Rc;

use super::backoff;
use super::batch::{Batch, StateChange, WireKind};
use super::config::Config;
use super::effect::{Effect, Level, OneTimer};
use super::error::{ApiError, ClientError, ErrorCode};
use super::fanout::{Fanout, FanoutReport};
use super::host::ClientHost;
use super::ids::{ConnId, Identity};
use super::input::{ClientInput, StreamOpen};
use super::tree::{generation_floor, ShardMessage};
use super::upstream_state::UpstreamState;
use super::wire::Wire;

/// A shard with no clients for this long hangs up its link (and may hibernate).
pub const IDLE_UNLINK_MS: i64 = 10_000;
/// How often a linked shard reports its clients and counters to the leader.
pub const REPORT_EVERY_MS: i64 = 2_000;
/// Re-dialling a broken link waits at most this long (the leader is one object away).
pub const RELINK_CAP_MS: i64 = 5_000;
/// A link that has not brought the leader's snapshot within this long (a dial that hangs,
/// a leader that never answers) is given up and dialled again.
pub const LINK_TIMEOUT_MS: i64 = 10_000;
/// Client commands held before the first snapshot, at most (beyond it, the newest are
/// dropped and the client is told to retry): a bound on memory while the leader is away.
pub const MAX_HELD: usize = 10_000;

/// The shard's link to the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uplink {
    /// No link (no clients, or waiting to re-dial).
    Down,
    /// Dialled, not open yet.
    Dialing {
        /// The link's generation.
        generation: u64,
    },
    /// Open; `synced` once the leader's snapshot is in.
    Up {
        /// The link's generation.
        generation: u64,
        /// The snapshot has been applied.
        synced: bool,
    },
}

/// A client input waiting for the first snapshot.
#[derive(Debug, Clone, PartialEq)]
enum Held {
    Text(ConnId, String),
    Binary(ConnId, usize),
}

/// One shard.
#[derive(Debug)]
pub struct Shard {
    cfg: Rc<Config>,
    fanout: Fanout,
    uplink: Uplink,
    generation: u64,
    failures: u32,
    retry_at: i64,
    held: Vec<Held>,
    /// Clients were told `reconnecting` when the link broke: the next snapshot tells them
    /// the state again.
    lost: bool,
    idle_since: Option<i64>,
    report_at: Option<i64>,
    /// When the current link must have brought the snapshot.
    link_deadline: Option<i64>,
    timer: OneTimer,
    /// The object's alarm: a token's expiry (never the in-memory timer, which would keep a
    /// shard with idle clients from hibernating).
    alarm: OneTimer,
}

impl Shard {
    /// A shard with no clients and no link.
    pub fn new(cfg: Config) -> Shard {
        let cfg = Rc::new(cfg);
        Shard {
            fanout: Fanout::new(cfg.clone()),
            cfg,
            uplink: Uplink::Down,
            generation: 0,
            failures: 0,
            retry_at: 0,
            held: Vec::new(),
            lost: false,
            idle_since: None,
            report_at: None,
            link_deadline: None,
            timer: OneTimer::default(),
            alarm: OneTimer::default(),
        }
    }

    /// The link's state.
    pub fn uplink(&self) -> Uplink {
        self.uplink
    }

    /// True once the leader's snapshot is in on the current link.
    pub fn synced(&self) -> bool {
        matches!(self.uplink, Uplink::Up { synced: true, .. })
    }

    /// After an input: dial or hang up as the clients require, tell the leader a changed
    /// interest, keep one timer.
    fn finish(&mut self, now_ms: i64, mut fx: Vec<Effect>) -> Vec<Effect> {
        let (ws, sse) = self.fanout.client_counts();
        if ws + sse > 0 {
            self.idle_since = None;
            self.dial(now_ms, &mut fx);
        } else {
            self.idle_since.get_or_insert(now_ms);
        }
        if let Uplink::Up { generation, .. } = self.uplink {
            if self.fanout.take_interest_changed() {
                let keys = self.fanout.interest().into_iter().collect();
                let text = ShardMessage::Interest { keys }.encode();
                fx.push(Effect::SendLeader { generation, text });
            }
        }
        self.arm_timer(now_ms, &mut fx);
        if let Some(at) = self.alarm.wanted([self.fanout.expiry_due()], now_ms) {
            fx.push(Effect::SetAlarm {
                at_ms: at.max(now_ms + 1),
            });
        }
        fx
    }

    /// The object's alarm fired: connections whose token expired are closed.
    pub fn alarm(&mut self, now_ms: i64) -> Vec<Effect> {
        self.alarm.fired();
        let mut fx = Vec::new();
        self.fanout.alarm(now_ms, &mut fx);
        self.finish(now_ms, fx)
    }

    fn dial(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        if self.uplink == Uplink::Down && now_ms >= self.retry_at {
            self.generation = (self.generation + 1).max(generation_floor(now_ms));
            let generation = self.generation;
            self.uplink = Uplink::Dialing { generation };
            self.link_deadline = Some(now_ms + LINK_TIMEOUT_MS);
            fx.push(Effect::DialLeader { generation });
        }
    }

    /// A stream is about to open: dial the leader now if there is no link (the stream waits
    /// for the snapshot before it opens).
    pub fn prepare(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.dial(now_ms, &mut fx);
        self.finish(now_ms, fx)
    }

    fn arm_timer(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let (ws, sse) = self.fanout.client_counts();
        let redial = (self.uplink == Uplink::Down && ws + sse > 0).then_some(self.retry_at);
        let idle = match self.uplink {
            Uplink::Down => None,
            _ => self.idle_since.map(|t| t + IDLE_UNLINK_MS),
        };
        // Only a link under way has a deadline: a deadline left over from a link that has
        // closed since would keep the timer due in the past, a busy loop (found by the
        // simulation).
        let linking = matches!(
            self.uplink,
            Uplink::Dialing { .. } | Uplink::Up { synced: false, .. }
        );
        let unsynced = self.link_deadline.filter(|_| linking);
        let due = [
            self.fanout.timer_due(),
            redial,
            idle,
            self.report_at,
            unsynced,
        ];
        self.timer.request(due, now_ms, fx);
    }

    // ----- the link -----------------------------------------------------------------------

    /// The link of `generation` is open: tell the leader what the clients hold.
    pub fn leader_opened(&mut self, generation: u64, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.uplink != (Uplink::Dialing { generation }) {
            fx.push(Effect::HangUpLeader { generation });
            return fx;
        }
        self.uplink = Uplink::Up {
            generation,
            synced: false,
        };
        let keys = self.fanout.interest().into_iter().collect();
        let text = ShardMessage::Interest { keys }.encode();
        fx.push(Effect::SendLeader { generation, text });
        self.finish(now_ms, fx)
    }

    /// A message from the leader on the link of `generation`.
    pub fn leader_text(&mut self, generation: u64, text: &str, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Uplink::Up { generation: g, .. } = self.uplink else {
            return fx;
        };
        if g != generation {
            return fx;
        }
        match Batch::decode(text) {
            Ok((WireKind::Snapshot, batch)) => self.synced_with(generation, batch, now_ms, &mut fx),
            Ok((WireKind::Batch, batch)) => self.fanout.apply(&batch, now_ms, &mut fx),
            Err(e) => fx.push(Effect::Log {
                level: Level::Warn,
                event: "shard_bad_message",
                detail: e.to_string(),
            }),
        }
        self.finish(now_ms, fx)
    }

    /// The snapshot of a new link: catch the clients up (only what is newer than what
    /// they have), tell them the state if it changed, then carry out what was held.
    fn synced_with(
        &mut self,
        generation: u64,
        mut batch: Batch,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(s) = &mut batch.state {
            let news = !matches!(s.state, UpstreamState::Idle | UpstreamState::Reconnecting);
            s.announce = std::mem::take(&mut self.lost) && news;
        }
        self.fanout.apply(&batch, now_ms, fx);
        self.uplink = Uplink::Up {
            generation,
            synced: true,
        };
        self.failures = 0;
        self.link_deadline = None;
        self.report_at = Some(now_ms + REPORT_EVERY_MS);
        for held in std::mem::take(&mut self.held) {
            let input = match &held {
                Held::Text(conn, text) => ClientInput::Text { conn: *conn, text },
                Held::Binary(conn, len) => ClientInput::Binary {
                    conn: *conn,
                    len: *len,
                },
            };
            self.fanout.client(input, now_ms, fx);
        }
    }

    /// The link of `generation` failed or closed: re-dial with backoff while there are
    /// clients, and tell them the upstream is `reconnecting` meanwhile.
    pub fn leader_closed(&mut self, generation: u64, now_ms: i64, jitter: f64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let current = match self.uplink {
            Uplink::Dialing { generation: g } | Uplink::Up { generation: g, .. } => g,
            Uplink::Down => return fx,
        };
        if current != generation {
            return fx;
        }
        self.uplink = Uplink::Down;
        self.report_at = None;
        self.failures += 1;
        let delay = backoff::delay_ms(self.failures, jitter).min(RELINK_CAP_MS);
        self.retry_at = now_ms + delay;
        fx.push(Effect::Log {
            level: Level::Warn,
            event: "leader_link_lost",
            detail: format!("link {generation} closed; again in {delay} ms"),
        });
        let told = std::mem::replace(&mut self.lost, true);
        if !told && self.fanout.state() != UpstreamState::Reconnecting {
            let lost = Batch {
                state: Some(StateChange {
                    state: UpstreamState::Reconnecting,
                    announce: true,
                }),
                ..Batch::default()
            };
            self.fanout.apply(&lost, now_ms, &mut fx);
        }
        self.finish(now_ms, fx)
    }

    /// The generation of a link that is past its deadline without the snapshot.
    fn unsynced_link(&self, now_ms: i64) -> Option<u64> {
        let late = self.link_deadline.is_some_and(|t| t <= now_ms);
        match self.uplink {
            Uplink::Dialing { generation }
            | Uplink::Up {
                generation,
                synced: false,
            } if late => Some(generation),
            _ => None,
        }
    }

    fn hold(&mut self, input: Held, fx: &mut Vec<Effect>) {
        if self.held.len() < MAX_HELD {
            self.held.push(input);
            return;
        }
        let (Held::Text(conn, _) | Held::Binary(conn, _)) = input;
        let e = ClientError::new(
            ErrorCode::RateLimited,
            "the service is catching up with its feed; this message was dropped, send it again",
        );
        self.fanout.reject(conn, e, fx);
    }

    /// The shard's report (for its own `/health`).
    pub fn report(&self) -> FanoutReport {
        self.fanout.report()
    }
}

impl ClientHost for Shard {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    fn fanout_mut(&mut self) -> &mut Fanout {
        &mut self.fanout
    }

    /// Client messages are carried out once the leader's snapshot is in, held until then; a
    /// closed connection takes what it sent and was held with it. The transport's own words
    /// are not held ([`Fanout::transport_only`]): a long-polling session's probe and `5` (a
    /// client that said `5` stops polling: held, its pings would queue for a GET that never
    /// comes) and a Socket.IO session's pongs (held, it would be closed for a ping timeout
    /// while it answers every ping).
    fn client(&mut self, input: ClientInput<'_>, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        let held = !self.synced()
            && match input {
                ClientInput::Text { conn, text } => !self.fanout.transport_only(conn, text),
                _ => !self.fanout.is_polling(input.conn()),
            };
        match input {
            ClientInput::Text { conn, text } if held => {
                self.hold(Held::Text(conn, text.to_string()), &mut fx)
            }
            ClientInput::Binary { conn, len } if held => {
                self.hold(Held::Binary(conn, len), &mut fx)
            }
            ClientInput::Closed { conn } => {
                self.held.retain(|h| match h {
                    Held::Text(c, _) | Held::Binary(c, _) => *c != conn,
                });
                self.fanout.client(input, now_ms, &mut fx);
            }
            _ => self.fanout.client(input, now_ms, &mut fx),
        }
        self.finish(now_ms, fx)
    }

    /// Registers a new connection; dials the leader if this is the first client.
    fn client_open(
        &mut self,
        wire: Wire,
        who: Option<Identity>,
        now_ms: i64,
    ) -> (ConnId, Vec<Effect>) {
        let mut fx = Vec::new();
        let conn = self.fanout.client_open(wire, who, now_ms, &mut fx);
        (conn, self.finish(now_ms, fx))
    }

    fn settle(&mut self, now_ms: i64, fx: Vec<Effect>) -> Vec<Effect> {
        self.finish(now_ms, fx)
    }

    /// Opens an SSE stream once the snapshot is in (before it: `NO_DATA`, retry shortly; the
    /// edge waits for the link first).
    fn sse_open(
        &mut self,
        open: &StreamOpen,
        now_ms: i64,
    ) -> Result<(ConnId, String, Vec<Effect>), ApiError> {
        if !self.synced() {
            return Err(ApiError::NoData {
                message: "this shard is linking to the leader; retry shortly".into(),
                retry_after_s: 1,
            });
        }
        let (conn, first) = self.fanout.sse_open(open, now_ms)?;
        Ok((conn, first, self.finish(now_ms, Vec::new())))
    }

    /// The timer fired: the fan-out's work, a report, a re-dial, or hanging up when idle.
    fn timer(&mut self, now_ms: i64) -> Vec<Effect> {
        self.timer.fired();
        let mut fx = Vec::new();
        self.fanout.timer(now_ms, &mut fx);
        if let (Uplink::Up { generation, .. }, Some(at)) = (self.uplink, self.report_at) {
            if at <= now_ms {
                self.report_at = Some(now_ms + REPORT_EVERY_MS);
                let report = Box::new(self.fanout.report());
                let text = ShardMessage::Report {
                    report,
                    seq: self.fanout.seq(),
                }
                .encode();
                fx.push(Effect::SendLeader { generation, text });
            }
        }
        if let Some(late) = self.unsynced_link(now_ms) {
            fx.push(Effect::HangUpLeader { generation: late });
            fx.extend(self.leader_closed(late, now_ms, 0.5));
        }
        let idle_for = self.idle_since.map(|t| now_ms - t);
        if let (Some(ms), Uplink::Up { generation, .. } | Uplink::Dialing { generation }) =
            (idle_for, self.uplink)
        {
            if ms >= IDLE_UNLINK_MS {
                self.uplink = Uplink::Down;
                self.report_at = None;
                fx.push(Effect::HangUpLeader { generation });
            }
        }
        self.finish(now_ms, fx)
    }
}

#[cfg(test)]
mod tests;
