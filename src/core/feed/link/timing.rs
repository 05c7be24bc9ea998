//! What the clock drives on the link: connect time-outs, the silence watchdog, rotation by
//! age, the idle close, paced subscribe/unsubscribe requests, and the next wake-up.

use super::super::source::StreamChange;
use super::{
    Conn, Effect, Failure, Level, Link, CONNECT_TIMEOUT_MS, MIN_SILENCE_MS, SILENCE_CADENCES,
};

impl Link {
    /// Timer work: connect time-outs, the watchdog, rotation by age, idle close, paced
    /// requests and retries. Call it whenever [`Link::next_wake`] comes due.
    pub fn tick(&mut self, now: i64, jitter: f64, fx: &mut Vec<Effect>) {
        if let Some(p) = &self.pending {
            let waited = now - p.opened_at.unwrap_or(p.started_at);
            if waited >= CONNECT_TIMEOUT_MS {
                let g = p.generation;
                self.failed(g, Failure::ConnectTimeout, now, jitter, fx);
            }
        }
        if let Some(a) = &self.active {
            let quiet = now - a.quiet_since();
            if !a.streams.is_empty() && quiet >= self.silence_limit(a) {
                let g = a.generation;
                self.failed(g, Failure::Silent { for_ms: quiet }, now, jitter, fx);
            }
        }
        let old_enough = self
            .active
            .as_ref()
            .and_then(|a| a.opened_at)
            .is_some_and(|t| now - t >= self.s.max_age_ms);
        if old_enough && self.pending.is_none() {
            self.attempt(now, fx);
        }
        if self.s.on_demand && self.wanted.is_empty() {
            if let Some(since) = self.idle_since {
                if now - since >= self.s.idle_close_ms {
                    for c in [self.active.take(), self.pending.take()]
                        .into_iter()
                        .flatten()
                    {
                        fx.push(self.close(c.generation));
                    }
                    if self.connected_since.take().is_some() {
                        fx.push(Effect::Log {
                            level: Level::Info,
                            event: "upstream_idle_closed",
                            detail: "nobody listens; closed so the object can hibernate".into(),
                        });
                    }
                }
            }
        }
        self.beat(now, fx);
        self.sync_requests(now, fx);
        self.ensure(now, fx);
    }

    /// Sends the source's heartbeat on the active connection when one is due.
    fn beat(&mut self, now: i64, fx: &mut Vec<Effect>) {
        let (Some((every, text)), Some(a)) = (self.source.heartbeat(), &mut self.active) else {
            return;
        };
        let since = a.beat_at.or(a.opened_at).unwrap_or(a.started_at);
        if now - since >= every {
            a.beat_at = Some(now);
            fx.push(Effect::SendUpstream {
                source: self.source.id(),
                generation: a.generation,
                text,
            });
        }
    }

    /// Sends the next batched `SUBSCRIBE` or `UNSUBSCRIBE` if the active connection's
    /// streams differ from the wanted ones and the spacing allows it.
    pub(super) fn sync_requests(&mut self, now: i64, fx: &mut Vec<Effect>) {
        let Some(a) = &mut self.active else {
            return;
        };
        if self
            .last_request_at
            .is_some_and(|t| now - t < self.source.request_spacing_ms())
        {
            return;
        }
        let add: Vec<String> = self.wanted.difference(&a.streams).cloned().collect();
        let remove: Vec<String> = a.streams.difference(&self.wanted).cloned().collect();
        let (subscribe, params) = if !add.is_empty() {
            (true, add)
        } else if !remove.is_empty() {
            (false, remove)
        } else {
            return;
        };
        for p in &params {
            if subscribe {
                a.streams.insert(p.clone());
            } else {
                a.streams.remove(p);
            }
        }
        a.cadence = Conn::cadence_of(self.source.as_ref(), &a.streams);
        let change = if subscribe {
            StreamChange::Subscribe
        } else {
            StreamChange::Unsubscribe
        };
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.last_request_at = Some(now);
        self.requests_sent += 1;
        // A silence window starts when streams are added to a connection that had none.
        if subscribe && a.last_frame_at.is_none() {
            a.opened_at = Some(now);
        }
        fx.push(Effect::SendUpstream {
            source: self.source.id(),
            generation: a.generation,
            text: self.source.request(change, &params, id),
        });
    }

    pub(super) fn requests_due(&self) -> bool {
        self.active
            .as_ref()
            .is_some_and(|a| a.streams != self.wanted)
    }

    /// When [`Link::tick`] next has something to do.
    pub fn next_wake(&self) -> Option<i64> {
        let mut at: Vec<i64> = Vec::new();
        if !self.wanted.is_empty() && self.active.is_none() && self.pending.is_none() {
            at.push(
                self.mem
                    .retry_at
                    .max(self.mem.breaker.open_until().unwrap_or(0))
                    .max(self.mem.budget.full_until().unwrap_or(0)),
            );
        }
        if let Some(p) = &self.pending {
            at.push(p.opened_at.unwrap_or(p.started_at) + CONNECT_TIMEOUT_MS);
        }
        if let Some(a) = &self.active {
            if !a.streams.is_empty() {
                at.push(a.quiet_since() + self.silence_limit(a));
            }
            if let Some((every, _)) = self.source.heartbeat() {
                at.push(a.beat_at.or(a.opened_at).unwrap_or(a.started_at) + every);
            }
            if let (Some(t), None) = (a.opened_at, &self.pending) {
                at.push(t + self.s.max_age_ms);
            }
        }
        if self.requests_due() {
            at.push(
                self.last_request_at
                    .map_or(0, |t| t + self.source.request_spacing_ms()),
            );
        }
        if let (true, Some(since), true) = (
            self.s.on_demand && self.wanted.is_empty(),
            self.idle_since,
            self.active.is_some() || self.pending.is_some(),
        ) {
            at.push(since + self.s.idle_close_ms);
        }
        at.into_iter().min()
    }

    /// The silence limit of a connection carrying `streams` (see `limit_for`).
    #[cfg(test)]
    pub(super) fn silence_limit_of(
        &self,
        streams: &std::collections::BTreeSet<String>,
        delivered: bool,
    ) -> i64 {
        self.limit_for(Conn::cadence_of(self.source.as_ref(), streams), delivered)
    }

    /// How long a connection may stay silent before the watchdog replaces it. Once it has
    /// delivered, streams that promise a cadence (Binance's tickers: every second) bound it
    /// to a few missed cadences, so a dead stream is noticed in seconds; a quiet market never
    /// trips it, because the cadence holds when nothing trades. Streams without a cadence,
    /// and a connection that has not delivered yet, get `UPSTREAM_WATCHDOG_SECONDS`, which
    /// is also the ceiling.
    ///
    /// A source kept alive by heartbeats gets at least two of them, whatever the setting: a
    /// closed market answers only those, and must not look dead between two.
    fn limit_for(&self, cadence: Option<i64>, delivered: bool) -> i64 {
        let limit = match cadence {
            Some(ms) if delivered => (ms * SILENCE_CADENCES)
                .max(MIN_SILENCE_MS)
                .min(self.s.watchdog_ms),
            _ => self.s.watchdog_ms,
        };
        let beats = self.source.heartbeat().map_or(0, |(every, _)| every * 2);
        limit.max(beats)
    }

    pub(super) fn silence_limit(&self, c: &Conn) -> i64 {
        self.limit_for(c.cadence, c.last_frame_at.is_some())
    }
}
