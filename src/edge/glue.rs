//! The runtime-facing methods both kinds of object share, written against the runtime's own
//! types: `fetch` (a client's WebSocket upgrade answered at once, anything else handed to the
//! object's routes as a future), and the hibernatable socket events.
//!
//! Why not workers-rs' `#[durable_object]`: it runs every call as a future (a promise and a
//! microtask each) and converts every request first, reading its `cf` object (a JSON parse),
//! where admitting a connection needs neither: the upgrade is synchronous, and the socket
//! events return nothing. Measured in the storm of docs/benchmark.md.

use std::future::Future;
use std::rc::Rc;

use wasm_bindgen::JsValue;
use worker::js_sys::{Promise, Uint8Array};
use worker::wasm_bindgen_futures::future_to_promise;
use worker::{web_sys, Request, Response, Result, WebSocketIncomingMessage};

use super::http;
use super::shared::Shared;
use super::sockets;
use crate::core::error::ApiError;
use crate::core::request::{presented_token, Href, ObjectRequest};

/// An object's state: running, or the configuration error that stops it.
pub(super) type Held = std::result::Result<Rc<Shared>, String>;

/// The object's `fetch`: a client's WebSocket upgrade is accepted here and now; any other
/// request goes to `routes`, the object's own, with its state.
pub(super) fn fetch<F, Fut>(held: &Held, req: web_sys::Request, routes: F) -> Promise
where
    F: FnOnce(Rc<Shared>, Request) -> Fut + 'static,
    Fut: Future<Output = Result<Response>> + 'static,
{
    let shared = match held {
        Ok(shared) => shared.clone(),
        Err(e) => return http::settled(http::error(&ApiError::Config(e.clone()))),
    };
    // On the leader, also a chance to restart the upstream.
    shared.kick();
    let href = req.url();
    let url = Href::split(&href);
    let query = url.query_pairs();
    if let Ok(ObjectRequest::WebSocket { wire }) = ObjectRequest::parse(url.path, &query) {
        let authorization = req.headers().get("Authorization").ok().flatten();
        let token = presented_token(authorization.as_deref(), &query);
        return http::settled(shared.accept_client(wire, token));
    }
    future_to_promise(async move {
        let resp = routes(shared, Request::from(req)).await?;
        Ok(web_sys::Response::from(resp).into())
    })
}

/// The runtime's hibernatable socket events on an object type holding its state in `held`:
/// the same on both kinds of object.
macro_rules! socket_events {
    ($object:ident) => {
        #[wasm_bindgen::prelude::wasm_bindgen]
        impl $object {
            #[wasm_bindgen(js_name = webSocketMessage)]
            pub fn websocket_message(
                &self,
                ws: worker::web_sys::WebSocket,
                message: wasm_bindgen::JsValue,
            ) {
                $crate::edge::glue::message(&self.held, ws, message);
            }

            #[wasm_bindgen(js_name = webSocketClose)]
            pub fn websocket_close(
                &self,
                ws: worker::web_sys::WebSocket,
                code: usize,
                reason: String,
            ) {
                $crate::edge::glue::close(&self.held, ws, code, reason);
            }

            #[wasm_bindgen(js_name = webSocketError)]
            pub fn websocket_error(
                &self,
                ws: worker::web_sys::WebSocket,
                error: wasm_bindgen::JsValue,
            ) {
                $crate::edge::glue::error(&self.held, ws, error);
            }
        }
    };
}
pub(super) use socket_events;

/// A client socket's message.
pub(super) fn message(held: &Held, ws: web_sys::WebSocket, message: JsValue) {
    let message = match message.as_string() {
        Some(text) => WebSocketIncomingMessage::String(text),
        None => WebSocketIncomingMessage::Binary(Uint8Array::new(&message).to_vec()),
    };
    sockets::on_message(held, &ws.into(), message);
}

/// A client socket's close (always answered).
pub(super) fn close(held: &Held, ws: web_sys::WebSocket, code: usize, reason: String) {
    sockets::on_close(held, &ws.into(), code, reason);
}

/// A client socket's error.
pub(super) fn error(held: &Held, ws: web_sys::WebSocket, error: JsValue) {
    sockets::on_error(held, &ws.into(), &error.into());
}

/// The object's alarm: `run` with its state, answered once done.
pub(super) fn alarm(held: &Held, run: impl FnOnce(&Rc<Shared>)) -> Promise {
    if let Ok(shared) = held {
        run(shared);
    }
    Promise::resolve(&JsValue::UNDEFINED)
}
