//! Binance's REST endpoints the history needs: `GET /api/v3/klines` and the USDⓈ-M
//! `GET /fapi/v1/openInterest`, with their faults (`POST /control/rest?status=429&
//! retry_after=2&count=3`, `slow_ms=…`, `status=0` to stop): refusals with `Retry-After`, 5xx,
//! slow answers, and the request weight Binance reports in `X-MBX-USED-WEIGHT-1M`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{lock, now_ms, Exchange};
use crate::klines::{open_interest, KlinesQuery};

/// A fault of the REST endpoints.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RestFault {
    /// Answer this status (0: none).
    pub status: u16,
    /// With this `Retry-After` (seconds).
    pub retry_after: Option<u64>,
    /// For this many requests (none: until cleared).
    pub remaining: Option<u64>,
    /// Answer this much later.
    pub slow_ms: u64,
}

/// The fault to apply to one request, counted.
fn take_fault(ex: &Exchange) -> RestFault {
    let mut faults = lock(&ex.faults);
    let f = faults.rest;
    if f.status != 0 {
        if let Some(n) = faults.rest.remaining.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                faults.rest.status = 0;
            }
        }
    }
    f
}

/// Applies a fault: the refusal to answer instead, after the delay.
async fn faulted(ex: &Exchange) -> Option<Response> {
    let f = take_fault(ex);
    lock(&ex.stats).rest_requests += 1;
    if f.slow_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.slow_ms)).await;
    }
    if f.status == 0 {
        return None;
    }
    lock(&ex.stats).rest_refused += 1;
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    if let Some(s) = f.retry_after {
        headers.insert("Retry-After", HeaderValue::from(s));
    }
    let body = Json(json!({"code": -1003, "msg": "Too many requests; fake exchange fault."}));
    Some((status, headers, body).into_response())
}

/// `GET /api/v3/klines?symbol=&interval=&startTime=&endTime=&limit=`.
pub(super) async fn klines(
    State(ex): State<Arc<Exchange>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = faulted(&ex).await {
        return refused;
    }
    let number = |k: &str| q.get(k).and_then(|v| v.parse::<i64>().ok());
    let query = KlinesQuery {
        symbol: q
            .get("symbol")
            .cloned()
            .unwrap_or_default()
            .to_ascii_uppercase(),
        interval: q.get("interval").cloned().unwrap_or_default(),
        start: number("startTime"),
        end: number("endTime"),
        limit: number("limit").map(|l| l.max(1) as usize),
    };
    let rows = {
        let market = lock(&ex.market);
        lock(&ex.history).klines(&market, &query, now_ms())
    };
    match rows {
        Some(rows) if !query.symbol.is_empty() => {
            let mut headers = HeaderMap::new();
            headers.insert("X-MBX-USED-WEIGHT-1M", HeaderValue::from(2u32));
            (headers, Json(rows)).into_response()
        }
        _ => {
            let body = json!({"code": -1120, "msg": "Invalid interval."});
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}

/// `GET /fapi/v1/openInterest?symbol=`.
pub(super) async fn open_interest_of(
    State(ex): State<Arc<Exchange>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    lock(&ex.stats).open_interest_requests += 1;
    if let Some(refused) = faulted(&ex).await {
        return refused;
    }
    match q.get("symbol").map(|s| s.to_ascii_uppercase()) {
        Some(s) if !s.is_empty() => {
            let mut body = open_interest(&s, now_ms());
            if let (Some(held), Some(obj)) = (
                lock(&ex.faults).open_interest.get(&s).cloned(),
                body.as_object_mut(),
            ) {
                obj.insert("openInterest".into(), json!(held));
            }
            Json(body).into_response()
        }
        _ => {
            let body = json!({"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent."});
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}
