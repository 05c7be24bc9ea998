//! What the edge reads of an HTTP request, and the readers of its parts shared by every
//! route: query parameters, the presented token (compared in constant time) and symbol
//! lists, each counted before it is read.

use crate::core::config::Config;
use crate::core::error::ApiError;
use crate::core::symbol::canonical;
pub use crate::core::text::token_matches;
use crate::core::text::truncate;

/// A request's URL as the runtime hands it over (serialised the WHATWG way), split into its
/// origin, path and query without a URL parser: a serialised `http(s)` URL is always
/// `scheme://host[:port]`, then a path that starts with `/` (never empty), then `?query`
/// and `#fragment`, and within the path `?` and `#` are percent-encoded. Parsing every
/// request's URL whole cost more than anything else the edge does per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Href<'a> {
    /// `scheme://host[:port]`.
    pub origin: &'a str,
    /// The path, still percent-encoded (as routes are matched).
    pub path: &'a str,
    /// The query, without its `?`, still encoded.
    pub query: &'a str,
}

impl<'a> Href<'a> {
    /// Splits a serialised URL (a path alone, `/a?b`, splits too, with no origin).
    pub fn split(href: &'a str) -> Href<'a> {
        let href = href.split_once('#').map_or(href, |(h, _)| h);
        let (origin, rest) = match href.find("://") {
            Some(i) => {
                let at = href[i + 3..]
                    .find(['/', '?'])
                    .map_or(href.len(), |j| i + 3 + j);
                href.split_at(at)
            }
            None => ("", href),
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = if path.is_empty() { "/" } else { path };
        Href {
            origin,
            path,
            query,
        }
    }

    /// The query's pairs, decoded as a form's (`+` is a space).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// What the edge reads of an HTTP request.
#[derive(Debug, Clone, Default)]
pub struct Incoming<'a> {
    /// `GET`, `HEAD`, `OPTIONS`, ...
    pub method: &'a str,
    /// The URL's path.
    pub path: &'a str,
    /// The URL's query pairs, decoded.
    pub query: &'a [(String, String)],
    /// The `Upgrade` header.
    pub upgrade: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `Last-Event-ID` header.
    pub last_event_id: Option<&'a str>,
    /// Now (epoch ms): a JWT's `exp` is checked against it.
    pub now_ms: i64,
}

/// The value of the first query parameter named one of `names`.
pub(super) fn find(req: &Incoming<'_>, names: &[&str]) -> Option<String> {
    req.query
        .iter()
        .find(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, v)| v.clone())
}

/// The token a request presents: `Authorization: Bearer`, else `?token=`.
pub fn presented_token<'a>(
    authorization: Option<&'a str>,
    query: &'a [(String, String)],
) -> Option<&'a str> {
    bearer(authorization).or_else(|| query_token(query))
}

/// The token of an `Authorization: Bearer` header.
pub(super) fn bearer(authorization: Option<&str>) -> Option<&str> {
    // The scheme is case-insensitive (RFC 7235): `Bearer`, `bearer`, `BEARER`.
    let (scheme, token) = authorization?.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The `?token=` parameter.
pub(super) fn query_token(query: &[(String, String)]) -> Option<&str> {
    query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
}

/// Whether the request presents the token, as `Authorization: Bearer` or `?token=`, compared
/// in constant time. The token is never logged.
pub(super) fn authorized(req: &Incoming<'_>, expected: &str) -> bool {
    bearer(req.authorization)
        .into_iter()
        .chain(query_token(req.query))
        .any(|given| token_matches(expected, given))
}

/// Parses a REST `symbols=` list against the whitelist (shared by the Worker and the leader).
pub fn parse_symbol_query(cfg: &Config, raw: &str) -> Result<Vec<String>, ApiError> {
    parse_symbols_capped(cfg, raw, usize::MAX)
}

/// Parses the `symbols=` list of a stream: like [`parse_symbol_query`], but a list longer than
/// `MAX_SYMBOLS_PER_CONNECTION` is refused `TOO_MANY_SYMBOLS` before any name is looked at.
pub fn parse_stream_symbols(cfg: &Config, raw: &str) -> Result<Vec<String>, ApiError> {
    parse_symbols_capped(cfg, raw, cfg.max_symbols_per_connection)
}

/// Caps before content: the count is checked first, so an oversized request costs nothing
/// and always gets the same answer whatever names it carries.
pub(super) fn parse_symbols_capped(
    cfg: &Config,
    raw: &str,
    cap: usize,
) -> Result<Vec<String>, ApiError> {
    let named = raw.split(',').filter(|s| !s.trim().is_empty()).count();
    if named > cap {
        return Err(ApiError::TooManySymbols(format!(
            "a stream may carry at most {cap} symbols; {named} were asked for"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for s in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(c) = cfg.symbols.resolve(s) else {
            return Err(match canonical(s) {
                Some(c) => ApiError::UnknownSymbol(format!("{c} is not served")),
                None => ApiError::BadRequest(format!(
                    "{:?} is not a symbol such as BTCUSDT",
                    truncate(s, 24)
                )),
            });
        };
        if !out.contains(&c) {
            out.push(c);
        }
    }
    if out.is_empty() {
        return Err(ApiError::BadRequest(
            "symbols= must name at least one symbol, e.g. symbols=BTCUSDT,ETHUSDT".into(),
        ));
    }
    Ok(out)
}
