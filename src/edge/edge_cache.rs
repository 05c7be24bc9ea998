//! The edge cache of REST reads, so a burst of identical reads costs about one leader request
//! per second per location. Three layers, each cheaper than the next:
//! 1. a per-isolate memo of answers younger than `REST_CACHE_SECONDS`;
//! 2. one in-flight leader request per key per isolate: concurrent readers wait for its
//!    answer in the memo on their own timers (never on another request's future);
//! 3. the Cache API (shared by the isolates of a location), with the same `max-age`.
//!
//! An answer is kept `REST_CACHE_SECONDS`, or as long as the leader's `Cache-Control` says
//! (candles: until the next close); its expiry travels with it, as an absolute time, so a
//! copy read back from the Cache API never outlives the original.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use worker::{Cache, Delay, Env, Response, Result};

use super::env::{log_error, now_ms};
use super::http;
use super::objects::ask_leader;
use crate::core::config::Config;
use crate::core::request::{Href, ObjectRequest};
use crate::core::rest::{self, CacheSource as Source};

/// A leader answer as the edge keeps it.
#[derive(Clone, Debug)]
struct Reply {
    status: u16,
    body: String,
    etag: Option<String>,
    retry_after: Option<String>,
    /// When it stops being fresh (epoch ms).
    expires_at: i64,
}

/// The header that carries an answer's expiry through the Cache API.
const EXPIRES: &str = "X-Edgetick-Expires";

/// How long a request waits for another request's leader answer before asking itself.
const COALESCE_WAIT_MS: i64 = 2_000;

thread_local! {
    static MEMO: RefCell<HashMap<String, Reply>> = RefCell::new(HashMap::new());
    /// Keys whose leader request is under way in this isolate.
    static INFLIGHT: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    static COUNTS: RefCell<[u64; 4]> = const { RefCell::new([0; 4]) };
}

fn count(source: Source) {
    COUNTS.with(|c| {
        if let Some(n) = c.borrow_mut().get_mut(source as usize) {
            *n += 1;
        }
    });
}

/// REST reads at this isolate by where the answer came from, for `/metrics`.
pub(super) fn counts() -> [(&'static str, u64); 4] {
    let c = COUNTS.with(|c| *c.borrow());
    Source::ALL.map(|s| (s.name(), c.get(s as usize).copied().unwrap_or_default()))
}

/// Answers a REST read from the cheapest layer that has a fresh answer.
pub(super) async fn cached_read(
    (href, if_none_match): (&str, Option<&str>),
    env: &Env,
    cfg: &Config,
    to: &ObjectRequest,
) -> Result<Response> {
    let target = to.path();
    let origin = match Href::split(href).origin {
        "" => "https://edgetick",
        origin => origin,
    };
    let key = format!("{origin}/edge-cache{target}");
    let max_age_ms = i64::from(cfg.rest_cache_seconds) * 1000;
    let (reply, source) = fetch_through(env, cfg, &key, to, max_age_ms).await?;
    count(source);
    respond(&reply, source, max_age_ms > 0, if_none_match)
}

async fn fetch_through(
    env: &Env,
    cfg: &Config,
    key: &str,
    to: &ObjectRequest,
    max_age_ms: i64,
) -> Result<(Reply, Source)> {
    let now = now_ms();
    if max_age_ms > 0 {
        let memo = MEMO.with(|m| m.borrow().get(key).cloned());
        if let Some(r) = memo.filter(|r| now < r.expires_at) {
            return Ok((r, Source::Memory));
        }
        if let Some(mut resp) = Cache::default().get(key, false).await? {
            let expires = resp.headers().get(EXPIRES)?.and_then(|e| e.parse().ok());
            let reply = Reply {
                status: resp.status_code(),
                etag: resp.headers().get("ETag")?,
                retry_after: None,
                body: resp.text().await?,
                expires_at: expires.unwrap_or(now + max_age_ms),
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
        if let Some(r) = memo.filter(|r| now_ms() < r.expires_at) {
            return Ok((r, Source::Coalesced));
        }
        // The other request failed, answered something not worth caching, or is slow: ask.
    }
    let leading = INFLIGHT.with(|m| m.borrow_mut().insert(key.to_string()));
    let result = read_leader(env, cfg, to, max_age_ms).await;
    if leading {
        INFLIGHT.with(|m| m.borrow_mut().remove(key));
    }
    let reply = result?;
    if reply.status == 200 && max_age_ms > 0 {
        MEMO.with(|m| m.borrow_mut().insert(key.to_string(), reply.clone()));
        let mut stored = respond(&reply, Source::Leader, true, None)?;
        stored
            .headers_mut()
            .set(EXPIRES, &reply.expires_at.to_string())?;
        if let Err(e) = Cache::default().put(key, stored).await {
            log_error("edge_cache_put_failed", &e.to_string());
        }
    }
    Ok((reply, Source::Leader))
}

async fn read_leader(
    env: &Env,
    cfg: &Config,
    to: &ObjectRequest,
    max_age_ms: i64,
) -> Result<Reply> {
    let mut resp = ask_leader(env, cfg, to).await?;
    let control = resp.headers().get("Cache-Control")?;
    let keep_ms = control
        .as_deref()
        .and_then(rest::max_age_of)
        .map_or(max_age_ms, |s| i64::from(s) * 1000);
    Ok(Reply {
        status: resp.status_code(),
        etag: resp.headers().get("ETag")?,
        retry_after: resp.headers().get("Retry-After")?,
        body: resp.text().await?,
        expires_at: now_ms() + keep_ms,
    })
}

/// The client's response for a reply (`max-age` what is left of its freshness, when
/// `caching`): 304 when its ETag matches `If-None-Match`.
fn respond(
    reply: &Reply,
    source: Source,
    caching: bool,
    if_none_match: Option<&str>,
) -> Result<Response> {
    let max_age = ((reply.expires_at - now_ms() + 999) / 1000).max(0);
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
    if cacheable && caching && max_age > 0 {
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
