//! Market channel updates (docs/channels.md): trades, candles and the order book of one symbol, as
//! they travel from the feed to every fan-out.
//!
//! Each update is encoded once where it is read from the exchange: a trade as the object that
//! goes into a `trades` body's list, a candle or a book as its whole body (a payload every
//! wire frames its own way). Trades are
//! events (every one, in order); the open candle and the book are state (the newest
//! supersedes); a closed candle is an event that is also the channel's state until the next
//! candle opens.

use std::rc::Rc;

/// What an update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketKind {
    /// One trade of a `trades:` channel (the trade object).
    Trade,
    /// The open candle of a `candles:` channel (the whole body).
    Candle,
    /// A candle that closed: delivered once, never conflated away (the whole body).
    ClosedCandle,
    /// The top of the book of a `book:` channel (the whole body).
    Book,
    /// The heat map of a `heatmap:` channel (the whole body).
    Heatmap,
}

impl MarketKind {
    /// Its one-letter code on the leader→shard link.
    pub fn code(self) -> &'static str {
        match self {
            MarketKind::Trade => "t",
            MarketKind::Candle => "c",
            MarketKind::ClosedCandle => "x",
            MarketKind::Book => "b",
            MarketKind::Heatmap => "h",
        }
    }

    /// Reads a code back.
    pub fn of_code(code: &str) -> Option<MarketKind> {
        Some(match code {
            "t" => MarketKind::Trade,
            "c" => MarketKind::Candle,
            "x" => MarketKind::ClosedCandle,
            "b" => MarketKind::Book,
            "h" => MarketKind::Heatmap,
            _ => return None,
        })
    }

    /// True for the kinds that are a channel's state (what a new subscriber gets first).
    pub fn is_state(self) -> bool {
        !matches!(self, MarketKind::Trade)
    }
}

/// One update of one market channel.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketUpdate {
    /// Its channel, e.g. `trades:BTCUSDT`.
    pub channel: String,
    /// What it is.
    pub kind: MarketKind,
    /// Its encoding (see [`MarketKind`]).
    pub encoded: Rc<str>,
}

/// A `trades` body: every trade of `channel` gathered since its last frame, in order.
pub fn trades_body(channel: &str, trades: &[Rc<str>]) -> String {
    let body: usize = trades.iter().map(|t| t.len() + 1).sum();
    let mut out = String::with_capacity(body + channel.len() + 28);
    out.push_str(r#"{"channel":""#);
    out.push_str(channel);
    out.push_str(r#"","trades":["#);
    for (i, t) in trades.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(t);
    }
    out.push_str("]}");
    out
}

/// A candle as every wire and `/api/candles` carry it, `{"t","o","h","l","c","v","closed"}`:
/// the one encoder, so a candle read from the stream and one read from the REST klines are
/// the same bytes.
pub fn candle_json(t: i64, ohlcv: [&str; 5], closed: bool) -> String {
    let [o, h, l, c, v] = ohlcv;
    format!(r#"{{"t":{t},"o":"{o}","h":"{h}","l":"{l}","c":"{c}","v":"{v}","closed":{closed}}}"#)
}

/// A `candles:` channel's body: the channel and its candle.
pub fn candle_body(channel: &str, candle: &str) -> String {
    format!(r#"{{"channel":"{channel}","candle":{candle}}}"#)
}

/// The channel, open time and candle of a [`candle_body`] (the inverse of it).
pub fn candle_of_body(body: &str) -> Option<(&str, i64, &str)> {
    let rest = body.strip_prefix(r#"{"channel":""#)?;
    let (channel, rest) = rest.split_once(r#"","candle":"#)?;
    let candle = rest.strip_suffix('}')?;
    let t = candle
        .strip_prefix(r#"{"t":"#)?
        .split(',')
        .next()?
        .parse()
        .ok()?;
    Some((channel, t, candle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candle_body_reads_back() {
        let candle = candle_json(60_000, ["1.5", "2", "1", "1.75", "10"], true);
        let body = candle_body("candles:BTCUSDT:1m", &candle);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["candle"]["c"], "1.75");
        assert_eq!(v["candle"]["closed"], true);
        assert_eq!(
            candle_of_body(&body),
            Some(("candles:BTCUSDT:1m", 60_000, candle.as_str()))
        );
        assert_eq!(candle_of_body(r#"{"channel":"x","trades":[]}"#), None);
    }

    #[test]
    fn codes_round_trip_and_trades_gather_in_one_frame() {
        for k in [
            MarketKind::Trade,
            MarketKind::Candle,
            MarketKind::ClosedCandle,
            MarketKind::Book,
            MarketKind::Heatmap,
        ] {
            assert_eq!(MarketKind::of_code(k.code()), Some(k));
        }
        assert!(!MarketKind::Trade.is_state() && MarketKind::Book.is_state());
        let f = trades_body(
            "trades:BTCUSDT",
            &[r#"{"id":1}"#.into(), r#"{"id":2}"#.into()],
        );
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["channel"], "trades:BTCUSDT");
        assert_eq!(v["trades"][1]["id"], 2);
    }
}
