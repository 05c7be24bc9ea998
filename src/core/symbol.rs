//! Symbol spelling: one canonical `BTCUSDT` form for every alias a client may type.

use std::collections::BTreeSet;

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

/// The configured set of symbols edgetick serves. Sorted so listings are stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whitelist {
    symbols: BTreeSet<String>,
}

impl Whitelist {
    /// Builds the whitelist from canonical symbols.
    pub fn new(symbols: impl IntoIterator<Item = String>) -> Self {
        Whitelist {
            symbols: symbols.into_iter().collect(),
        }
    }

    /// Resolves any accepted spelling to its canonical form, if the symbol is served.
    pub fn resolve(&self, input: &str) -> Option<String> {
        canonical(input).filter(|s| self.symbols.contains(s))
    }

    /// True when the canonical symbol is served.
    pub fn contains(&self, symbol: &str) -> bool {
        self.symbols.contains(symbol)
    }

    /// All served symbols, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.symbols.iter()
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
}
