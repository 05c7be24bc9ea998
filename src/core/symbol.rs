//! Symbol spelling: one canonical `BTCUSDT` form for every alias a client may type.

use std::collections::BTreeMap;

use crate::core::ids::SourceId;

/// Longest symbol accepted; Binance's longest spot symbols are well under this.
const MAX_SYMBOL_LEN: usize = 20;

/// Turns `btcusdt`, `BTC/USDT`, `BTC-USDT` (and `btc_usdt`) into `BTCUSDT`.
///
/// Returns `None` for anything that cannot be a symbol, so callers can say "unknown symbol"
/// without ever echoing arbitrary bytes back into a frame unescaped.
pub fn canonical(input: &str) -> Option<String> {
    let mut out = String::with_capacity(input.len());
    for ch in input.trim().chars() {
        match ch {
            '/' | '-' | '_' => continue,
            c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
            _ => return None,
        }
    }
    if out.len() < 2 || out.len() > MAX_SYMBOL_LEN {
        return None;
    }
    Some(out)
}

/// Decodes `%XX` escapes of a URL path segment (so `/api/prices/BTC%2FUSDT` works). Invalid
/// escapes are kept as typed; [`canonical`] then rejects them as not a symbol.
pub fn percent_decode(segment: &str) -> String {
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(segment.len());
    let mut rest = segment.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            if let (Some(h), Some(l)) = (hex(tail.first()), hex(tail.get(1))) {
                out.push((h * 16 + l) as u8);
                rest = tail.get(2..).unwrap_or_default();
                continue;
            }
        }
        out.push(b);
        rest = tail;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The configured set of symbols edgetick serves, each with the source it comes from.
/// Sorted so listings are stable.
///
/// A symbol keeps its source's spelling (`BTCUSDT`, `EUR/USD`, `BRK.B`); a client may type
/// any spelling that reduces to the same letters and digits (`eur-usd`, `btc/usdt`), so two
/// served symbols that reduce alike (`BTC/USD` and `BTCUSD`) cannot both be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whitelist {
    symbols: BTreeMap<String, SourceId>,
    /// Each symbol by its letters and digits, upper-cased.
    aliases: BTreeMap<String, String>,
}

/// A symbol's letters and digits, upper-cased: what two spellings of it share.
fn compact(symbol: &str) -> String {
    symbol
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl Whitelist {
    /// Builds the whitelist from canonical Binance symbols.
    pub fn new(symbols: impl IntoIterator<Item = String>) -> Self {
        let mut wl = Whitelist {
            symbols: BTreeMap::new(),
            aliases: BTreeMap::new(),
        };
        for s in symbols {
            let _ = wl.add(s, SourceId::Binance);
        }
        wl
    }

    /// Adds `symbol` of `source`; refused (with the symbol it clashes with) when a served
    /// symbol already reduces to the same letters and digits.
    pub fn add(&mut self, symbol: String, source: SourceId) -> Result<(), String> {
        let key = compact(&symbol);
        if let Some(held) = self.aliases.get(&key) {
            return Err(held.clone());
        }
        self.aliases.insert(key, symbol.clone());
        self.symbols.insert(symbol, source);
        Ok(())
    }

    /// Resolves any accepted spelling to the served symbol, if it is served.
    pub fn resolve(&self, input: &str) -> Option<String> {
        let upper = input.trim().to_ascii_uppercase();
        if self.symbols.contains_key(&upper) {
            return Some(upper);
        }
        canonical(input).and_then(|c| self.aliases.get(&c).cloned())
    }

    /// Resolves any accepted spelling to a symbol `source` serves (the market channels and
    /// the candle history are Binance's only).
    pub fn resolve_of(&self, input: &str, source: SourceId) -> Option<String> {
        self.resolve(input)
            .filter(|s| self.source_of(s) == Some(source))
    }

    /// True when the symbol is served (in its canonical spelling).
    pub fn contains(&self, symbol: &str) -> bool {
        self.symbols.contains_key(symbol)
    }

    /// The source a served symbol comes from.
    pub fn source_of(&self, symbol: &str) -> Option<SourceId> {
        self.symbols.get(symbol).copied()
    }

    /// The served symbols of `source`, sorted.
    pub fn of(&self, source: SourceId) -> impl Iterator<Item = &String> {
        self.symbols
            .iter()
            .filter(move |(_, s)| **s == source)
            .map(|(k, _)| k)
    }

    /// All served symbols, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.symbols.keys()
    }

    /// How many symbols are served.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// True when nothing is served (configuration rejects this, but the type allows it).
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_maps_to_the_canonical_form() {
        for alias in [
            "BTCUSDT",
            "btcusdt",
            "BTC/USDT",
            "BTC-USDT",
            "btc_usdt",
            " BtcUsdt ",
        ] {
            assert_eq!(canonical(alias).as_deref(), Some("BTCUSDT"), "{alias}");
        }
    }

    #[test]
    fn garbage_is_not_a_symbol() {
        for bad in [
            "",
            "B",
            "BTC USDT",
            "BTC\"USDT",
            "<script>",
            "ÄBC",
            &"X".repeat(21),
        ] {
            assert_eq!(canonical(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn percent_escapes_in_paths_decode() {
        assert_eq!(percent_decode("BTC%2FUSDT"), "BTC/USDT");
        assert_eq!(percent_decode("btc%2fusdt"), "btc/usdt");
        assert_eq!(percent_decode("BTC%2"), "BTC%2");
        assert_eq!(percent_decode("%zz%"), "%zz%");
        assert_eq!(
            canonical(&percent_decode("BTC%2DUSDT")).as_deref(),
            Some("BTCUSDT")
        );
    }

    #[test]
    fn whitelist_resolves_only_served_symbols() {
        let wl = Whitelist::new(["BTCUSDT".to_string(), "ETHUSDT".to_string()]);
        assert_eq!(wl.resolve("eth-usdt").as_deref(), Some("ETHUSDT"));
        assert_eq!(wl.resolve("DOGEUSDT"), None);
        assert_eq!(
            wl.iter().cloned().collect::<Vec<_>>(),
            ["BTCUSDT", "ETHUSDT"]
        );
    }

    #[test]
    fn a_second_source_keeps_its_spelling_and_a_clash_is_refused() {
        let mut wl = Whitelist::new(["BTCUSDT".to_string()]);
        wl.add("EUR/USD".into(), SourceId::TwelveData).unwrap();
        wl.add("BRK.B".into(), SourceId::TwelveData).unwrap();
        for typed in ["EUR/USD", "eur/usd", "EURUSD", "eur-usd"] {
            assert_eq!(wl.resolve(typed).as_deref(), Some("EUR/USD"), "{typed}");
        }
        assert_eq!(wl.resolve("brk.b").as_deref(), Some("BRK.B"));
        assert_eq!(wl.source_of("EUR/USD"), Some(SourceId::TwelveData));
        assert_eq!(wl.source_of("BTCUSDT"), Some(SourceId::Binance));
        assert_eq!(wl.of(SourceId::TwelveData).count(), 2);
        assert_eq!(
            wl.add("BTC/USDT".into(), SourceId::TwelveData),
            Err("BTCUSDT".into())
        );
        assert_eq!(wl.resolve("BTC/USDT").as_deref(), Some("BTCUSDT"));
    }
}
