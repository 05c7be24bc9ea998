//! `/api/stream`'s request: symbols and channels, each list counted before it is read, and
//! the id a reconnecting reader resumes from.

use super::object::ObjectRequest;
use super::query::{find, parse_symbols_capped, presented_token, Incoming};
use crate::core::channel;
use crate::core::config::Config;
use crate::core::cursor;
use crate::core::error::ApiError;
use crate::core::rest;

/// `/api/stream`: its symbols (capped before they are looked at) and where it resumes.
pub(super) fn route(
    cfg: &Config,
    req: &Incoming<'_>,
    params: Vec<(String, String)>,
) -> Result<ObjectRequest, ApiError> {
    let allowed = [
        "symbols",
        "pairs",
        "channels",
        "token",
        "lastEventId",
        "last_event_id",
    ];
    rest::check_params(params, &allowed)?;
    let raw = find(req, &["symbols", "pairs"]).unwrap_or_default();
    let raw_channels = find(req, &["channels"]).unwrap_or_default();
    if raw.trim().is_empty() && raw_channels.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "symbols= or channels= is required, e.g. /api/stream?symbols=BTCUSDT,ETHUSDT".into(),
        ));
    }
    let channels = stream_channels(cfg, &raw_channels)?;
    let symbols = if raw.trim().is_empty() {
        Vec::new()
    } else {
        parse_symbols_capped(
            cfg,
            &raw,
            cfg.max_symbols_per_connection - channels.len().min(cfg.max_symbols_per_connection),
        )?
    };
    // EventSource resends the last `id:` as a header; polyfills often as a parameter.
    let last = req
        .last_event_id
        .map(str::to_string)
        .or_else(|| find(req, &["lastEventId", "last_event_id"]));
    let last = match last.map(|v| v.trim().to_string()) {
        Some(id) if cursor::well_formed(&id) => Some(id),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "Last-Event-ID must be an id this stream sent (digits, letters and _)".into(),
            ))
        }
        None => None,
    };
    // With JWT_SECRET the object learns whose stream it is from the token (checked above).
    let token = cfg
        .jwt_secret
        .as_ref()
        .and_then(|_| presented_token(req.authorization, req.query))
        .map(str::to_string);
    Ok(ObjectRequest::Stream {
        symbols,
        channels,
        last,
        token,
    })
}

/// The `channels=` of a stream: counted first, then each resolved (all or nothing).
pub fn stream_channels(cfg: &Config, raw: &str) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let cap = cfg.max_symbols_per_connection;
    if names.len() > cap {
        return Err(ApiError::TooManySymbols(format!(
            "a stream may carry at most {cap} symbols and channels; {} were asked for",
            names.len()
        )));
    }
    channel::resolve_all(cfg, &names).map_err(|e| ApiError::UnknownChannel(e.message))
}
