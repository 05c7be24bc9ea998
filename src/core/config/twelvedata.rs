//! Twelve Data's variables: `TWELVEDATA_SYMBOLS` (its symbols, in its own spelling),
//! `TWELVEDATA_API_KEY` (a secret: required with symbols, never logged or reported) and
//! `TWELVEDATA_URL`. Without symbols the source is off.

use crate::core::error::ConfigError;
use crate::core::feed::twelvedata::frames;
use crate::core::ids::SourceId;
use crate::core::symbol::Whitelist;

/// Twelve Data's price WebSocket.
pub const DEFAULT_URL: &str = "wss://ws.twelvedata.com/v1/quotes/price";

/// Symbols it may serve at most (one connection's streams).
const MAX_SYMBOLS: usize = frames::MAX_STREAMS;

/// Twelve Data, when it is on.
#[derive(Clone, PartialEq, Eq)]
pub struct TwelveDataConfig {
    /// The API key its connections present.
    pub api_key: String,
    /// Its endpoint.
    pub url: String,
    /// `TWELVEDATA_HEARTBEAT_SECONDS`: how often the heartbeat goes (Twelve Data asks for
    /// one every 10 s; a closed market answers only those).
    pub heartbeat_ms: i64,
}

impl std::fmt::Debug for TwelveDataConfig {
    /// The key is a secret: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TwelveDataConfig {{ url: {:?} }}", self.url)
    }
}

fn refuse(name: &'static str, value: &str, problem: String) -> ConfigError {
    ConfigError {
        name,
        value: value.to_string(),
        problem,
    }
}

/// Reads the variables, adding its symbols to `served` (a symbol another source serves
/// under the same letters is refused: a client could not tell which one it asks for).
pub fn parse(
    (symbols, api_key, url): (Option<String>, Option<String>, Option<String>),
    heartbeat_ms: i64,
    served: &mut Whitelist,
) -> Result<Option<TwelveDataConfig>, ConfigError> {
    let Some(raw) = symbols else {
        return Ok(None);
    };
    let Some(api_key) = api_key else {
        let why = "Twelve Data needs TWELVEDATA_API_KEY (a secret) with TWELVEDATA_SYMBOLS";
        return Err(refuse("TWELVEDATA_API_KEY", "", why.into()));
    };
    let named: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if named.is_empty() || named.len() > MAX_SYMBOLS {
        let why = format!("expected 1 to {MAX_SYMBOLS} comma-separated symbols");
        return Err(refuse("TWELVEDATA_SYMBOLS", &raw, why));
    }
    for s in named {
        let Some(symbol) = frames::symbol(s) else {
            let why = format!("{s:?} is not a symbol such as AAPL or EUR/USD");
            return Err(refuse("TWELVEDATA_SYMBOLS", &raw, why));
        };
        if let Err(held) = served.add(symbol.clone(), SourceId::TwelveData) {
            let why = format!("{symbol} is also served as {held}: a name may come from one source");
            return Err(refuse("TWELVEDATA_SYMBOLS", &raw, why));
        }
    }
    let url = url.unwrap_or_else(|| DEFAULT_URL.into());
    let url = url.trim().trim_end_matches('/').to_string();
    if !crate::core::text::is_socket_url(&url) {
        let why = "expected a ws:// or wss:// URL without a query".to_string();
        return Err(refuse("TWELVEDATA_URL", &url, why));
    }
    Ok(Some(TwelveDataConfig {
        api_key,
        url,
        heartbeat_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served() -> Whitelist {
        Whitelist::new(["BTCUSDT".to_string()])
    }

    #[test]
    fn symbols_keep_their_spelling_and_need_a_key() {
        let mut wl = served();
        let vars = (Some("aapl, EUR/USD".into()), Some("k".into()), None);
        let td = parse(vars, 10_000, &mut wl).unwrap();
        let td = td.unwrap();
        assert_eq!(td.url, DEFAULT_URL);
        assert!(
            !format!("{td:?}").contains("\"k\""),
            "the key is never printed"
        );
        assert_eq!(wl.resolve("eur/usd").as_deref(), Some("EUR/USD"));
        assert_eq!(wl.source_of("AAPL"), Some(SourceId::TwelveData));
        let off = (None, Some("k".into()), None);
        assert_eq!(parse(off, 10_000, &mut served()), Ok(None));
        let keyless = (Some("AAPL".into()), None, None);
        let e = parse(keyless, 10_000, &mut served()).unwrap_err();
        assert_eq!(e.name, "TWELVEDATA_API_KEY");
    }

    #[test]
    fn a_name_in_two_sources_is_refused_at_start() {
        let vars = (Some("BTC/USDT".into()), Some("k".into()), None);
        let e = parse(vars, 10_000, &mut served()).unwrap_err();
        assert_eq!(e.name, "TWELVEDATA_SYMBOLS");
        assert!(
            e.problem.contains("also served as BTCUSDT"),
            "{}",
            e.problem
        );
        for (symbols, url) in [("A B", None), (",", None), ("AAPL", Some("http://x"))] {
            let vars = (
                Some(symbols.into()),
                Some("k".into()),
                url.map(String::from),
            );
            let r = parse(vars, 10_000, &mut served());
            assert!(r.is_err(), "{symbols} {url:?}");
        }
    }
}
