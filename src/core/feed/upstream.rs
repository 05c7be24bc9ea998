//! One source the feed follows: its link, the symbols it serves, the symbols it refused, its
//! frame counters; and how the states of several sources make the one clients are told.

use std::collections::BTreeSet;
use std::rc::Rc;

use super::link::{Link, LinkSettings};
use super::source::Source;
use crate::core::channel::{self, Market};
use crate::core::config::{Config, UpstreamMode};
use crate::core::ids::SourceId;
use crate::core::upstream_state::UpstreamState;

/// A source and its link.
#[derive(Debug)]
pub struct Upstream {
    /// The source.
    pub source: Rc<dyn Source>,
    /// Its link.
    pub link: Link,
    /// The served symbols it carries.
    pub symbols: BTreeSet<String>,
    /// Symbols it would not subscribe (reported in `/health`, never asked again in a loop).
    pub failed: BTreeSet<String>,
    /// Frames received from its active connection.
    pub frames: u64,
    /// Of those, frames skipped as invalid.
    pub errors: u64,
}

impl Upstream {
    /// `source` with its endpoints and symbols from `cfg`.
    pub fn new(cfg: &Config, source: Rc<dyn Source>) -> Upstream {
        let id = source.id();
        let urls = match (id, &cfg.twelvedata) {
            (SourceId::TwelveData, Some(td)) => vec![td.url.clone()],
            _ => cfg.upstream_urls.clone(),
        };
        let symbols = match id {
            SourceId::Binance | SourceId::TwelveData => cfg.symbols.of(id).cloned().collect(),
            // The tests' source stands in for Binance.
            #[cfg(test)]
            SourceId::Neutral => cfg.symbols.of(SourceId::Binance).cloned().collect(),
        };
        let settings = LinkSettings {
            urls,
            watchdog_ms: cfg.watchdog_ms,
            max_age_ms: cfg.max_age_ms,
            idle_close_ms: cfg.idle_close_ms,
            on_demand: cfg.upstream_mode == UpstreamMode::OnDemand,
        };
        Upstream {
            link: Link::new(settings, source.clone()),
            source,
            symbols,
            failed: BTreeSet::new(),
            frames: 0,
            errors: 0,
        }
    }

    /// The streams its link should carry: the price streams of its symbols (`always`) or of
    /// those someone listens to (`on-demand`), and the streams of the market channels of
    /// its symbols someone listens to (always on demand), as many as a connection takes.
    pub fn wanted(&self, mode: UpstreamMode, interest: &BTreeSet<String>) -> BTreeSet<String> {
        let symbols: Vec<&String> = match mode {
            UpstreamMode::Always => self.symbols.iter().collect(),
            UpstreamMode::OnDemand => interest
                .iter()
                .filter(|k| channel::is_symbol(k) && self.symbols.contains(*k))
                .collect(),
        };
        let mut streams: BTreeSet<String> = symbols
            .into_iter()
            .flat_map(|s| self.source.price_streams(s))
            .collect();
        // A connection carries a bounded number of streams (Binance: 1,024): market channels
        // take what the price streams leave, in key order (the rest wait for room;
        // docs/channels.md).
        let room = self.source.max_streams().saturating_sub(streams.len());
        let market = interest.iter().filter_map(|k| Market::of(k));
        let mine = market.filter(|m| m.has_stream() && self.symbols.contains(m.symbol()));
        let market = mine.filter_map(|m| self.source.market_stream(&m));
        streams.extend(market.take(room));
        streams
    }
}

/// The one state clients are told of several sources: `connected` while any source that
/// carries anything delivers; `down` when every one of them is down; `reconnecting` when none
/// delivers and one is retrying; `idle` when none carries anything.
///
/// Why not the worst of them: a Twelve Data outage (or a refused key, which only its operator
/// can fix) would tell every client, Binance's too, `reconnecting` for as long as it lasts.
/// A client of the failing source learns it from its own symbols instead: their prices stop,
/// and `edgetick.js` marks the feed stale; `/health` names the source.
pub fn combined(states: impl Iterator<Item = UpstreamState>) -> UpstreamState {
    let busy: Vec<UpstreamState> = states.filter(|s| *s != UpstreamState::Idle).collect();
    if busy.is_empty() {
        UpstreamState::Idle
    } else if busy.contains(&UpstreamState::Connected) {
        UpstreamState::Connected
    } else if busy.iter().all(|s| *s == UpstreamState::Down) {
        UpstreamState::Down
    } else {
        UpstreamState::Reconnecting
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UpstreamState::*;

    #[test]
    fn several_states_make_one() {
        assert_eq!(combined([Connected, Idle].into_iter()), Connected);
        assert_eq!(combined([Connected, Down].into_iter()), Connected);
        assert_eq!(combined([Reconnecting, Down].into_iter()), Reconnecting);
        assert_eq!(combined([Down, Down, Idle].into_iter()), Down);
        assert_eq!(combined([Idle, Idle].into_iter()), Idle);
        assert_eq!(combined([Reconnecting].into_iter()), Reconnecting);
    }
}
