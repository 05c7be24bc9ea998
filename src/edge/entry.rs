//! The Worker's `fetch` export: reads a request once (configuration, headers, CORS, the core's
//! classification), hands a client's WebSocket upgrade straight to its object and returns the
//! object's own promise, and runs every other request through [`super::router`].
//!
//! Why not workers-rs' `#[event(fetch)]`: it turns every request into a Rust future driven
//! by microtasks and awaits the object's answer through a promise callback, per connection.
//! An upgrade needs neither: its answer is the object's, passed on untouched (a browser never
//! reads a failed upgrade's headers, so no CORS headers are owed). Measured in the storm of
//! docs/benchmark.md.

use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::Promise;
use worker::wasm_bindgen_futures::future_to_promise;
use worker::{web_sys, Env};

use super::env::log_error;
use super::http;
use super::objects::{entry, hand_over};
use super::read::{config, Read};
use super::router::serve;
use crate::core::error::ApiError;
use crate::core::request::{ObjectRequest, Route};

/// The Worker's entry point for every request.
#[wasm_bindgen(js_name = fetch)]
pub fn fetch(req: web_sys::Request, env: Env, _ctx: worker::worker_sys::Context) -> Promise {
    let cfg = match config(&env) {
        Ok(cfg) => cfg,
        Err(e) => {
            log_error("config_invalid", &e.to_string());
            return http::settled(http::error(&ApiError::Config(e.to_string())));
        }
    };
    let read = Read::of(&req, cfg);
    if let Ok(Route::Leader(ObjectRequest::WebSocket { .. })) = &read.route {
        // A stub that cannot be had falls through to the routes, which answer its error.
        if let Ok(promise) = hand_over(&env, &read.cfg, entry(&read.cfg), &req) {
            return promise;
        }
    }
    future_to_promise(async move { Ok(serve(req, &env, read).await.into()) })
}
