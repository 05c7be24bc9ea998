//! Prometheus text exposition (format 0.0.4) of the feed's and the fan-out's reports. Names
//! follow Prometheus conventions: `edgetick_` prefix, `_total` for counters, base units
//! (seconds, bytes).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::fanout::FanoutReport;
use super::feed::link::BreakerPhase;
use super::feed::report::{FeedReport, UpstreamReport};
use super::histogram::Histogram;
use super::report::Totals;
use super::tree::ShardView;
use super::upstream_state::UpstreamState;

/// Builds an exposition: each family gets `# HELP` and `# TYPE` once, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: f64) -> &mut Self {
        let _ = writeln!(self.out, "{name}{} {}", labels(pairs), fmt_value(value));
        self
    }

    /// A whole counter or gauge family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// A histogram family.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) -> &mut Self {
        self.family(name, "histogram", help);
        for (le, count) in h.buckets() {
            let le = le.to_string();
            self.sample(&format!("{name}_bucket"), &[("le", &le)], count as f64);
        }
        self.sample(
            &format!("{name}_bucket"),
            &[("le", "+Inf")],
            h.count() as f64,
        );
        self.sample(&format!("{name}_sum"), &[], h.sum());
        self.sample(&format!("{name}_count"), &[], h.count() as f64)
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `GET /metrics` from the two reports.
pub fn render(feed: &FeedReport, fanout: &FanoutReport, shards: &[ShardView]) -> String {
    let mut e = Exposition::default();
    let totals = Totals::of(fanout, shards);
    fanout_metrics(&mut e, fanout, &totals);
    e.single(
        "edgetick_stored_attachments",
        "gauge",
        "WebSockets whose state outgrew the socket's attachment and is kept in storage (with \
         shards: all of them).",
        totals.stored_attachments as f64,
    );
    feed_metrics(&mut e, feed);
    symbol_metrics(&mut e, fanout, shards);
    if !shards.is_empty() {
        shard_metrics(&mut e, shards);
    }
    e.histogram(
        "edgetick_fanout_duration_seconds",
        "Time to hand one update to every subscriber.",
        &fanout.stats.fanout,
    );
    e.finish()
}

/// Subscribers, price messages and slow consumers by served symbol, the leader's own and
/// every shard's last report added up (bounded by the configured symbols).
fn symbol_metrics(e: &mut Exposition, own: &FanoutReport, shards: &[ShardView]) {
    let mut by: BTreeMap<&str, (usize, u64, u64)> = BTreeMap::new();
    let reports = std::iter::once(own).chain(shards.iter().filter_map(|s| s.report.as_ref()));
    for r in reports {
        for (s, n) in &r.subscribers {
            by.entry(s).or_default().0 += n;
        }
        for (s, c) in &r.stats.by_symbol {
            let entry = by.entry(s).or_default();
            entry.1 += c.messages_sent;
            entry.2 += c.slow_consumers;
        }
    }
    type Pick = fn(&(usize, u64, u64)) -> f64;
    let families: [(&str, &str, &str, Pick); 3] = [
        (
            "edgetick_symbol_subscribers",
            "gauge",
            "Clients subscribed to a symbol (with shards: all of them).",
            |v| v.0 as f64,
        ),
        (
            "edgetick_symbol_messages_sent_total",
            "counter",
            "Price messages that carried a symbol, one per client.",
            |v| v.1 as f64,
        ),
        (
            "edgetick_symbol_slow_consumers_total",
            "counter",
            "Slow readers warned while subscribed to a symbol.",
            |v| v.2 as f64,
        ),
    ];
    for (name, kind, help, pick) in families {
        e.family(name, kind, help);
        for (symbol, v) in &by {
            e.sample(name, &[("symbol", symbol)], pick(v));
        }
    }
}

/// Families with one sample per label value: (name, kind, help, label, [(value, sample)]).
type Labelled<'a> = (&'a str, &'a str, &'a str, &'a str, Vec<(&'a str, f64)>);

fn labelled(e: &mut Exposition, families: Vec<Labelled<'_>>) {
    for (name, kind, help, label, samples) in families {
        e.family(name, kind, help);
        for (value, sample) in samples {
            e.sample(name, &[(label, value)], sample);
        }
    }
}

/// Each shard's link, lag and clients (the totals are `edgetick_connections`).
fn shard_metrics(e: &mut Exposition, shards: &[ShardView]) {
    let name = "edgetick_shard_linked";
    e.family(
        name,
        "gauge",
        "1 while the fan-out shard is linked to the leader.",
    );
    for s in shards {
        e.sample(
            name,
            &[("shard", &s.shard.to_string())],
            f64::from(u8::from(s.linked)),
        );
    }
    let name = "edgetick_shard_lag";
    e.family(
        name,
        "gauge",
        "The leader's seq minus the highest the shard reported applying.",
    );
    for s in shards {
        if let Some(lag) = s.lag {
            e.sample(name, &[("shard", &s.shard.to_string())], lag as f64);
        }
    }
    let name = "edgetick_shard_connections";
    e.family(
        name,
        "gauge",
        "Client connections held by each fan-out shard, by transport.",
    );
    for s in shards {
        let (ws, sse) = s.report.as_ref().map_or((0, 0), |r| (r.websocket, r.sse));
        let shard = s.shard.to_string();
        e.sample(
            name,
            &[("shard", &shard), ("transport", "websocket")],
            ws as f64,
        );
        e.sample(name, &[("shard", &shard), ("transport", "sse")], sse as f64);
    }
}

fn fanout_metrics(e: &mut Exposition, r: &FanoutReport, totals: &Totals) {
    let st = &r.stats;
    let n = |v: u64| v as f64;
    labelled(
        e,
        vec![
            (
                "edgetick_connections",
                "gauge",
                "Client connections held, by transport (with shards: all of them).",
                "transport",
                vec![
                    ("websocket", totals.websocket as f64),
                    ("sse", totals.sse as f64),
                    ("polling", totals.polling as f64),
                ],
            ),
            (
                "edgetick_socketio_sessions",
                "gauge",
                "Socket.IO sessions, by transport: on a WebSocket, or still long-polling (with \
                 shards: all of them).",
                "transport",
                vec![
                    ("websocket", (totals.socketio - totals.polling) as f64),
                    ("polling", totals.polling as f64),
                ],
            ),
            (
                "edgetick_flushes_total",
                "counter",
                "Price fan-outs, by how they were paced: sent at once, or after a window of \
                 changes.",
                "mode",
                vec![
                    ("immediate", n(st.flushes_immediate)),
                    ("windowed", n(st.flushes_windowed)),
                ],
            ),
        ],
    );
    e.single(
        "edgetick_connections_opened_total",
        "counter",
        "Client connections accepted.",
        n(st.connections_opened),
    );
    labelled(
        e,
        vec![(
            "edgetick_clients_refused_total",
            "counter",
            "Client connections refused, by reason.",
            "reason",
            vec![("at_capacity", n(st.refused_at_capacity))],
        )],
    );
    fanout_closes(e, r);
}

fn fanout_closes(e: &mut Exposition, r: &FanoutReport) {
    let st = &r.stats;
    let n = |v: u64| v as f64;
    e.single(
        "edgetick_rate_limited_messages_total",
        "counter",
        "Client messages dropped by the per-connection rate limit.",
        n(st.rate_limited),
    );
    labelled(
        e,
        vec![(
            "edgetick_clients_closed_total",
            "counter",
            "Clients closed by the server, by reason.",
            "reason",
            vec![
                ("rate_limited", n(st.rate_limit_closes)),
                ("slow_consumer", n(st.slow_consumer_closes)),
            ],
        )],
    );
    for (name, help, value) in [
        (
            "edgetick_slow_consumers_total",
            "Readers warned SLOW_CONSUMER.",
            st.slow_consumers,
        ),
        (
            "edgetick_messages_sent_total",
            "Frames sent to clients.",
            st.messages_sent,
        ),
        (
            "edgetick_sent_bytes_total",
            "Bytes of frames sent to clients.",
            st.bytes_sent,
        ),
        (
            "edgetick_client_errors_total",
            "Client frames answered with an error frame.",
            st.client_errors,
        ),
    ] {
        e.single(name, "counter", help, n(value));
    }
}

fn feed_metrics(e: &mut Exposition, r: &FeedReport) {
    let n = |v: u64| v as f64;
    type Counter = fn(&UpstreamReport) -> u64;
    let counters: [(&str, &str, Counter); 5] = [
        (
            "edgetick_upstream_frames_total",
            "Frames received from the upstream exchange.",
            |u| u.frames,
        ),
        (
            "edgetick_upstream_frame_errors_total",
            "Upstream frames skipped as invalid.",
            |u| u.frame_errors,
        ),
        (
            "edgetick_upstream_reconnects_total",
            "Upstream connections that replaced a failed one.",
            |u| u.reconnects,
        ),
        (
            "edgetick_upstream_rotations_total",
            "Make-before-break upstream rotations.",
            |u| u.rotations,
        ),
        (
            "edgetick_upstream_subscribe_requests_total",
            "Live subscribe/unsubscribe requests sent upstream.",
            |u| u.subscribe_requests,
        ),
    ];
    for (name, help, value) in counters {
        e.family(name, "counter", help);
        for u in &r.upstreams {
            e.sample(name, &[("source", u.source.as_str())], n(value(u)));
        }
    }
    feed_gauges(e, r);
}

fn feed_gauges(e: &mut Exposition, r: &FeedReport) {
    let n = |v: u64| v as f64;
    let name = "edgetick_upstream_connected";
    e.family(name, "gauge", "1 while an upstream connection delivers.");
    for u in &r.upstreams {
        let connected = u.state == UpstreamState::Connected;
        let source = [("source", u.source.as_str())];
        e.sample(name, &source, f64::from(u8::from(connected)));
    }
    let name = "edgetick_upstream_consecutive_failures";
    e.family(name, "gauge", "Upstream failures since the last success.");
    for u in &r.upstreams {
        let source = [("source", u.source.as_str())];
        e.sample(name, &source, f64::from(u.breaker.failures));
    }
    let name = "edgetick_upstream_breaker_state";
    e.family(
        name,
        "gauge",
        "Circuit breaker state (1 for the current one).",
    );
    for u in &r.upstreams {
        for p in BreakerPhase::ALL {
            let labels = [("source", u.source.as_str()), ("state", p.as_str())];
            e.sample(name, &labels, f64::from(u8::from(p == u.breaker.state)));
        }
    }
    let s = &r.symbols;
    labelled(
        e,
        vec![(
            "edgetick_symbols",
            "gauge",
            "Cached symbols by freshness.",
            "freshness",
            vec![
                ("fresh", s.fresh as f64),
                ("acceptable", s.acceptable as f64),
                ("stale", s.stale as f64),
            ],
        )],
    );
    e.single(
        "edgetick_seq",
        "gauge",
        "Highest price sequence number handed out.",
        n(r.seq),
    );
    e.single(
        "edgetick_leader_snapshot_requests_total",
        "counter",
        "REST snapshot requests answered by the leader (edge cache misses).",
        n(r.stats.snapshot_requests),
    );
}

/// A Worker isolate's own counters, appended to the leader's metrics: REST reads by where
/// the answer came from, and stream connections refused as [origin, unauthorized].
pub fn isolate(rest_reads: &[(&str, u64)], refused: [u64; 2]) -> String {
    let mut e = Exposition::default();
    let name = "edgetick_rest_cache_requests_total";
    e.family(
        name,
        "counter",
        "REST price reads at this Worker isolate, by where the answer came from.",
    );
    for (source, n) in rest_reads {
        e.sample(name, &[("result", source)], *n as f64);
    }
    let name = "edgetick_edge_refused_total";
    e.family(
        name,
        "counter",
        "Stream connections refused at this Worker isolate, by reason.",
    );
    for (reason, n) in ["origin", "unauthorized"].into_iter().zip(refused) {
        e.sample(name, &[("reason", reason)], n as f64);
    }
    e.finish()
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut h = Histogram::default();
        h.observe(0.0);
        h.observe(0.003);
        h.observe(1.0);
        let mut e = Exposition::default();
        e.single("edgetick_x_total", "counter", "Things.", 3.0);
        e.family("edgetick_conn", "gauge", "Connections.")
            .sample("edgetick_conn", &[("transport", "websocket")], 2.0)
            .sample("edgetick_conn", &[("transport", "sse")], 0.0);
        e.histogram("edgetick_fanout_duration_seconds", "Fan-out time.", &h);
        let text = e.finish();
        assert!(text.starts_with("# HELP edgetick_x_total Things.\n# TYPE edgetick_x_total counter\nedgetick_x_total 3\n"));
        assert!(text.contains("edgetick_conn{transport=\"websocket\"} 2\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_count 3\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_sum 1.003\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition::default();
        e.family("m", "gauge", "h")
            .sample("m", &[("k", "a\"b\\c\nd")], 1.0);
        assert!(e.finish().contains(r#"m{k="a\"b\\c\nd"} 1"#));
    }
}
