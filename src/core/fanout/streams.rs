//! Server-Sent Events streams: opened with a snapshot (or what a resuming reader missed),
//! then pulled by the edge; a reader that does not pull keeps one pending entry per symbol,
//! never a backlog.

use std::rc::Rc;

use super::{Carrier, ConnId, Fanout, Transport};
use crate::core::error::ApiError;
use crate::core::feed::link::UpstreamState;
use crate::core::protocol::{self, sse_event};

/// What an SSE stream gets when it asks for more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseTake {
    /// Bytes to send.
    Data(String),
    /// Nothing yet: park until an [`crate::core::effect::Effect::SseWake`].
    Pending,
    /// End the stream.
    Closed,
}

impl Fanout {
    /// Opens an SSE stream for canonical `symbols`. Returns its id and the first bytes:
    /// `retry:`, then the snapshot (only symbols with a `seq` above `last_event_id` when the
    /// client resumes), then the upstream state if it is not `connected`.
    pub fn sse_open(
        &mut self,
        symbols: &[String],
        last_event_id: Option<u64>,
        now_ms: i64,
    ) -> Result<(ConnId, String), ApiError> {
        let cap = self.cfg.max_symbols_per_connection;
        if symbols.len() > cap {
            return Err(ApiError::TooManySymbols(format!(
                "a stream may carry at most {cap} symbols; {} were asked for",
                symbols.len()
            )));
        }
        if !self.admit_client() {
            return Err(ApiError::AtCapacity(
                "the service is at its connection limit; retry shortly".into(),
            ));
        }
        let conn = self.client_open(Transport::Sse, now_ms);
        self.interest_changed |= !self.clients.subscribe(conn, symbols).is_empty();
        let seq = self.latest.seq();
        if let Some(Carrier::Sse(sse)) = self.clients.get_mut(conn).map(|c| &mut c.carrier) {
            sse.delivered = seq;
        }
        let parts: Vec<Rc<str>> = self
            .latest
            .parts(symbols, last_event_id.unwrap_or(0), now_ms);
        let mut first = String::from("retry: 1000\n\n");
        let snapshot = protocol::prices_frame("snapshot", &parts);
        first.push_str(&sse_event("snapshot", Some(seq), &snapshot));
        if !matches!(self.state, UpstreamState::Connected | UpstreamState::Idle) {
            let status = protocol::status_frame(self.state.as_str(), now_ms);
            first.push_str(&sse_event("status", None, &status));
        }
        self.count_sent(1, first.len());
        Ok((conn, first))
    }

    /// The stream of `conn` asks for its next bytes. The newest value of every pending
    /// symbol is assembled from the latest encodings now, so a reader that was slow gets
    /// one up-to-date event instead of a backlog.
    pub fn sse_take(&mut self, conn: ConnId, now_ms: i64) -> SseTake {
        let Some(Carrier::Sse(sse)) = self.clients.get_mut(conn).map(|c| &mut c.carrier) else {
            return SseTake::Closed;
        };
        if sse.closing {
            return SseTake::Closed;
        }
        let mut out = String::new();
        while let Some(e) = sse.events.pop_front() {
            out.push_str(&e);
        }
        let pending = std::mem::take(&mut sse.pending);
        sse.pending_since = None;
        sse.warned = false;
        if let Some((frame, max_seq)) = self.latest.frame(&pending, sse.delivered, now_ms) {
            sse.delivered = max_seq;
            out.push_str(&sse_event("prices", Some(max_seq), &frame));
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
        SseTake::Data(out)
    }

    /// The SSE stream ended (the reader went away, or it was closed).
    pub fn sse_closed(&mut self, conn: ConnId, now_ms: i64) {
        self.client_closed(conn, now_ms);
    }
}
