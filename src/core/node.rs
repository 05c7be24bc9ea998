//! One object of the tree, as the edge drives it: the leader ([`Hub`]: the feed, and the
//! clients itself when there are no shards) or a fan-out shard ([`Shard`]).
//!
//! Client events are the same for both and go to whichever it is; the upstream, the alarm
//! and the shard links exist only on the leader, the link to the leader only on a shard, and
//! an event of the other role (which the edge never produces) changes nothing.

use super::config::Config;
use super::effect::Effect;
use super::error::ApiError;
use super::fanout::SseTake;
use super::feed::link::Failure;
use super::hub::Hub;
use super::ids::{ConnId, Identity, Transport};
use super::request::parse_symbol_query;
use super::shard::Shard;

/// The leader or a shard.
#[derive(Debug)]
pub enum Node {
    /// The leader object.
    Leader(Box<Hub>),
    /// A fan-out shard.
    Shard(Box<Shard>),
}

impl Node {
    /// The configuration.
    pub fn config(&self) -> &Config {
        match self {
            Node::Leader(h) => h.config(),
            Node::Shard(s) => s.config(),
        }
    }

    /// True when client commands are carried out at once: always on the leader, on a shard
    /// once the leader's snapshot is in.
    pub fn synced(&self) -> bool {
        match self {
            Node::Leader(_) => true,
            Node::Shard(s) => s.synced(),
        }
    }

    /// The leader, when this is it.
    pub fn leader(&mut self) -> Option<&mut Hub> {
        match self {
            Node::Leader(h) => Some(h),
            Node::Shard(_) => None,
        }
    }

    /// The shard, when this is one.
    pub fn shard(&mut self) -> Option<&mut Shard> {
        match self {
            Node::Leader(_) => None,
            Node::Shard(s) => Some(s),
        }
    }

    /// Runs a leader-only input; nothing on a shard.
    pub fn on_leader(&mut self, input: impl FnOnce(&mut Hub) -> Vec<Effect>) -> Vec<Effect> {
        self.leader().map(input).unwrap_or_default()
    }

    /// Runs a shard-only input; nothing on the leader.
    pub fn on_shard(&mut self, input: impl FnOnce(&mut Shard) -> Vec<Effect>) -> Vec<Effect> {
        self.shard().map(input).unwrap_or_default()
    }

    /// The upstream of `generation` failed (leader only).
    pub fn upstream_failed(
        &mut self,
        generation: u64,
        f: Failure,
        now_ms: i64,
        jitter: f64,
    ) -> Vec<Effect> {
        self.on_leader(|h| h.upstream_failed(generation, f, now_ms, jitter))
    }

    /// True while another client fits under `MAX_CONNECTIONS`.
    pub fn admit_client(&mut self) -> bool {
        match self {
            Node::Leader(h) => h.admit_client(),
            Node::Shard(s) => s.admit_client(),
        }
    }

    /// Registers a new connection.
    pub fn client_open(
        &mut self,
        transport: Transport,
        who: Option<Identity>,
        now_ms: i64,
    ) -> (ConnId, Vec<Effect>) {
        match self {
            Node::Leader(h) => h.client_open(transport, who, now_ms),
            Node::Shard(s) => s.client_open(transport, who, now_ms),
        }
    }

    /// Re-registers a connection found after hibernation.
    pub fn client_restore(&mut self, conn: ConnId, symbols: &[String], who: Option<Identity>) {
        match self {
            Node::Leader(h) => h.client_restore(conn, symbols, who),
            Node::Shard(s) => s.client_restore(conn, symbols, who),
        }
    }

    /// True when the connection is registered.
    pub fn has_client(&self, conn: ConnId) -> bool {
        match self {
            Node::Leader(h) => h.has_client(conn),
            Node::Shard(s) => s.has_client(conn),
        }
    }

    /// A connection closed or errored.
    pub fn client_closed(&mut self, conn: ConnId, now_ms: i64) -> Vec<Effect> {
        match self {
            Node::Leader(h) => h.client_closed(conn, now_ms),
            Node::Shard(s) => s.client_closed(conn, now_ms),
        }
    }

    /// A text frame from a client.
    pub fn client_text(&mut self, conn: ConnId, text: &str, now_ms: i64) -> Vec<Effect> {
        match self {
            Node::Leader(h) => h.client_text(conn, text, now_ms),
            Node::Shard(s) => s.client_text(conn, text, now_ms),
        }
    }

    /// A binary frame from a client.
    pub fn client_binary(&mut self, conn: ConnId, len: usize, now_ms: i64) -> Vec<Effect> {
        match self {
            Node::Leader(h) => h.client_binary(conn, len, now_ms),
            Node::Shard(s) => s.client_binary(conn, len, now_ms),
        }
    }

    /// A send to `conn` failed.
    pub fn send_failed(&mut self, conn: ConnId, now_ms: i64) -> Vec<Effect> {
        match self {
            Node::Leader(h) => h.send_failed(conn, now_ms),
            Node::Shard(s) => s.send_failed(conn, now_ms),
        }
    }

    /// The in-memory timer fired.
    pub fn timer(&mut self, now_ms: i64) -> Vec<Effect> {
        match self {
            Node::Leader(h) => h.timer(now_ms),
            Node::Shard(s) => s.timer(now_ms),
        }
    }

    /// Parses a `symbols=` list against the whitelist.
    pub fn parse_symbol_query(&self, raw: &str) -> Result<Vec<String>, ApiError> {
        parse_symbol_query(self.config(), raw)
    }

    /// Opens an SSE stream.
    pub fn sse_open(
        &mut self,
        symbols: &[String],
        channels: &[String],
        last: Option<&str>,
        who: Option<Identity>,
        now_ms: i64,
    ) -> Result<(ConnId, String, Vec<Effect>), ApiError> {
        match self {
            Node::Leader(h) => h.sse_open(symbols, channels, last, who, now_ms),
            Node::Shard(s) => s.sse_open(symbols, channels, last, who, now_ms),
        }
    }

    /// The stream of `conn` asks for its next bytes.
    pub fn sse_take(&mut self, conn: ConnId, now_ms: i64) -> SseTake {
        match self {
            Node::Leader(h) => h.sse_take(conn, now_ms),
            Node::Shard(s) => s.sse_take(conn, now_ms),
        }
    }

    /// Records how long one fan-out took.
    pub fn observe_fanout(&mut self, seconds: f64) {
        match self {
            Node::Leader(h) => h.observe_fanout(seconds),
            Node::Shard(s) => s.observe_fanout(seconds),
        }
    }
}
