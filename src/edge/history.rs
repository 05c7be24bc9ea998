//! The leader's history at the edge: `/api/candles` reads (held while the backfill they
//! asked for is under way, up to a few seconds) and the REST requests the core asks for (the
//! candle backfill, the heat map's open interest), whose answers go back to it.

use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{select, Either};
use worker::{wasm_bindgen_futures::spawn_local, Delay, Fetch, Response, Result, Url};

use super::env::{jitter, now_ms};
use super::http;
use super::shared::Shared;
use crate::core::effect::FetchId;
use crate::core::error::ApiError;
use crate::core::history::api::CandlesRead;
use crate::core::history::book::Answer;

/// How long a read waits for a backfill before it answers what is held.
const HOLD_MS: i64 = 4_000;

/// How long a REST request may take before it counts as failed.
const FETCH_TIMEOUT_MS: u64 = 10_000;

impl Shared {
    /// `/api/candles` at the leader: the answer once the series is complete, or what is held
    /// when the hold is over.
    pub(super) async fn serve_candles(
        self: &Rc<Self>,
        symbol: &str,
        interval: &str,
        limit: usize,
    ) -> Result<Response> {
        let deadline = now_ms() + HOLD_MS;
        loop {
            let read = CandlesRead {
                symbol,
                interval,
                limit,
                last_chance: now_ms() >= deadline,
            };
            let ready = self
                .node
                .borrow_mut()
                .leader()
                .map(|hub| hub.rest_candles(read, now_ms()));
            let Some((answer, fx)) = ready else {
                return http::error(&ApiError::Internal);
            };
            self.execute(fx);
            if let Some(a) = answer {
                let mut resp = http::json_tagged(200, a.body, &a.etag)?;
                let cache = format!("public, max-age={}", a.max_age_s);
                resp.headers_mut().set("Cache-Control", &cache)?;
                return Ok(resp);
            }
            let (tx, rx) = oneshot::channel();
            {
                // Reads that gave up left their senders behind: forget them.
                let mut waiters = self.candle_waiters.borrow_mut();
                waiters.retain(|w| !w.is_canceled());
                waiters.push(tx);
            }
            let left = (deadline - now_ms()).max(0) as u64;
            let _ = select(rx, Delay::from(Duration::from_millis(left))).await;
        }
    }

    /// Wakes the reads waiting for candles.
    pub(super) fn candles_ready(&self) {
        for tx in self.candle_waiters.borrow_mut().drain(..) {
            let _ = tx.send(());
        }
    }

    /// Carries out one REST request of the core's (a klines backfill, an open-interest poll)
    /// and hands its answer to the hub.
    pub(super) fn fetch_rest(self: &Rc<Self>, id: FetchId, url: String) {
        let shared = self.clone();
        spawn_local(async move {
            let timeout = Delay::from(Duration::from_millis(FETCH_TIMEOUT_MS));
            let answer = match select(Box::pin(get(&url)), timeout).await {
                Either::Left((Ok(answer), _)) => answer,
                Either::Left((Err(_), _)) | Either::Right(_) => Answer::Failed,
            };
            let started = js_sys::Date::now();
            shared.run(|n| n.on_leader(|hub| hub.fetched(id, answer, now_ms(), jitter())));
            if let FetchId::OpenInterest(_) = id {
                let seconds = (js_sys::Date::now() - started) / 1000.0;
                if let Some(hub) = shared.node.borrow_mut().leader() {
                    hub.observe_heatmap(seconds);
                }
            }
        });
    }
}

/// One GET, read into the book's [`Answer`].
async fn get(url: &str) -> Result<Answer> {
    let mut resp = Fetch::Url(Url::parse(url)?).send().await?;
    let header = |name: &str| resp.headers().get(name).ok().flatten();
    let retry_after_ms = header("Retry-After")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(|s| s.saturating_mul(1000));
    let used_weight = header("X-MBX-USED-WEIGHT-1M").and_then(|s| s.trim().parse().ok());
    Ok(Answer::Reply {
        status: resp.status_code(),
        retry_after_ms,
        used_weight,
        body: resp.text().await?,
    })
}
