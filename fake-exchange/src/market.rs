//! The simulated market: a random-walk price per symbol and payloads in Binance's exact
//! shapes for every stream kind edgetick reads.

use std::collections::HashMap;

use serde_json::{json, Value};

/// Prices are integers in units of 1e-8, formatted like Binance (`"89879.78000000"`).
const UNIT: u64 = 100_000_000;

/// A tiny deterministic generator (xorshift64*): seeded runs replay exactly, and no
/// dependency is needed for a fake.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next raw value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Formats 1e-8 units as a Binance decimal string.
pub fn fmt_units(units: u64) -> String {
    format!("{}.{:08}", units / UNIT, units % UNIT)
}

fn fmt_signed(units: i128) -> String {
    let sign = if units < 0 { "-" } else { "" };
    format!("{sign}{}", fmt_units(units.unsigned_abs() as u64))
}

/// Candle intervals the fake keeps (Binance's `@kline_<interval>`), with their lengths.
pub const INTERVALS: [(&str, i64); 6] = [
    ("1m", 60_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("4h", 14_400_000),
    ("1d", 86_400_000),
];

/// One candle of one interval.
#[derive(Debug, Clone)]
pub struct Candle {
    start: i64,
    open: u64,
    high: u64,
    low: u64,
    close: u64,
    volume: u64,
}

impl Candle {
    /// Its open time.
    pub fn start(&self) -> i64 {
        self.start
    }

    /// The candle as a row of Binance's REST klines (`interval_ms` long).
    pub fn rest_row(&self, interval_ms: i64) -> Value {
        json!([
            self.start,
            fmt_units(self.open),
            fmt_units(self.high),
            fmt_units(self.low),
            fmt_units(self.close),
            fmt_units(self.volume),
            self.start + interval_ms - 1,
            "0",
            0,
            "0",
            "0",
            "0"
        ])
    }

    /// A made-up past candle of `symbol`, the same every time it is asked for: within 1% of
    /// the symbol's base price.
    pub fn synthetic(symbol: &str, start: i64) -> Candle {
        let base = base_price(symbol);
        let seed = symbol.bytes().fold(start as u64, |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        });
        let mut rng = Rng::new(seed);
        let mut near = || base - base / 100 + (rng.unit() * (base / 50) as f64) as u64;
        let (a, b) = (near(), near());
        let (hi, lo) = (a.max(b), a.min(b));
        let volume = UNIT * (1 + rng.next_u64() % 100);
        Candle {
            start,
            open: lo + (hi - lo) / 3,
            high: hi,
            low: lo,
            close: lo + (hi - lo) * 2 / 3,
            volume,
        }
    }

    fn at(start: i64, price: u64) -> Candle {
        Candle {
            start,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 0,
        }
    }
}

/// One symbol's simulated state.
#[derive(Debug, Clone)]
pub struct SymbolState {
    /// Upper-case symbol.
    pub symbol: String,
    /// Last price (1e-8 units).
    pub last: u64,
    open: u64,
    high: u64,
    low: u64,
    tick: u64,
    volume: u64,
    quote_volume: u64,
    trades: u64,
    book_id: u64,
    /// Event time of the last update (ms).
    pub event_time: i64,
    /// The open candle of each interval (as [`INTERVALS`]).
    candles: Vec<Candle>,
    /// Candles closed by the last step or close, with their interval's index.
    pub closed: Vec<(usize, Candle)>,
}

fn base_price(symbol: &str) -> u64 {
    let whole = match symbol {
        "BTCUSDT" => 90_000,
        "ETHUSDT" => 3_000,
        "BNBUSDT" => 600,
        "SOLUSDT" => 150,
        "BTC/USD" => 90_000,
        "ETH/USD" => 3_000,
        "EUR/USD" | "GBP/USD" => 1,
        _ => {
            let h = symbol
                .bytes()
                .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
            1 + h % 500
        }
    };
    whole * UNIT
}

impl SymbolState {
    fn new(symbol: &str, now_ms: i64) -> SymbolState {
        let last = base_price(symbol);
        // About seven significant digits, like real quotes.
        let mut tick = 1u64;
        while last / tick > 10_000_000 {
            tick *= 10;
        }
        SymbolState {
            symbol: symbol.to_string(),
            last,
            open: last,
            high: last,
            low: last,
            tick,
            volume: 0,
            quote_volume: 0,
            trades: 0,
            book_id: 1,
            event_time: now_ms,
            candles: INTERVALS
                .iter()
                .map(|(_, ms)| Candle::at(now_ms - now_ms.rem_euclid(*ms), last))
                .collect(),
            closed: Vec::new(),
        }
    }

    /// Closes every candle whose interval has ended (or all of them with `force`), and
    /// opens the next at the last price. A forced close opens the next interval's candle
    /// early, so every open time stays on the interval's grid, as Binance's always are.
    pub fn roll(&mut self, now_ms: i64, force: bool) {
        for (i, (_, ms)) in INTERVALS.iter().enumerate() {
            let Some(c) = self.candles.get_mut(i) else {
                continue;
            };
            if force || now_ms >= c.start + ms {
                let start = if force {
                    c.start + ms
                } else {
                    now_ms - now_ms.rem_euclid(*ms)
                };
                let done = std::mem::replace(c, Candle::at(start, self.last));
                self.closed.push((i, done));
            }
        }
    }

    fn kline(&self, interval: usize, c: &Candle, closed: bool) -> Option<Value> {
        let (name, ms) = INTERVALS.get(interval)?;
        let s = &self.symbol;
        Some(
            json!({"e":"kline","E":self.event_time,"s":s,"k":{"t":c.start,"T":c.start + ms - 1,"s":s,
            "i":name,"f":self.trades,"L":self.trades,"o":fmt_units(c.open),"c":fmt_units(c.close),
            "h":fmt_units(c.high),"l":fmt_units(c.low),"v":fmt_units(c.volume),"n":self.trades,
            "x":closed,"q":"0","V":"0","Q":"0","B":"0"}}),
        )
    }

    /// The open candle of interval `i` (as [`INTERVALS`]).
    pub fn open_candle(&self, i: usize) -> Option<&Candle> {
        self.candles.get(i)
    }

    /// The closed candles' payloads, with their stream kinds (`kline_1m`, ...).
    pub fn closed_payloads(&self) -> Vec<(String, Value)> {
        self.closed
            .iter()
            .filter_map(|(i, c)| {
                let (name, _) = INTERVALS.get(*i)?;
                Some((format!("kline_{name}"), self.kline(*i, c, true)?))
            })
            .collect()
    }

    /// The top 10 levels a side around the last price.
    fn depth(&self) -> Value {
        let level = |p: u64, i: u64| json!([fmt_units(p), fmt_units(UNIT / 10 * (i + 1))]);
        let bids: Vec<Value> = (0..10)
            .map(|i| level(self.bid().saturating_sub(i * self.tick), i))
            .collect();
        let asks: Vec<Value> = (0..10)
            .map(|i| level(self.ask() + i * self.tick, i))
            .collect();
        json!({"lastUpdateId": self.book_id, "bids": bids, "asks": asks})
    }

    /// Moves the price by up to ±5 basis points, rounded to the tick.
    fn step(&mut self, rng: &mut Rng, now_ms: i64) {
        let max_move = (self.last / 2_000).max(self.tick) as f64;
        let delta = ((rng.unit() * 2.0 - 1.0) * max_move) as i64;
        let ticks = delta / self.tick as i64;
        let ticks = if ticks == 0 {
            if rng.unit() < 0.5 {
                -1
            } else {
                1
            }
        } else {
            ticks
        };
        let next = self.last as i64 + ticks * self.tick as i64;
        self.last = (next.max(self.tick as i64 * 10)) as u64;
        self.high = self.high.max(self.last);
        self.low = self.low.min(self.last);
        let qty = UNIT / 100 * (1 + rng.next_u64() % 100);
        self.volume += qty;
        self.quote_volume += ((qty as u128 * self.last as u128) / UNIT as u128) as u64;
        self.trades += 1;
        self.book_id += 1;
        self.event_time = now_ms.max(self.event_time);
        self.roll(now_ms, false);
        for c in &mut self.candles {
            c.high = c.high.max(self.last);
            c.low = c.low.min(self.last);
            c.close = self.last;
            c.volume += qty;
        }
    }

    pub fn bid(&self) -> u64 {
        self.last.saturating_sub(self.tick)
    }

    pub fn ask(&self) -> u64 {
        self.last + self.tick
    }

    /// The payload (the `data` of a combined-stream frame) for one stream kind.
    pub fn payload(&self, kind: &str) -> Option<Value> {
        let s = &self.symbol;
        let e = self.event_time;
        let qty = fmt_units(UNIT / 10);
        Some(match kind {
            "ticker" => {
                let change = self.last as i128 - self.open as i128;
                let pct = change as f64 * 100.0 / self.open as f64;
                json!({"e":"24hrTicker","E":e,"s":s,"p":fmt_signed(change),"P":format!("{pct:.3}"),
                    "w":fmt_units(self.last),"x":fmt_units(self.open),"c":fmt_units(self.last),"Q":qty,
                    "b":fmt_units(self.bid()),"B":qty,"a":fmt_units(self.ask()),"A":qty,
                    "o":fmt_units(self.open),"h":fmt_units(self.high),"l":fmt_units(self.low),
                    "v":fmt_units(self.volume),"q":fmt_units(self.quote_volume),
                    "O":e - 86_400_000,"C":e,"F":0,"L":self.trades,"n":self.trades})
            }
            "miniTicker" => json!({"e":"24hrMiniTicker","E":e,"s":s,"c":fmt_units(self.last),
                "o":fmt_units(self.open),"h":fmt_units(self.high),"l":fmt_units(self.low),
                "v":fmt_units(self.volume),"q":fmt_units(self.quote_volume)}),
            "bookTicker" => json!({"u":self.book_id,"s":s,"b":fmt_units(self.bid()),"B":qty,
                "a":fmt_units(self.ask()),"A":qty}),
            "aggTrade" => {
                json!({"e":"aggTrade","E":e,"s":s,"a":self.trades,"p":fmt_units(self.last),
                "q":qty,"f":self.trades,"l":self.trades,"T":e,"m":self.trades.is_multiple_of(2),"M":true})
            }
            "depth10@100ms" => self.depth(),
            "trade" => json!({"e":"trade","E":e,"s":s,"t":self.trades,"p":fmt_units(self.last),
                "q":qty,"T":e,"m":true,"M":true}),
            k if k.starts_with("kline_") => {
                let i = INTERVALS
                    .iter()
                    .position(|(n, _)| *n == &k["kline_".len()..])?;
                self.kline(i, self.candles.get(i)?, false)?
            }
            _ => return None,
        })
    }
}

/// Stream kinds the fake serves.
pub fn known_kind(kind: &str) -> bool {
    matches!(
        kind,
        "ticker" | "miniTicker" | "bookTicker" | "aggTrade" | "trade" | "depth10@100ms"
    ) || kind
        .strip_prefix("kline_")
        .is_some_and(|i| INTERVALS.iter().any(|(n, _)| *n == i))
}

/// Splits `btcusdt@ticker` into (`BTCUSDT`, `ticker`) when it is a stream the fake serves.
pub fn parse_stream(stream: &str) -> Option<(String, String)> {
    let (sym, kind) = stream.split_once('@')?;
    let ok = !sym.is_empty()
        && sym.len() <= 20
        && sym
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (ok && known_kind(kind)).then(|| (sym.to_ascii_uppercase(), kind.to_string()))
}

/// Every symbol's state.
#[derive(Debug)]
pub struct Market {
    symbols: HashMap<String, SymbolState>,
    rng: Rng,
}

impl Market {
    /// An empty market; symbols appear when first subscribed.
    pub fn new(seed: u64) -> Market {
        Market {
            symbols: HashMap::new(),
            rng: Rng::new(seed),
        }
    }

    /// Advances one symbol's random walk.
    pub fn step(&mut self, symbol: &str, now_ms: i64) -> &SymbolState {
        let state = self
            .symbols
            .entry(symbol.to_string())
            .or_insert_with(|| SymbolState::new(symbol, now_ms));
        state.step(&mut self.rng, now_ms);
        state
    }

    /// Advances one symbol and takes the candles its step closed (in the returned state).
    pub fn step_taking_closed(&mut self, symbol: &str, now_ms: i64) -> SymbolState {
        let state = self.step(symbol, now_ms).clone();
        self.clear_closed(symbol);
        state
    }

    /// Closes every candle of `symbol` now (a test control); the returned state holds them.
    pub fn close_candles(&mut self, symbol: &str, now_ms: i64) -> SymbolState {
        let state = self
            .symbols
            .entry(symbol.to_string())
            .or_insert_with(|| SymbolState::new(symbol, now_ms));
        state.roll(now_ms, true);
        let out = state.clone();
        state.closed.clear();
        out
    }

    fn clear_closed(&mut self, symbol: &str) {
        if let Some(s) = self.symbols.get_mut(symbol) {
            s.closed.clear();
        }
    }

    /// Symbols whose last event is at least `every_ms` old: their event time becomes `now_ms`
    /// (prices unchanged) and their states are returned, for the 24 h ticker's cadence.
    pub fn refresh_due(&mut self, now_ms: i64, every_ms: i64) -> Vec<SymbolState> {
        let mut due: Vec<SymbolState> = self
            .symbols
            .values_mut()
            .filter(|s| now_ms - s.event_time >= every_ms)
            .map(|s| {
                s.event_time = now_ms;
                s.clone()
            })
            .collect();
        due.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        due
    }

    /// Latest price of every symbol that has moved or been asked for.
    pub fn latest(&self) -> impl Iterator<Item = &SymbolState> {
        self.symbols.values()
    }

    /// One symbol's state, when it has one.
    pub fn get(&self, symbol: &str) -> Option<&SymbolState> {
        self.symbols.get(symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_binance() {
        assert_eq!(fmt_units(8_987_978_000_000), "89879.78000000");
        assert_eq!(fmt_signed(-150_000_000), "-1.50000000");
    }

    #[test]
    fn walk_stays_on_ticks_and_positive() {
        let mut m = Market::new(3);
        for i in 0..10_000 {
            let s = m.step("BTCUSDT", i);
            assert_eq!(s.last % s.tick, 0);
            assert!(s.last > 0);
        }
    }

    #[test]
    fn the_cadence_refreshes_only_symbols_quiet_for_a_cadence() {
        let mut m = Market::new(3);
        let before = m.step("BTCUSDT", 1_000).last;
        m.step("ETHUSDT", 1_600);
        let due = m.refresh_due(2_000, 1_000);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].symbol, "BTCUSDT");
        assert_eq!(due[0].event_time, 2_000);
        assert_eq!(due[0].last, before, "a cadence frame repeats the price");
        assert!(m.refresh_due(2_500, 1_000).is_empty());
    }

    #[test]
    fn streams_parse() {
        assert_eq!(
            parse_stream("btcusdt@ticker"),
            Some(("BTCUSDT".into(), "ticker".into()))
        );
        assert_eq!(
            parse_stream("btcusdt@kline_1m").map(|x| x.1),
            Some("kline_1m".into())
        );
        assert_eq!(parse_stream("BTCUSDT@ticker"), None);
        assert_eq!(parse_stream("btcusdt@depth"), None);
    }

    #[test]
    fn candles_close_once_and_the_book_has_ten_levels_a_side() {
        let mut m = Market::new(3);
        let s = m.step_taking_closed("BTCUSDT", 1_000);
        assert!(s.closed.is_empty());
        let k = s.payload("kline_1m").unwrap();
        assert_eq!(
            (k["k"]["t"].as_i64(), k["k"]["x"].as_bool()),
            (Some(0), Some(false))
        );
        let s = m.step_taking_closed("BTCUSDT", 61_000);
        let closed = s.closed_payloads();
        assert_eq!(closed.len(), 1, "only the 1m candle ended");
        assert_eq!(closed[0].0, "kline_1m");
        assert_eq!(closed[0].1["k"]["x"], true);
        assert_eq!(s.payload("kline_1m").unwrap()["k"]["t"], 60_000);
        let s = m.step_taking_closed("BTCUSDT", 62_000);
        assert!(s.closed.is_empty(), "taken once");
        let s = m.close_candles("BTCUSDT", 63_000);
        assert_eq!(s.closed_payloads().len(), 6, "every interval, on demand");
        let d = s.payload("depth10@100ms").unwrap();
        assert_eq!(d["bids"].as_array().map(Vec::len), Some(10));
        assert_eq!(d["asks"].as_array().map(Vec::len), Some(10));
        assert!(parse_stream("btcusdt@depth10@100ms").is_some());
        assert!(parse_stream("btcusdt@kline_2m").is_none());
    }
}
