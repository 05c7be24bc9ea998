//! The leader's heat maps: `heatmap:` channels listened to anywhere in the tree are followed
//! by the [`HeatBook`] (open interest polled every interval), their 5-minute candles kept live
//! (the stream closes them into the candle history), and each map computed from both and the
//! latest price, then sent like any market state only when it changed.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Hub;
use crate::core::effect::{Effect, FetchId};
use crate::core::heatmap::model::Bar;
use crate::core::history::book::Answer;
use crate::core::market::{MarketKind, MarketUpdate};
use crate::core::metrics::Exposition;

/// The candles the heat map reads: 5-minute ones, three of them (its 15-minute window).
const INTERVAL: &str = "5m";
const BARS: usize = 3;
const BAR_MS: i64 = 300_000;

impl Hub {
    /// Follows the `heatmap:` channels of `interest`, and adds what they need from the
    /// upstream: their symbols' 5-minute candles.
    pub(super) fn follow_heatmaps(&mut self, interest: &mut BTreeSet<String>, now_ms: i64) {
        for symbol in self.heat.set_listened(interest, now_ms) {
            interest.insert(format!("candles:{symbol}:{INTERVAL}"));
        }
    }

    /// The maps due now: each one's poll goes out (the map follows its answer), or, when no
    /// poll may go (one under way, or backing off), the map is computed at once.
    pub(super) fn heatmaps_due(
        &mut self,
        now_ms: i64,
        market: &mut Vec<MarketUpdate>,
        fx: &mut Vec<Effect>,
    ) {
        for (symbol, poll) in self.heat.due_now(now_ms) {
            match poll {
                Some(p) => fx.push(Effect::Fetch {
                    id: FetchId::OpenInterest(p.id),
                    url: p.url,
                }),
                None => market.extend(self.heatmap_of(&symbol, now_ms)),
            }
        }
    }

    /// An open-interest answer: a sample, then the map.
    pub(super) fn open_interest(
        &mut self,
        id: u64,
        answer: &Answer,
        now_ms: i64,
        jitter: f64,
    ) -> Vec<MarketUpdate> {
        let Some(symbol) = self.heat.symbol_of(id) else {
            return Vec::new();
        };
        let price = self
            .feed
            .price_text(&symbol, now_ms)
            .and_then(|p| p.parse().ok());
        match self.heat.answered(id, answer, price, now_ms, jitter) {
            Some(symbol) => self.heatmap_of(&symbol, now_ms).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Records what an open-interest answer cost the object (the edge's measure).
    pub fn observe_heatmap(&mut self, seconds: f64) {
        self.heat.timing.observe(seconds);
    }

    /// The history's part of `/metrics`: the candle series kept and their backfill, the
    /// heat maps listened to, sent, and what each update costs.
    pub(super) fn history_metrics(&self) -> String {
        let mut e = Exposition::default();
        let counts = self.candles.counts();
        e.single(
            "edgetick_candle_series",
            "gauge",
            "Candle series kept (symbol and interval).",
            self.candles.len() as f64,
        )
        .family(
            "edgetick_candle_fetches_total",
            "counter",
            "Klines requests of the backfill by outcome.",
        )
        .sample(
            "edgetick_candle_fetches_total",
            &[("outcome", "ok")],
            counts.ok as f64,
        )
        .sample(
            "edgetick_candle_fetches_total",
            &[("outcome", "refused")],
            counts.refused as f64,
        )
        .sample(
            "edgetick_candle_fetches_total",
            &[("outcome", "failed")],
            counts.failed as f64,
        )
        .single(
            "edgetick_heatmap_symbols",
            "gauge",
            "Symbols whose heat map someone listens to.",
            self.heat.len() as f64,
        )
        .single(
            "edgetick_heatmaps_sent_total",
            "counter",
            "Heat maps sent (each one that changed).",
            self.heat.sent as f64,
        )
        .single(
            "edgetick_heatmap_polls_failed_total",
            "counter",
            "Open-interest polls that failed or were refused.",
            self.heat.failed_polls as f64,
        )
        .histogram(
            "edgetick_heatmap_update_seconds",
            "What one open-interest answer costs the object: the map computed and fanned out.",
            &self.heat.timing,
        );
        e.finish()
    }

    /// `symbol`'s map now, as a market update, when it changed (and the price is known).
    fn heatmap_of(&mut self, symbol: &str, now_ms: i64) -> Option<MarketUpdate> {
        let text = self.feed.price_text(symbol, now_ms)?;
        let price: f64 = text.parse().ok()?;
        let bars = self.bars(symbol);
        let body = self
            .heat
            .map_if_changed(symbol, (price, &text), &bars, now_ms)?;
        let update = MarketUpdate {
            channel: format!("heatmap:{symbol}"),
            kind: MarketKind::Heatmap,
            encoded: body.into(),
        };
        self.feed.keep_market(&update);
        Some(update)
    }

    /// The window's 5-minute candles, from the candle history.
    fn bars(&self, symbol: &str) -> Vec<Bar> {
        let Some(series) = self.candles.series(symbol, INTERVAL) else {
            return Vec::new();
        };
        let bar = |json: &str| -> Option<Bar> {
            let v: Value = serde_json::from_str(json).ok()?;
            let num = |k: &str| v.get(k)?.as_str()?.parse::<f64>().ok();
            Some(Bar {
                close_ms: v.get("t")?.as_i64()? + BAR_MS,
                high: num("h")?,
                low: num("l")?,
            })
        };
        series
            .last(BARS)
            .iter()
            .filter_map(|c| bar(&c.json))
            .collect()
    }
}
