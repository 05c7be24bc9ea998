//! The links of the tree (docs/capacity.md): a shard with clients dials the leader, the leader
//! accepts, and each side pumps the other's messages into its core until the link ends.
//!
//! The shard dials (an outbound socket) rather than the leader: a shard with clients is kept
//! busy by their prices anyway, the leader is pinned by its upstream socket anyway, and a
//! shard without clients hangs up and can hibernate. Messages the leader receives on a link
//! it accepted are rare (interest changes, a report every 2 s).

use std::rc::Rc;

use futures::StreamExt;
use wasm_bindgen::{JsCast, JsValue};
use worker::{
    wasm_bindgen_futures::spawn_local, Headers, Method, Request, RequestInit, Response, Result,
    WebSocket, WebSocketPair, WebsocketEvent,
};

use super::env::{jitter, log_error, now_ms};
use super::http;
use super::objects::to_leader;
use super::send::SendTarget;
use super::shared::Shared;
use crate::core::error::ApiError;
use crate::core::ids::{LinkId, ShardId};
use crate::core::protocol::close;
use crate::core::request::ObjectRequest;

/// (Leader) Shard `shard` dialled in: accept its socket, send it the snapshot it starts
/// from, and pump what it says into the leader until it hangs up.
pub(super) fn accept_shard(shared: &Rc<Shared>, shard: ShardId) -> Result<Response> {
    let pair = WebSocketPair::new()?;
    let server = pair.server;
    server.accept()?;
    let linked = shared
        .node
        .borrow_mut()
        .leader()
        .and_then(|hub| hub.shard_linked(shard, now_ms()));
    let Some((generation, fx)) = linked else {
        return http::error(&ApiError::NotFound(format!("no fan-out shard {shard}")));
    };
    let replaced = shared
        .shard_links
        .borrow_mut()
        .insert(shard, (generation, server.clone()));
    if let Some((_, old)) = replaced {
        let _ = old.close(Some(close::NORMAL), Some("replaced by a newer link"));
    }
    shared.execute(fx);
    let task = shared.clone();
    // Listening starts in a microtask, before any message event of the socket can run.
    spawn_local(async move {
        let Ok(mut events) = server.events() else {
            task.run(|n| n.on_leader(|hub| hub.shard_closed(shard, generation, now_ms())));
            return;
        };
        while let Some(Ok(WebsocketEvent::Message(msg))) = events.next().await {
            if let Some(text) = msg.text() {
                task.run(|n| n.on_leader(|hub| hub.shard_text(shard, generation, &text, now_ms())));
            }
        }
        let current = task
            .shard_links
            .borrow()
            .get(&shard)
            .is_some_and(|(g, _)| *g == generation);
        if current {
            task.shard_links.borrow_mut().remove(&shard);
        }
        task.run(|n| n.on_leader(|hub| hub.shard_closed(shard, generation, now_ms())));
    });
    Response::from_websocket(pair.client)
}

/// (Shard) Dials the leader for the link of `generation` and pumps the leader's messages
/// into the shard until the link ends.
pub(super) fn dial_leader(shared: Rc<Shared>, generation: u64) {
    spawn_local(async move {
        let ws = match connect(&shared).await {
            Ok(ws) => ws,
            Err(e) => {
                log_error("leader_dial_failed", &e.to_string());
                shared.run(|n| n.on_shard(|s| s.leader_closed(generation, now_ms(), jitter())));
                return;
            }
        };
        let mut events = match ws.events() {
            Ok(events) if ws.accept().is_ok() => events,
            _ => {
                shared.run(|n| n.on_shard(|s| s.leader_closed(generation, now_ms(), jitter())));
                return;
            }
        };
        *shared.leader_link.borrow_mut() = Some((generation, ws.clone()));
        shared.run(|n| n.on_shard(|s| s.leader_opened(generation, now_ms())));
        while let Some(Ok(WebsocketEvent::Message(msg))) = events.next().await {
            if let Some(text) = msg.text() {
                shared.run(|n| n.on_shard(|s| s.leader_text(generation, &text, now_ms())));
            }
        }
        let current = shared
            .leader_link
            .borrow()
            .as_ref()
            .is_some_and(|(g, _)| *g == generation);
        if current {
            shared.leader_link.borrow_mut().take();
        }
        shared.run(|n| n.on_shard(|s| s.leader_closed(generation, now_ms(), jitter())));
    });
}

/// Upgrades a request to the leader's `/link`.
async fn connect(shared: &Shared) -> Result<WebSocket> {
    let cfg = shared.node.borrow().config().clone();
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let path = ObjectRequest::Link {
        shard: shared.shard_id,
    }
    .path();
    let req = Request::new_with_init(&format!("https://leader{path}"), &init)?;
    let resp = to_leader(&shared.env, &cfg, req).await?;
    let status = resp.status_code();
    resp.websocket()
        .ok_or_else(|| worker::Error::RustError(format!("the leader refused the link ({status})")))
}

impl Shared {
    /// (Leader) The same message to each linked shard whose link is still the one named.
    pub(super) fn send_shards(&self, to: &[LinkId], text: &str) {
        let value = JsValue::from_str(text);
        let links = self.shard_links.borrow();
        for (shard, generation) in to {
            if let Some((g, ws)) = links.get(shard) {
                let target: &SendTarget = ws.as_ref().unchecked_ref();
                if *g == *generation && target.send(&value).is_err() {
                    log_error("shard_send_failed", &format!("shard {shard}"));
                }
            }
        }
    }

    /// (Shard) Closes the link of `generation` to the leader (the shard has no clients).
    pub(super) fn hang_up(&self, generation: u64) {
        let mut link = self.leader_link.borrow_mut();
        if link.as_ref().is_some_and(|(g, _)| *g == generation) {
            if let Some((_, ws)) = link.take() {
                let _ = ws.close(Some(close::NORMAL), Some("no clients"));
            }
        }
    }

    /// (Shard) A message to the leader on the link of `generation`.
    pub(super) fn send_leader(&self, generation: u64, text: &str) {
        if let Some((g, ws)) = self.leader_link.borrow().as_ref() {
            if *g == generation {
                if let Err(e) = ws.send_with_str(text) {
                    log_error("leader_send_failed", &e.to_string());
                }
            }
        }
    }
}
