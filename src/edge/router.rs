//! The stateless Worker: reads what the core's request classifier needs, carries out its
//! decision (CORS, the leader, the edge cache of [`super::edge_cache`]) and adds this
//! isolate's counters to the leader's metrics. Static files in `public/` are served by the
//! assets binding before this runs.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{event, web_sys, Context, Env, Headers, Request, Response, Result};

use super::edge_cache;
use super::env::{load_config, log_error, now_ms};
use super::http;
use super::objects::{ask, ask_leader, entry, forward, inject, publish_to_leader};
use crate::core::config::Config;
use crate::core::error::{ApiError, ConfigError};
use crate::core::events;
use crate::core::metrics;
use crate::core::request::{
    classify, reads_clock, Href, Incoming, ObjectRequest, Route, StreamRefusal,
};
use crate::core::rest::{self, CorsDecision};

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

thread_local! {
    /// The configuration, parsed once per isolate: `env` does not change while an isolate
    /// lives, and parsing every variable again for each request (each new connection, too)
    /// is work for nothing. A configuration error is not kept: it is reported every time.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

fn config(env: &Env) -> std::result::Result<Rc<Config>, ConfigError> {
    if let Some(cfg) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(cfg);
    }
    let cfg = Rc::new(load_config(env)?);
    CONFIG.with(|c| *c.borrow_mut() = Some(cfg.clone()));
    Ok(cfg)
}

/// What a route answers: a response made here, or an object's passed on as it is.
enum Answer {
    Ours(Response),
    Passed(web_sys::Response),
}

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    let cfg = match config(&env) {
        Ok(cfg) => cfg,
        Err(e) => {
            log_error("config_invalid", &e.to_string());
            return Ok(http::error(&ApiError::Config(e.to_string()))?.into());
        }
    };
    let headers = req.headers();
    let origin = headers.get("Origin").ok().flatten();
    let href = req.url();
    let own = Href::split(&href).origin;
    let decision = rest::cors(&cfg.allowed_origins, origin.as_deref(), own);
    let answer = match route(req, (&href, &headers), &env, &cfg, &decision).await {
        Ok(answer) => answer,
        Err(e) => {
            log_error("request_failed", &e.to_string());
            Answer::Ours(http::error(&ApiError::Internal)?)
        }
    };
    let resp = match answer {
        Answer::Passed(resp) if resp.status() == 101 => return Ok(resp),
        Answer::Passed(resp) if !matches!(decision, CorsDecision::Allow(_)) => return Ok(resp),
        Answer::Passed(resp) => Response::from(resp),
        Answer::Ours(resp) => resp,
    };
    Ok(with_cors(resp, &decision)?.into())
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

/// Reads what the core's classifier needs (`href`, the request's URL, and its headers are
/// read once), routes, and carries the decision out. A client connection's request is
/// handed to its object as it came, and the object's answer passed back as it is.
async fn route(
    req: web_sys::Request,
    (href, headers): (&str, &web_sys::Headers),
    env: &Env,
    cfg: &Config,
    cors: &CorsDecision,
) -> Result<Answer> {
    let url = Href::split(href);
    let query = url.query_pairs();
    let (upgrade, authorization, last_event_id) = (
        headers.get("Upgrade")?,
        headers.get("Authorization")?,
        headers.get("Last-Event-ID")?,
    );
    let method = req.method();
    let incoming = Incoming {
        method: &method,
        path: url.path,
        query: &query,
        upgrade: upgrade.as_deref(),
        authorization: authorization.as_deref(),
        last_event_id: last_event_id.as_deref(),
        now_ms: if reads_clock(cfg) { now_ms() } else { 0 },
    };
    let ours = match classify(cfg, cors, &incoming) {
        Err((e, refusal)) => refused(&e, refusal),
        Ok(Route::Preflight) => http::preflight(),
        Ok(Route::Leader(ObjectRequest::WebSocket { .. } | ObjectRequest::Polling { .. })) => {
            return Ok(Answer::Passed(forward(env, cfg, entry(cfg), &req).await?));
        }
        Ok(Route::Held(h)) => return Ok(Answer::Passed(forward(env, cfg, h, &req).await?)),
        Ok(Route::Leader(to @ ObjectRequest::Stream { .. })) => {
            ask(env, cfg, entry(cfg), &to.path()).await
        }
        Ok(Route::Leader(to)) => ask_leader(env, cfg, &to).await,
        Ok(Route::Metrics) => metrics(env, cfg).await,
        Ok(Route::CachedRead(to)) => {
            let if_none_match = headers.get("If-None-Match")?;
            edge_cache::cached_read((href, if_none_match.as_deref()), env, cfg, &to).await
        }
        Ok(Route::Fault(fault)) => inject(env, cfg, fault).await,
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
