//! How either kind of object starts: its configuration (an invalid one becomes the reason
//! every request fails), the runtime's answer to `ping`, the node it runs, and the client
//! sockets that survived hibernation.

use std::rc::Rc;

use worker::{Env, State, WebSocketRequestResponsePair};

use super::env::{load_config, log_error, now_ms};
use super::restore::restore_clients;
use super::shared::Shared;
use super::storage::Store;
use crate::core::config::Config;
use crate::core::ids::ShardId;
use crate::core::node::Node;

/// What an object runs: its node, its storage (the leader's), its shard number (a shard's).
pub(super) struct Start {
    /// The leader or a shard, restored.
    pub node: Node,
    /// The leader's database.
    pub store: Option<Store>,
    /// A shard's number (0 on the leader).
    pub shard_id: ShardId,
}

/// Starts an object around the node `make` builds from the configuration.
pub(super) fn boot(
    state: State,
    env: Env,
    make: impl FnOnce(Config, &State) -> Result<Start, String>,
) -> Result<Rc<Shared>, String> {
    console_error_panic_hook::set_once();
    let started = load_config(&env)
        .map_err(|e| e.to_string())
        .and_then(|cfg| make(cfg, &state));
    let Start {
        mut node,
        store,
        shard_id,
    } = match started {
        Ok(start) => start,
        Err(e) => {
            log_error("config_invalid", &e);
            return Err(e);
        }
    };
    auto_pong(&state);
    let clients = restore_clients(&state, &mut node);
    let restored = !clients.is_empty();
    let shared = Rc::new(Shared::new(state, env, node, store, shard_id));
    *shared.clients.borrow_mut() = clients;
    // A shard created again with sockets that outlived the old instance links to the leader
    // at once, rather than when one of its clients next speaks (found by the simulation).
    if restored {
        shared.run(|n| n.on_shard(|s| s.prepare(now_ms())));
    }
    Ok(shared)
}

/// `ping` text frames are answered by the runtime without waking the object.
fn auto_pong(state: &State) {
    match WebSocketRequestResponsePair::new("ping", "pong") {
        Ok(pair) => state.set_websocket_auto_response(&pair),
        Err(e) => log_error("auto_response_failed", &format!("{e:?}")),
    }
}
