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
    let (channels, refused) = stream_channels(cfg, &raw_channels)?;
    let symbols = if raw.trim().is_empty() {
        Vec::new()
    } else {
        parse_symbols_capped(
            cfg,
            &raw,
            cfg.max_symbols_per_connection - channels.len().min(cfg.max_symbols_per_connection),
        )?
    };
    let last = last_event_id(req)?;
    // With JWT_SECRET the object learns whose stream it is from the token (checked above).
    let token = cfg
        .jwt_secret
        .as_ref()
        .and_then(|_| presented_token(req.authorization, req.query))
        .map(str::to_string);
    if symbols.is_empty() && channels.is_empty() {
        return Err(ApiError::UnknownChannel(format!(
            "none of the channels asked for is served: {}",
            refused.join(", ")
        )));
    }
    Ok(ObjectRequest::Stream {
        symbols,
        channels,
        refused,
        last,
        token,
    })
}

/// The id a returning reader resumes from: EventSource resends the last `id:` as a header,
/// polyfills often as a parameter.
fn last_event_id(req: &Incoming<'_>) -> Result<Option<String>, ApiError> {
    let last = req
        .last_event_id
        .map(str::to_string)
        .or_else(|| find(req, &["lastEventId", "last_event_id"]));
    match last.map(|v| v.trim().to_string()) {
        Some(id) if cursor::well_formed(&id) => Ok(Some(id)),
        Some(_) => Err(ApiError::BadRequest(
            "Last-Event-ID must be an id this stream sent (digits, letters and _)".into(),
        )),
        None => Ok(None),
    }
}

/// The `channels=` of a stream: counted first, then each resolved: the served ones, and the
/// names of those that are not (the stream opens with what is served and says the rest in a
/// `warning`; one URL with a name it cannot serve is not refused whole).
pub fn stream_channels(cfg: &Config, raw: &str) -> Result<(Vec<String>, Vec<String>), ApiError> {
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
    let (mut served, mut refused) = (Vec::new(), Vec::new());
    for name in names {
        match channel::resolve(cfg, &name) {
            Ok(c) if !served.contains(&c) => served.push(c),
            Ok(_) => {}
            Err(_) => refused.push(shown(&name)),
        }
    }
    Ok((served, refused))
}

/// A refused name as the stream reports it: what is safe in a query and a JSON string
/// (letters, digits, `:` `_` `-` `.` `/`), at most 64 characters.
fn shown(name: &str) -> String {
    let safe = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ":_-./".contains(*c));
    safe.take(64).collect()
}
