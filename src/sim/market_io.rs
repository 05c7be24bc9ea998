//! What the exchange does with market channels in the simulation (see [`super::markets`]):
//! a trade, a new book version or a candle's update or close, sent in order on its
//! connection.

use super::markets::{candle_key, candle_parts, MARKETS, MINUTE};
use super::world::{in_order, Event, World};
use crate::core::feed::neutral;
use crate::core::market::{candle_body, candle_json};

impl World {
    /// Whether this seed streams market channels.
    pub fn with_markets(&self) -> bool {
        self.cfg.twelvedata.is_some()
    }

    /// A market channel drawn at random.
    pub fn any_market(&mut self) -> String {
        MARKETS[self.rng.below(MARKETS.len())].to_string()
    }

    /// A new trade, book version or candle update of `channel` at the exchange, sent on its
    /// connection if it has one (it streams every channel; the leader keeps those it
    /// follows).
    pub fn market_tick(&mut self, channel: &str) {
        if channel.starts_with("candles:") {
            let frame = self.candle_tick(channel);
            return self.market_send(frame);
        }
        let n = self
            .exchange
            .markets
            .entry(channel.to_string())
            .or_insert(0);
        *n += 1;
        let n = *n;
        self.trace(|| format!("market {channel} {n}"));
        let frame = match channel.starts_with("trades:") {
            true => neutral::market(channel, "t", &format!(r#"{{"id":{n},"p":"1.5"}}"#)),
            false => neutral::market(
                channel,
                "b",
                &format!(r#"{{"channel":"{channel}","version":{n}}}"#),
            ),
        };
        self.market_send(frame);
    }

    /// The candle's next update: now and then it closes, and after a close the next minute's
    /// opens. Its close price counts its updates; the exchange keeps its place
    /// ([`candle_key`]).
    fn candle_tick(&mut self, channel: &str) -> String {
        let close = self.rng.chance(0.3);
        let (t, closed, n) = match self.exchange.markets.get(channel).map(|&k| candle_parts(k)) {
            None => (MINUTE, false, 1),
            Some((t, true, _)) => (t + MINUTE, false, 1),
            Some((t, false, n)) => (t, close, if close { n } else { n + 1 }),
        };
        let key = candle_key(t, closed, n);
        self.exchange.markets.insert(channel.to_string(), key);
        self.trace(|| format!("market {channel} {t} {n} closed {closed}"));
        let price = n.to_string();
        let candle = candle_json(t, ["1", &price, "1", &price, "1"], closed);
        let kind = if closed { "x" } else { "c" };
        neutral::market(channel, kind, &candle_body(channel, &candle))
    }

    /// After the quiet end: one new client for each state channel (a book, a candle) some
    /// open client holds, subscribed to it, so that its first frame, the channel's current
    /// state, can be checked against the exchange's last (a channel nobody holds is not
    /// followed upstream, and its state comes with the next update).
    pub fn state_newcomers(&mut self) {
        let held: Vec<String> = (MARKETS.iter())
            .filter(|m| !m.starts_with("trades:"))
            .filter(|m| {
                self.clients
                    .iter()
                    .any(|c| c.open && c.channels.contains(**m))
            })
            .map(|m| m.to_string())
            .collect();
        for channel in held {
            let i = self.open_client();
            self.trace(|| format!("a newcomer for {channel}'s state"));
            self.ask(i, true, &[channel]);
        }
    }

    /// Sends a market frame on the exchange's connection, if it has one that is not stalled.
    fn market_send(&mut self, frame: String) {
        let Some(conn) = self
            .exchange
            .conn
            .filter(|c| self.exchange.stalled != Some(*c))
        else {
            return;
        };
        // In order on the connection, as a WebSocket delivers: a book carries no order of
        // its own, so a book overtaking the one before it would be the model's invention.
        let at = self.now + self.rng.between(0, 5);
        let when = in_order(&mut self.exchange.market_last, conn, at);
        self.push(when, Event::UpstreamText(conn, frame));
    }
}
