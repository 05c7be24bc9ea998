//! The feed's report: a serialisable snapshot of its link and cache, taken in one step (so a
//! reading never mixes two moments), from which `/health` and `/metrics` are built.

use serde::Serialize;

use super::link::{BreakerPhase, Failure};
use super::upstream::Upstream;
use super::{Feed, FeedStats};
use crate::core::config::UpstreamMode;
use crate::core::ids::SourceId;
use crate::core::upstream_state::UpstreamState;

/// Connected but silent for this long: `/health` says `degraded` (the watchdog replaces the
/// connection later).
pub const SILENT_MS: i64 = 10_000;
/// The circuit breaker as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerReport {
    /// `closed`, `open` or `half_open`.
    pub state: BreakerPhase,
    /// Consecutive failures.
    pub failures: u32,
    /// When an open breaker allows a trial.
    pub open_until: Option<i64>,
}

/// The last upstream failure as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureReport {
    /// Stable kind (`refused`, `network`, ...).
    pub kind: &'static str,
    /// A sentence.
    pub detail: String,
    /// The HTTP status of a refused upgrade.
    pub status: Option<u16>,
    /// When it happened.
    pub at: i64,
}

/// Cached symbols by freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SymbolCounts {
    /// Live symbols.
    pub tracked: usize,
    /// Younger than 5 s.
    pub fresh: usize,
    /// Younger than 60 s.
    pub acceptable: usize,
    /// Older, within the TTL.
    pub stale: usize,
    /// Served symbols with no live price.
    pub missing: usize,
}

/// One source's part of `/health` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamReport {
    /// The source.
    pub source: SourceId,
    /// Its link's state.
    pub state: UpstreamState,
    /// The endpoint in use.
    pub endpoint: String,
    /// Whether a connection has ever been live.
    pub ever_connected: bool,
    /// When the active connection became live.
    pub connected_since: Option<i64>,
    /// Age of the last frame.
    pub last_message_age_ms: Option<i64>,
    /// Connected, but nothing for [`SILENT_MS`].
    pub silent: bool,
    /// The breaker.
    pub breaker: BreakerReport,
    /// The most recent failure.
    pub last_failure: Option<FailureReport>,
    /// Connection attempts in the last 5 minutes.
    pub attempts_last_5m: usize,
    /// Connections that replaced a failed one.
    pub reconnects: u64,
    /// Make-before-break rotations.
    pub rotations: u64,
    /// Live subscribe/unsubscribe requests sent.
    pub subscribe_requests: u64,
    /// Frames received from its active connection.
    pub frames: u64,
    /// Of those, skipped as invalid.
    pub frame_errors: u64,
    /// Symbols it serves.
    pub symbols: usize,
    /// Symbols it would not subscribe.
    pub failed_symbols: Vec<String>,
    /// Not connected, and its last attempt was refused 401 or 403: its key (or the service's
    /// address) is not accepted, which waiting alone will not fix.
    pub unauthorized: bool,
}

/// The feed's part of `/health` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedReport {
    /// Each source's link, the primary one first.
    pub upstreams: Vec<UpstreamReport>,
    /// `always` or `on-demand`.
    pub mode: UpstreamMode,
    /// Cached symbols by freshness.
    pub symbols: SymbolCounts,
    /// The highest `seq` handed out.
    pub seq: u64,
    /// Every change up to this `seq` has been handed to storage.
    pub saved_seq: u64,
    /// A restart starts above this.
    pub seq_reserved: u64,
    /// Counters.
    pub stats: FeedStats,
}

impl FeedReport {
    /// The primary source's report (the one `/health` shows as `upstream`).
    pub fn primary(&self) -> Option<&UpstreamReport> {
        self.upstreams.first()
    }
}

/// One upstream's report at `now_ms`.
fn upstream_report(u: &Upstream, now_ms: i64) -> UpstreamReport {
    let link = &u.link;
    let last_age = link.last_frame_at().map(|t| (now_ms - t).max(0));
    let quiet = last_age.or(link.connected_since().map(|t| now_ms - t));
    let breaker = link.breaker();
    UpstreamReport {
        source: u.source.id(),
        state: link.state(),
        endpoint: link.endpoint().to_string(),
        ever_connected: link.ever_connected(),
        connected_since: link.connected_since(),
        last_message_age_ms: last_age,
        silent: link.is_connected() && quiet.is_some_and(|a| a >= SILENT_MS),
        breaker: BreakerReport {
            state: breaker.phase(),
            failures: breaker.failures(),
            open_until: breaker.open_until(),
        },
        last_failure: link.last_failure().map(|(at, f)| FailureReport {
            kind: f.kind(),
            detail: f.describe(),
            status: match f {
                Failure::Refused { status, .. } => Some(*status),
                _ => None,
            },
            at: *at,
        }),
        attempts_last_5m: link.attempts_in_window(now_ms),
        reconnects: link.reconnects,
        rotations: link.rotations,
        subscribe_requests: link.requests_sent,
        frames: u.frames,
        frame_errors: u.errors,
        symbols: u.symbols.len(),
        failed_symbols: u.failed.iter().cloned().collect(),
        unauthorized: !link.is_connected()
            && matches!(
                link.last_failure(),
                Some((
                    _,
                    Failure::Refused {
                        status: 401 | 403,
                        ..
                    }
                ))
            ),
    }
}

impl Feed {
    /// The feed's report at `now_ms`.
    pub fn report(&self, now_ms: i64) -> FeedReport {
        let (fresh, acceptable, stale) = self.cache.freshness_counts(now_ms);
        let tracked = fresh + acceptable + stale;
        FeedReport {
            upstreams: self
                .upstreams
                .iter()
                .map(|u| upstream_report(u, now_ms))
                .collect(),
            mode: self.cfg.upstream_mode,
            symbols: SymbolCounts {
                tracked,
                fresh,
                acceptable,
                stale,
                missing: self.cfg.symbols.len().saturating_sub(tracked),
            },
            seq: self.cache.seq(),
            saved_seq: self.saved_seq,
            seq_reserved: self.seq_reserved,
            stats: self.stats.clone(),
        }
    }
}
