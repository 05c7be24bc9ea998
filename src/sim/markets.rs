//! Market channels in the simulation (on the seeds that run Twelve Data too): the exchange's
//! trades and order books of two symbols, and what clients must see of them.
//!
//! A trade carries its id and a book its version, both counting up at the exchange. A
//! client gets frames only of market channels it holds; per channel, trade ids only grow
//! (a reader behind its window may skip some, never see one twice or out of order) and a
//! book's version never goes back (the current book again is allowed: a new subscriber's
//! first, a relinked shard's catch-up). The exchange sends them in order on its connection,
//! as a WebSocket does. After the quiet end, every client holding a market channel holds the
//! exchange's last trade id or book version of it.

/// The market channels the exchange streams (see `market_io`).
pub const MARKETS: [&str; 4] = [
    "trades:BTCUSDT",
    "book:BTCUSDT",
    "trades:ETHUSDT",
    "book:ETHUSDT",
];

/// What a client saw of its market channels: per channel, the last trade id or book
/// version.
pub type Seen = std::collections::BTreeMap<String, u64>;

/// Checks one market frame (`trades` or `book`) of client `conn` holding `held`, against
/// what it saw before.
pub fn check(
    conn: u64,
    v: &serde_json::Value,
    held: &std::collections::BTreeSet<String>,
    seen: &mut Seen,
) -> Result<(), String> {
    let channel = v["channel"].as_str().unwrap_or_default();
    if !held.contains(channel) {
        return Err(format!(
            "conn {conn}: a {} frame of {channel}, which it does not hold",
            v["type"]
        ));
    }
    let numbers: Vec<u64> = match v["type"].as_str() {
        Some("trades") => (v["trades"].as_array().into_iter().flatten())
            .map(|t| t["id"].as_u64().unwrap_or(0))
            .collect(),
        _ => vec![v["version"].as_u64().unwrap_or(0)],
    };
    let book = v["type"] == "book";
    for n in numbers {
        let before = seen.get(channel).copied();
        let wrong = match before {
            Some(b) if book => n < b,
            Some(b) => n <= b,
            None => false,
        };
        if wrong {
            return Err(format!(
                "conn {conn}: {channel} {} {n} after {before:?} (twice, backwards)",
                if book { "version" } else { "trade" }
            ));
        }
        seen.insert(channel.to_string(), n);
    }
    Ok(())
}
