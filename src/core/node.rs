//! One object of the tree, as the edge drives it: the leader ([`Hub`]: the feed, and the
//! clients itself when there are no shards) or a fan-out shard ([`Shard`]).
//!
//! Both carry clients, through the same [`ClientHost`] interface: client inputs are data and
//! reach whichever object it is through one method.
//! The upstream, the alarm and the shard links exist only on the leader, the link to the
//! leader only on a shard; an input of the other role (which the edge never produces)
//! changes nothing.

use super::config::Config;
use super::effect::Effect;
use super::host::ClientHost;
use super::hub::Hub;
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
    /// Whichever it is, as the carrier of client connections.
    pub fn host(&mut self) -> &mut dyn ClientHost {
        match self {
            Node::Leader(h) => h.as_mut(),
            Node::Shard(s) => s.as_mut(),
        }
    }

    /// Whichever it is, to read.
    pub fn host_ref(&self) -> &dyn ClientHost {
        match self {
            Node::Leader(h) => h.as_ref(),
            Node::Shard(s) => s.as_ref(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.host_ref().config()
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
}
