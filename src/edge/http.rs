//! JSON responses, the single place an [`ApiError`] becomes an HTTP response, and a request's
//! body read within a cap.

use wasm_bindgen::JsValue;
use worker::js_sys::Promise;
use worker::{web_sys, Headers, Response, Result};

use crate::core::error::ApiError;

/// A response (or the error in making it) as the runtime takes it from a handler that answers
/// without awaiting anything.
pub fn settled(answer: Result<Response>) -> Promise {
    match answer.map(web_sys::Response::from) {
        Ok(resp) => Promise::resolve(&JsValue::from(resp)),
        Err(e) => Promise::reject(&JsValue::from(e)),
    }
}

/// A JSON response with the given status. REST answers are not cacheable by browsers here;
/// edge caching is the Worker's decision, made explicitly.
pub fn json(status: u16, body: String) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json; charset=utf-8")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

/// A JSON response carrying an entity tag, for the edge to cache and revalidate.
pub fn json_tagged(status: u16, body: String, etag: &str) -> Result<Response> {
    let mut resp = json(status, body)?;
    resp.headers_mut().set("ETag", etag)?;
    Ok(resp)
}

/// The response for an error: status, `{"error","message"}` body and `Retry-After` when useful.
pub fn error(err: &ApiError) -> Result<Response> {
    let mut resp = json(err.status(), err.body())?;
    if let Some(secs) = err.retry_after() {
        resp.headers_mut().set("Retry-After", &secs.to_string())?;
    }
    Ok(resp)
}

/// A request's body, when it is at most `max` bytes: refused by its `Content-Length` before
/// it is read, and by its length after (`Err` carries the size found, for the answer).
pub async fn body_within(
    req: &mut worker::Request,
    max: usize,
) -> Result<std::result::Result<String, usize>> {
    let declared = req.headers().get("Content-Length")?;
    if let Some(len) = declared
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|len| *len > max)
    {
        return Ok(Err(len));
    }
    let body = req.text().await?;
    Ok(match body.len() > max {
        true => Err(body.len()),
        false => Ok(body),
    })
}

/// The answer to a CORS preflight: what a browser may send cross-origin.
pub fn preflight() -> Result<Response> {
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS")?;
    headers.set(
        "Access-Control-Allow-Headers",
        "Authorization, Content-Type, If-None-Match, Last-Event-ID",
    )?;
    headers.set("Access-Control-Max-Age", "600")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}
