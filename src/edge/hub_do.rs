//! The `PriceHub` Durable Object: the single leader. It holds the one upstream WebSocket,
//! the links of the fan-out shards and (without shards) the hibernatable client sockets,
//! feeds their events to the core [`Hub`] through [`Shared`], and restores its state when
//! it is created again.

use std::rc::Rc;

use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::Promise;
use worker::worker_sys::DurableObjectState;
use worker::{web_sys, Env, Request, Response, Result, State};

use super::boot::{boot, Start};
use super::env::{jitter, now_ms};
use super::glue::{self, socket_events, Held};
use super::http;
use super::links;
use super::restore::restore_storage;
use super::shared::Shared;
use crate::core::error::ApiError;
use crate::core::host::ClientHost;
use crate::core::hub::Hub;
use crate::core::node::Node;
use crate::core::request::{parse_symbol_query, FaultKind, Href, ObjectRequest};

/// The leader object. Holds either its running state or the configuration error that stops
/// it from starting. Its methods are the runtime's (see [`super::glue`]).
#[wasm_bindgen]
pub struct PriceHub {
    held: Held,
}

#[wasm_bindgen]
impl PriceHub {
    #[wasm_bindgen(constructor)]
    pub fn new(state: DurableObjectState, env: Env) -> PriceHub {
        let held = boot(State::from(state), env, |cfg, state| {
            let mut hub = Hub::new(cfg);
            let store = restore_storage(state, &mut hub);
            Ok(Start {
                node: Node::Leader(Box::new(hub)),
                store,
                shard_id: 0,
            })
        });
        PriceHub { held }
    }

    pub fn fetch(&self, req: web_sys::Request) -> Promise {
        glue::fetch(&self.held, req, routes)
    }

    pub fn alarm(&self) -> Promise {
        glue::alarm(&self.held, |shared| {
            shared.run(|n| n.on_leader(|hub| hub.alarm(now_ms(), jitter())));
        })
    }
}

socket_events!(PriceHub);

/// The leader's requests other than a client's WebSocket upgrade.
async fn routes(shared: Rc<Shared>, req: Request) -> Result<Response> {
    let href = req.inner().url();
    let url = Href::split(&href);
    let query = url.query_pairs();
    match ObjectRequest::parse(url.path, &query) {
        Err(e) => http::error(&e),
        Ok(to) if to.is_client_connection() => shared.serve_client(req, &query, to).await,
        Ok(ObjectRequest::Link { shard }) => links::accept_shard(&shared, shard),
        Ok(ObjectRequest::Fault { kind }) if shared.node.borrow().config().test_faults => {
            match kind {
                FaultKind::Unlink => {
                    http::json(200, format!(r#"{{"unlinked":{}}}"#, shared.unlink_all()))
                }
                FaultKind::Restart => shared.restart_leader(),
                FaultKind::WipeHistory => shared.wipe_history(),
                FaultKind::Hibernate => shared.hibernate(),
            }
        }
        Ok(ObjectRequest::Candles {
            symbol,
            interval,
            limit,
        }) => shared.serve_candles(&symbol, &interval, limit).await,
        Ok(ObjectRequest::Publish) => {
            let mut req = req;
            let body = req.text().await?;
            publish(&shared, &body)
        }
        Ok(read) => answer(&shared, read),
    }
}

/// A publish: the answer, or the refusal with its status.
fn publish(shared: &Rc<Shared>, body: &str) -> Result<Response> {
    let result = shared
        .node
        .borrow_mut()
        .leader()
        .map(|hub| hub.publish(body, now_ms()));
    match result {
        Some(Ok((answer, fx))) => {
            shared.execute(fx);
            http::json(200, answer)
        }
        Some(Err(e)) => http::error(&e),
        None => http::error(&ApiError::Internal),
    }
}

/// The leader's reads: health, metrics and prices.
fn answer(shared: &Rc<Shared>, read: ObjectRequest) -> Result<Response> {
    let now = now_ms();
    let mut node = shared.node.borrow_mut();
    let Some(hub) = node.leader() else {
        return http::error(&ApiError::Internal);
    };
    match read {
        ObjectRequest::Health => {
            let (status, body) = hub.health(now);
            http::json(status, body)
        }
        ObjectRequest::Metrics => Response::ok(hub.metrics(now)),
        ObjectRequest::Prices { symbols } => {
            let list = symbols
                .map(|l| parse_symbol_query(hub.config(), &l.join(",")))
                .transpose();
            match list {
                Ok(list) => {
                    let (body, etag) = hub.rest_prices(list.as_deref(), now);
                    http::json_tagged(200, body, &etag)
                }
                Err(e) => http::error(&e),
            }
        }
        ObjectRequest::Group { group } => {
            let (body, etag) = hub.rest_group(group, now);
            http::json_tagged(200, body, &etag)
        }
        ObjectRequest::Status => {
            let (body, etag) = hub.rest_status(now);
            http::json_tagged(200, body, &etag)
        }
        ObjectRequest::Price { symbol } => match hub.rest_price(&symbol, now) {
            Ok((body, etag)) => http::json_tagged(200, body, &etag),
            Err(e) => http::error(&e),
        },
        _ => http::error(&ApiError::NotFound("not a read".into())),
    }
}
