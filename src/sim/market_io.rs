//! What the exchange does with market channels in the simulation (see [`super::markets`]):
//! a trade or a new book version, sent in order on its connection.

use super::markets::MARKETS;
use super::world::{in_order, Event, World};
use crate::core::feed::neutral;

impl World {
    /// Whether this seed streams market channels.
    pub fn with_markets(&self) -> bool {
        self.cfg.twelvedata.is_some()
    }

    /// A market channel drawn at random.
    pub fn any_market(&mut self) -> String {
        MARKETS[self.rng.below(MARKETS.len())].to_string()
    }

    /// A new trade or book version of `channel` at the exchange, sent on its connection if
    /// it has one (it streams every channel; the leader keeps those it follows).
    pub fn market_tick(&mut self, channel: &str) {
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
