//! `/health` from the reports of the feed ([`FeedReport`]) and of the fan-out
//! ([`super::fanout::FanoutReport`]): the verdict, the alerts and the body.
//!
//! Reports are snapshots taken in one step, so a reading never mixes two moments; a fan-out
//! that lives elsewhere can send its report as data.

use serde_json::json;

use super::config::UpstreamMode;
use super::fanout::FanoutReport;
use super::feed::link::BreakerPhase;
pub use super::feed::report::{FeedReport, UpstreamReport, SILENT_MS};
use super::tree::ShardView;
use super::upstream_state::UpstreamState;

/// Capacity above which `/health` raises an alert.
const CAPACITY_ALERT_PCT: f64 = 80.0;

/// The verdict of `/health` (see docs/operations.md).
///
/// - `healthy`: upstream connected and a frame within [`SILENT_MS`]; or an on-demand
///   upstream closed because nobody listens.
/// - `down` (503): the circuit breaker is open, or the upstream is not connected and no
///   cached price is younger than 60 s.
/// - `degraded`: anything between (serving usable cached prices while reconnecting, or
///   connected but silent).
///
/// With several sources: `healthy` when each is, `down` when each is, `degraded` otherwise
/// (the other sources' prices are served meanwhile).
pub fn verdict(feed: &FeedReport) -> &'static str {
    let usable = feed.symbols.fresh + feed.symbols.acceptable;
    let each: Vec<&str> = feed
        .upstreams
        .iter()
        .map(|u| verdict_of(u, usable))
        .collect();
    if each.iter().all(|v| *v == "healthy") {
        "healthy"
    } else if each.iter().all(|v| *v == "down") {
        "down"
    } else {
        "degraded"
    }
}

fn verdict_of(u: &UpstreamReport, usable: usize) -> &'static str {
    let connected = u.state == UpstreamState::Connected;
    if (connected && !u.silent) || u.state == UpstreamState::Idle {
        "healthy"
    } else if u.breaker.state == BreakerPhase::Open || (!connected && usable == 0) {
        "down"
    } else {
        "degraded"
    }
}

/// The clients of the whole tree: the leader's own, or the shards' added up, and the
/// capacity (`MAX_CONNECTIONS` per object that carries clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// WebSocket clients (Socket.IO sessions included).
    pub websocket: usize,
    /// Socket.IO sessions (on a WebSocket or still polling).
    pub socketio: usize,
    /// Of those, the ones still long-polling (not counted as WebSockets).
    pub polling: usize,
    /// SSE clients.
    pub sse: usize,
    /// WebSockets whose attachment is kept in storage.
    pub stored_attachments: usize,
    /// Connections the tree may hold.
    pub max_connections: usize,
}

impl Totals {
    /// The leader's clients plus every shard's last report.
    pub fn of(own: &FanoutReport, shards: &[ShardView]) -> Totals {
        let reports = shards.iter().filter_map(|s| s.report.as_ref());
        let all = std::iter::once(own).chain(reports);
        let sum = |count: fn(&FanoutReport) -> usize| all.clone().map(count).sum::<usize>();
        let carriers = if shards.is_empty() { 1 } else { shards.len() };
        Totals {
            websocket: sum(|r| r.websocket),
            socketio: sum(|r| r.socketio),
            polling: sum(|r| r.polling),
            sse: sum(|r| r.sse),
            stored_attachments: sum(|r| r.stored_attachments),
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
    let several = feed.upstreams.len() > 1;
    for u in &feed.upstreams {
        let name = if several {
            format!("upstream {}", u.source.as_str())
        } else {
            "upstream".to_string()
        };
        upstream_alerts(u, &name, &mut alerts);
    }
    if feed.symbols.stale > 0 {
        alerts.push(format!("{} symbols stale", feed.symbols.stale));
    }
    let missing = feed.symbols.missing;
    let ever = feed.upstreams.iter().any(|u| u.ever_connected);
    if missing > 0 && ever && feed.mode == UpstreamMode::Always {
        alerts.push(format!("{missing} symbols have no price"));
    }
    let pct = totals.used_pct();
    if pct >= CAPACITY_ALERT_PCT {
        alerts.push(format!("capacity at {pct}%"));
    }
    alerts
}

/// One source's alerts, each named `name`.
fn upstream_alerts(u: &UpstreamReport, name: &str, alerts: &mut Vec<String>) {
    match u.state {
        UpstreamState::Idle => alerts.push(format!("{name} idle: on-demand and nobody listens")),
        UpstreamState::Connected => {}
        _ => {
            let why = u.last_failure.as_ref().map_or("connecting", |f| &f.detail);
            let n = u.breaker.failures;
            alerts.push(format!(
                "{name} not connected ({n} consecutive failures; last: {why})"
            ));
        }
    }
    if u.breaker.state != BreakerPhase::Closed {
        let state = u.breaker.state.as_str();
        alerts.push(format!("{name} circuit breaker {state}"));
    }
    if u.silent {
        let ms = u.last_message_age_ms.unwrap_or_default();
        alerts.push(format!("{name} silent for {ms} ms"));
    }
    if u.unauthorized {
        alerts.push(format!(
            "{name} refuses the service's credentials (401/403): check its key"
        ));
    }
    if !u.failed_symbols.is_empty() {
        let list = u.failed_symbols.join(", ");
        alerts.push(format!("{name} would not subscribe {list}"));
    }
}

/// One source in `/health`.
fn upstream_json(u: &UpstreamReport, mode: UpstreamMode) -> serde_json::Value {
    // A refused key is a state of its own: backing off will not end it.
    let state = match u.unauthorized {
        true => "unauthorized",
        false => u.state.as_str(),
    };
    json!({
        "source": u.source,
        "state": state,
        "mode": mode,
        "endpoint": u.endpoint,
        "connected_since": u.connected_since,
        "consecutive_errors": u.breaker.failures,
        "circuit_breaker": {
            "state": u.breaker.state,
            "failures": u.breaker.failures,
            "open_until": u.breaker.open_until,
        },
        "last_message_age_ms": u.last_message_age_ms,
        "last_failure": u.last_failure,
        "attempts_last_5m": u.attempts_last_5m,
        "reconnects": u.reconnects,
        "rotations": u.rotations,
        "subscribe_requests": u.subscribe_requests,
        "frames": u.frames,
        "frame_errors": u.frame_errors,
        "symbols": u.symbols,
        "failed_symbols": u.failed_symbols,
    })
}

/// `GET /health`: HTTP status and body (see docs/operations.md).
pub fn health(feed: &FeedReport, fanout: &FanoutReport, shards: &[ShardView]) -> (u16, String) {
    let status = verdict(feed);
    let totals = Totals::of(fanout, shards);
    let shards: Vec<serde_json::Value> = shards.iter().map(shard_json).collect();
    let upstreams: Vec<serde_json::Value> = feed
        .upstreams
        .iter()
        .map(|u| upstream_json(u, feed.mode))
        .collect();
    let body = json!({
        "status": status,
        "upstream": feed.primary().map(|u| upstream_json(u, feed.mode)),
        "upstreams": upstreams,
        "clients": {"websocket": totals.websocket, "sse": totals.sse, "socketio": totals.socketio, "polling": totals.polling, "stored_attachments": totals.stored_attachments},
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
