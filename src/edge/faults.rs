//! Test faults (`TEST_FAULTS=on` only): a broken link between the leader and its shards,
//! a restarted leader or shard, emulated the way a new instance starts (its sockets closed,
//! a fresh core, the leader's restored from storage), and hibernation: the same fresh core
//! with the client sockets kept, taken back from their attachments as a woken object does.

use std::rc::Rc;

use worker::{Response, Result, WebSocket};

use super::env::now_ms;
use super::http;
use super::restore::{restore_clients, restore_storage};
use super::shared::Shared;
use crate::core::events::History;
use crate::core::hub::Hub;
use crate::core::ids::ShardId;
use crate::core::node::Node;
use crate::core::protocol::close;
use crate::core::shard::Shard;

impl Shared {
    /// (Leader) Closes every shard's link, as a network fault would.
    pub(super) fn unlink_all(self: &Rc<Self>) -> usize {
        let links: Vec<(ShardId, (u64, WebSocket))> =
            self.shard_links.borrow_mut().drain().collect();
        for (shard, (generation, ws)) in &links {
            let _ = ws.close(Some(close::INTERNAL), Some("fault: unlink"));
            let (shard, generation) = (*shard, *generation);
            self.run(|n| n.on_leader(|hub| hub.shard_closed(shard, generation, now_ms())));
        }
        links.len()
    }

    /// The core a new instance of this object starts with (the leader's restored from
    /// storage, a shard's empty), its outbound sockets closed first (`why`): the shards'
    /// links and the upstream on the leader, the link to the leader on a shard.
    fn new_instance(self: &Rc<Self>, why: &'static str) -> Node {
        let cfg = self.node.borrow().config().clone();
        let leader = self.node.borrow_mut().leader().is_some();
        if leader {
            self.unlink_all();
            for (_, ws) in self.upstreams.borrow_mut().drain() {
                let _ = ws.close(Some(close::NORMAL), Some(why));
            }
            let mut hub = Hub::new(cfg);
            restore_storage(&self.state, &mut hub);
            return Node::Leader(Box::new(hub));
        }
        if let Some((_, ws)) = self.leader_link.borrow_mut().take() {
            let _ = ws.close(Some(close::NORMAL), Some(why));
        }
        Node::Shard(Box::new(Shard::new(cfg)))
    }

    /// (Leader) Starts over as a new instance would: links and upstream closed, the core
    /// restored from storage (prices, the `seq` floor, the link's memory).
    pub(super) fn restart_leader(self: &Rc<Self>) -> Result<Response> {
        let node = self.new_instance("fault: restart");
        *self.node.borrow_mut() = node;
        self.kick();
        http::json(200, r#"{"restarted":"leader"}"#.to_string())
    }

    /// (Leader) Loses the event history, as a lost storage would: a new epoch, the shards
    /// unlinked so they catch up with it.
    pub(super) fn wipe_history(self: &Rc<Self>) -> Result<Response> {
        let epoch = History::new_epoch(now_ms(), js_sys::Math::random());
        let e = epoch.clone();
        self.run(|n| n.on_leader(|hub| hub.wipe_events(e, now_ms())));
        self.unlink_all();
        http::json(200, serde_json::json!({ "epoch": epoch }).to_string())
    }

    /// Hibernates and wakes: what a woken instance has (its storage, and the client sockets
    /// with their attachments, read back through the runtime) and nothing else. Links and
    /// upstreams go first: an object holding an outbound socket does not hibernate.
    pub(super) fn hibernate(self: &Rc<Self>) -> Result<Response> {
        let mut node = self.new_instance("fault: hibernate");
        // Neither a pending timer nor an SSE stream outlives an instance (its alarm does).
        self.timer.cancel();
        for (_, waker) in self.sse_wakers.borrow_mut().drain() {
            waker.wake();
        }
        let clients = restore_clients(&self.state, &mut node);
        let woken = clients.len();
        *self.clients.borrow_mut() = clients;
        *self.node.borrow_mut() = node;
        self.kick();
        self.run(|n| n.on_shard(|s| s.prepare(now_ms())));
        http::json(200, format!(r#"{{"woken":{woken}}}"#))
    }

    /// (Shard) Starts over as a new instance would: clients closed with 1012 (they retry),
    /// streams ended, the link hung up, an empty core.
    pub(super) fn restart_shard(self: &Rc<Self>) -> Result<Response> {
        for (_, ws) in self.clients.borrow_mut().drain() {
            let _ = ws.close(Some(close::RESTART), Some("shard restarting"));
        }
        let node = self.new_instance("fault: restart");
        *self.node.borrow_mut() = node;
        for (_, waker) in self.sse_wakers.borrow_mut().drain() {
            waker.wake();
        }
        http::json(200, r#"{"restarted":"shard"}"#.to_string())
    }
}
