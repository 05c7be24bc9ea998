//! The leader object's state machine: the feed and the fan-out composed, inputs (client
//! frames, upstream frames, timers) in, [`Effect`]s out.
//!
//! Every input goes to the part it belongs to; what the feed produces for the fan-out
//! crosses as a [`Batch`], and the fan-out's interest (the symbols its clients hold) goes
//! back to the feed. The fan-out's effects come first and the feed's (upstream, storage)
//! after: a storage write holds later outgoing messages behind the output gate, so it never
//! stands between an update and its fan-out. Time (`now_ms`) and randomness (`jitter`) are
//! arguments, so every decision can be replayed in a unit test, in the same order.

use std::rc::Rc;

use super::effect::OneTimer;
pub use super::effect::{Effect, Level};

use super::batch::Batch;
use super::config::Config;
use super::error::ApiError;
use super::events::publish::Bucket;
use super::events::History;
use super::fanout::Fanout;
use super::feed::binance::Binance;
use super::feed::cache::StoredPrice;
use super::feed::source::Source;
use super::feed::twelvedata::TwelveData;
use super::feed::Feed;
use super::groups::{self, AssetGroup};
use super::heatmap::HeatBook;
use super::history::book::{CandleBook, Gained};
use super::host::ClientHost;
use super::ids::{ConnId, Identity, ShardId, SourceId};
use super::input::{ClientInput, StreamOpen, UpstreamEvent};
use super::metrics;
use super::report;
use super::rest;
use super::tree::{ShardMessage, ShardTable, ShardView};
use super::wire::Wire;

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod candles_tests;
#[cfg(test)]
mod heatmap_tests;
#[cfg(test)]
mod market_tests;
#[cfg(test)]
mod polling_tests;
#[cfg(test)]
mod socketio_tests;
#[cfg(test)]
pub(crate) mod tests;

mod candles;
mod heatmap;
mod publishing;

/// The hub.
#[derive(Debug)]
pub struct Hub {
    cfg: Rc<Config>,
    feed: Feed,
    fanout: Fanout,
    /// The fan-out shards linked to this leader (none when the leader carries the clients).
    shards: ShardTable,
    /// The shards' interests changed since the feed last followed them.
    shard_interest_changed: bool,
    /// The in-memory timer currently requested.
    timer: OneTimer,
    /// The event channels' history: hands out offsets; stored.
    history: History,
    /// `PUBLISH_PER_SECOND`.
    publishes: Bucket,
    /// The candle history.
    candles: CandleBook,
    /// Closed candles from the stream not stored yet (they are, after their flush).
    unstored: Vec<Gained>,
    /// The heat maps listened to.
    heat: HeatBook,
}

impl Hub {
    /// A hub with an empty cache and no connections, following Binance for the symbols it
    /// serves and Twelve Data when it is configured.
    pub fn new(cfg: Config) -> Hub {
        let mut sources: Vec<Rc<dyn Source>> = Vec::new();
        if cfg.symbols.of(SourceId::Binance).next().is_some() {
            sources.push(Rc::new(Binance));
        }
        if let Some(td) = &cfg.twelvedata {
            sources.push(Rc::new(TwelveData::new(&td.api_key, td.heartbeat_ms)));
        }
        Hub::with_sources(cfg, sources)
    }

    /// A hub following `source` alone.
    pub fn with_source(cfg: Config, source: Rc<dyn Source>) -> Hub {
        Hub::with_sources(cfg, vec![source])
    }

    /// A hub following `sources`.
    pub fn with_sources(cfg: Config, sources: Vec<Rc<dyn Source>>) -> Hub {
        let cfg = Rc::new(cfg);
        let history = &cfg.history;
        let candles = CandleBook::new(history.rest_urls.clone(), history.candles);
        let heat = HeatBook::new(history.futures_url.clone(), history.heatmap_interval_ms);
        Hub {
            history: History::new(String::new(), cfg.events.history)
                .bound_private(cfg.events.private_history.0, cfg.events.private_history.1),
            feed: Feed::new(cfg.clone(), sources),
            fanout: Fanout::new(cfg.clone()),
            shards: ShardTable::new(cfg.fanout_shards, cfg.flush_ms),
            cfg,
            shard_interest_changed: false,
            timer: OneTimer::default(),
            publishes: Bucket::default(),
            candles,
            unstored: Vec::new(),
            heat,
        }
    }

    /// Loads persisted prices; the fan-out starts from them too.
    pub fn restore_prices(&mut self, prices: Vec<StoredPrice>, seq_floor: u64, now_ms: i64) {
        self.feed.restore_prices(prices, seq_floor, now_ms);
        self.fanout.load(&self.feed.snapshot(now_ms));
    }

    /// The event history the leader keeps (and stores).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The highest `seq` handed out.
    pub fn seq(&self) -> u64 {
        self.feed.seq()
    }

    /// The sources the feed follows.
    pub fn sources(&self) -> Vec<SourceId> {
        self.feed.sources()
    }

    /// Takes back a link's memory persisted by an earlier instance.
    pub fn restore_link(&mut self, source: SourceId, json: &str) -> Result<(), String> {
        self.feed.restore_link(source, json)
    }

    /// After an input: the feed follows the fan-out's interest, the state and the batch go
    /// to the fan-out, then the feed's effects, then the timer.
    fn finish(
        &mut self,
        now_ms: i64,
        mut fx: Vec<Effect>,
        mut later: Vec<Effect>,
        mut batch: Batch,
    ) -> Vec<Effect> {
        self.follow_interest(now_ms, &mut later);
        self.feed.report_state(&mut batch);
        if !batch.is_empty() {
            self.keep_closed_candles(&batch, now_ms);
            self.fanout.apply(&batch, now_ms, &mut fx);
            let sent = self.shards.route(batch, now_ms);
            fx.extend(sent.map(|(links, text)| Effect::SendShards { links, text }));
            if self.cfg.flush_ms == 0 {
                self.store_closed_candles(&mut later);
            }
        }
        self.poll_candles(now_ms, &mut later);
        let expiry = self.fanout.expiry_due();
        self.feed.alarm_also_at(expiry, now_ms, &mut later);
        fx.append(&mut later);
        self.arm_timer(now_ms, &mut fx);
        fx
    }

    /// The feed follows what the leader's own clients and every linked shard's clients hold.
    fn follow_interest(&mut self, now_ms: i64, later: &mut Vec<Effect>) {
        let local = self.fanout.take_interest_changed();
        if local || std::mem::take(&mut self.shard_interest_changed) {
            let mut interest = self.fanout.interest();
            interest.extend(self.shards.union());
            self.follow_heatmaps(&mut interest, now_ms);
            self.candles.set_live(&interest, now_ms);
            self.feed.want(interest, now_ms, later);
        }
    }

    /// Keeps one in-memory timer requested, at the earliest time either part needs it.
    fn arm_timer(&mut self, now_ms: i64, fx: &mut Vec<Effect>) {
        let due = [
            self.fanout.timer_due(),
            self.feed.timer_due(),
            self.shards.due(),
            self.candles.due(),
            self.unstored_due(now_ms),
            self.heat.due(),
        ];
        self.timer.request(due, now_ms, fx);
    }

    // ----- upstream and clock -----------------------------------------------------------

    /// Starts (or re-checks) the upstream. Cheap and safe to call on every event.
    pub fn start(&mut self, now_ms: i64) -> Vec<Effect> {
        let mut later = Vec::new();
        self.follow_interest(now_ms, &mut later);
        self.feed.start(now_ms, &mut later);
        self.finish(now_ms, Vec::new(), later, Batch::default())
    }

    /// An upstream connection's event: the feed of its source takes it in, and what changed
    /// goes out (an event of a source this leader does not follow changes nothing).
    pub fn upstream(
        &mut self,
        source: SourceId,
        event: UpstreamEvent<'_>,
        now_ms: i64,
        jitter: f64,
    ) -> Vec<Effect> {
        let (mut later, mut batch) = (Vec::new(), Batch::default());
        let feed = &mut self.feed;
        match event {
            UpstreamEvent::Opened { generation } => {
                feed.upstream_opened(source, generation, now_ms, &mut later)
            }
            UpstreamEvent::Text { generation, text } => {
                let from = (source, generation);
                feed.upstream_text(from, text, now_ms, &mut later, &mut batch)
            }
            UpstreamEvent::Binary { generation } => {
                feed.upstream_binary((source, generation), now_ms, &mut later)
            }
            UpstreamEvent::Failed {
                generation,
                failure,
            } => {
                let from = (source, generation);
                feed.upstream_failed(from, failure, now_ms, jitter, &mut later)
            }
        }
        self.finish(now_ms, Vec::new(), later, batch)
    }

    /// The object's alarm fired.
    pub fn alarm(&mut self, now_ms: i64, jitter: f64) -> Vec<Effect> {
        let (mut fx, mut later, mut batch) = (Vec::new(), Vec::new(), Batch::default());
        self.fanout.alarm(now_ms, &mut fx);
        self.feed.set_alarm_also(self.fanout.expiry_due());
        self.feed.alarm(now_ms, jitter, &mut later, &mut batch);
        self.finish(now_ms, fx, later, batch)
    }

    // ----- fan-out shards ---------------------------------------------------------------

    /// Shard `shard` dialled in: returns its link's generation and the effects, the first of
    /// which sends it the snapshot it starts from. `None` for a shard that does not exist.
    pub fn shard_linked(&mut self, shard: ShardId, now_ms: i64) -> Option<(u64, Vec<Effect>)> {
        if shard >= self.cfg.fanout_shards {
            return None;
        }
        let held = self.shards.flush(now_ms);
        let mut snapshot = self.feed.snapshot(now_ms);
        snapshot.epoch = Some(self.history.epoch().to_string());
        let (generation, text) = self.shards.link(shard, &snapshot, now_ms)?;
        let mut fx: Vec<Effect> = held
            .map(|(links, text)| Effect::SendShards { links, text })
            .into_iter()
            .collect();
        // The event history first, so a client's recovery held until the snapshot finds it.
        for text in self.history_messages() {
            fx.push(Effect::SendShards {
                links: vec![(shard, generation)],
                text: text.into(),
            });
        }
        fx.push(Effect::SendShards {
            links: vec![(shard, generation)],
            text: text.into(),
        });
        Some((
            generation,
            self.finish(now_ms, fx, Vec::new(), Batch::default()),
        ))
    }

    /// A message from shard `shard` on its link of `generation`.
    pub fn shard_text(
        &mut self,
        shard: ShardId,
        generation: u64,
        text: &str,
        now_ms: i64,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        match ShardMessage::decode(text) {
            Ok(msg) => self.shard_interest_changed |= self.shards.message(shard, generation, msg),
            Err(e) => fx.push(Effect::Log {
                level: Level::Warn,
                event: "shard_bad_message",
                detail: format!("shard {shard}: {e}"),
            }),
        }
        self.finish(now_ms, fx, Vec::new(), Batch::default())
    }

    /// The link of `generation` to shard `shard` closed.
    pub fn shard_closed(&mut self, shard: ShardId, generation: u64, now_ms: i64) -> Vec<Effect> {
        self.shard_interest_changed |= self.shards.unlink(shard, generation);
        self.finish(now_ms, Vec::new(), Vec::new(), Batch::default())
    }

    /// Every shard with its link and last report, for `/health`.
    pub fn shard_views(&self) -> Vec<ShardView> {
        self.shards.views(self.feed.seq())
    }

    // ----- REST, health and metrics -----------------------------------------------------

    /// Body and weak ETag of `GET /api/prices`.
    pub fn rest_prices(&mut self, symbols: Option<&[String]>, now_ms: i64) -> (String, String) {
        self.feed.rest_prices(symbols, now_ms)
    }

    /// Body and weak ETag of `GET /api/prices/{symbol}` for a canonical, served symbol.
    pub fn rest_price(&mut self, symbol: &str, now_ms: i64) -> Result<(String, String), ApiError> {
        self.feed.rest_price(symbol, now_ms)
    }

    /// Body and weak ETag of a group's route (`/api/stocks`, `/api/forex`, `/api/crypto`).
    pub fn rest_group(&mut self, group: AssetGroup, now_ms: i64) -> (String, String) {
        self.feed.rest_group(group, now_ms)
    }

    /// Body and weak ETag of `GET /api/status`.
    pub fn rest_status(&self, now_ms: i64) -> (String, String) {
        let feed = self.feed.report(now_ms);
        let status = groups::Status {
            status: report::verdict(&feed),
            upstreams: feed.upstreams.iter().map(|u| (u.source, u.state)).collect(),
            symbols: (self.cfg.symbols.len(), feed.symbols.tracked),
            as_of: now_ms,
        };
        let body = groups::status_body(&status);
        let unchanged = groups::Status { as_of: 0, ..status };
        let tag = rest::etag([(groups::status_body(&unchanged).as_str(), 0)]);
        (body, tag)
    }

    /// `GET /metrics` in Prometheus text format.
    pub fn metrics(&self, now_ms: i64) -> String {
        let mut text = metrics::render(
            &self.feed.report(now_ms),
            &self.fanout.report(),
            &self.shard_views(),
        );
        text.push_str(&self.history_metrics());
        text
    }

    /// `GET /health`: HTTP status and body.
    pub fn health(&self, now_ms: i64) -> (u16, String) {
        report::health(
            &self.feed.report(now_ms),
            &self.fanout.report(),
            &self.shard_views(),
        )
    }
}

impl ClientHost for Hub {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    fn fanout_mut(&mut self) -> &mut Fanout {
        &mut self.fanout
    }

    /// Client inputs are carried out at once; the feed then follows the interest.
    fn client(&mut self, input: ClientInput<'_>, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.fanout.client(input, now_ms, &mut fx);
        self.finish(now_ms, fx, Vec::new(), Batch::default())
    }

    fn client_open(
        &mut self,
        wire: Wire,
        who: Option<Identity>,
        now_ms: i64,
    ) -> (ConnId, Vec<Effect>) {
        let mut fx = Vec::new();
        let conn = self.fanout.client_open(wire, who, now_ms, &mut fx);
        (conn, self.finish(now_ms, fx, Vec::new(), Batch::default()))
    }

    fn sse_open(
        &mut self,
        open: &StreamOpen,
        now_ms: i64,
    ) -> Result<(ConnId, String, Vec<Effect>), ApiError> {
        let (conn, first) = self.fanout.sse_open(open, now_ms)?;
        let fx = self.finish(now_ms, Vec::new(), Vec::new(), Batch::default());
        Ok((conn, first, fx))
    }

    fn settle(&mut self, now_ms: i64, fx: Vec<Effect>) -> Vec<Effect> {
        self.finish(now_ms, fx, Vec::new(), Batch::default())
    }

    /// The in-memory timer fired: the fan-out flushes and checks its readers, then the feed
    /// writes what is due.
    fn timer(&mut self, now_ms: i64) -> Vec<Effect> {
        self.timer.fired();
        let (mut fx, mut later) = (Vec::new(), Vec::new());
        self.fanout.timer(now_ms, &mut fx);
        let held = self.shards.flush_due(now_ms);
        fx.extend(held.map(|(links, text)| Effect::SendShards { links, text }));
        self.feed.timer(now_ms, &mut later);
        self.store_closed_candles(&mut later);
        let mut batch = Batch::default();
        self.heatmaps_due(now_ms, &mut batch.market, &mut later);
        self.finish(now_ms, fx, later, batch)
    }
}
