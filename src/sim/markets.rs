//! Market channels in the simulation (on the seeds that run Twelve Data too): the exchange's
//! trades and order books of two symbols and one symbol's 1-minute candles, and what clients
//! must see of them.
//!
//! A trade carries its id and a book its version, both counting up at the exchange; a
//! candle is open (its close price counting its updates) until it closes, and the next one
//! opens a minute later. A client gets frames only of market channels it holds; per
//! channel, trade ids only grow (a reader behind its window may skip some, never see one
//! twice or out of order), a book's version never goes back, and neither does a candle
//! (never an older candle, never an update of a candle after its close, never an older
//! update of it); the current book or candle again is allowed: a new subscriber's first, a
//! relinked shard's catch-up. The exchange sends them in order on its connection, as a
//! WebSocket does. After the quiet end, every client holding a market channel holds the
//! exchange's last trade id, book version or candle of it.

/// The market channels the exchange streams (see `market_io`).
pub const MARKETS: [&str; 5] = [
    "trades:BTCUSDT",
    "book:BTCUSDT",
    "trades:ETHUSDT",
    "book:ETHUSDT",
    "candles:BTCUSDT:1m",
];

/// A candle's interval (ms).
pub const MINUTE: i64 = 60_000;

/// A candle's place in its channel's order, as one number: its open time, then open before
/// closed, then its updates (its close price counts them).
pub fn candle_key(t: i64, closed: bool, updates: u64) -> u64 {
    ((t / MINUTE) as u64) << 20 | u64::from(closed) << 19 | updates
}

/// The open time, closed or not, and updates of a [`candle_key`].
pub fn candle_parts(key: u64) -> (i64, bool, u64) {
    (
        (key >> 20) as i64 * MINUTE,
        key >> 19 & 1 == 1,
        key & 0x7_ffff,
    )
}

/// The place of a `candle` frame's candle (see [`candle_key`]).
fn candle_of(v: &serde_json::Value) -> u64 {
    let c = &v["candle"];
    let updates = c["c"].as_str().and_then(|p| p.parse().ok()).unwrap_or(0);
    let closed = c["closed"].as_bool().unwrap_or(false);
    candle_key(c["t"].as_i64().unwrap_or(0), closed, updates)
}

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
        Some("candle") => vec![candle_of(v)],
        _ => vec![v["version"].as_u64().unwrap_or(0)],
    };
    // A state (a book, a candle) may come again; a trade never.
    let state = v["type"] != "trades";
    for n in numbers {
        let before = seen.get(channel).copied();
        let wrong = match before {
            Some(b) if state => n < b,
            Some(b) => n <= b,
            None => false,
        };
        if wrong {
            return Err(format!(
                "conn {conn}: {channel} {} {n} after {before:?} (twice, backwards)",
                match v["type"].as_str() {
                    Some("book") => "version",
                    Some("candle") => "candle (minute << 20 | closed << 19 | update)",
                    _ => "trade",
                }
            ));
        }
        seen.insert(channel.to_string(), n);
    }
    Ok(())
}
