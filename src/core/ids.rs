//! The names every layer uses for what is connected: a client connection, a fan-out shard
//! and its link to the leader, how a client is connected, and whose connection it is. A
//! leaf: it depends on nothing, so the feed, the fan-out, the effects and the edge can all
//! name these without depending on each other.

use serde::{Deserialize, Serialize};

/// A connection's identity inside one object; stored in the socket's attachment so it
/// survives hibernation.
pub type ConnId = u64;

/// How a client is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A hibernatable WebSocket.
    WebSocket,
    /// A Server-Sent Events stream.
    Sse,
    /// An Engine.IO long-polling session (Socket.IO before its upgrade to a WebSocket).
    Polling,
}

/// An upstream the leader follows: in effects (which link a connection belongs to), in
/// storage (whose link memory), in `/health` and as the `source` label in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceId {
    /// Binance's spot market streams.
    Binance,
    /// Twelve Data's price WebSocket (stocks, forex, crypto).
    #[serde(rename = "twelvedata")]
    TwelveData,
    /// The tests' own source ([`crate::core::feed::neutral`]).
    #[cfg(test)]
    Neutral,
}

impl SourceId {
    /// Its name in `/health`, `/metrics` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceId::Binance => "binance",
            SourceId::TwelveData => "twelvedata",
            #[cfg(test)]
            SourceId::Neutral => "neutral",
        }
    }

    /// The storage key of its link's memory (Binance's is `link`, as before sources were
    /// plural, so a leader restarted across the change keeps its breaker).
    pub fn link_key(self) -> &'static str {
        match self {
            SourceId::Binance => "link",
            SourceId::TwelveData => "link:twelvedata",
            #[cfg(test)]
            SourceId::Neutral => "link:neutral",
        }
    }
}

/// A shard's number: the object `fanout-{id}`.
pub type ShardId = u32;

/// The object of the tree that holds a session: what an Engine.IO session id names, so the
/// Worker sends every later request of the session to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// The leader (without shards it carries the clients).
    Leader,
    /// Fan-out shard `n`.
    Shard(ShardId),
}

/// A link: a shard and the generation of its current connection.
pub type LinkId = (ShardId, u64);

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The user (`sub`).
    pub sub: String,
    /// When the token expires (epoch ms).
    pub exp_ms: i64,
    /// The channels it may read (`channels`), when the token limits them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
}
