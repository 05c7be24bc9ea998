//! JSON responses, and the single place an [`ApiError`] becomes an HTTP response.

use worker::{Headers, Response, Result};

use crate::core::error::ApiError;

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

/// A URL's query pairs, decoded and owned.
pub fn query_pairs(url: &worker::Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
