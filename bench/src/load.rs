//! One steady load: N WebSocket clients subscribed to K of the symbols while the exchange
//! ticks at R updates per second; latency from each price's `event_time`, deliveries and
//! frames per second, connections held, costs by process, and the loss check.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::crowd::{Crowd, Totals};
use crate::stack::{get, Role, Stack, Usage};
use crate::SYMBOLS;

/// A load's shape.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Its letter.
    pub name: &'static str,
    /// Clients.
    pub clients: usize,
    /// Symbols per client.
    pub per_client: usize,
    /// Exchange updates per second.
    pub rate: u32,
    /// Clients subscribe to nothing (connection cost only).
    pub idle: bool,
    /// Of the clients, how many subscribe (the rest stay idle); all of them when not idle.
    pub active: usize,
    /// The clients speak Socket.IO (`/prices`, `priceUpdate`) instead of the JSON protocol.
    pub socketio: bool,
}

/// A load's results: its table row and the details for the JSON file.
pub struct Outcome {
    /// The Markdown row.
    pub row: String,
    /// Everything measured.
    pub detail: Value,
}

pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).or(sorted.last()).copied().unwrap_or(0)
}

/// Runs `load` against `stack` for `duration`; `direct` connects past wrangler's proxy.
pub fn run_load(
    stack: &Stack,
    relay: &str,
    load: &Load,
    duration: Duration,
    direct: bool,
) -> Outcome {
    let rt = crate::runtime(1);
    stack.control("pause?on=1");
    stack.control(&format!("rate?value={}", load.rate));
    let (before, (_, rss0)) = stack.usage();
    let started = Instant::now();
    let port = stack.client_port(direct);
    let crowd = Crowd::start(&rt, port, load.socketio, subscriptions(load));
    let connected = wait_connected(&crowd, load.clients);
    let connect_time = started.elapsed();
    let (at_connected, (_, rss_connected)) = stack.usage();
    let mut roles = Role::ALL.map(|role| connection_cost(role, &before, &at_connected, connected));
    eprintln!("  connected {connected} in {connect_time:?}");
    let spread = shard_spread(stack);
    if let Some(s) = &spread {
        eprintln!("  clients per shard: {s}");
    }
    let run = measure(stack, load, duration, &crowd, &mut roles);
    let (mismatched, drained) = drain(stack, load, &crowd);
    let totals = crowd.finish(rt);
    let per_conn_kb = if connected > 0 {
        (rss_connected.saturating_sub(rss0)) as f64 / connected as f64
    } else {
        0.0
    };
    let result = Result {
        load,
        relay,
        direct,
        entry: stack.entry(direct),
        connected,
        connect_time,
        run: Run {
            peak_rss: run.peak_rss.max(rss_connected),
            ..run
        },
        mismatched,
        drained,
        totals,
        spread,
        roles,
        per_conn_kb,
    };
    let outcome = Outcome {
        row: result.row(),
        detail: result.detail(),
    };
    eprintln!("{}", outcome.row);
    outcome
}

/// Each client's symbols: `per_client` of them, spread over the list; none for idle ones.
fn subscriptions(load: &Load) -> Vec<Vec<String>> {
    (0..load.clients)
        .map(|i| {
            if load.idle || i >= load.active {
                return Vec::new();
            }
            let pick = (0..load.per_client).map(|j| crate::symbol(i + j * 7).to_string());
            pick.collect()
        })
        .collect()
}

/// Waits until every client connected (or 120 s, 10 ms per client for large idle crowds).
fn wait_connected(crowd: &Crowd, clients: usize) -> usize {
    let wait = Duration::from_millis((clients as u64 * 10).max(120_000));
    let deadline = Instant::now() + wait;
    while crowd.connected() < clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    crowd.connected()
}

/// One process's memory and descriptors before and after the clients connected.
fn connection_cost(
    role: Role,
    before: &HashMap<Role, Usage>,
    after: &HashMap<Role, Usage>,
    connected: usize,
) -> Value {
    let (b, c) = (
        before.get(&role).copied().unwrap_or_default(),
        after.get(&role).copied().unwrap_or_default(),
    );
    let per_conn = |x: f64| x / connected.max(1) as f64;
    let rss = per_conn(c.rss_kib as f64 - b.rss_kib as f64);
    let fds = per_conn(c.fds as f64 - b.fds as f64);
    eprintln!(
        "  {}: RSS {} → {} KiB ({rss:+.1} KiB per connection), fds {} → {} ({fds:+.2} per connection)",
        role.label(),
        b.rss_kib,
        c.rss_kib,
        b.fds,
        c.fds,
    );
    json!({
        "role": role.label(), "rss_before_kib": b.rss_kib, "rss_connected_kib": c.rss_kib,
        "fds_before": b.fds, "fds_connected": c.fds, "rss_per_connection_kib": rss,
    })
}

/// What the measured window cost.
struct Run {
    measured: f64,
    cpu: f64,
    peak_rss: u64,
}

/// The CPU seconds `role`'s processes spent between two of [`Stack::usage`]'s readings.
pub fn cpu_spent(before: &HashMap<Role, Usage>, after: &HashMap<Role, Usage>, role: Role) -> f64 {
    let cpu = |u: &HashMap<Role, Usage>| u.get(&role).map_or(0.0, |u| u.cpu_s);
    cpu(after) - cpu(before)
}

/// The exchange runs for `duration` while latencies are recorded; CPU by process.
fn measure(
    stack: &Stack,
    load: &Load,
    duration: Duration,
    crowd: &Crowd,
    roles: &mut [Value],
) -> Run {
    let mut peak_rss = 0;
    let (cpu_by_role_start, (cpu_start, _)) = stack.usage();
    let t_start = Instant::now();
    if !load.idle {
        stack.control("pause?on=0");
        crowd.measure(true);
    }
    while t_start.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(500));
        peak_rss = peak_rss.max(stack.workerd_usage().1);
    }
    crowd.measure(false);
    let measured = t_start.elapsed().as_secs_f64();
    let (cpu_by_role_end, (cpu_end, _)) = stack.usage();
    for (role, v) in Role::ALL.iter().zip(roles.iter_mut()) {
        let spent = cpu_spent(&cpu_by_role_start, &cpu_by_role_end, *role);
        let pct = spent / measured * 100.0;
        eprintln!("  {}: {pct:.0}% of a core while measured", role.label());
        if let Some(v) = v.as_object_mut() {
            v.insert("cpu_percent".into(), json!(pct));
        }
    }
    Run {
        measured,
        cpu: cpu_end - cpu_start,
        peak_rss,
    }
}

/// Nothing lost: pause, tick every symbol once more, and wait until every client holds the
/// exchange's last value of each of its symbols (or 30 s): a backlog drains late, a lost
/// update never does. Returns the subscriptions that still differ, and the seconds taken.
fn drain(stack: &Stack, load: &Load, crowd: &Crowd) -> (usize, f64) {
    stack.control("pause?on=1");
    if !load.idle {
        for s in SYMBOLS {
            stack.control(&format!("tick?symbol={s}"));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let want = stack.exchange_prices();
    let drain_started = Instant::now();
    while crowd.differing(&want) > 0 && drain_started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let drained = drain_started.elapsed().as_secs_f64() + 0.5;
    (crowd.differing(&want), drained)
}

/// Everything one load measured.
struct Result<'a> {
    load: &'a Load,
    relay: &'a str,
    direct: bool,
    /// Where the clients connected, in words.
    entry: &'static str,
    connected: usize,
    connect_time: Duration,
    run: Run,
    mismatched: usize,
    drained: f64,
    totals: Totals,
    spread: Option<String>,
    roles: [Value; 3],
    per_conn_kb: f64,
}

impl Result<'_> {
    fn held(&self) -> String {
        let (clients, closed) = (self.load.clients, self.totals.closed_early);
        let per_shard = self.spread.as_ref();
        format!(
            "{}/{clients} held, {} failed{}",
            self.connected - closed,
            clients - self.connected + closed,
            per_shard.map_or(String::new(), |s| format!("; per shard {s}"))
        )
    }

    fn memory(&self) -> String {
        let kib = |v: &Value| v.get("rss_per_connection_kib").and_then(Value::as_f64);
        let [_, proxy, runtime] = &self.roles;
        format!(
            "{:.0} MiB; per connection: runtime {:.0} KiB, proxy {:.0} KiB",
            self.run.peak_rss as f64 / 1024.0,
            kib(runtime).unwrap_or(0.0),
            kib(proxy).unwrap_or(0.0)
        )
    }

    /// The Markdown row.
    fn row(&self) -> String {
        let (load, relay) = (self.load, self.relay);
        let path = self.entry;
        let (held, memory) = (self.held(), self.memory());
        if load.idle {
            let secs = self.connect_time.as_secs_f64();
            return format!(
                "| {} | {relay} | {path} | {} idle | – | – | – | {held} in {secs:.1} s | – | {memory} | – |",
                load.name, load.clients,
            );
        }
        let lat = &self.totals.latencies;
        let pct = |v: &Value| v.get("cpu_percent").and_then(Value::as_f64).unwrap_or(0.0);
        let [node, proxy, runtime] = &self.roles;
        let idle = load.clients - load.active;
        let idle = if idle > 0 {
            format!("{idle} idle + ")
        } else {
            String::new()
        };
        let equal = if self.mismatched == 0 {
            format!("all equal ({:.1} s after the last tick)", self.drained)
        } else {
            format!("{} differ after {:.0} s", self.mismatched, self.drained)
        };
        format!(
            "| {} | {relay} | {path} | {idle}{} × {} of {} @ {}/s | {} / {} / {} / {} / {} ms | {:.0}/s | {:.0}/s | {held} | runtime {:.0}%, proxy {:.0}%, wrangler {:.0}% | {memory} | {equal} |",
            load.name,
            load.active,
            load.per_client,
            SYMBOLS.len(),
            load.rate,
            percentile(lat, 0.5),
            percentile(lat, 0.9),
            percentile(lat, 0.99),
            percentile(lat, 0.999),
            lat.last().copied().unwrap_or(0),
            lat.len() as f64 / self.run.measured,
            self.totals.frames as f64 / (self.run.measured + self.drained),
            pct(runtime),
            pct(proxy),
            pct(node),
        )
    }

    /// Everything, for the JSON file.
    fn detail(&self) -> Value {
        let (load, lat) = (self.load, &self.totals.latencies);
        json!({
            "load": load.name, "relay": self.relay, "clients": load.clients,
            "per_client": load.per_client, "rate": load.rate, "connected": self.connected,
            "closed_early": self.totals.closed_early,
            "connect_seconds": self.connect_time.as_secs_f64(),
            "latency_ms": {"p50": percentile(lat, 0.5), "p90": percentile(lat, 0.9),
                "p99": percentile(lat, 0.99), "p999": percentile(lat, 0.999), "max": lat.last()},
            "price_deliveries_per_s": lat.len() as f64 / self.run.measured,
            "frames": self.totals.frames, "prices": self.totals.prices,
            "workerd_cpu_seconds": self.run.cpu, "measured_seconds": self.run.measured,
            "peak_rss_kib": self.run.peak_rss, "rss_per_connection_kib": self.per_conn_kb,
            "mismatched": self.mismatched, "drain_seconds": self.drained, "direct": self.direct,
            "by_process": self.roles, "shard_spread": self.spread,
        })
    }
}

/// With fan-out shards: each shard's clients from `/health` (after their next reports), and
/// the largest deviation from the mean; `None` without shards.
fn shard_spread(stack: &Stack) -> Option<String> {
    std::thread::sleep(Duration::from_millis(2_500));
    let h = get(&format!("http://127.0.0.1:{}/health", stack.port))?;
    let counts: Vec<f64> = h
        .get("shards")?
        .as_array()?
        .iter()
        .map(|s| s.pointer("/clients/websocket").and_then(Value::as_f64))
        .map(|n| n.unwrap_or(0.0))
        .collect();
    if counts.is_empty() {
        return None;
    }
    let mean = counts.iter().sum::<f64>() / counts.len() as f64;
    let worst = counts
        .iter()
        .map(|c| (c - mean).abs() / mean.max(1.0) * 100.0)
        .fold(0.0, f64::max);
    let list: Vec<String> = counts.iter().map(|c| format!("{c:.0}")).collect();
    Some(format!(
        "{} (at most {worst:.0}% from the mean)",
        list.join(" / ")
    ))
}
