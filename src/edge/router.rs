//! The stateless Worker: validates requests and hands them to the leader. Static files in
//! `public/` are served by the assets binding before this code runs.

use worker::{event, Context, Env, Method, Request, Response, Result, Stub};

use super::env::{load_config, log_error};
use super::http;
use crate::core::config::Config;
use crate::core::error::ApiError;
use crate::core::hub::parse_symbol_query;
use crate::core::symbol::percent_decode;

/// Every name of the leader; `id_from_name` makes it unique world-wide.
const LEADER: &str = "leader";

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let cfg = match load_config(&env) {
        Ok(cfg) => cfg,
        Err(e) => {
            log_error("config_invalid", &e.to_string());
            return http::error(&ApiError::Config(e.to_string()));
        }
    };
    match route(req, &env, &cfg).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            log_error("request_failed", &e.to_string());
            http::error(&ApiError::Internal)
        }
    }
}

fn leader(env: &Env, cfg: &Config) -> Result<Stub> {
    env.durable_object("PRICE_HUB")?
        .id_from_name(LEADER)?
        .get_stub_with_location_hint(&cfg.leader_location)
}

async fn route(req: Request, env: &Env, cfg: &Config) -> Result<Response> {
    let url = req.url()?;
    let path = url.path().to_string();
    let is_price = path.starts_with("/api/prices/");
    if !(matches!(path.as_str(), "/ws" | "/api/prices" | "/health") || is_price) {
        return http::error(&ApiError::NotFound(format!(
            "no route for {}; see / for the dashboard and README for the API",
            crate::core::protocol::truncate(&path, 64)
        )));
    }
    if req.method() != Method::Get {
        return http::error(&ApiError::MethodNotAllowed(format!(
            "{path} answers GET only"
        )));
    }
    if path == "/ws" {
        let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
        if !upgrade.eq_ignore_ascii_case("websocket") {
            return http::error(&ApiError::UpgradeRequired(
                "/ws is a WebSocket endpoint; connect with a WebSocket client".into(),
            ));
        }
        return leader(env, cfg)?.fetch_with_request(req).await;
    }
    if path == "/health" {
        return leader(env, cfg)?
            .fetch_with_str("https://leader/health")
            .await;
    }
    if is_price {
        let raw = percent_decode(&path["/api/prices/".len()..]);
        let Some(symbol) = cfg.symbols.resolve(&raw) else {
            return http::error(&ApiError::UnknownSymbol(format!(
                "{:?} is not a served symbol",
                crate::core::protocol::truncate(&raw, 24)
            )));
        };
        let target = format!("https://leader/prices/{symbol}");
        return leader(env, cfg)?.fetch_with_str(&target).await;
    }
    let requested = url
        .query_pairs()
        .find(|(k, _)| k == "symbols" || k == "pairs")
        .map(|(_, v)| v.into_owned());
    let target = match requested {
        None => "https://leader/prices".to_string(),
        Some(raw) => match parse_symbol_query(cfg, &raw) {
            Ok(list) => format!("https://leader/prices?symbols={}", list.join(",")),
            Err(e) => return http::error(&e),
        },
    };
    leader(env, cfg)?.fetch_with_str(&target).await
}
