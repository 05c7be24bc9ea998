//! The REST of the Flask terminal edgetick replaces, for its dashboard: prices by asset
//! class (`/api/stocks`, `/api/forex`, `/api/crypto`), each `{"ok":true,"<symbol in lower
//! case>":{"price":N,"change":N},…}`, and `/api/status`, the service's state in one small
//! object. Numbers are written from the decimal text, never through a float.

use serde_json::json;

use super::ids::SourceId;
use super::price::{json_number, Price};
use super::upstream_state::UpstreamState;

/// An asset class of seed 003's dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetGroup {
    /// Stocks, ETFs, indices.
    Stocks,
    /// Currency pairs.
    Forex,
    /// Digital currencies (every Binance symbol among them).
    Crypto,
}

impl AssetGroup {
    /// The group a route names (`/api/stocks` …).
    pub fn of_path(path: &str) -> Option<AssetGroup> {
        match path {
            "/api/stocks" => Some(AssetGroup::Stocks),
            "/api/forex" => Some(AssetGroup::Forex),
            "/api/crypto" => Some(AssetGroup::Crypto),
            _ => None,
        }
    }

    /// Its name (in the leader's routes).
    pub fn name(self) -> &'static str {
        match self {
            AssetGroup::Stocks => "stocks",
            AssetGroup::Forex => "forex",
            AssetGroup::Crypto => "crypto",
        }
    }

    /// The group a name names.
    pub fn of_name(name: &str) -> Option<AssetGroup> {
        [AssetGroup::Stocks, AssetGroup::Forex, AssetGroup::Crypto]
            .into_iter()
            .find(|g| g.name() == name)
    }

    /// The group of a price: by its source's asset type (a Binance symbol is crypto).
    pub fn of_price(p: &Price) -> AssetGroup {
        match (p.source, p.asset_type.as_deref()) {
            (Some(SourceId::Binance), _) | (_, Some("Digital Currency")) => AssetGroup::Crypto,
            (_, Some("Physical Currency")) => AssetGroup::Forex,
            (Some(SourceId::TwelveData), _) => AssetGroup::Stocks,
            _ => AssetGroup::Crypto,
        }
    }
}

/// The body of a group's route: its live prices, keyed by symbol in lower case; `change` is
/// the source's change in percent (Binance's 24 h), `null` where the source gives none
/// (Twelve Data's price stream carries none).
pub fn group_body<'a>(group: AssetGroup, prices: impl Iterator<Item = &'a Price>) -> String {
    let mut out = String::from(r#"{"ok":true"#);
    for p in prices.filter(|p| AssetGroup::of_price(p) == group) {
        let Some(price) = &p.price else {
            continue;
        };
        let change = p.change_pct.as_deref().map_or("null".into(), json_number);
        let key = json!(p.symbol.to_lowercase());
        let price = json_number(price);
        out.push_str(&format!(r#",{key}:{{"price":{price},"change":{change}}}"#));
    }
    out.push('}');
    out
}

/// What `/api/status` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Status<'a> {
    /// `/health`'s verdict.
    pub status: &'a str,
    /// Each source's state.
    pub upstreams: Vec<(SourceId, UpstreamState)>,
    /// Symbols served, and those with a live price.
    pub symbols: (usize, usize),
    /// When it was taken.
    pub as_of: i64,
}

/// The body of `/api/status`.
pub fn status_body(s: &Status<'_>) -> String {
    let upstreams: serde_json::Map<String, serde_json::Value> = s
        .upstreams
        .iter()
        .map(|(source, state)| (source.as_str().to_string(), json!(state.as_str())))
        .collect();
    json!({
        "ok": s.status != "down",
        "status": s.status,
        "upstreams": upstreams,
        "symbols": {"served": s.symbols.0, "live": s.symbols.1},
        "as_of": s.as_of,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(symbol: &str, source: SourceId, asset: Option<&str>, change: Option<&str>) -> Price {
        Price {
            symbol: symbol.into(),
            price: Some("189.9800".into()),
            change_pct: change.map(String::from),
            source: Some(source),
            asset_type: asset.map(String::from),
            ..Price::default()
        }
    }

    #[test]
    fn prices_are_grouped_by_asset_class_with_numbers_from_their_text() {
        let all = [
            price("AAPL", SourceId::TwelveData, Some("Common Stock"), None),
            price(
                "EUR/USD",
                SourceId::TwelveData,
                Some("Physical Currency"),
                None,
            ),
            price(
                "BTC/USD",
                SourceId::TwelveData,
                Some("Digital Currency"),
                None,
            ),
            price("BTCUSDT", SourceId::Binance, None, Some("-0.113")),
        ];
        let stocks: serde_json::Value =
            serde_json::from_str(&group_body(AssetGroup::Stocks, all.iter())).unwrap();
        assert_eq!(
            stocks,
            json!({"ok": true, "aapl": {"price": 189.98, "change": null}})
        );
        let crypto = group_body(AssetGroup::Crypto, all.iter());
        assert!(
            crypto.contains(r#""btcusdt":{"price":189.9800,"change":-0.113}"#),
            "{crypto}"
        );
        assert!(crypto.contains(r#""btc/usd""#));
        let forex = group_body(AssetGroup::Forex, all.iter());
        assert!(forex.contains(r#""eur/usd""#) && !forex.contains("aapl"));
        assert_eq!(AssetGroup::of_path("/api/forex"), Some(AssetGroup::Forex));
        assert_eq!(AssetGroup::of_name("crypto"), Some(AssetGroup::Crypto));
    }

    #[test]
    fn the_status_is_one_small_object() {
        let s = Status {
            status: "degraded",
            upstreams: vec![
                (SourceId::Binance, UpstreamState::Connected),
                (SourceId::TwelveData, UpstreamState::Reconnecting),
            ],
            symbols: (9, 7),
            as_of: 5,
        };
        let v: serde_json::Value = serde_json::from_str(&status_body(&s)).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["upstreams"]["twelvedata"], "reconnecting");
        assert_eq!(v["symbols"]["live"], 7);
    }
}
