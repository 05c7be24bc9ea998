//! What Twelve Data does in the simulation (see [`super::twelve`]): its connection opening,
//! its answers to the leader's requests, its prices, garbage and dropped connections.

use super::twelve::price_frame;
use super::world::{in_order, Event, World};
use crate::core::ids::SourceId;
use crate::core::input::UpstreamEvent;

impl World {
    /// True when `symbol` is Twelve Data's.
    pub fn is_td(&self, symbol: &str) -> bool {
        self.cfg
            .symbols
            .source_of(symbol)
            .is_some_and(|s| s == SourceId::TwelveData)
    }

    /// Every served symbol: the exchange's, then Twelve Data's.
    pub fn symbols(&self) -> Vec<String> {
        self.cfg.symbols.iter().cloned().collect()
    }

    /// A frame of Twelve Data on `conn`, in order after the ones before it.
    fn td_send(&mut self, conn: u64, frame: String) {
        if self.td.stalled == Some(conn) {
            return;
        }
        let at = self.now + self.delay();
        let when = in_order(&mut self.td.last, conn, at);
        self.push(when, Event::Td(conn, Some(frame)));
    }

    /// Twelve Data accepts connection `generation` a moment from now.
    pub(super) fn td_connect(&mut self, generation: u64) {
        let at = self.now + self.delay();
        self.push(at, Event::Td(generation, None));
    }

    /// The leader closed connection `generation`.
    pub(super) fn td_closed(&mut self, generation: u64) {
        if self.td.conn == Some(generation) {
            self.td.conn = None;
            self.td.subscribed.clear();
        }
    }

    /// A request of the leader on connection `generation`: subscribe, unsubscribe, reset or
    /// heartbeat, answered as the service answers them.
    pub(super) fn td_request(&mut self, generation: u64, text: &str) {
        if self.td.conn != Some(generation) {
            return;
        }
        let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let names: Vec<String> = v["params"]["symbols"]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let answer = match v["action"].as_str().unwrap_or_default() {
            "subscribe" => {
                self.td.subscribed.extend(names.iter().cloned());
                let success: Vec<_> = names
                    .iter()
                    .map(|s| serde_json::json!({"symbol": s}))
                    .collect();
                serde_json::json!({"event": "subscribe-status", "status": "ok", "success": success, "fails": []})
            }
            "unsubscribe" => {
                names.iter().for_each(|s| {
                    self.td.subscribed.remove(s);
                });
                serde_json::json!({"event": "unsubscribe-status", "status": "ok"})
            }
            "reset" => {
                self.td.subscribed.clear();
                serde_json::json!({"event": "reset-status", "status": "ok"})
            }
            _ => serde_json::json!({"event": "heartbeat", "status": "ok"}),
        };
        self.td_send(generation, answer.to_string());
    }

    /// Connection `generation` opened, or a frame on it arrived.
    pub(super) fn td_event(&mut self, generation: u64, frame: Option<String>, jitter: f64) {
        let now = self.now;
        let event = match &frame {
            None => {
                self.td.conn = Some(generation);
                self.td.subscribed.clear();
                UpstreamEvent::Opened { generation }
            }
            Some(text) => UpstreamEvent::Text { generation, text },
        };
        let fx = self
            .leader
            .upstream(SourceId::TwelveData, event, now, jitter);
        self.leader_effects(fx);
    }

    /// `symbol` moves: a price stamped with this whole second (never before its last), sent
    /// if the symbol is subscribed on an open connection.
    pub(super) fn td_tick(&mut self, symbol: &str) {
        let last_at = self.exchange.prices.get(symbol).map_or(0, |p| p.1);
        let at = (self.now / 1_000 * 1_000).max(last_at);
        let units = self.rng.between(1_000_000, 2_000_000);
        let price = format!("{}.{:04}", units / 10_000, units % 10_000);
        self.exchange
            .prices
            .insert(symbol.to_string(), (price.clone(), at));
        let Some(conn) = self.td.conn.filter(|_| self.td.subscribed.contains(symbol)) else {
            return;
        };
        let frame = price_frame(symbol, &price, at / 1_000);
        self.td_send(conn, frame);
    }

    /// Twelve Data sends something that is not a good price: text that is not JSON, a frame
    /// cut short, a symbol it was not asked for, a price that is not a number, an error.
    pub(super) fn td_garbage(&mut self, symbol: &str) {
        let Some(conn) = self.td.conn else {
            return;
        };
        let good = price_frame(symbol, "1.5", self.now / 1_000);
        let frame = match self.rng.below(5) {
            0 => "not json {".to_string(),
            1 => good[..self.rng.below(good.len())].to_string(),
            2 => price_frame("MSFT", "1.5", self.now / 1_000),
            3 => good.replace("\"price\":1.5", "\"price\":\"a lot\""),
            _ => r#"{"event":"message-processing","status":"error","messages":["sim"]}"#.into(),
        };
        self.trace(|| format!("Twelve Data sends garbage: {frame}"));
        self.td_send(conn, frame);
    }

    /// Twelve Data drops its connection.
    pub(super) fn td_drop(&mut self) {
        if let Some(generation) = self.td.conn.take() {
            self.td.subscribed.clear();
            self.dropped(SourceId::TwelveData, generation);
        }
    }
}
