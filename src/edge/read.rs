//! What the Worker reads of a request, once: the configuration (parsed once per isolate), the
//! headers the core's classifier needs, the CORS decision and the route the core chooses.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{web_sys, Env};

use super::env::{load_config, now_ms};
use crate::core::config::Config;
use crate::core::error::{ApiError, ConfigError};
use crate::core::request::{classify, reads_clock, Href, Incoming, Route, StreamRefusal};
use crate::core::rest::{self, CorsDecision};

thread_local! {
    /// The configuration, parsed once per isolate: `env` does not change while an isolate
    /// lives, and parsing every variable again for each request (each new connection, too)
    /// is work for nothing. A configuration error is not kept: it is reported every time.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

/// This isolate's configuration (parsed on first use), or why it is invalid.
pub(super) fn config(env: &Env) -> std::result::Result<Rc<Config>, ConfigError> {
    if let Some(cfg) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(cfg);
    }
    let cfg = Rc::new(load_config(env)?);
    CONFIG.with(|c| *c.borrow_mut() = Some(cfg.clone()));
    Ok(cfg)
}

/// What the Worker read of a request, once, and where the core sends it.
pub(super) struct Read {
    pub(super) cfg: Rc<Config>,
    pub(super) href: String,
    pub(super) headers: web_sys::Headers,
    pub(super) cors: CorsDecision,
    pub(super) route: Result<Route, (ApiError, Option<StreamRefusal>)>,
}

impl Read {
    /// Reads `req` (`href`, the request's URL, and its headers are read once).
    pub(super) fn of(req: &web_sys::Request, cfg: Rc<Config>) -> Read {
        let headers = req.headers();
        let header = |name: &str| headers.get(name).ok().flatten();
        let href = req.url();
        let url = Href::split(&href);
        let cors = rest::cors(
            &cfg.allowed_origins,
            header("Origin").as_deref(),
            url.origin,
        );
        let query = url.query_pairs();
        let (upgrade, authorization, last_event_id) = (
            header("Upgrade"),
            header("Authorization"),
            header("Last-Event-ID"),
        );
        let method = req.method();
        let incoming = Incoming {
            method: &method,
            path: url.path,
            query: &query,
            upgrade: upgrade.as_deref(),
            authorization: authorization.as_deref(),
            last_event_id: last_event_id.as_deref(),
            now_ms: if reads_clock(&cfg) { now_ms() } else { 0 },
        };
        let route = classify(&cfg, &cors, &incoming);
        Read {
            cfg,
            href,
            headers,
            cors,
            route,
        }
    }
}
