//! Payloads as Socket.IO packets, by namespace: what NestJS's `/prices` gateway and
//! Flask-SocketIO's `/` sent, so their clients read edgetick's unchanged. Prices become one
//! event per symbol (`priceUpdate` in `/prices`, `price_update` in `/`); channel payloads
//! become their events (`trades`, `candle`, `book`, `event`) with the JSON wire's frame as
//! the argument; answers to a client's event are its ack when it asked for one, and errors
//! without an ack are NestJS's `exception` event. Every packet is an Engine.IO `message`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::packet;
use crate::core::price::json_number as number;
use crate::core::text::iso8601;
use crate::core::wire::{json, Kind, Payload};

/// A Socket.IO session's namespace (one per connection: the seeds' clients each use one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Nsp {
    /// Opened, no namespace joined yet: nothing is sent.
    Pending,
    /// `/prices` (NestJS): rooms per symbol, `priceUpdate`, acks, `exception`.
    Prices,
    /// `/` (Flask-SocketIO): `price_update` of every broadcast symbol to everyone.
    Root,
}

impl Nsp {
    /// Its name in packets.
    pub fn name(self) -> &'static str {
        match self {
            Nsp::Pending | Nsp::Root => "/",
            Nsp::Prices => "/prices",
        }
    }

    /// The namespace a `CONNECT` names, when it is served.
    pub fn of(name: &str) -> Option<Nsp> {
        match name {
            "/" => Some(Nsp::Root),
            "/prices" => Some(Nsp::Prices),
            _ => None,
        }
    }
}

/// `payload` as the Engine.IO messages a client of `nsp` gets (none before it joined one).
pub fn frames(nsp: Nsp, p: Payload<'_>) -> Vec<String> {
    let name = nsp.name();
    let packets = match (nsp, p.kind) {
        (Nsp::Pending, _) => Vec::new(),
        (_, Kind::Prices | Kind::Snapshot) => prices(nsp, p.body),
        (_, Kind::Subscribed | Kind::Unsubscribed | Kind::Error) => answer(name, p),
        (_, Kind::Pong | Kind::Subscriptions) => Vec::new(),
        _ => vec![packet::event(name, p.kind.as_str(), &json::frame(p))],
    };
    packets.into_iter().map(|s| format!("4{s}")).collect()
}

#[derive(Deserialize)]
struct Prices<'a> {
    #[serde(borrow)]
    prices: Vec<PriceView<'a>>,
}

/// What the seeds' events carry of a `Price`.
#[derive(Deserialize)]
struct PriceView<'a> {
    symbol: &'a str,
    price: Option<&'a str>,
    change_pct: Option<&'a str>,
    event_time: Option<i64>,
    received_at: i64,
}

fn prices(nsp: Nsp, body: &str) -> Vec<String> {
    let Ok(list) = serde_json::from_str::<Prices<'_>>(body) else {
        return Vec::new();
    };
    let priced = list.prices.into_iter().filter(|p| p.price.is_some());
    priced
        .map(|p| {
            let ts = p.event_time.unwrap_or(p.received_at);
            let price = p.price.unwrap_or_default();
            match nsp {
                Nsp::Root => {
                    // A source that gives no change (Twelve Data's stream) says `null`.
                    let change = p.change_pct.map_or("null".into(), number);
                    let body = format!(
                        r#"{{"symbol":"{}","price":{},"percent_change":{},"timestamp":"{}"}}"#,
                        p.symbol,
                        number(price),
                        change,
                        iso8601(ts)
                    );
                    packet::event("/", "price_update", &body)
                }
                _ => {
                    let body = serde_json::json!({"symbol": p.symbol, "price": price, "ts": ts});
                    packet::event(nsp.name(), "priceUpdate", &body.to_string())
                }
            }
        })
        .collect()
}

/// The answer to a client's `subscribe` or `unsubscribe`: its ack when it asked for one
/// (`{"ok":true,"symbol":…}` or `{"ok":false,"code":…,"message":…}`); without one an error
/// is NestJS's `exception` event and a success says nothing.
fn answer(nsp: &str, p: Payload<'_>) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(p.body) else {
        return Vec::new();
    };
    let id = v.get("id").and_then(Value::as_u64);
    let reply = match p.kind {
        Kind::Error => serde_json::json!({
            "ok": false,
            "code": v.get("code"),
            "message": v.get("message"),
        }),
        _ => {
            let first = |k: &str| v.get(k).and_then(|l| l.get(0)).cloned();
            match (first("symbols"), first("channels")) {
                (Some(s), _) => serde_json::json!({"ok": true, "symbol": s}),
                (None, Some(c)) => serde_json::json!({"ok": true, "channel": c}),
                (None, None) => serde_json::json!({"ok": true}),
            }
        }
    };
    match (id, p.kind) {
        (Some(id), _) => vec![packet::ack(nsp, id, &reply.to_string())],
        (None, Kind::Error) => {
            let message = v.get("message").cloned().unwrap_or(Value::Null);
            let body = serde_json::json!({"status": "error", "message": message});
            vec![packet::event(nsp, "exception", &body.to_string())]
        }
        (None, _) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRICES: &str = r#"{"prices":[{"symbol":"BTCUSDT","price":"42350.50","change_pct":"-1.25","event_time":1703520000000,"received_at":1703520000005,"seq":3}]}"#;

    #[test]
    fn a_price_is_priceupdate_in_prices_and_price_update_in_root() {
        let p = Payload::new(Kind::Prices, PRICES);
        assert_eq!(
            frames(Nsp::Prices, p),
            [
                r#"42/prices,["priceUpdate",{"price":"42350.50","symbol":"BTCUSDT","ts":1703520000000}]"#
            ]
        );
        assert_eq!(
            frames(Nsp::Root, p),
            [
                r#"42["price_update",{"symbol":"BTCUSDT","price":42350.50,"percent_change":-1.25,"timestamp":"2023-12-25T16:00:00.000Z"}]"#
            ]
        );
        assert!(
            frames(Nsp::Pending, p).is_empty(),
            "nothing before a namespace is joined"
        );
    }

    #[test]
    fn answers_are_acks_or_nestjs_exceptions() {
        let ok = Payload::new(Kind::Subscribed, r#"{"symbols":["BTCUSDT"],"id":4}"#);
        assert_eq!(
            frames(Nsp::Prices, ok),
            [r#"43/prices,4[{"ok":true,"symbol":"BTCUSDT"}]"#]
        );
        let quiet = Payload::new(Kind::Subscribed, r#"{"symbols":["BTCUSDT"]}"#);
        assert!(frames(Nsp::Prices, quiet).is_empty());
        let bad = r#"{"code":"UNKNOWN_SYMBOL","message":"not served: DOGE","id":5}"#;
        assert_eq!(
            frames(Nsp::Prices, Payload::new(Kind::Error, bad)),
            [r#"43/prices,5[{"code":"UNKNOWN_SYMBOL","message":"not served: DOGE","ok":false}]"#]
        );
        let bare = r#"{"code":"UNKNOWN_SYMBOL","message":"not served: DOGE"}"#;
        assert_eq!(
            frames(Nsp::Prices, Payload::new(Kind::Error, bare)),
            [r#"42/prices,["exception",{"message":"not served: DOGE","status":"error"}]"#]
        );
    }

    #[test]
    fn channel_payloads_are_events_carrying_the_json_frame() {
        let trades = Payload::new(Kind::Trades, r#"{"channel":"trades:BTCUSDT","trades":[]}"#);
        assert_eq!(
            frames(Nsp::Prices, trades),
            [r#"42/prices,["trades",{"type":"trades","channel":"trades:BTCUSDT","trades":[]}]"#]
        );
    }

    #[test]
    fn numbers_come_from_the_text_and_dates_are_utc() {
        assert_eq!(number("0.001"), "0.001");
        assert_eq!(number("-1.25"), "-1.25");
        assert_eq!(number("12"), "12");
        assert_eq!(number("01.5"), r#""01.5""#);
        assert_eq!(number("1e5"), r#""1e5""#);
    }
}
