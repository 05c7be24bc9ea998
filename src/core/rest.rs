//! Decisions of the stateless REST edge: CORS, query validation and entity tags.
//!
//! The Worker runs in every location; these rules are pure so every isolate applies them
//! identically and the tests can pin them.

use super::config::Origins;
use super::error::ApiError;

/// What to do about a request's `Origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsDecision {
    /// No `Origin` header: not a browser cross-origin request; answer without CORS headers.
    NoOrigin,
    /// Allowed: send this `Access-Control-Allow-Origin` value.
    Allow(String),
    /// Refused: answer 403 `ORIGIN_NOT_ALLOWED`.
    Deny,
}

/// Decides CORS for a request from `origin` under `ALLOWED_ORIGINS`. A request from the
/// service's own origin (`own`, e.g. its dashboard: browsers send `Origin` on every WebSocket)
/// is same-origin and always allowed.
pub fn cors(allowed: &Origins, origin: Option<&str>, own: &str) -> CorsDecision {
    let Some(origin) = origin.map(str::trim).filter(|o| !o.is_empty()) else {
        return CorsDecision::NoOrigin;
    };
    if origin
        .trim_end_matches('/')
        .eq_ignore_ascii_case(own.trim_end_matches('/'))
    {
        return CorsDecision::NoOrigin;
    }
    match allowed {
        Origins::Any => CorsDecision::Allow("*".into()),
        Origins::List(list) => {
            let origin = origin.trim_end_matches('/');
            if list.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
                CorsDecision::Allow(origin.to_string())
            } else {
                CorsDecision::Deny
            }
        }
    }
}

/// The error for a refused origin (never echoes the origin back unescaped).
pub fn origin_refused() -> ApiError {
    ApiError::Forbidden("this origin is not in ALLOWED_ORIGINS".into())
}

/// Rejects query parameters a route does not take, naming the first one, so a typo such as
/// `symbol=` is an error rather than a silently ignored filter.
pub fn check_params(
    pairs: impl IntoIterator<Item = (String, String)>,
    allowed: &[&str],
) -> Result<(), ApiError> {
    for (k, _) in pairs {
        if !allowed.contains(&k.as_str()) {
            let known = if allowed.is_empty() {
                "this route takes no query parameters".to_string()
            } else {
                format!("allowed: {}", allowed.join(", "))
            };
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter {:?}; {known}",
                super::text::truncate(&k, 32)
            )));
        }
    }
    Ok(())
}

/// A weak entity tag for a set of prices: the same symbols at the same `seq` are the same
/// data, whatever `age_ms` says. FNV-1a, because it is tiny and stable across builds.
pub fn etag<'a>(versions: impl IntoIterator<Item = (&'a str, u64)>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (symbol, seq) in versions {
        feed(symbol.as_bytes());
        feed(b":");
        feed(&seq.to_le_bytes());
        feed(b",");
    }
    format!("W/\"{h:016x}\"")
}

/// True when `If-None-Match` names `etag` (weak comparison, lists and `*` understood).
pub fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(header) = if_none_match else {
        return false;
    };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// The `max-age` of a `Cache-Control` header, when it has one.
pub fn max_age_of(control: &str) -> Option<u32> {
    control
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.trim().parse().ok())
}

/// Where the Worker's answer to a REST read came from: counted per isolate for `/metrics`
/// and sent as `X-Edgetick-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSource {
    /// The isolate's memo.
    Memory,
    /// The location's Cache API.
    Cache,
    /// Another request's leader answer, waited for.
    Coalesced,
    /// The leader (a miss).
    Leader,
}

impl CacheSource {
    /// Every source, in the order they are counted.
    pub const ALL: [CacheSource; 4] = [
        CacheSource::Memory,
        CacheSource::Cache,
        CacheSource::Coalesced,
        CacheSource::Leader,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            CacheSource::Memory => "memory_hit",
            CacheSource::Cache => "cache_hit",
            CacheSource::Coalesced => "coalesced",
            CacheSource::Leader => "miss",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_by_configuration() {
        let list = Origins::List(vec!["https://app.example".into()]);
        let own = "http://127.0.0.1:8787";
        assert_eq!(cors(&list, None, own), CorsDecision::NoOrigin);
        assert_eq!(
            cors(&list, Some("http://127.0.0.1:8787"), own),
            CorsDecision::NoOrigin,
            "same origin"
        );
        assert_eq!(
            cors(&list, Some("https://app.example"), own),
            CorsDecision::Allow("https://app.example".into())
        );
        assert_eq!(
            cors(&list, Some("https://APP.example/"), own),
            CorsDecision::Allow("https://APP.example".into())
        );
        assert_eq!(
            cors(&list, Some("https://evil.example"), own),
            CorsDecision::Deny
        );
        assert_eq!(
            cors(&Origins::Any, Some("https://x"), own),
            CorsDecision::Allow("*".into())
        );
    }

    #[test]
    fn unknown_parameters_are_named() {
        let q = |k: &str| vec![(k.to_string(), "x".to_string())];
        assert!(check_params(q("symbols"), &["symbols", "pairs"]).is_ok());
        let e = check_params(q("symbol"), &["symbols", "pairs"]).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("\"symbol\""), "{e}");
        assert!(check_params(q("a"), &[])
            .unwrap_err()
            .to_string()
            .contains("no query"));
    }

    #[test]
    fn etags_follow_the_data_not_the_clock() {
        let a = etag([("BTCUSDT", 5), ("ETHUSDT", 7)]);
        assert_eq!(a, etag([("BTCUSDT", 5), ("ETHUSDT", 7)]));
        assert_ne!(a, etag([("BTCUSDT", 6), ("ETHUSDT", 7)]));
        assert_ne!(a, etag([("BTCUSDT", 5)]));
        assert!(a.starts_with("W/\""));
        assert!(etag_matches(Some(&a), &a));
        assert!(etag_matches(
            Some(&format!("\"zzz\", {}", a.trim_start_matches("W/"))),
            &a
        ));
        assert!(etag_matches(Some("*"), &a));
        assert!(!etag_matches(Some("W/\"0\""), &a));
        assert!(!etag_matches(None, &a));
    }
}
