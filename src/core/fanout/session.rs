//! Per-client state kept by the fan-out's client table: the message rate limiter, WebSocket
//! flow control, the conflated pending set that an SSE stream drains, a long-polling
//! session's queue.
//!
//! Prices are state, not events: an SSE client that does not read keeps one pending entry per
//! symbol (the newest value is read from the cache when it finally pulls), never a backlog.

use std::collections::{BTreeSet, VecDeque};

use crate::core::cursor::{self, EventsAt};

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

/// Seconds over which rejected messages are counted before a client is closed with 4008.
pub const RATE_WINDOW_MS: i64 = 3_000;

/// What the rate limiter says about one client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Process it.
    Allow,
    /// Drop it and answer `RATE_LIMITED` (at most one such answer per second).
    Reject {
        /// Whether to send the error frame for this one.
        tell: bool,
    },
    /// The client keeps exceeding the limit: close it with 4008.
    Close,
}

/// Token bucket of `rate` messages per second with a burst of one second's worth; a client
/// whose rejections within [`RATE_WINDOW_MS`] exceed twice the rate is closed.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimiter {
    tokens: f64,
    last: i64,
    window_start: i64,
    rejected: u32,
    told_at: Option<i64>,
}

impl RateLimiter {
    /// A full bucket at `now`.
    pub fn new(rate: u32, now: i64) -> RateLimiter {
        RateLimiter {
            tokens: f64::from(rate),
            last: now,
            window_start: now,
            rejected: 0,
            told_at: None,
        }
    }

    /// Judges one message arriving at `now`.
    pub fn check(&mut self, rate: u32, now: i64) -> RateVerdict {
        let rate_f = f64::from(rate);
        let elapsed = (now - self.last).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate_f).min(rate_f);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return RateVerdict::Allow;
        }
        if now - self.window_start >= RATE_WINDOW_MS {
            self.window_start = now;
            self.rejected = 0;
        }
        self.rejected += 1;
        if self.rejected > rate.saturating_mul(2) {
            return RateVerdict::Close;
        }
        let tell = self.told_at.is_none_or(|t| now - t >= 1_000);
        if tell {
            self.told_at = Some(now);
        }
        RateVerdict::Reject { tell }
    }
}

/// The SSE side of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseState {
    /// Symbols changed since the last delivery (the newest value is read at pull time).
    pub pending: BTreeSet<String>,
    /// When `pending` became non-empty while nobody pulled.
    pub pending_since: Option<i64>,
    /// Whole events (status, warning) waiting for the next pull.
    pub events: VecDeque<String>,
    /// The stream is parked waiting for data: the reader keeps up.
    pub waiting: bool,
    /// When bytes were last handed to the stream.
    pub last_sent: i64,
    /// A `: keepalive` comment is due.
    pub keepalive_due: bool,
    /// `SLOW_CONSUMER` was sent for the current backlog.
    pub warned: bool,
    /// Highest `seq` this stream has delivered (the snapshot's id, then each event's):
    /// a pending price at or below it is already with the reader.
    pub delivered: u64,
    /// With event channels: where the stream stands in them (part of every `id:`).
    pub events_at: Option<EventsAt>,
}

impl SseState {
    /// The stream's `id:` now.
    pub fn id(&self) -> String {
        cursor::id(self.delivered, self.events_at.as_ref())
    }
}

/// One symbol's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SymbolCounts {
    /// Price messages that carried it, one per client.
    pub messages_sent: u64,
    /// Slow readers warned while subscribed to it.
    pub slow_consumers: u64,
}

/// Engine.IO packets a long-polling session may have waiting before it counts as too slow
/// (prices do not count: they wait conflated, one entry per symbol).
pub const MAX_POLL_PACKETS: usize = 256;

/// The long-polling side of an Engine.IO session: what waits for the client's next GET.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollState {
    /// The session id's secret part.
    pub nonce: u64,
    /// Whole packets (answers, events, pings) for the next GET, in order.
    pub queue: VecDeque<String>,
    /// Symbols changed since the last GET (their newest value is read when it comes).
    pub pending: BTreeSet<String>,
    /// A GET is held, waiting for packets.
    pub waiting: bool,
    /// A WebSocket opened to upgrade the session (one at a time).
    pub socket: bool,
    /// Its probe was answered (`3probe`) and `5` has not come: a GET with nothing to take
    /// is answered `6` at once, so the client ends its polling cycle and upgrades.
    pub probed: bool,
    /// More than [`MAX_POLL_PACKETS`] were emitted for it: it does not keep up, and ends.
    pub overflowed: bool,
}

impl PollState {
    /// A new session's polling side.
    pub fn new(nonce: u64) -> PollState {
        PollState {
            nonce,
            ..PollState::default()
        }
    }
}

/// Unacknowledged bytes after which a WebSocket client that acks is behind.
pub const ACK_WINDOW_BYTES: usize = 1 << 20;
/// The same for a client that has never acked: generous, so a simple client reads for a
/// long time, but finite, because workerd queues unread frames in memory without bound.
pub const NO_ACK_WINDOW_BYTES: usize = 16 << 20;

/// Flow control of one WebSocket: workerd exposes no back-pressure for WebSockets
/// (no `bufferedAmount`), so what the client acknowledged is the only measure of what it
/// has read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WsFlow {
    /// Price frames sent and not yet acknowledged: (highest seq in the frame, bytes).
    sent: VecDeque<(u64, usize)>,
    /// Their total size.
    pub unacked: usize,
    /// The client has acked at least once (it speaks flow control).
    pub acking: bool,
    /// Since when the client is over its window.
    pub behind_since: Option<i64>,
    /// `SLOW_CONSUMER` was sent for the current episode.
    pub warned: bool,
    /// Symbols changed while the client was behind (their newest value is sent on catch-up).
    pub pending: BTreeSet<String>,
}

impl WsFlow {
    /// The window that applies to this client.
    pub fn window(&self) -> usize {
        if self.acking {
            ACK_WINDOW_BYTES
        } else {
            NO_ACK_WINDOW_BYTES
        }
    }

    /// Records a price frame handed to the socket; returns true if that put it behind.
    pub fn sent(&mut self, max_seq: u64, bytes: usize, now: i64) -> bool {
        self.sent.push_back((max_seq, bytes));
        self.unacked += bytes;
        if self.behind_since.is_none() && self.unacked > self.window() {
            self.behind_since = Some(now);
            return true;
        }
        false
    }

    /// The mark an event frame is recorded under: the highest `seq` sent before it, so the
    /// client's next acknowledgement of that `seq` (or a later one) covers it.
    pub fn mark(&self) -> u64 {
        self.sent.back().map_or(0, |(s, _)| *s)
    }

    /// The client applied everything up to `seq`; returns true when it has caught up (was
    /// behind and is now within half its window).
    pub fn ack(&mut self, seq: u64) -> bool {
        self.acking = true;
        self.settle(seq)
    }

    /// Everything up to `seq` is known to be applied without the client saying so (a
    /// Socket.IO pong answers a ping sent after those frames); the window stays the one of a
    /// client that does not acknowledge. Returns true when it has caught up.
    pub fn settle(&mut self, seq: u64) -> bool {
        while self.sent.front().is_some_and(|(s, _)| *s <= seq) {
            if let Some((_, b)) = self.sent.pop_front() {
                self.unacked -= b;
            }
        }
        if self.behind_since.is_some() && self.unacked <= self.window() / 2 {
            self.behind_since = None;
            self.warned = false;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_the_rate_then_rejects_then_closes() {
        let mut r = RateLimiter::new(10, 0);
        for _ in 0..10 {
            assert_eq!(r.check(10, 0), RateVerdict::Allow);
        }
        assert_eq!(r.check(10, 0), RateVerdict::Reject { tell: true });
        assert_eq!(
            r.check(10, 0),
            RateVerdict::Reject { tell: false },
            "one error per second"
        );
        assert_eq!(
            r.check(10, 100),
            RateVerdict::Allow,
            "100 ms refills one token"
        );
        let mut last = RateVerdict::Allow;
        for _ in 0..19 {
            last = r.check(10, 100);
        }
        assert_eq!(
            last,
            RateVerdict::Close,
            "more than twice the rate rejected within 3 s"
        );
    }

    #[test]
    fn a_client_at_the_rate_is_never_limited() {
        let mut r = RateLimiter::new(10, 0);
        for i in 0..1_000 {
            assert_eq!(r.check(10, i * 100), RateVerdict::Allow);
        }
    }

    #[test]
    fn rejections_spread_over_time_do_not_close() {
        let mut r = RateLimiter::new(2, 0);
        r.check(2, 0);
        r.check(2, 0);
        for i in 0..20 {
            let v = r.check(2, i * 1_000);
            assert_ne!(v, RateVerdict::Close, "at {i}");
            r.check(2, i * 1_000);
            r.check(2, i * 1_000);
        }
    }

    #[test]
    fn flow_control_windows_and_catch_up() {
        let mut f = WsFlow::default();
        assert!(
            !f.sent(1, NO_ACK_WINDOW_BYTES, 0),
            "at the window is not over it"
        );
        assert!(
            f.sent(2, 1, 5),
            "over the large window of a client that never acked"
        );
        assert_eq!(f.behind_since, Some(5));
        assert!(!f.sent(3, 1, 6), "already behind: no new episode");
        assert!(f.ack(1), "acking the big frame catches it up");
        assert_eq!((f.unacked, f.behind_since), (2, None));
        assert_eq!(
            f.window(),
            ACK_WINDOW_BYTES,
            "an acking client gets the small window"
        );
        assert!(!f.ack(3));
        assert_eq!(f.unacked, 0);
        assert!(!f.sent(4, ACK_WINDOW_BYTES, 7));
        assert!(f.sent(5, 1, 8));
        assert!(!f.ack(0), "an old ack changes nothing");
        assert!(f.ack(4), "half the window or less after the ack");
    }

    #[test]
    fn a_settle_clears_what_was_sent_without_making_the_client_an_acker() {
        let mut f = WsFlow::default();
        f.sent(3, 100, 0);
        f.sent(5, 50, 1);
        assert!(!f.settle(3));
        assert_eq!((f.unacked, f.acking), (50, false));
        assert_eq!(f.window(), NO_ACK_WINDOW_BYTES);
    }
}
