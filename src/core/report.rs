//! What `/health` and `/metrics` are built from: a serialisable report of the feed, one of
//! the fan-out ([`super::fanout::FanoutReport`]), and the health verdict drawn from both.
//!
//! Reports are snapshots taken in one step, so a reading never mixes two moments; a fan-out
//! that lives elsewhere can send its report as data.

use serde::Serialize;
use serde_json::json;

use super::config::UpstreamMode;
use super::fanout::FanoutReport;
use super::feed::link::{BreakerPhase, Failure};
use super::feed::{Feed, FeedStats};
use super::tree::ShardView;
use super::upstream_state::UpstreamState;

/// Connected but silent for this long: `/health` says `degraded` (the watchdog replaces the
/// connection later).
pub const SILENT_MS: i64 = 10_000;
/// Capacity above which `/health` raises an alert.
const CAPACITY_ALERT_PCT: f64 = 80.0;

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

/// The feed's part of `/health` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedReport {
    /// The upstream state.
    pub state: UpstreamState,
    /// `always` or `on-demand`.
    pub mode: UpstreamMode,
    /// The endpoint in use.
    pub endpoint: String,
    /// Whether an upstream connection has ever been live.
    pub ever_connected: bool,
    /// When the active connection became live.
    pub connected_since: Option<i64>,
    /// Age of the last upstream frame.
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
    /// Live `SUBSCRIBE`/`UNSUBSCRIBE` requests sent.
    pub subscribe_requests: u64,
    /// Cached symbols by freshness.
    pub symbols: SymbolCounts,
    /// The highest `seq` handed out, the highest written, and the reserved mark.
    pub seq: u64,
    /// Every change up to this `seq` has been handed to storage.
    pub saved_seq: u64,
    /// A restart starts above this.
    pub seq_reserved: u64,
    /// Counters.
    pub stats: FeedStats,
}

impl Feed {
    /// The feed's report at `now_ms`.
    pub fn report(&self, now_ms: i64) -> FeedReport {
        let link = &self.link;
        let (fresh, acceptable, stale) = self.cache.freshness_counts(now_ms);
        let tracked = fresh + acceptable + stale;
        let last_age = link.last_frame_at().map(|t| (now_ms - t).max(0));
        let quiet = last_age.or(link.connected_since().map(|t| now_ms - t));
        let breaker = link.breaker();
        FeedReport {
            state: link.state(),
            mode: self.cfg.upstream_mode,
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

/// The verdict of `/health` (see docs/operations.md).
///
/// - `healthy`: upstream connected and a frame within [`SILENT_MS`]; or an on-demand
///   upstream closed because nobody listens.
/// - `down` (503): the circuit breaker is open, or the upstream is not connected and no
///   cached price is younger than 60 s.
/// - `degraded`: anything between (serving usable cached prices while reconnecting, or
///   connected but silent).
pub fn verdict(feed: &FeedReport) -> &'static str {
    let connected = feed.state == UpstreamState::Connected;
    let usable = feed.symbols.fresh + feed.symbols.acceptable;
    if (connected && !feed.silent) || feed.state == UpstreamState::Idle {
        "healthy"
    } else if feed.breaker.state == BreakerPhase::Open || (!connected && usable == 0) {
        "down"
    } else {
        "degraded"
    }
}

/// The clients of the whole tree: the leader's own, or the shards' added up, and the
/// capacity (`MAX_CONNECTIONS` per object that carries clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// WebSocket clients.
    pub websocket: usize,
    /// SSE clients.
    pub sse: usize,
    /// Connections the tree may hold.
    pub max_connections: usize,
}

impl Totals {
    /// The leader's clients plus every shard's last report.
    pub fn of(own: &FanoutReport, shards: &[ShardView]) -> Totals {
        let reports = shards.iter().filter_map(|s| s.report.as_ref());
        let (websocket, sse) = reports.fold((own.websocket, own.sse), |(w, s), r| {
            (w + r.websocket, s + r.sse)
        });
        let carriers = if shards.is_empty() { 1 } else { shards.len() };
        Totals {
            websocket,
            sse,
            max_connections: carriers * own.max_connections,
        }
    }

    /// Capacity used, in percent with one decimal.
    pub fn used_pct(&self) -> f64 {
        let held = (self.websocket + self.sse) as f64;
        (held * 1000.0 / self.max_connections.max(1) as f64).round() / 10.0
    }
}

/// What an operator should look at, one sentence each.
pub fn alerts(feed: &FeedReport, totals: &Totals) -> Vec<String> {
    let mut alerts = Vec::new();
    match feed.state {
        UpstreamState::Idle => alerts.push("upstream idle: on-demand and nobody listens".into()),
        UpstreamState::Connected => {}
        _ => {
            let why = feed
                .last_failure
                .as_ref()
                .map_or("connecting", |f| &f.detail);
            let n = feed.breaker.failures;
            alerts.push(format!(
                "upstream not connected ({n} consecutive failures; last: {why})"
            ));
        }
    }
    if feed.breaker.state != BreakerPhase::Closed {
        alerts.push(format!("circuit breaker {}", feed.breaker.state.as_str()));
    }
    if feed.silent {
        let ms = feed.last_message_age_ms.unwrap_or_default();
        alerts.push(format!("upstream silent for {ms} ms"));
    }
    if feed.symbols.stale > 0 {
        alerts.push(format!("{} symbols stale", feed.symbols.stale));
    }
    let missing = feed.symbols.missing;
    if missing > 0 && feed.ever_connected && feed.mode == UpstreamMode::Always {
        alerts.push(format!("{missing} symbols have no price"));
    }
    let pct = totals.used_pct();
    if pct >= CAPACITY_ALERT_PCT {
        alerts.push(format!("capacity at {pct}%"));
    }
    alerts
}

/// `GET /health`: HTTP status and body (see docs/operations.md).
pub fn health(feed: &FeedReport, fanout: &FanoutReport, shards: &[ShardView]) -> (u16, String) {
    let status = verdict(feed);
    let totals = Totals::of(fanout, shards);
    let shards: Vec<serde_json::Value> = shards.iter().map(shard_json).collect();
    let body = json!({
        "status": status,
        "upstream": {
            "state": feed.state,
            "mode": feed.mode,
            "endpoint": feed.endpoint,
            "connected_since": feed.connected_since,
            "consecutive_errors": feed.breaker.failures,
            "circuit_breaker": {
                "state": feed.breaker.state,
                "failures": feed.breaker.failures,
                "open_until": feed.breaker.open_until,
            },
            "last_message_age_ms": feed.last_message_age_ms,
            "last_failure": feed.last_failure,
            "attempts_last_5m": feed.attempts_last_5m,
            "reconnects": feed.reconnects,
            "rotations": feed.rotations,
            "subscribe_requests": feed.subscribe_requests,
            "frames": feed.stats.upstream_frames,
            "frame_errors": feed.stats.upstream_errors,
        },
        "clients": {"websocket": totals.websocket, "sse": totals.sse},
        "shards": shards,
        "symbols": feed.symbols,
        "capacity": {"used_pct": totals.used_pct(), "max_connections": totals.max_connections},
        "seq": feed.seq,
        "storage": {"saved_seq": feed.saved_seq, "seq_reserved": feed.seq_reserved},
        "alerts": alerts(feed, &totals),
    });
    (if status == "down" { 503 } else { 200 }, body.to_string())
}

/// One shard in `/health`: its link, its lag behind the leader's `seq`, its clients.
fn shard_json(s: &ShardView) -> serde_json::Value {
    let (websocket, sse) = s.report.as_ref().map_or((0, 0), |r| (r.websocket, r.sse));
    json!({
        "shard": s.shard,
        "linked": s.linked,
        "interest": s.interest,
        "lag": s.lag,
        "clients": {"websocket": websocket, "sse": sse},
    })
}
