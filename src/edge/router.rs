//! The stateless Worker: validates requests, applies CORS, and answers REST reads through
//! an edge cache so a burst of identical reads costs about one leader request per second per
//! location. Static files in `public/` are served by the assets binding before this runs.
//!
//! Caching has three layers, each cheaper than the next:
//! 1. a per-isolate memo of answers younger than `REST_CACHE_SECONDS`;
//! 2. one in-flight leader request per key per isolate: concurrent readers wait for its
//!    answer in the memo on their own timers (never on another request's future);
//! 3. the Cache API (shared by the isolates of a location), with the same `max-age`.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use worker::{event, Cache, Context, Delay, Env, Headers, Request, Response, Result, Stub};

use super::env::{load_config, log_error, now_ms};
use super::http;
use crate::core::config::Config;
use crate::core::error::{ApiError, ConfigError};
use crate::core::metrics::Exposition;
use crate::core::request::{classify, Incoming, LeaderRequest, Route, StreamRefusal};
use crate::core::rest::{self, CorsDecision};

/// Every name of the leader; `id_from_name` makes it unique world-wide.
const LEADER: &str = "leader";

/// A leader answer as the edge keeps it.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    body: String,
    etag: Option<String>,
    retry_after: Option<String>,
    fetched_at: i64,
}

/// How long a request waits for another request's leader answer before asking itself.
const COALESCE_WAIT_MS: i64 = 2_000;

/// Where a REST answer came from (counted, and sent as `X-Edgetick-Cache`).
#[derive(Clone, Copy)]
enum Source {
    Memory,
    Cache,
    Coalesced,
    Leader,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Memory => "memory_hit",
            Source::Cache => "cache_hit",
            Source::Coalesced => "coalesced",
            Source::Leader => "miss",
        }
    }
}

thread_local! {
    static MEMO: RefCell<HashMap<String, Reply>> = RefCell::new(HashMap::new());
    /// Keys whose leader request is under way in this isolate.
    static INFLIGHT: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    static COUNTS: RefCell<[u64; 4]> = const { RefCell::new([0; 4]) };
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

fn count(source: Source) {
    COUNTS.with(|c| {
        if let Some(n) = c.borrow_mut().get_mut(source as usize) {
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

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let cfg = match config(&env) {
        Ok(cfg) => cfg,
        Err(e) => {
            log_error("config_invalid", &e.to_string());
            return http::error(&ApiError::Config(e.to_string()));
        }
    };
    let origin = req.headers().get("Origin").ok().flatten();
    let own = req
        .url()
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let decision = rest::cors(&cfg.allowed_origins, origin.as_deref(), &own);
    let resp = match route(req, &env, &cfg, &decision).await {
        Ok(resp) => resp,
        Err(e) => {
            log_error("request_failed", &e.to_string());
            http::error(&ApiError::Internal)?
        }
    };
    with_cors(resp, &decision)
}

fn leader(env: &Env, cfg: &Config) -> Result<Stub> {
    env.durable_object("PRICE_HUB")?
        .id_from_name(LEADER)?
        .get_stub_with_location_hint(&cfg.leader_location)
}

/// Adds the CORS headers an allowed cross-origin request gets (a WebSocket upgrade is
/// returned untouched: its headers are the runtime's). Responses proxied from the leader
/// have immutable headers, so the headers are copied into a fresh set first.
fn with_cors(resp: Response, decision: &CorsDecision) -> Result<Response> {
    let CorsDecision::Allow(value) = decision else {
        return Ok(resp);
    };
    if resp.status_code() == 101 {
        return Ok(resp);
    }
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

/// Reads what the core's classifier needs, routes, and carries the decision out.
async fn route(req: Request, env: &Env, cfg: &Config, cors: &CorsDecision) -> Result<Response> {
    let url = req.url()?;
    let query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let headers = req.headers();
    let (upgrade, authorization, last_event_id) = (
        headers.get("Upgrade")?,
        headers.get("Authorization")?,
        headers.get("Last-Event-ID")?,
    );
    let method = req.method();
    let incoming = Incoming {
        method: method.as_ref(),
        path: url.path(),
        query: &query,
        upgrade: upgrade.as_deref(),
        authorization: authorization.as_deref(),
        last_event_id: last_event_id.as_deref(),
    };
    match classify(cfg, cors, &incoming) {
        Err((e, refusal)) => {
            if let Some(why) = refusal {
                count_refused(why == StreamRefusal::Token);
            }
            let mut resp = http::error(&e)?;
            if matches!(e, ApiError::Unauthorized(_)) {
                resp.headers_mut()
                    .set("WWW-Authenticate", "Bearer realm=\"edgetick\"")?;
            }
            Ok(resp)
        }
        Ok(Route::Preflight) => preflight(),
        Ok(Route::Leader(LeaderRequest::WebSocket)) => {
            leader(env, cfg)?.fetch_with_request(req).await
        }
        Ok(Route::Leader(to)) => {
            leader(env, cfg)?
                .fetch_with_str(&format!("https://leader{}", to.path()))
                .await
        }
        Ok(Route::Metrics) => metrics(env, cfg).await,
        Ok(Route::CachedRead(to)) => cached_read(&req, env, cfg, &to.path()).await,
    }
}

fn preflight() -> Result<Response> {
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")?;
    headers.set(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, If-None-Match, Last-Event-ID",
    )?;
    headers.set("Access-Control-Max-Age", "600")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

/// Answers a REST read from the cheapest layer that has a fresh answer.
async fn cached_read(req: &Request, env: &Env, cfg: &Config, target: &str) -> Result<Response> {
    let url = req.url()?;
    let key = format!(
        "{}://{}/edge-cache{target}",
        url.scheme(),
        url.host_str().unwrap_or("edgetick")
    );
    let max_age_ms = i64::from(cfg.rest_cache_seconds) * 1000;
    let (reply, source) = fetch_through(env, cfg, &key, target, max_age_ms).await?;
    count(source);
    let if_none_match = req.headers().get("If-None-Match")?;
    respond(
        &reply,
        source,
        cfg.rest_cache_seconds,
        if_none_match.as_deref(),
    )
}

async fn fetch_through(
    env: &Env,
    cfg: &Config,
    key: &str,
    target: &str,
    max_age_ms: i64,
) -> Result<(Reply, Source)> {
    let now = now_ms();
    if max_age_ms > 0 {
        let memo = MEMO.with(|m| m.borrow().get(key).cloned());
        if let Some(r) = memo.filter(|r| now - r.fetched_at < max_age_ms) {
            return Ok((r, Source::Memory));
        }
        if let Some(mut resp) = Cache::default().get(key, false).await? {
            let reply = Reply {
                status: resp.status_code(),
                etag: resp.headers().get("ETag")?,
                retry_after: None,
                body: resp.text().await?,
                fetched_at: now,
            };
            MEMO.with(|m| m.borrow_mut().insert(key.to_string(), reply.clone()));
            return Ok((reply, Source::Cache));
        }
    }
    // Another request of this isolate is already asking the leader: wait for its answer in
    // the memo, on this request's own timer. workerd judges each request by its own pending
    // I/O, so awaiting a future another request drives can be cancelled as a hang.
    if max_age_ms > 0 && INFLIGHT.with(|m| m.borrow().contains(key)) {
        let deadline = now_ms() + COALESCE_WAIT_MS;
        while INFLIGHT.with(|m| m.borrow().contains(key)) && now_ms() < deadline {
            Delay::from(Duration::from_millis(5)).await;
        }
        let memo = MEMO.with(|m| m.borrow().get(key).cloned());
        if let Some(r) = memo.filter(|r| now_ms() - r.fetched_at < max_age_ms) {
            return Ok((r, Source::Coalesced));
        }
        // The other request failed, answered something not worth caching, or is slow: ask.
    }
    let leading = INFLIGHT.with(|m| m.borrow_mut().insert(key.to_string()));
    let result = ask_leader(env, cfg, target).await;
    if leading {
        INFLIGHT.with(|m| m.borrow_mut().remove(key));
    }
    let reply = result?;
    if reply.status == 200 && max_age_ms > 0 {
        MEMO.with(|m| m.borrow_mut().insert(key.to_string(), reply.clone()));
        let stored = respond(&reply, Source::Leader, cfg.rest_cache_seconds, None)?;
        if let Err(e) = Cache::default().put(key, stored).await {
            log_error("edge_cache_put_failed", &e.to_string());
        }
    }
    Ok((reply, Source::Leader))
}

async fn ask_leader(env: &Env, cfg: &Config, target: &str) -> Result<Reply> {
    let mut resp = leader(env, cfg)?
        .fetch_with_str(&format!("https://leader{target}"))
        .await?;
    Ok(Reply {
        status: resp.status_code(),
        etag: resp.headers().get("ETag")?,
        retry_after: resp.headers().get("Retry-After")?,
        body: resp.text().await?,
        fetched_at: now_ms(),
    })
}

/// The client's response for a reply: 304 when its ETag matches `If-None-Match`.
fn respond(
    reply: &Reply,
    source: Source,
    max_age: u32,
    if_none_match: Option<&str>,
) -> Result<Response> {
    let cacheable = reply.status == 200;
    let not_modified = cacheable
        && reply
            .etag
            .as_deref()
            .is_some_and(|t| rest::etag_matches(if_none_match, t));
    let mut resp = if not_modified {
        Response::empty()?.with_status(304)
    } else {
        http::json(reply.status, reply.body.clone())?
    };
    let h = resp.headers_mut();
    if cacheable && max_age > 0 {
        h.set("Cache-Control", &format!("public, max-age={max_age}"))?;
    } else {
        h.set("Cache-Control", "no-store")?;
    }
    if let (true, Some(tag)) = (cacheable, &reply.etag) {
        h.set("ETag", tag)?;
    }
    if let Some(ra) = &reply.retry_after {
        h.set("Retry-After", ra)?;
    }
    h.set("X-Edgetick-Cache", source.name())?;
    Ok(resp)
}

/// The leader's metrics plus this isolate's REST cache counters.
async fn metrics(env: &Env, cfg: &Config) -> Result<Response> {
    let mut resp = leader(env, cfg)?
        .fetch_with_str(&format!("https://leader{}", LeaderRequest::Metrics.path()))
        .await?;
    let mut text = resp.text().await?;
    let counts = COUNTS.with(|c| *c.borrow());
    let mut e = Exposition::default();
    let fam = e.family(
        "edgetick_rest_cache_requests_total",
        "counter",
        "REST price reads at this Worker isolate, by where the answer came from.",
    );
    for source in [
        Source::Memory,
        Source::Cache,
        Source::Coalesced,
        Source::Leader,
    ] {
        fam.sample(
            "edgetick_rest_cache_requests_total",
            &[("result", source.name())],
            counts.get(source as usize).copied().unwrap_or_default() as f64,
        );
    }
    let refused = REFUSED.with(|r| *r.borrow());
    e.family(
        "edgetick_edge_refused_total",
        "counter",
        "Stream connections refused at this Worker isolate, by reason.",
    )
    .sample(
        "edgetick_edge_refused_total",
        &[("reason", "origin")],
        refused[0] as f64,
    )
    .sample(
        "edgetick_edge_refused_total",
        &[("reason", "unauthorized")],
        refused[1] as f64,
    );
    text.push_str(&e.finish());
    let headers = Headers::new();
    headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::ok(text)?.with_headers(headers))
}
