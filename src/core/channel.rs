//! Channel names (DESIGN §9): what a client can follow besides a symbol's price.
//!
//! A subscription is a string key in one client table: a canonical symbol (`BTCUSDT`, its
//! price channel) or a channel name with a kind prefix (`events:signals`). Symbols never
//! contain `:`, so the two never collide and one index serves both.

use super::config::Config;
use super::error::{ClientError, ErrorCode};
use super::protocol::truncate;

/// The prefix of the application's event channels.
pub const EVENTS: &str = "events:";

/// True for a subscription key that is a symbol's price channel.
pub fn is_symbol(key: &str) -> bool {
    !key.contains(':')
}

/// True for an event channel's key.
pub fn is_event_channel(key: &str) -> bool {
    key.starts_with(EVENTS)
}

/// A channel name's last part: 1 to 64 of `a-z`, `0-9`, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The canonical name of a channel this service serves, or `UNKNOWN_CHANNEL`.
pub fn resolve(cfg: &Config, raw: &str) -> Result<String, ClientError> {
    if let Some(name) = raw.strip_prefix(EVENTS) {
        if cfg.events.channels.iter().any(|c| c == name) {
            return Ok(raw.to_string());
        }
    }
    let served: Vec<String> = cfg
        .events
        .channels
        .iter()
        .map(|c| format!("{EVENTS}{c}"))
        .collect();
    Err(ClientError::new(
        ErrorCode::UnknownChannel,
        format!(
            "unknown channel {:?}; served: {}",
            truncate(raw, 80),
            served.join(", ")
        ),
    ))
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
        assert!(resolve(&c, "trades:BTCUSDT").is_err());
        let all = resolve_all(&c, &["events:alerts".into(), "events:alerts".into()]).unwrap();
        assert_eq!(all, ["events:alerts"], "named twice, held once");
    }

    #[test]
    fn keys_tell_symbols_from_channels() {
        assert!(is_symbol("BTCUSDT") && !is_symbol("events:signals"));
        assert!(is_event_channel("events:signals") && !is_event_channel("BTCUSDT"));
        assert!(valid_name("risk_events-2") && !valid_name("") && !valid_name("A"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
