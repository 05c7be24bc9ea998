//! Channel names (docs/channels.md, docs/events.md): what a client can follow besides a symbol's price.
//!
//! A subscription is a string key in one client table: a canonical symbol (`BTCUSDT`, its
//! price channel) or a channel name with a kind prefix: market channels from Binance
//! (`trades:BTCUSDT`, `candles:BTCUSDT:1m`, `book:BTCUSDT`) and the application's event
//! channels (`events:signals`). Symbols never contain `:`, so the kinds never collide and one
//! index serves them all.

use super::config::Config;
use super::error::{ClientError, ErrorCode};
use super::ids::SourceId;
use super::text::truncate;

/// The prefix of the application's event channels.
pub const EVENTS: &str = "events:";

/// The prefix of private event channels, `user:<id>:<name>` (one user's events).
pub const USER: &str = "user:";

/// Candle intervals served (Binance's `@kline_<interval>`).
pub const INTERVALS: [&str; 6] = ["1m", "5m", "15m", "1h", "4h", "1d"];

/// A served interval's length in ms, read from its name (a count and `m`, `h` or `d`), so
/// the names above are the one list of them.
pub fn interval_ms(interval: &str) -> Option<i64> {
    if !INTERVALS.contains(&interval) {
        return None;
    }
    let (count, unit) = interval.split_at(interval.len() - 1);
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        _ => 86_400_000,
    };
    Some(count.parse::<i64>().ok()? * unit_ms)
}

/// A market channel: one Binance stream of one symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Market {
    /// `trades:<S>` from `@aggTrade`: every trade, in order.
    Trades(String),
    /// `candles:<S>:<interval>` from `@kline_<interval>`: the open candle and each closed one.
    Candles(String, String),
    /// `book:<S>` from `@depth10@100ms`: the top 10 levels a side.
    Book(String),
    /// `heatmap:<S>`: the liquidation heat map the leader computes (no stream of its own).
    Heatmap(String),
}

impl Market {
    /// Reads a canonical market channel key.
    pub fn of(key: &str) -> Option<Market> {
        let mut parts = key.split(':');
        let (kind, symbol) = (parts.next()?, parts.next()?.to_string());
        let market = match (kind, parts.next()) {
            ("trades", None) => Market::Trades(symbol),
            ("book", None) => Market::Book(symbol),
            ("heatmap", None) => Market::Heatmap(symbol),
            ("candles", Some(i)) if INTERVALS.contains(&i) => Market::Candles(symbol, i.into()),
            _ => return None,
        };
        parts.next().is_none().then_some(market)
    }

    /// Its symbol.
    pub fn symbol(&self) -> &str {
        match self {
            Market::Trades(s) | Market::Candles(s, _) | Market::Book(s) | Market::Heatmap(s) => s,
        }
    }

    /// True when an upstream stream feeds it (the heat map is computed by the leader).
    pub fn has_stream(&self) -> bool {
        !matches!(self, Market::Heatmap(_))
    }

    /// Its key, e.g. `candles:BTCUSDT:1m`.
    pub fn key(&self) -> String {
        match self {
            Market::Trades(s) => format!("trades:{s}"),
            Market::Candles(s, i) => format!("candles:{s}:{i}"),
            Market::Book(s) => format!("book:{s}"),
            Market::Heatmap(s) => format!("heatmap:{s}"),
        }
    }
}

/// True for a market channel's key.
pub fn is_market(key: &str) -> bool {
    Market::of(key).is_some()
}

/// True for a key the upstream serves: a symbol or a market channel (not an event channel).
pub fn from_upstream(key: &str) -> bool {
    !is_event_channel(key)
}

/// True for a subscription key that is a symbol's price channel.
pub fn is_symbol(key: &str) -> bool {
    !key.contains(':')
}

/// True for an event channel's key (the application's, public or private).
pub fn is_event_channel(key: &str) -> bool {
    key.starts_with(EVENTS) || key.starts_with(USER)
}

/// A user id as `sub` and private channel names carry it: 1 to 64 of letters, digits,
/// `-`, `_`, `.` and `@` (never `:`).
pub fn valid_user(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// True for a private channel `user:<id>:<name>` whose name is on `EVENT_CHANNELS`.
pub fn is_private(cfg: &Config, key: &str) -> bool {
    let Some(rest) = key.strip_prefix(USER) else {
        return false;
    };
    match rest.split_once(':') {
        Some((id, name)) => valid_user(id) && cfg.events.channels.iter().any(|c| c == name),
        None => false,
    }
}

/// The canonical name of a channel this service serves, or `UNKNOWN_CHANNEL`. Market
/// channels take any accepted spelling of a whitelisted symbol (`trades:btc-usdt` is
/// `trades:BTCUSDT`).
pub fn resolve(cfg: &Config, raw: &str) -> Result<String, ClientError> {
    if let Some(name) = raw.strip_prefix(EVENTS) {
        if cfg.events.channels.iter().any(|c| c == name) {
            return Ok(raw.to_string());
        }
    } else if is_private(cfg, raw) {
        return Ok(raw.to_string());
    } else if let Some(market) = resolve_market(cfg, raw) {
        return Ok(market.key());
    }
    let events: Vec<String> = cfg
        .events
        .channels
        .iter()
        .map(|c| format!("{EVENTS}{c}"))
        .collect();
    Err(ClientError::new(
        ErrorCode::UnknownChannel,
        format!(
            "unknown channel {:?}; served: trades:<SYMBOL>, candles:<SYMBOL>:<{}>, book:<SYMBOL>, \
             heatmap:<SYMBOL> for Binance's symbols, {} and user:<id>:<name> for those names",
            truncate(raw, 80),
            INTERVALS.join("|"),
            events.join(", ")
        ),
    ))
}

fn resolve_market(cfg: &Config, raw: &str) -> Option<Market> {
    let (kind, rest) = raw.split_once(':')?;
    let (sym, interval) = match rest.split_once(':') {
        Some((s, i)) => (s, Some(i)),
        None => (rest, None),
    };
    // Market streams are Binance's: Twelve Data's price stream has no trades, candles or book.
    let symbol = cfg.symbols.resolve_of(sym, SourceId::Binance)?;
    match (kind, interval) {
        ("trades", None) => Some(Market::Trades(symbol)),
        ("book", None) => Some(Market::Book(symbol)),
        ("heatmap", None) => Some(Market::Heatmap(symbol)),
        ("candles", Some(i)) if INTERVALS.contains(&i) => Some(Market::Candles(symbol, i.into())),
        _ => None,
    }
}

/// Resolves a list of channel names, all or nothing.
pub fn resolve_all(cfg: &Config, raw: &[String]) -> Result<Vec<String>, ClientError> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for r in raw {
        let c = resolve(cfg, r)?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::text::valid_name;

    #[test]
    fn every_served_interval_has_its_length_and_nothing_else_has_one() {
        let ms: Vec<Option<i64>> = INTERVALS.iter().map(|i| interval_ms(i)).collect();
        let min = 60_000;
        let want = [1, 5, 15, 60, 240, 1_440].map(|m| Some(m * min));
        assert_eq!(ms, want);
        for other in ["2m", "", "m", "1w", "1M", "01m"] {
            assert_eq!(interval_ms(other), None, "{other:?}");
        }
    }

    fn cfg() -> Config {
        Config::from_lookup(|k| (k == "EVENT_CHANNELS").then(|| "signals,alerts".to_string()))
            .unwrap()
    }

    #[test]
    fn event_channels_resolve_against_the_whitelist() {
        let c = cfg();
        assert_eq!(resolve(&c, "events:signals").unwrap(), "events:signals");
        let e = resolve(&c, "events:nope").unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownChannel);
        assert!(e.message.contains("events:signals, events:alerts"));
        assert!(resolve(&c, "events:").is_err());
        let all = resolve_all(&c, &["events:alerts".into(), "events:alerts".into()]).unwrap();
        assert_eq!(all, ["events:alerts"], "named twice, held once");
    }

    #[test]
    fn market_channels_resolve_and_name_their_streams() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!(resolve(&c, "trades:btc-usdt").unwrap(), "trades:BTCUSDT");
        assert_eq!(
            resolve(&c, "candles:ETHUSDT:5m").unwrap(),
            "candles:ETHUSDT:5m"
        );
        assert_eq!(resolve(&c, "book:BTC/USDT").unwrap(), "book:BTCUSDT");
        for bad in [
            "trades:NOPEUSDT",
            "candles:BTCUSDT:2m",
            "candles:BTCUSDT",
            "book:BTCUSDT:1m",
        ] {
            assert_eq!(
                resolve(&c, bad).unwrap_err().code,
                ErrorCode::UnknownChannel,
                "{bad}"
            );
        }
        for key in ["trades:BTCUSDT", "candles:BTCUSDT:1h", "book:ETHUSDT"] {
            assert_eq!(Market::of(key).unwrap().key(), key);
        }
        assert!(Market::of("events:signals").is_none() && Market::of("BTCUSDT").is_none());
        assert!(from_upstream("book:BTCUSDT") && !from_upstream("events:signals"));
        assert!(is_market("trades:BTCUSDT") && !is_market("trades:BTCUSDT:1m"));
    }

    #[test]
    fn keys_tell_symbols_from_channels() {
        assert!(is_symbol("BTCUSDT") && !is_symbol("events:signals"));
        assert!(is_event_channel("events:signals") && !is_event_channel("BTCUSDT"));
        assert!(valid_name("risk_events-2") && !valid_name("") && !valid_name("A"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
