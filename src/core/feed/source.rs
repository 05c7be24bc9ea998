//! The one interface between the feed and an upstream: everything that differs from one
//! exchange to another (where to connect, how to ask for streams and how fast, how its
//! frames read, what proves a connection alive, how many streams it carries, how it spells
//! a symbol) is a [`Source`]; the link, the cache and the feed are written once, against it.
//!
//! What a source hands the feed is source-neutral: prices as [`Update`]s (fields, and an
//! ordering [`Lane`] with its key, so the cache can drop a late frame without knowing which
//! stream it came from), market channel updates already encoded as payload bodies, and the
//! few control events the link acts on.

use std::collections::BTreeSet;
use std::fmt::Debug;

use crate::core::channel::Market;
use crate::core::error::UpstreamError;
use crate::core::ids::SourceId;
use crate::core::market::MarketUpdate;
use crate::core::price::PriceFields;

/// Independent ordering lanes of one symbol's updates: a source puts each of its price
/// streams in its own lane (Binance's 24 h ticker and its book ticker are ordered apart).
pub const LANES: usize = 8;

/// A lane, below [`LANES`].
pub type Lane = usize;

/// How an update is ordered within its lane; a late one is dropped by the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Not ordered: always applied.
    None,
    /// By event time: late when older than the last applied (equal times both apply).
    EventTime(i64),
    /// By a sequence number: late unless newer than the last applied.
    Sequence(i64),
}

impl Order {
    /// The ordering key.
    pub fn key(self) -> Option<i64> {
        match self {
            Order::None => None,
            Order::EventTime(k) | Order::Sequence(k) => Some(k),
        }
    }

    /// True when this update is late against the `held` key of its lane.
    pub fn is_late(self, held: i64) -> bool {
        match self {
            Order::None => false,
            Order::EventTime(k) => k < held,
            Order::Sequence(k) => k <= held,
        }
    }
}

/// One price-bearing update, validated, in the service's symbol spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Canonical symbol.
    pub symbol: String,
    /// Its ordering lane.
    pub lane: Lane,
    /// Its place in the lane.
    pub order: Order,
    /// What it says; an update without an event time is stamped with its receive time.
    pub fields: PriceFields,
}

/// Everything a source's frame can mean to the feed.
///
/// `Price` is nearly every frame, so it is kept inline: boxing it would add an allocation
/// per frame to save stack space on the rare control frames.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum SourceFrame {
    /// A price update.
    Price(Update),
    /// An update of a market channel (its body encoded once).
    Market(MarketUpdate),
    /// The source will cut this connection soon: replace it make-before-break.
    Closing,
    /// An answer to a request, or a heartbeat: the connection is alive, nothing to apply.
    Control,
    /// Symbols the source would not subscribe (reported, never asked again in a loop).
    Failed(Vec<String>),
    /// The source refused a request.
    Refusal {
        /// The source's error code.
        code: i64,
        /// Its message.
        msg: String,
    },
}

/// Subscribing streams on a live connection, or unsubscribing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamChange {
    /// Add streams.
    Subscribe,
    /// Remove streams.
    Unsubscribe,
}

/// What differs between upstreams. Implementations hold no state that changes: the link
/// and the feed keep that, the same for every source.
pub trait Source: Debug {
    /// Which source it is (in effects, storage, `/health` and `/metrics`).
    fn id(&self) -> SourceId;
    /// The URL of a connection to `endpoint` that carries `streams` from the start.
    fn connect_url(&self, endpoint: &str, streams: &BTreeSet<String>) -> String;
    /// The request (request `id`) that adds or removes `streams` on a live connection.
    fn request(&self, change: StreamChange, streams: &[String], id: u64) -> String;
    /// The least time between two requests on one connection (the source's own limit on
    /// incoming messages, with room for its pings' answers).
    fn request_spacing_ms(&self) -> i64;
    /// The most streams one connection carries.
    fn max_streams(&self) -> usize;
    /// How often `stream` sends whatever the market does, when it promises a cadence: a
    /// connection silent for several such cadences is dead (see the link's watchdog).
    fn cadence_ms(&self, stream: &str) -> Option<i64>;
    /// The streams that carry `symbol`'s price.
    fn price_streams(&self, symbol: &str) -> Vec<String>;
    /// The stream that feeds a market channel, when the source has one.
    fn market_stream(&self, market: &Market) -> Option<String>;
    /// Reads one text frame.
    fn parse(&self, text: &str) -> Result<SourceFrame, UpstreamError>;

    /// True when [`Source::connect_url`] carries the streams, so a new connection delivers
    /// at once; otherwise a connection subscribes its streams when it opens (a replacement
    /// too, before it can take over).
    fn streams_in_url(&self) -> bool {
        true
    }

    /// What the client must send, and how often, to keep a connection (its answers are the
    /// proof of life when the market is quiet); `None` when the source promises cadences.
    fn heartbeat(&self) -> Option<(i64, String)> {
        None
    }
}
