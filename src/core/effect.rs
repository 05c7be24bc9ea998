//! What the core asks the edge to do. Effects are data, carried out in order by the edge.

use std::rc::Rc;

use super::attachment::Attachment;
use super::ids::{ConnId, LinkId, SourceId};

/// Log severity, mapped by the edge to `console.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Routine state changes.
    Info,
    /// Something failed and will be retried.
    Warn,
}

/// Something the edge must do. Effects are ordered: carry them out in sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send one frame to one connection.
    Send {
        /// Target.
        conn: ConnId,
        /// The text frame.
        frame: Rc<str>,
    },
    /// Send the same bytes to many connections (encoded once).
    Fanout {
        /// Targets.
        conns: Vec<ConnId>,
        /// The text frame.
        frame: Rc<str>,
    },
    /// Close a client connection.
    Close {
        /// Target.
        conn: ConnId,
        /// A close code from [`super::protocol::close`].
        code: u16,
        /// Short reason text.
        reason: &'static str,
    },
    /// Write the socket's attachment: what the connection carries through hibernation.
    SaveAttachment {
        /// Whose.
        conn: ConnId,
        /// Its id, wire, subscriptions and identity, or only the word that they are stored.
        attachment: Attachment,
    },
    /// Keep (`Some`) or forget (`None`) a connection's whole attachment in the object's
    /// storage: only for one that outgrew what a socket may carry.
    StoreAttachment {
        /// Whose.
        conn: ConnId,
        /// The whole attachment.
        whole: Option<Attachment>,
    },
    /// Open an upstream WebSocket; report back with the same `source` and `generation`.
    ConnectUpstream {
        /// Whose link it is.
        source: SourceId,
        /// Identifies this attempt; events of older generations are stale.
        generation: u64,
        /// Full URL including `?streams=`.
        url: String,
    },
    /// Close the upstream connection of this generation.
    CloseUpstream {
        /// Whose link it is.
        source: SourceId,
        /// Which one.
        generation: u64,
    },
    /// Send a text frame (a live `SUBSCRIBE`/`UNSUBSCRIBE`) on the upstream of this generation.
    SendUpstream {
        /// Whose link it is.
        source: SourceId,
        /// Which connection.
        generation: u64,
        /// The JSON request.
        text: String,
    },
    /// Write changed prices and the `seq` reservation to durable storage, in one transaction.
    /// Each write holds later outgoing messages behind the output gate until it is durable,
    /// so the hub asks for one at most about once a second, always after the fan-out.
    Persist {
        /// Changed prices: canonical symbol, the stored record (the price's JSON with its
        /// lanes' keys, see `Entry::stored`), its `seq`.
        prices: Vec<(String, Rc<str>, u64)>,
        /// The reserved `seq` high-water mark: a restarted hub starts above it, so a `seq`
        /// handed out before a crash is never handed out again.
        seq_floor: u64,
    },
    /// Persist the upstream link's memory (breaker, attempt budget), so an evicted and
    /// re-created leader keeps honouring them.
    SaveLink {
        /// Whose link it is (its memory is kept per source).
        source: SourceId,
        /// Serialised [`super::feed::link::LinkMemory`].
        json: String,
    },
    /// Store a published event (before it is fanned out: the output gate holds the frames
    /// until the write is durable) and forget the channel's events older than the last
    /// `keep`.
    StoreEvent {
        /// Its channel.
        channel: String,
        /// Its offset.
        offset: u64,
        /// Its body (what every wire frames).
        body: Rc<str>,
        /// Events kept per channel.
        keep: usize,
    },
    /// Forget stored events of private channels evicted by their bound (each channel through
    /// an offset) and store the floor new private channels start above.
    ForgetEvents {
        /// Each channel and the offset it was evicted through.
        through: Vec<(String, u64)>,
        /// The private channels' floor.
        floor: u64,
    },
    /// Forget every stored event and store the new epoch (history was wiped).
    WipeEvents {
        /// The new epoch.
        epoch: String,
    },
    /// GET `url` (Binance's REST klines, or open interest) and hand the answer to the hub's
    /// [`super::hub::Hub::fetched`] with `id`.
    Fetch {
        /// Names the answer, and what it is for.
        id: FetchId,
        /// The URL.
        url: String,
    },
    /// Store a series' new closed candles and forget those older than `keep_from`.
    StoreCandles {
        /// What the series gained.
        gained: super::history::book::Gained,
    },
    /// A series gained candles: reads of `/api/candles` waiting for a backfill look again.
    CandlesReady,
    /// Delete expired prices from durable storage.
    Forget {
        /// Expired symbols.
        symbols: Vec<String>,
    },
    /// Call the object's `timer` ([`super::host::ClientHost::timer`]) at this absolute time (ms), with an in-memory timer:
    /// flush windows and SSE keepalives are too frequent for the durable alarm.
    Timer {
        /// Epoch milliseconds.
        at_ms: i64,
    },
    /// These SSE streams have something to deliver: wake their readers.
    SseWake {
        /// The streams.
        conns: Vec<ConnId>,
    },
    /// Wake the hub at this absolute time (ms).
    SetAlarm {
        /// Epoch milliseconds.
        at_ms: i64,
    },
    /// (Shard) Open the link to the leader; report back with this generation.
    DialLeader {
        /// Identifies this link; events of older generations are stale.
        generation: u64,
    },
    /// (Shard) Send a message on the link to the leader.
    SendLeader {
        /// Which link.
        generation: u64,
        /// A [`super::tree::ShardMessage`], encoded.
        text: String,
    },
    /// (Shard) Close the link to the leader.
    HangUpLeader {
        /// Which link.
        generation: u64,
    },
    /// (Leader) Send the same message (a flush, or a link's first snapshot) to these shards.
    SendShards {
        /// The shards' current links.
        links: Vec<LinkId>,
        /// The encoded [`super::batch::Batch`].
        text: Rc<str>,
    },
    /// A structured log line.
    Log {
        /// Severity.
        level: Level,
        /// Stable event name.
        event: &'static str,
        /// Details for a person.
        detail: String,
    },
}

/// What a [`Effect::Fetch`] is for, and its number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchId {
    /// A klines request of the candle history's backfill.
    Klines(u64),
    /// An open-interest poll of the heat map.
    OpenInterest(u64),
}

/// The one in-memory timer an object keeps requested: a new request only when none is
/// pending, the pending one has passed, or something is due earlier than it. Shared by the
/// leader and the shards, so both ask the edge for timers by the same rule.
#[derive(Debug, Default)]
pub struct OneTimer(Option<i64>);

impl OneTimer {
    /// Requests a timer at the earliest of `due`, if that needs a new request.
    pub fn request(
        &mut self,
        due: impl IntoIterator<Item = Option<i64>>,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(at_ms) = self.wanted(due, now_ms) {
            fx.push(Effect::Timer { at_ms });
        }
    }

    /// The earliest of `due`, when that needs a new request (nothing pending, or it is
    /// earlier than what is): the one slot of a timer or of an alarm.
    pub fn wanted(
        &mut self,
        due: impl IntoIterator<Item = Option<i64>>,
        now_ms: i64,
    ) -> Option<i64> {
        let want = due.into_iter().flatten().min()?;
        if self.0.is_none_or(|t| t <= now_ms || want < t) {
            self.0 = Some(want);
            return Some(want);
        }
        None
    }

    /// The timer fired: nothing is pending any more.
    pub fn fired(&mut self) {
        self.0 = None;
    }
}
