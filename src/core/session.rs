//! Per-client session state: the transport, the message rate limiter, and for Server-Sent
//! Events the conflated pending set that a pull-based stream drains.
//!
//! Prices are state, not events: an SSE client that does not read keeps one pending entry per
//! symbol (the newest value is read from the cache when it finally pulls), never a backlog.

use std::collections::{BTreeSet, VecDeque};

/// How a client is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A hibernatable WebSocket.
    WebSocket,
    /// A Server-Sent Events stream.
    Sse,
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
    /// The stream must end at its next pull.
    pub closing: bool,
    /// Highest `seq` this stream has delivered (the snapshot's id, then each event's):
    /// a pending price at or below it is already with the reader.
    pub delivered: u64,
}

/// One client.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Its transport.
    pub transport: Transport,
    /// Its rate limiter (WebSocket messages).
    pub limiter: RateLimiter,
    /// SSE state, for SSE sessions.
    pub sse: Option<SseState>,
}

impl Session {
    /// A new session at `now`.
    pub fn new(transport: Transport, rate: u32, now: i64) -> Session {
        Session {
            transport,
            limiter: RateLimiter::new(rate, now),
            sse: (transport == Transport::Sse).then(|| SseState {
                last_sent: now,
                ..SseState::default()
            }),
        }
    }
}

/// Compares a presented token with the expected one in time that depends only on their
/// lengths, so response timing does not reveal how much of a guess was right.
pub fn token_matches(expected: &str, given: &str) -> bool {
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
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
    fn tokens_compare_exactly() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cret", "s3cre"));
        assert!(!token_matches("s3cret", "s3cret!"));
        assert!(!token_matches("s3cret", "S3cret"));
        assert!(!token_matches("s3cret", ""));
    }
}
