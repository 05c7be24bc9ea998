//! Server-Sent Events streams: opened with a snapshot (or what a resuming reader missed),
//! then pulled by the edge; a reader that does not pull keeps one pending entry per symbol,
//! never a backlog.

use std::rc::Rc;

use super::market::state_kind;
use super::session::SseTake;
use super::{Carrier, Fanout};
use crate::core::auth;
use crate::core::channel;
use crate::core::cursor::{self, EventsAt};
use crate::core::error::ApiError;
use crate::core::events::Event;
use crate::core::ids::ConnId;
use crate::core::input::StreamOpen;
use crate::core::upstream_state::UpstreamState;
use crate::core::wire::body::{self, Targets};
use crate::core::wire::{sse, Kind, Payload, Wire};

/// Where a new stream starts: prices after `after`, events from `tops` (per event channel),
/// with what recovery found.
struct Resume<'a> {
    after: u64,
    recovered: Option<bool>,
    missed: &'a [Event],
    tops: Vec<(String, u64)>,
}

impl Fanout {
    /// Opens an SSE stream for canonical `symbols` and resolved `channels`. Returns its id
    /// and the first bytes: `retry:`; with channels a `subscribed` event (with `recovered`
    /// when the reader resumes a position in event channels); the snapshot (only symbols
    /// with a `seq` above the one in `last` when the reader resumes); the upstream state if
    /// it is not `connected`; then the events the reader missed, in order.
    pub fn sse_open(
        &mut self,
        open: &StreamOpen,
        now_ms: i64,
    ) -> Result<(ConnId, String), ApiError> {
        let (symbols, channels) = (&open.symbols[..], &open.channels[..]);
        let (last, who) = (open.last.as_deref(), open.who.clone());
        if let Some(why) = channels
            .iter()
            .find_map(|c| auth::forbidden(who.as_ref(), c))
        {
            return Err(ApiError::ChannelForbidden(why));
        }
        let cap = self.cfg.max_symbols_per_connection;
        if symbols.len() + channels.len() > cap {
            return Err(ApiError::TooManySymbols(format!(
                "a stream may carry at most {cap} symbols and channels; {} were asked for",
                symbols.len() + channels.len()
            )));
        }
        if !self.admit_client() {
            return Err(ApiError::AtCapacity(
                "the service is at its connection limit; retry shortly".into(),
            ));
        }
        let evented: Vec<String> = channels
            .iter()
            .filter(|c| channel::is_event_channel(c))
            .cloned()
            .collect();
        let (after, resumed) = last
            .and_then(|raw| cursor::parse(raw, &evented))
            .unwrap_or((0, None));
        let conn = self.client_open(Wire::Sse, who, now_ms, &mut Vec::new());
        let keys: Vec<String> = symbols.iter().chain(channels).cloned().collect();
        let added = self.clients.subscribe(conn, &keys);
        self.interest_changed |= added.iter().any(|k| channel::from_upstream(k));
        let since = resumed.as_ref().map(EventsAt::since).unwrap_or_default();
        let (recovered, missed) = self.recover(channels, &since);
        self.keep_floors(conn, &since);
        let tops = self.positions(&evented, resumed.as_ref(), recovered);
        let mut first = self.sse_first(
            conn,
            symbols,
            channels,
            Resume {
                after,
                recovered,
                missed: &missed,
                tops,
            },
            now_ms,
        );
        first.push_str(&left_out(&open.refused));
        self.count_sent(1, first.len());
        Ok((conn, first))
    }

    /// Where a new stream starts in each of its event channels: a recovered reader where it
    /// was (each replayed event then moves it), any other at the top of each channel.
    fn positions(
        &self,
        evented: &[String],
        resumed: Option<&EventsAt>,
        recovered: Option<bool>,
    ) -> Vec<(String, u64)> {
        let had = |c: &String| {
            let at = resumed.filter(|at| at.epoch == self.history.epoch());
            let offset = at.and_then(|at| at.offsets.iter().find(|(k, _)| k == c));
            offset.map_or(0, |(_, o)| *o)
        };
        // Never behind where the reader was: a copy whose link lags may not have got there.
        let start = |c: &String| match recovered {
            Some(true) => had(c),
            _ => self.history.top(c).max(had(c)),
        };
        evented.iter().map(|c| (c.clone(), start(c))).collect()
    }

    /// A new stream's first bytes (see [`Fanout::sse_open`]); sets where it starts.
    fn sse_first(
        &mut self,
        conn: ConnId,
        symbols: &[String],
        channels: &[String],
        resume: Resume<'_>,
        now_ms: i64,
    ) -> String {
        let Resume {
            after,
            recovered,
            missed,
            tops,
        } = resume;
        let states = self.market_states(channels);
        let seq = self.latest.seq();
        let mut first = String::from("retry: 1000\n\n");
        if let Some(Carrier::Sse(sse)) = self.clients.get_mut(conn).map(|c| &mut c.carrier) {
            // A reader resuming further on than this object's link has got holds those.
            sse.delivered = seq.max(after);
            if !tops.is_empty() {
                sse.events_at = Some(EventsAt::new(self.history.epoch(), &tops));
            }
            if !channels.is_empty() {
                let t = Targets {
                    symbols,
                    channels: Some(channels),
                    recovered,
                };
                let subscribed = body::targets(&t, &None);
                first.push_str(&sse::frame(
                    Payload::new(Kind::Subscribed, &subscribed),
                    None,
                ));
            }
            let parts: Vec<Rc<str>> = self.latest.parts(symbols, after, now_ms);
            let snapshot = body::prices(&parts);
            let id = sse.id();
            first.push_str(&sse::frame(
                Payload::new(Kind::Snapshot, &snapshot),
                Some(&id),
            ));
            if !matches!(self.state, UpstreamState::Connected | UpstreamState::Idle) {
                let status = body::status(self.state.as_str(), now_ms);
                first.push_str(&sse::frame(Payload::new(Kind::Status, &status), None));
            }
            for event in missed {
                if let Some(at) = &mut sse.events_at {
                    at.advance(&event.channel, event.offset);
                }
                let payload = Payload::new(Kind::Event, &event.encoded);
                first.push_str(&sse::frame(payload, Some(&sse.id())));
            }
            for (key, state) in &states {
                let payload = Payload::new(state_kind(key), state);
                first.push_str(&sse::frame(payload, Some(&sse.id())));
            }
        }
        first
    }

    /// The stream of `conn` asks for its next bytes. The newest value of every pending
    /// symbol is assembled from the latest encodings now, so a reader that was slow gets
    /// one up-to-date event instead of a backlog.
    pub fn sse_take(&mut self, conn: ConnId, now_ms: i64) -> SseTake {
        let Some(Carrier::Sse(sse)) = self.clients.get_mut(conn).map(|c| &mut c.carrier) else {
            return SseTake::Closed;
        };
        let mut out = String::new();
        while let Some(e) = sse.events.pop_front() {
            out.push_str(&e);
        }
        let pending = std::mem::take(&mut sse.pending);
        sse.pending_since = None;
        sse.warned = false;
        let mut priced = false;
        if let Some((prices, max_seq)) = self.latest.body(&pending, sse.delivered, now_ms) {
            sse.delivered = max_seq;
            priced = true;
            out.push_str(&sse::frame(
                Payload::new(Kind::Prices, &prices),
                Some(&sse.id()),
            ));
        }
        if out.is_empty() && sse.keepalive_due {
            out.push_str(": keepalive\n\n");
        }
        sse.keepalive_due = false;
        if out.is_empty() {
            sse.waiting = true;
            return SseTake::Pending;
        }
        sse.waiting = false;
        sse.last_sent = now_ms;
        self.count_sent(1, out.len());
        if priced {
            self.count_symbols(&pending, 1);
        }
        SseTake::Data(out)
    }
}

/// The `warning` naming the channels a stream left out (nothing when it left none out).
fn left_out(refused: &[String]) -> String {
    if refused.is_empty() {
        return String::new();
    }
    let message = format!(
        "not served, left out of this stream: {}",
        refused.join(", ")
    );
    let warning = body::warning("UNKNOWN_CHANNEL", &message);
    sse::frame(Payload::new(Kind::Warning, &warning), None)
}
