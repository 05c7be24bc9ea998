//! The stateless Worker's routes: carries out the core's decision on a request that
//! [`super::entry`] read (CORS, the leader, the edge cache of [`super::edge_cache`]) and adds
//! this isolate's counters to the leader's metrics. Static files in `public/` are served by the
//! assets binding before this runs.

use std::cell::RefCell;

use worker::{event, web_sys, Env, Headers, Request, Response, Result};

use super::edge_cache;
use super::env::log_error;
use super::http;
use super::objects::{ask, ask_leader, entry, forward, inject, publish_to_leader};
use super::read::Read;
use crate::core::config::Config;
use crate::core::error::ApiError;
use crate::core::events;
use crate::core::metrics;
use crate::core::request::{ObjectRequest, Route, StreamRefusal};
use crate::core::rest::CorsDecision;

thread_local! {
    /// Stream connections refused at this isolate: [origin, unauthorized].
    static REFUSED: RefCell<[u64; 2]> = const { RefCell::new([0; 2]) };
}

fn count_refused(unauthorized: bool) {
    REFUSED.with(|r| {
        if let Some(n) = r.borrow_mut().get_mut(usize::from(unauthorized)) {
            *n += 1;
        }
    });
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// What a route answers: a response made here, or an object's passed on as it is.
enum Answer {
    Ours(Response),
    Passed(web_sys::Response),
}

/// Every request but a client's WebSocket upgrade (see [`super::entry`]), routed as `read`
/// says. An error is logged and answered 500.
pub(super) async fn serve(req: web_sys::Request, env: &Env, read: Read) -> web_sys::Response {
    match answer(req, env, &read).await {
        Ok(resp) => resp,
        Err(e) => {
            log_error("request_failed", &e.to_string());
            let internal = http::error(&ApiError::Internal).map(web_sys::Response::from);
            internal.unwrap_or_else(|_| web_sys::Response::error())
        }
    }
}

async fn answer(req: web_sys::Request, env: &Env, read: &Read) -> Result<web_sys::Response> {
    let answer = match route(req, env, read).await {
        Ok(answer) => answer,
        Err(e) => {
            log_error("request_failed", &e.to_string());
            Answer::Ours(http::error(&ApiError::Internal)?)
        }
    };
    let resp = match answer {
        Answer::Passed(resp) if resp.status() == 101 => return Ok(resp),
        Answer::Passed(resp) if !matches!(read.cors, CorsDecision::Allow(_)) => return Ok(resp),
        Answer::Passed(resp) => Response::from(resp),
        Answer::Ours(resp) => resp,
    };
    Ok(with_cors(resp, &read.cors)?.into())
}

/// Adds the CORS headers an allowed cross-origin request gets (never to a WebSocket upgrade:
/// [`fetch`] passes a 101 on untouched, its headers are the runtime's). Responses proxied
/// from an object have immutable headers, so the headers are copied into a fresh set first.
fn with_cors(resp: Response, decision: &CorsDecision) -> Result<Response> {
    let CorsDecision::Allow(value) = decision else {
        return Ok(resp);
    };
    let headers = Headers::new();
    for (k, v) in resp.headers().entries() {
        headers.append(&k, &v)?;
    }
    headers.set("Access-Control-Allow-Origin", value)?;
    headers.set(
        "Access-Control-Expose-Headers",
        "ETag, Retry-After, X-Edgetick-Cache",
    )?;
    if value != "*" {
        headers.append("Vary", "Origin")?;
    }
    Ok(resp.with_headers(headers))
}

/// Carries out the core's decision. A client connection's request is handed to its object
/// as it came, and the object's answer passed back as it is.
async fn route(req: web_sys::Request, env: &Env, read: &Read) -> Result<Answer> {
    let cfg = &read.cfg;
    let ours = match &read.route {
        Err((e, refusal)) => refused(e, *refusal),
        Ok(Route::Preflight) => http::preflight(),
        Ok(Route::Leader(ObjectRequest::WebSocket { .. } | ObjectRequest::Polling { .. })) => {
            return Ok(Answer::Passed(forward(env, cfg, entry(cfg), &req).await?));
        }
        Ok(Route::Held(h)) => return Ok(Answer::Passed(forward(env, cfg, *h, &req).await?)),
        Ok(Route::Leader(to @ ObjectRequest::Stream { .. })) => {
            ask(env, cfg, entry(cfg), &to.path()).await
        }
        Ok(Route::Leader(to)) => ask_leader(env, cfg, to).await,
        Ok(Route::Metrics) => metrics(env, cfg).await,
        Ok(Route::CachedRead(to)) => {
            let if_none_match = read.headers.get("If-None-Match")?;
            let key = (read.href.as_str(), if_none_match.as_deref());
            edge_cache::cached_read(key, env, cfg, to).await
        }
        Ok(Route::Fault(fault)) => inject(env, cfg, *fault).await,
        Ok(Route::Publish) => publish(Request::from(req), env, cfg).await,
    };
    ours.map(Answer::Ours)
}

/// A request refused before it reached an object (a refused stream is counted).
fn refused(e: &ApiError, refusal: Option<StreamRefusal>) -> Result<Response> {
    if let Some(why) = refusal {
        count_refused(why == StreamRefusal::Token);
    }
    let mut resp = http::error(e)?;
    if matches!(e, ApiError::Unauthorized(_)) {
        resp.headers_mut()
            .set("WWW-Authenticate", "Bearer realm=\"edgetick\"")?;
    }
    Ok(resp)
}

/// `POST /api/publish` past its token check: the body's size is checked before it is read
/// (by its `Content-Length`) and after, then the leader publishes it.
async fn publish(mut req: Request, env: &Env, cfg: &Config) -> Result<Response> {
    match http::body_within(&mut req, cfg.events.max_event_bytes).await? {
        Ok(body) => publish_to_leader(env, cfg, body).await,
        Err(len) => http::error(&events::publish::too_large(&cfg.events, len)),
    }
}

/// The leader's metrics plus this isolate's REST cache counters.
async fn metrics(env: &Env, cfg: &Config) -> Result<Response> {
    let mut resp = ask_leader(env, cfg, &ObjectRequest::Metrics).await?;
    let mut text = resp.text().await?;
    let refused = REFUSED.with(|r| *r.borrow());
    text.push_str(&metrics::isolate(&edge_cache::counts(), refused));
    let headers = Headers::new();
    headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::ok(text)?.with_headers(headers))
}
