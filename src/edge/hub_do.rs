//! The `PriceHub` Durable Object: the single leader. It holds the one upstream WebSocket and
//! the hibernatable client sockets, feeds their events to the core [`Hub`] through
//! [`Shared`], and restores its state when it is created again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketRequestResponsePair,
};

use super::env::{jitter, load_config, log_error, now_ms};
use super::http;
use super::restore::{restore_clients, restore_storage};
use super::shared::Shared;
use crate::core::error::ApiError;
use crate::core::fastmap::FastMap;
use crate::core::hub::Hub;
use crate::core::protocol::close;
use crate::core::request::LeaderRequest;

/// The leader object. Holds either its running state or the configuration error that
/// stops it from starting.
#[durable_object]
pub struct PriceHub {
    shared: std::result::Result<Rc<Shared>, String>,
}

impl PriceHub {
    fn shared(&self) -> std::result::Result<Rc<Shared>, ApiError> {
        self.shared.clone().map_err(ApiError::Config)
    }
}

impl DurableObject for PriceHub {
    fn new(state: State, env: Env) -> Self {
        console_error_panic_hook::set_once();
        let cfg = match load_config(&env) {
            Ok(cfg) => cfg,
            Err(e) => {
                log_error("config_invalid", &e.to_string());
                return PriceHub {
                    shared: Err(e.to_string()),
                };
            }
        };
        let shared_send = cfg.shared_send;
        let mut hub = Hub::new(cfg);
        let store = restore_storage(&state, &mut hub);
        match WebSocketRequestResponsePair::new("ping", "pong") {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => log_error("auto_response_failed", &format!("{e:?}")),
        }
        let clients = restore_clients(&state, &mut hub);
        PriceHub {
            shared: Ok(Rc::new(Shared {
                state,
                hub: RefCell::new(hub),
                store,
                clients: RefCell::new(clients),
                upstreams: RefCell::new(HashMap::new()),
                sse_wakers: RefCell::new(FastMap::default()),
                shared_send,
                timer: RefCell::new(None),
                conn_ids: js_sys::WeakMap::new(),
            })),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let shared = match self.shared() {
            Ok(s) => s,
            Err(e) => return http::error(&e),
        };
        shared.kick();
        let url = req.url()?;
        let query = http::query_pairs(&url);
        let now = now_ms();
        match LeaderRequest::parse(url.path(), &query) {
            Err(e) => http::error(&e),
            Ok(LeaderRequest::WebSocket) => shared.accept_client(),
            Ok(LeaderRequest::Health) => {
                let (status, body) = shared.hub.borrow().health(now);
                http::json(status, body)
            }
            Ok(LeaderRequest::Metrics) => Response::ok(shared.hub.borrow().metrics(now)),
            Ok(LeaderRequest::Stream { symbols, last }) => shared.open_stream(&symbols, last),
            Ok(LeaderRequest::Prices { symbols }) => {
                let mut hub = shared.hub.borrow_mut();
                match symbols
                    .map(|l| hub.parse_symbol_query(&l.join(",")))
                    .transpose()
                {
                    Ok(list) => {
                        let (body, etag) = hub.rest_prices(list.as_deref(), now);
                        http::json_tagged(200, body, &etag)
                    }
                    Err(e) => http::error(&e),
                }
            }
            Ok(LeaderRequest::Price { symbol }) => {
                let answer = shared.hub.borrow_mut().rest_price(&symbol, now);
                match answer {
                    Ok((body, etag)) => http::json_tagged(200, body, &etag),
                    Err(e) => http::error(&e),
                }
            }
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Ok(shared) = self.shared() {
            shared.run(|hub| hub.alarm(now_ms(), jitter()));
        }
        Response::ok("")
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let shared = match self.shared() {
            Ok(s) => s,
            Err(_) => {
                let _ = ws.close(Some(close::INTERNAL), Some("misconfigured"));
                return Ok(());
            }
        };
        shared.kick();
        let Some(conn) = shared.conn_of(&ws) else {
            let _ = ws.close(Some(close::INTERNAL), Some("session state lost; reconnect"));
            return Ok(());
        };
        match message {
            WebSocketIncomingMessage::String(text) => {
                shared.run(|hub| hub.client_text(conn, &text, now_ms()))
            }
            WebSocketIncomingMessage::Binary(bytes) => {
                shared.run(|hub| hub.client_binary(conn, bytes.len(), now_ms()))
            }
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        if let Ok(shared) = self.shared() {
            shared.forget_client(&ws, code, &reason);
        }
        let _ = ws.close(Some(close::reciprocal(code)), Some(reason));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        if let Ok(shared) = self.shared() {
            shared.forget_client(&ws, 1006, "socket error");
        }
        log_error("client_socket_error", &error.to_string());
        let _ = ws.close(Some(close::INTERNAL), Some("socket error"));
        Ok(())
    }
}
