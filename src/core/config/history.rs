//! History's variables: `CANDLE_HISTORY` (closed candles kept per symbol and interval),
//! `BINANCE_REST_URL` (where klines are backfilled from, tried in order), `FUTURES_REST_URL`
//! (where the heat map reads open interest) and `HEATMAP_INTERVAL_SECONDS`.

use crate::core::error::ConfigError;

/// Binance's REST endpoints, tried in order (the second serves market data only, from
/// regions the first refuses).
pub const DEFAULT_REST: &str = "https://api.binance.com,https://data-api.binance.vision";

/// Binance's USDⓈ-M futures REST endpoint.
pub const DEFAULT_FUTURES: &str = "https://fapi.binance.com";

/// What the leader keeps of the past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// `CANDLE_HISTORY`: closed candles kept per symbol and interval.
    pub candles: usize,
    /// `BINANCE_REST_URL`: klines endpoints' bases, tried in order.
    pub rest_urls: Vec<String>,
    /// `FUTURES_REST_URL`: the open-interest endpoint's base.
    pub futures_url: String,
    /// `HEATMAP_INTERVAL_SECONDS`: how often a heat map is computed while someone listens.
    pub heatmap_interval_ms: i64,
}

/// True for what a REST base may be: an `http://` or `https://` URL with no query and no
/// whitespace (the path of each request is added to it).
fn is_rest_url(u: &str) -> bool {
    (u.starts_with("http://") || u.starts_with("https://"))
        && !u.contains('?')
        && !u.contains(char::is_whitespace)
}

/// Reads a comma-separated list of REST bases (trailing slashes dropped).
pub fn rest_urls(name: &'static str, raw: &str) -> Result<Vec<String>, ConfigError> {
    let urls = crate::core::text::comma_list(raw);
    match urls.iter().find(|u| !is_rest_url(u)) {
        None if !urls.is_empty() => Ok(urls),
        bad => Err(ConfigError {
            name,
            value: raw.to_string(),
            problem: match bad {
                Some(u) => format!("{u:?} is not an http:// or https:// URL without a query"),
                None => "names no endpoint, e.g. https://api.binance.com".into(),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_bases_are_http_urls_without_a_query() {
        let urls = rest_urls("BINANCE_REST_URL", DEFAULT_REST).unwrap();
        assert_eq!(urls.len(), 2);
        assert_eq!(
            rest_urls("X", " http://127.0.0.1:9001/ ").unwrap(),
            vec!["http://127.0.0.1:9001".to_string()]
        );
        for bad in [
            "",
            ",",
            "ftp://a",
            "https://a?x=1",
            "https://a b",
            "wss://a",
        ] {
            let e = rest_urls("BINANCE_REST_URL", bad).unwrap_err();
            assert_eq!(e.name, "BINANCE_REST_URL", "{bad}");
        }
    }
}
