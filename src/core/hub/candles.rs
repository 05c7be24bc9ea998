//! The leader's candle history: the book of series kept (live while their `candles:`
//! channel is followed upstream, fetched for while asked), fed by the stream's closed
//! candles and by the REST backfill the edge carries out, stored as it grows, and read by
//! `GET /api/candles`.

use super::Hub;
use crate::core::batch::Batch;
use crate::core::channel::Market;
use crate::core::effect::{Effect, FetchId, Level};
use crate::core::history::api::{self, CandlesAnswer, CandlesRead};
use crate::core::history::book::Answer;
use crate::core::history::candles::Candle;
use crate::core::market::{candle_of_body, MarketKind};

impl Hub {
    /// Takes back stored candles of a series.
    pub fn restore_candles(&mut self, symbol: &str, interval: &str, candles: Vec<Candle>) {
        self.candles.restore(symbol, interval, candles);
    }

    /// A read of `/api/candles`: the answer when the series is complete (or on the read's
    /// last chance), else `None`, and the read waits for an [`Effect::CandlesReady`] (the
    /// backfill it asked for is among the effects).
    pub fn rest_candles(
        &mut self,
        read: CandlesRead<'_>,
        now_ms: i64,
    ) -> (Option<CandlesAnswer>, Vec<Effect>) {
        let complete = self.candles.ask(read.symbol, read.interval, now_ms);
        let answer = (complete || read.last_chance).then(|| {
            let series = self.candles.series(read.symbol, read.interval);
            api::answer(read.symbol, read.interval, series, read.limit, now_ms)
        });
        let fx = self.finish(now_ms, Vec::new(), Vec::new(), Batch::default());
        (answer, fx)
    }

    /// The answer to request `id`: a klines answer joins the candle history, an open-interest
    /// answer the heat map.
    pub fn fetched(
        &mut self,
        id: FetchId,
        answer: Answer,
        now_ms: i64,
        jitter: f64,
    ) -> Vec<Effect> {
        match id {
            FetchId::Klines(id) => self.klines_answered(id, answer, now_ms, jitter),
            FetchId::OpenInterest(id) => {
                let batch = Batch {
                    market: self.open_interest(id, &answer, now_ms, jitter),
                    ..Batch::default()
                };
                self.finish(now_ms, Vec::new(), Vec::new(), batch)
            }
        }
    }

    fn klines_answered(
        &mut self,
        id: u64,
        answer: Answer,
        now_ms: i64,
        jitter: f64,
    ) -> Vec<Effect> {
        let refused = match &answer {
            Answer::Reply { status, .. } if *status != 200 => Some(status.to_string()),
            Answer::Failed => Some("no answer".to_string()),
            Answer::Reply { .. } => None,
        };
        let mut later = Vec::new();
        if let Some(why) = refused {
            later.push(Effect::Log {
                level: Level::Warn,
                event: "candles_fetch_failed",
                detail: format!("request {id}: {why}"),
            });
        }
        if let Some(gained) = self.candles.answered(id, answer, now_ms, jitter) {
            later.push(Effect::StoreCandles { gained });
            later.push(Effect::CandlesReady);
        }
        self.finish(now_ms, Vec::new(), later, Batch::default())
    }

    /// The closed candles of a batch join their series; what they add is stored after the
    /// fan-out has sent them (see [`Hub::store_closed_candles`]).
    pub(super) fn keep_closed_candles(&mut self, batch: &Batch, now_ms: i64) {
        let closed = batch
            .market
            .iter()
            .filter(|u| u.kind == MarketKind::ClosedCandle);
        for update in closed {
            let Some((channel, t, json)) = candle_of_body(&update.encoded) else {
                continue;
            };
            let Some(Market::Candles(symbol, interval)) = Market::of(channel) else {
                continue;
            };
            let candle = Candle {
                t,
                json: json.into(),
            };
            if let Some(g) = self.candles.closed(&symbol, &interval, candle, now_ms) {
                self.unstored.push(g);
            }
        }
    }

    /// Stores the closed candles kept since the last flush. Called once the flush's frames
    /// are among the effects: a write holds later outgoing messages until it is durable, so
    /// it never stands between a close and its delivery.
    pub(super) fn store_closed_candles(&mut self, later: &mut Vec<Effect>) {
        if self.unstored.is_empty() {
            return;
        }
        later.extend(
            self.unstored
                .drain(..)
                .map(|gained| Effect::StoreCandles { gained }),
        );
        later.push(Effect::CandlesReady);
    }

    /// When the closed candles kept wait to be stored: at the next flush.
    pub(super) fn unstored_due(&self, now_ms: i64) -> Option<i64> {
        (!self.unstored.is_empty()).then_some(now_ms + self.cfg.flush_ms)
    }

    /// The backfill's next request, when one is due.
    pub(super) fn poll_candles(&mut self, now_ms: i64, later: &mut Vec<Effect>) {
        if let Some(f) = self.candles.poll(now_ms) {
            later.push(Effect::Fetch {
                id: FetchId::Klines(f.id),
                url: f.url,
            });
        }
    }
}
