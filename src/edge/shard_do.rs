//! The `FanoutShard` Durable Object (`fanout-0 … fanout-{N-1}`): carries the clients the
//! Worker hands it, fed by its link to the leader (see [`super::links`]).

use std::rc::Rc;

use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage,
};

use super::boot::{boot, Start};
use super::env::now_ms;
use super::http;
use super::shared::Shared;
use super::sockets;
use crate::core::error::ApiError;
use crate::core::node::Node;
use crate::core::request::{FaultKind, Href, ObjectRequest};
use crate::core::shard::Shard;

/// A shard. Holds either its running state or the configuration error that stops it.
#[durable_object]
pub struct FanoutShard {
    shared: std::result::Result<Rc<Shared>, String>,
}

impl FanoutShard {
    fn shared(&self) -> std::result::Result<Rc<Shared>, ApiError> {
        self.shared.clone().map_err(ApiError::Config)
    }
}

/// The shard's number from its object name, `fanout-{n}`.
fn shard_number(state: &State) -> std::result::Result<u32, String> {
    let name = state.id().name().unwrap_or_default();
    name.strip_prefix("fanout-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("a fan-out shard must be named fanout-N, not {name:?}"))
}

impl DurableObject for FanoutShard {
    fn new(state: State, env: Env) -> Self {
        let shared = boot(state, env, |cfg, state| {
            Ok(Start {
                node: Node::Shard(Box::new(Shard::new(cfg))),
                store: None,
                shard_id: shard_number(state)?,
            })
        });
        FanoutShard { shared }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let shared = match self.shared() {
            Ok(s) => s,
            Err(e) => return http::error(&e),
        };
        let href = req.inner().url();
        let url = Href::split(&href);
        let query = url.query_pairs();
        match ObjectRequest::parse(url.path, &query) {
            Ok(to) if to.is_client_connection() => shared.serve_client(req, &query, to).await,
            Ok(ObjectRequest::Fault { kind }) if shared.node.borrow().config().test_faults => {
                match kind {
                    FaultKind::Hibernate => shared.hibernate(),
                    _ => shared.restart_shard(),
                }
            }
            Ok(_) => http::error(&ApiError::NotFound("a shard serves /ws and streams".into())),
            Err(e) => http::error(&e),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Ok(shared) = self.shared() {
            shared.run(|n| n.on_shard(|s| s.alarm(now_ms())));
        }
        Response::ok("")
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        sockets::on_message(&self.shared, &ws, message);
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _clean: bool,
    ) -> Result<()> {
        sockets::on_close(&self.shared, &ws, code, reason);
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        sockets::on_error(&self.shared, &ws, &error);
        Ok(())
    }
}
