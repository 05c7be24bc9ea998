//! Twelve Data's price WebSocket, for the tests of a second source: `/v1/quotes/price?apikey=`
//! with `subscribe` / `unsubscribe` / `reset` / `heartbeat` actions, `subscribe-status` with
//! `success` and `fails`, and `price` events whose `price` is a JSON number and `timestamp`
//! in seconds. Symbols keep Twelve Data's spelling (`EUR/USD`). The same fault controls as
//! Binance's streams apply (drop, stall, refuse, pause, quiet), and two of its own: a wrong
//! key (`--twelvedata-key`) is refused at the upgrade with 401, and `closed-market` silences
//! prices while heartbeats are still answered.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{lock, Exchange, Flavor, Out};
use crate::market::{fmt_units, SymbolState};

/// The symbols the fake lists when no `--twelvedata-symbols` is given: the seed's.
pub const DEFAULT_SYMBOLS: &str = "AAPL,MSFT,NVDA,SPY,EUR/USD,BTC/USD,ETH/USD";

/// `GET /v1/quotes/price?apikey=…`: the upgrade, refused like Binance's on demand, and with
/// 401 for a key that is not the configured one.
pub(super) async fn price_stream(
    State(ex): State<Arc<Exchange>>,
    Query(q): Query<HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let key_ok = match &ex.settings.twelvedata_key {
        Some(want) => q.get("apikey") == Some(want),
        None => true,
    };
    if !key_ok {
        ex.count_attempt();
        lock(&ex.stats).refused += 1;
        let body =
            json!({"status": "error", "code": 401, "message": "apikey is invalid or missing"});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    ex.upgrade(ws, Vec::new(), Flavor::TwelveData)
}

/// What kind of instrument a listed symbol is, as Twelve Data names it.
fn asset_type(symbol: &str) -> &'static str {
    match symbol.split_once('/') {
        Some(("BTC" | "ETH" | "SOL" | "XRP" | "DOGE", _)) => "Digital Currency",
        Some(_) => "Physical Currency",
        None if matches!(symbol, "SPY" | "QQQ" | "DIA") => "ETF",
        None => "Common Stock",
    }
}

/// Where a listed symbol trades, and in what currency.
fn venue(symbol: &str) -> (&'static str, &'static str) {
    match asset_type(symbol) {
        "Digital Currency" => ("Coinbase Pro", "USD"),
        "Physical Currency" => ("PHYSICAL CURRENCY", "USD"),
        "ETF" => ("NYSE", "USD"),
        _ => ("NASDAQ", "USD"),
    }
}

/// `42350.50000000` → `42350.5`: a JSON number as a JSON writer prints it.
fn number(units: u64) -> String {
    let text = fmt_units(units);
    match text.split_once('.') {
        Some((whole, frac)) if frac.trim_end_matches('0').is_empty() => whole.to_string(),
        Some((whole, frac)) => format!("{whole}.{}", frac.trim_end_matches('0')),
        None => text,
    }
}

impl Exchange {
    /// The symbols the fake lists.
    fn listed(&self) -> Vec<String> {
        let list = self.settings.twelvedata_symbols.as_deref();
        list.unwrap_or(DEFAULT_SYMBOLS)
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Answers one action of a Twelve Data connection.
    pub(super) fn twelvedata_request(&self, conn: u64, text: &str) -> String {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let action = v.get("action").and_then(Value::as_str).unwrap_or_default();
        let symbols: Vec<String> = v
            .pointer("/params/symbols")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect();
        let listed = self.listed();
        let mut conns = lock(&self.conns);
        let Some(c) = conns.get_mut(&conn) else {
            return json!({"event": action, "status": "error", "messages": ["connection gone"]})
                .to_string();
        };
        match action {
            "subscribe" | "unsubscribe" => {
                let (known, fails): (Vec<String>, Vec<String>) =
                    symbols.into_iter().partition(|s| listed.contains(s));
                for s in &known {
                    if action == "subscribe" {
                        c.streams.insert(s.clone());
                    } else {
                        c.streams.remove(s);
                    }
                }
                let success: Vec<Value> = known
                    .iter()
                    .map(|s| {
                        let (exchange, _) = venue(s);
                        json!({"symbol": s, "exchange": exchange, "type": asset_type(s)})
                    })
                    .collect();
                let fails: Vec<Value> = fails.iter().map(|s| json!({"symbol": s})).collect();
                let status = if fails.is_empty() { "ok" } else { "error" };
                json!({"event": format!("{action}-status"), "status": status, "success": success, "fails": fails}).to_string()
            }
            "reset" => {
                c.streams.clear();
                json!({"event": "reset-status", "status": "ok"}).to_string()
            }
            "heartbeat" => json!({"event": "heartbeat", "status": "ok"}).to_string(),
            _ => json!({"event": "message-processing", "status": "error", "messages": [format!("unknown action {action:?}")]}).to_string(),
        }
    }

    /// Sends `state`'s price to every Twelve Data connection subscribed to its symbol, unless
    /// the market is closed; returns the frames sent.
    pub(super) fn send_twelvedata(&self, state: &SymbolState) -> u64 {
        if lock(&self.faults).closed_market {
            return 0;
        }
        let conns = lock(&self.conns);
        let wanted = |c: &&super::Conn| {
            c.flavor == Flavor::TwelveData && !c.stalled && c.streams.contains(&state.symbol)
        };
        let mut to = conns.values().filter(wanted).peekable();
        // Most ticks are Binance symbols' that no Twelve Data connection follows.
        if to.peek().is_none() {
            return 0;
        }
        let (exchange, currency) = venue(&state.symbol);
        let symbol = Value::from(state.symbol.as_str());
        let text = format!(
            r#"{{"event":"price","symbol":{symbol},"currency":"{currency}","exchange":"{exchange}","type":"{}","timestamp":{},"price":{},"bid":{},"ask":{}}}"#,
            asset_type(&state.symbol),
            state.event_time / 1000,
            number(state.last),
            number(state.bid()),
            number(state.ask()),
        );
        to.filter(|c| c.tx.send(Out::Text(text.clone())).is_ok())
            .count() as u64
    }

    /// The Twelve Data symbols some connection has subscribed.
    pub(super) fn twelvedata_symbols(&self) -> Vec<String> {
        let conns = lock(&self.conns);
        let mut out: Vec<String> = conns
            .values()
            .filter(|c| c.flavor == Flavor::TwelveData)
            .flat_map(|c| c.streams.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::*;

    fn exchange() -> (
        Arc<Exchange>,
        u64,
        tokio::sync::mpsc::UnboundedReceiver<Out>,
    ) {
        let ex = Exchange::new(Settings::default());
        let (id, rx) = ex.register(Vec::new(), Flavor::TwelveData);
        (ex, id, rx)
    }

    fn answer(ex: &Exchange, id: u64, request: Value) -> Value {
        serde_json::from_str(&ex.twelvedata_request(id, &request.to_string())).unwrap()
    }

    #[test]
    fn subscribe_reports_what_it_took_and_what_failed() {
        let (ex, id, _rx) = exchange();
        let req = json!({"action": "subscribe", "params": {"symbols": "AAPL,eur/usd,NOPE"}});
        let status = answer(&ex, id, req);
        assert_eq!(status["event"], "subscribe-status");
        assert_eq!(status["status"], "error");
        assert_eq!(status["success"][0]["symbol"], "AAPL");
        assert_eq!(status["success"][0]["type"], "Common Stock");
        assert_eq!(status["success"][1]["symbol"], "EUR/USD");
        assert_eq!(status["success"][1]["type"], "Physical Currency");
        assert_eq!(status["fails"], json!([{"symbol": "NOPE"}]));
        assert_eq!(ex.twelvedata_symbols(), vec!["AAPL", "EUR/USD"]);
        let hb = answer(&ex, id, json!({"action": "heartbeat"}));
        assert_eq!(hb, json!({"event": "heartbeat", "status": "ok"}));
        answer(&ex, id, json!({"action": "reset"}));
        assert!(ex.twelvedata_symbols().is_empty());
    }

    #[test]
    fn prices_are_json_numbers_in_seconds_and_stop_when_the_market_closes() {
        let (ex, id, mut rx) = exchange();
        answer(
            &ex,
            id,
            json!({"action": "subscribe", "params": {"symbols": "EUR/USD"}}),
        );
        ex.tick("EUR/USD");
        let Ok(Out::Text(text)) = rx.try_recv() else {
            panic!("a price frame")
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "price");
        assert_eq!(v["symbol"], "EUR/USD");
        assert!(v["price"].is_number() && v["bid"].is_number(), "{text}");
        let stamp = v["timestamp"].as_i64().unwrap();
        assert!(
            stamp > 1_600_000_000 && stamp < 10_000_000_000,
            "seconds: {stamp}"
        );
        let raw = text.split(r#""price":"#).nth(1).unwrap();
        assert!(!raw.starts_with('"'), "a number, not a string: {text}");
        lock(&ex.faults).closed_market = true;
        ex.tick("EUR/USD");
        assert!(rx.try_recv().is_err(), "a closed market is silent");
        assert_eq!(number(4_235_050_000_000), "42350.5");
        assert_eq!(number(100_000_000), "1");
    }
}
