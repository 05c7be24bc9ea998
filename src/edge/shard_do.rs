//! The `FanoutShard` Durable Object (`fanout-0 … fanout-{N-1}`): carries the clients the
//! Worker hands it, fed by its link to the leader (see [`super::links`]).

use std::rc::Rc;

use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::Promise;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, Request, Response, Result, State};

use super::boot::{boot, Start};
use super::env::now_ms;
use super::glue::{self, socket_events, Held};
use super::http;
use super::shared::Shared;
use crate::core::error::ApiError;
use crate::core::node::Node;
use crate::core::request::{FaultKind, Href, ObjectRequest};
use crate::core::shard::Shard;

/// A shard. Holds either its running state or the configuration error that stops it. Its
/// methods are the runtime's (see [`super::glue`]).
#[wasm_bindgen]
pub struct FanoutShard {
    held: Held,
}

/// The shard's number from its object name, `fanout-{n}`.
fn shard_number(state: &State) -> std::result::Result<u32, String> {
    let name = state.id().name().unwrap_or_default();
    name.strip_prefix("fanout-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("a fan-out shard must be named fanout-N, not {name:?}"))
}

#[wasm_bindgen]
impl FanoutShard {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> FanoutShard {
        let held = boot(State::from(state), env, |cfg, state| {
            Ok(Start {
                node: Node::Shard(Box::new(Shard::new(cfg))),
                store: None,
                shard_id: shard_number(state)?,
            })
        });
        FanoutShard { held }
    }

    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        glue::fetch(&self.held, req, routes)
    }

    pub fn alarm(&self) -> Promise {
        glue::alarm(&self.held, |shared| {
            shared.run(|n| n.on_shard(|s| s.alarm(now_ms())));
        })
    }
}

socket_events!(FanoutShard);

/// The shard's requests other than a client's WebSocket upgrade.
async fn routes(shared: Rc<Shared>, req: Request) -> Result<Response> {
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
