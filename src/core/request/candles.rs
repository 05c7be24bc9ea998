//! `GET /api/candles?symbol=&interval=&limit=`: a Binance symbol's closed candles of one
//! interval, checked at the edge so only a valid read reaches the leader.

use super::find;
use super::query::Incoming;
use super::ObjectRequest;
use crate::core::channel::INTERVALS;
use crate::core::config::Config;
use crate::core::error::ApiError;
use crate::core::ids::SourceId;
use crate::core::rest;
use crate::core::text::truncate;

/// Reads the query: a symbol Binance serves here, an interval of the candle channels, and
/// a `limit` from 1 to `CANDLE_HISTORY` (all of it by default).
pub(super) fn route(cfg: &Config, req: &Incoming<'_>) -> Result<ObjectRequest, ApiError> {
    rest::check_params(req.query.to_vec(), &["symbol", "interval", "limit"])?;
    let raw = find(req, &["symbol"]).ok_or_else(|| {
        ApiError::BadRequest("symbol is required, e.g. ?symbol=BTCUSDT&interval=1m".into())
    })?;
    let symbol = cfg
        .symbols
        .resolve_of(&raw, SourceId::Binance)
        .ok_or_else(|| {
            ApiError::UnknownSymbol(format!(
                "{:?} is not a served Binance symbol (candles come from Binance)",
                truncate(&raw, 24)
            ))
        })?;
    let interval = find(req, &["interval"]).unwrap_or_else(|| "1m".into());
    if !INTERVALS.contains(&interval.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "interval {:?} is not one of {}",
            truncate(&interval, 8),
            INTERVALS.join(", ")
        )));
    }
    let most = cfg.history.candles;
    let limit = match find(req, &["limit"]) {
        None => most,
        Some(l) => l
            .parse()
            .ok()
            .filter(|n| (1..=most).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be a whole number from 1 to {most}"))
            })?,
    };
    Ok(ObjectRequest::Candles {
        symbol,
        interval,
        limit,
    })
}
