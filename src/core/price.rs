//! The `Price` record clients see, and how partial upstream updates merge into it.
//!
//! Prices and quantities stay the decimal strings Binance sent: no float ever touches them,
//! so a client sees exactly the digits the exchange published.

use serde::{Deserialize, Serialize};

use super::ids::SourceId;

/// Latest known state of one symbol (see docs/protocol.md). Fields the upstream never gave stay absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Price {
    /// Canonical symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Last traded / close price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// 24 h open price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<String>,
    /// 24 h high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<String>,
    /// 24 h low.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<String>,
    /// 24 h base-asset volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// 24 h quote-asset volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_volume: Option<String>,
    /// 24 h change in percent, as Binance computed it (only `@ticker` carries it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_pct: Option<String>,
    /// Best bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid: Option<String>,
    /// Best ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<String>,
    /// Exchange event time (ms), when the stream carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
    /// When the hub received the update (ms); freshness and TTL are measured from it.
    pub received_at: i64,
    /// Hub-wide sequence number; only grows, also across restarts.
    pub seq: u64,
    /// The source it comes from (`binance`, `twelvedata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceId>,
    /// Where it trades (`NASDAQ`), when the source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
    /// Its currency (`USD`), when the source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Its asset type (`Common Stock`, `Physical Currency`, `Digital Currency`), when the
    /// source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_type: Option<String>,
}

/// The fields one upstream frame carries. `None` means "this frame says nothing about it",
/// so merging never erases what another stream told us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriceFields {
    /// See [`Price::price`].
    pub price: Option<String>,
    /// See [`Price::open`].
    pub open: Option<String>,
    /// See [`Price::high`].
    pub high: Option<String>,
    /// See [`Price::low`].
    pub low: Option<String>,
    /// See [`Price::volume`].
    pub volume: Option<String>,
    /// See [`Price::quote_volume`].
    pub quote_volume: Option<String>,
    /// See [`Price::change_pct`].
    pub change_pct: Option<String>,
    /// See [`Price::bid`].
    pub bid: Option<String>,
    /// See [`Price::ask`].
    pub ask: Option<String>,
    /// See [`Price::event_time`].
    pub event_time: Option<i64>,
    /// See [`Price::source`] (the feed sets it).
    pub source: Option<SourceId>,
    /// See [`Price::exchange`].
    pub exchange: Option<String>,
    /// See [`Price::currency`].
    pub currency: Option<String>,
    /// See [`Price::asset_type`].
    pub asset_type: Option<String>,
}

impl PriceFields {
    /// Merges these fields into `price`; returns whether anything a client sees changed.
    /// Ordering (dropping frames older than what is held) is the cache's job, per stream.
    pub fn merge_into(&self, price: &mut Price) -> bool {
        let mut changed = false;
        let mut set = |slot: &mut Option<String>, value: &Option<String>| {
            if let Some(v) = value {
                if slot.as_deref() != Some(v.as_str()) {
                    *slot = Some(v.clone());
                    changed = true;
                }
            }
        };
        set(&mut price.price, &self.price);
        set(&mut price.open, &self.open);
        set(&mut price.high, &self.high);
        set(&mut price.low, &self.low);
        set(&mut price.volume, &self.volume);
        set(&mut price.quote_volume, &self.quote_volume);
        set(&mut price.change_pct, &self.change_pct);
        set(&mut price.bid, &self.bid);
        set(&mut price.ask, &self.ask);
        set(&mut price.exchange, &self.exchange);
        set(&mut price.currency, &self.currency);
        set(&mut price.asset_type, &self.asset_type);
        if self.source.is_some() && self.source != price.source {
            price.source = self.source;
            changed = true;
        }
        if self.event_time.is_some() && self.event_time != price.event_time {
            price.event_time = self.event_time;
            changed = true;
        }
        changed
    }
}

/// A decimal string as a JSON number, written from its text (never through a float); text
/// that is not a plain decimal stays a string.
pub fn json_number(text: &str) -> String {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let int = digits.split_once('.').map_or(digits, |(int, _)| int);
    // JSON numbers have no leading zeros (`007`), which a plain decimal may.
    let leading_zero = int.len() > 1 && int.starts_with('0');
    if is_decimal(text, true) && !leading_zero {
        text.to_string()
    } else {
        serde_json::json!(text).to_string()
    }
}

/// True for a plain decimal string such as `"10456.56000000"`; with `signed`, a leading `-`
/// is allowed (24 h change). Rejects exponents, blanks and anything a float formatter makes.
pub fn is_decimal(s: &str, signed: bool) -> bool {
    let digits = if signed {
        s.strip_prefix('-').unwrap_or(s)
    } else {
        s
    };
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_plain_digit_strings() {
        for ok in ["0", "10456.56000000", "0.001"] {
            assert!(is_decimal(ok, false), "{ok}");
        }
        for bad in ["", "-1", "1e5", "1.", ".5", "NaN", "1,5", " 1"] {
            assert!(!is_decimal(bad, false), "{bad}");
        }
        assert!(is_decimal("-2.50", true));
        assert!(!is_decimal("--2", true));
    }

    #[test]
    fn merge_keeps_fields_the_frame_does_not_carry() {
        let mut p = Price {
            symbol: "BTCUSDT".into(),
            price: Some("1.0".into()),
            bid: Some("0.9".into()),
            event_time: Some(10),
            ..Price::default()
        };
        let trade = PriceFields {
            price: Some("1.1".into()),
            event_time: Some(11),
            ..PriceFields::default()
        };
        assert!(trade.merge_into(&mut p));
        assert_eq!(p.price.as_deref(), Some("1.1"));
        assert_eq!(p.bid.as_deref(), Some("0.9"));
        assert_eq!(p.event_time, Some(11));
        // Same values again: nothing a client sees changed.
        assert!(!trade.merge_into(&mut p));
    }

    #[test]
    fn absent_fields_are_not_serialised() {
        let p = Price {
            symbol: "BTCUSDT".into(),
            price: Some("1.5".into()),
            received_at: 7,
            seq: 3,
            ..Price::default()
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"symbol":"BTCUSDT","price":"1.5","received_at":7,"seq":3}"#
        );
    }
}
