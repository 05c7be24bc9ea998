//! One steady load: N WebSocket clients subscribed to K of the symbols while the exchange
//! ticks at R updates per second; latency from each price's `event_time`, deliveries and
//! frames per second, connections held, costs by process, and the loss check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::stack::{dial, get, now_ms, Role, Stack};
use crate::SYMBOLS;

/// What every client reports.
#[derive(Default)]
struct Tally {
    latencies_ms: Vec<u32>,
    frames: u64,
    prices: u64,
    last: HashMap<String, String>,
    subscribed: Vec<String>,
    connected: bool,
    closed_early: bool,
}

/// Pulls `"key":value` out of a price object's text without a full JSON parse, so the
/// clients cost the machine little next to the service being measured.
pub fn field<'a>(obj: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let start = obj.find(&pat)? + pat.len();
    let rest = &obj[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

/// Handshakes that failed in this run.
static HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);

async fn client(
    port: u16,
    i: usize,
    handshakes: Arc<tokio::sync::Semaphore>,
    symbols: Vec<String>,
    tally: Arc<Mutex<Tally>>,
    stop_at: Arc<AtomicU64>,
    measuring: Arc<AtomicU64>,
) {
    let Ok(slot) = handshakes.acquire_owned().await else {
        return;
    };
    let mut ws = match tokio::time::timeout(Duration::from_secs(30), dial(port, i)).await {
        Ok(Ok(ws)) => ws,
        failed => {
            // The first few failures say why (a refusal, a reset, a timeout).
            if HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed) < 5 {
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => "no answer within 30 s".to_string(),
                };
                eprintln!("  a handshake failed: {why}");
            }
            return;
        }
    };
    drop(slot);
    if !symbols.is_empty() {
        let sub = json!({"action": "subscribe", "symbols": symbols}).to_string();
        if ws.send(Message::text(sub)).await.is_err() {
            return;
        }
    }
    {
        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
        t.connected = true;
        t.subscribed = symbols.clone();
    }
    let mut local_lat: Vec<u32> = Vec::new();
    let mut frames = 0;
    let mut prices = 0;
    let mut max_seq = 0u64;
    let mut last_ack = Instant::now();
    loop {
        if now_ms() as u64 >= stop_at.load(Ordering::Relaxed) {
            break;
        }
        let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(_) => {
                tally.lock().unwrap_or_else(|p| p.into_inner()).closed_early = true;
                break;
            }
            Err(_) => continue,
        };
        let Message::Text(text) = msg else { continue };
        let received = now_ms();
        let text = text.as_str();
        if !text.starts_with("{\"type\":\"prices\"") && !text.starts_with("{\"type\":\"snapshot\"")
        {
            continue;
        }
        frames += 1;
        {
            let mut tally_now = tally.lock().unwrap_or_else(|p| p.into_inner());
            let measure =
                measuring.load(Ordering::Relaxed) == 1 && text.starts_with("{\"type\":\"prices\"");
            for obj in text.split("{\"symbol\":").skip(1) {
                prices += 1;
                let symbol = obj.split('"').nth(1).unwrap_or_default().to_string();
                if let Some(p) = field(obj, "price") {
                    tally_now.last.insert(symbol, p.to_string());
                }
                if let Some(seq) = field(obj, "seq").and_then(|s| s.parse::<u64>().ok()) {
                    max_seq = max_seq.max(seq);
                }
                if measure {
                    if let Some(e) = field(obj, "event_time").and_then(|s| s.parse::<i64>().ok()) {
                        local_lat.push((received - e).clamp(0, u32::MAX as i64) as u32);
                    }
                }
            }
        }
        // Idle clients have nothing to acknowledge, and say nothing.
        if max_seq > 0 && last_ack.elapsed() > Duration::from_secs(1) {
            last_ack = Instant::now();
            let _ = ws
                .send(Message::text(
                    json!({"action": "ack", "seq": max_seq}).to_string(),
                ))
                .await;
        }
    }
    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
    t.latencies_ms = local_lat;
    t.frames = frames;
    t.prices = prices;
}

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
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `load` against `stack` for `duration`; `direct` connects past wrangler's proxy.
pub fn run_load(
    stack: &Stack,
    relay: &str,
    load: &Load,
    duration: Duration,
    direct: bool,
) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    stack.control("pause?on=1");
    stack.control(&format!("rate?value={}", load.rate));
    let (before, (_, rss0)) = stack.usage();
    let port = stack.client_port(direct);
    // At most this many handshakes in flight: a client that waits for a slot is not
    // counted against the service, and none times out in the dev proxy's accept queue.
    let handshakes = Arc::new(tokio::sync::Semaphore::new(256));
    let stop_at = Arc::new(AtomicU64::new(u64::MAX));
    let measuring = Arc::new(AtomicU64::new(0));
    let tallies: Vec<Arc<Mutex<Tally>>> = (0..load.clients).map(|_| Arc::default()).collect();
    let started = Instant::now();
    // Connect in batches: a real crowd arrives over time, and a thundering herd of
    // upgrades would measure the local dev proxy's accept queue rather than the service.
    let mut handles = Vec::with_capacity(load.clients);
    for (i, t) in tallies.iter().enumerate() {
        let symbols: Vec<String> = if load.idle || i >= load.active {
            Vec::new()
        } else {
            (0..load.per_client)
                .map(|j| SYMBOLS[(i + j * 7) % SYMBOLS.len()].to_string())
                .collect()
        };
        handles.push(rt.spawn(client(
            port,
            i,
            handshakes.clone(),
            symbols,
            t.clone(),
            stop_at.clone(),
            measuring.clone(),
        )));
        if i % 250 == 249 {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    // Wait until every client connected (or 120 s, 10 ms per client for large idle crowds).
    let wait = Duration::from_millis((load.clients as u64 * 10).max(120_000));
    let deadline = Instant::now() + wait;
    let count = || {
        tallies
            .iter()
            .filter(|t| t.lock().map(|t| t.connected).unwrap_or(false))
            .count()
    };
    while count() < load.clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let connect_time = started.elapsed();
    let connected = count();
    let (at_connected, (_, rss_connected)) = stack.usage();
    let mut roles = Role::ALL.map(|role| {
        let (b, c) = (
            before.get(&role).copied().unwrap_or_default(),
            at_connected.get(&role).copied().unwrap_or_default(),
        );
        let per_conn = |x: f64| {
            if connected > 0 {
                x / connected as f64
            } else {
                0.0
            }
        };
        eprintln!(
            "  {}: RSS {} → {} KiB ({:+.1} KiB per connection), fds {} → {} ({:+.2} per connection)",
            role.label(),
            b.rss_kib,
            c.rss_kib,
            per_conn(c.rss_kib as f64 - b.rss_kib as f64),
            b.fds,
            c.fds,
            per_conn(c.fds as f64 - b.fds as f64),
        );
        json!({
            "role": role.label(), "rss_before_kib": b.rss_kib, "rss_connected_kib": c.rss_kib,
            "fds_before": b.fds, "fds_connected": c.fds,
            "rss_per_connection_kib": per_conn(c.rss_kib as f64 - b.rss_kib as f64),
        })
    });
    eprintln!("  connected {connected} in {connect_time:?}");
    let spread = shard_spread(stack);
    if let Some(s) = &spread {
        eprintln!("  clients per shard: {s}");
    }
    let mut peak_rss = rss_connected;
    let (cpu_by_role_start, (cpu_start, _)) = stack.usage();
    let t_start = Instant::now();
    if !load.idle {
        stack.control("pause?on=0");
        measuring.store(1, Ordering::Relaxed);
    }
    while t_start.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(500));
        peak_rss = peak_rss.max(stack.workerd_usage().1);
    }
    measuring.store(0, Ordering::Relaxed);
    let measured = t_start.elapsed().as_secs_f64();
    let (cpu_by_role_end, (cpu_end, _)) = stack.usage();
    for (role, v) in Role::ALL.iter().zip(roles.iter_mut()) {
        let spent = cpu_by_role_end.get(role).map_or(0.0, |u| u.cpu_s)
            - cpu_by_role_start.get(role).map_or(0.0, |u| u.cpu_s);
        let pct = spent / measured * 100.0;
        eprintln!("  {}: {pct:.0}% of a core while measured", role.label());
        v["cpu_percent"] = json!(pct);
    }
    // Nothing lost: pause, tick every symbol once more, let it drain, compare.
    stack.control("pause?on=1");
    if !load.idle {
        for s in SYMBOLS {
            stack.control(&format!("tick?symbol={s}"));
        }
    }
    // Wait until every client holds the exchange's last value of each of its symbols (or
    // 30 s): a backlog drains late, a lost update never does.
    std::thread::sleep(Duration::from_millis(500));
    let want = stack.exchange_prices();
    let differing = || {
        tallies
            .iter()
            .map(|t| {
                let t = t.lock().unwrap_or_else(|p| p.into_inner());
                if load.idle || !t.connected {
                    return 0;
                }
                t.subscribed
                    .iter()
                    .filter(|s| t.last.get(*s) != want.get(*s))
                    .count()
            })
            .sum::<usize>()
    };
    let drain_started = Instant::now();
    while differing() > 0 && drain_started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let drained = drain_started.elapsed().as_secs_f64() + 0.5;
    stop_at.store(now_ms() as u64, Ordering::Relaxed);
    rt.block_on(async {
        for h in handles {
            let _ = h.await;
        }
    });
    rt.shutdown_timeout(Duration::from_secs(5));
    let mut lat: Vec<u32> = Vec::new();
    let mismatched = differing();
    let (mut frames, mut prices, mut closed_early) = (0u64, 0u64, 0usize);
    for t in &tallies {
        let t = t.lock().unwrap_or_else(|p| p.into_inner());
        lat.extend_from_slice(&t.latencies_ms);
        frames += t.frames;
        prices += t.prices;
        closed_early += usize::from(t.closed_early);
    }
    lat.sort_unstable();
    let cpu = cpu_end - cpu_start;
    let per_conn_kb = if connected > 0 {
        (rss_connected.saturating_sub(rss0)) as f64 / connected as f64
    } else {
        0.0
    };
    let deliveries = lat.len() as f64 / measured;
    let [node, proxy, runtime] = &roles;
    let pct = |v: &Value| v["cpu_percent"].as_f64().unwrap_or(0.0);
    let kib = |v: &Value| v["rss_per_connection_kib"].as_f64().unwrap_or(0.0);
    let path = if direct {
        "runtime socket"
    } else {
        "wrangler port"
    };
    let held = format!(
        "{}/{} held, {} failed{}",
        connected - closed_early,
        load.clients,
        load.clients - connected + closed_early,
        spread
            .as_ref()
            .map_or(String::new(), |s| format!("; per shard {s}"))
    );
    let memory = format!(
        "{:.0} MiB; per connection: runtime {:.0} KiB, proxy {:.0} KiB",
        peak_rss as f64 / 1024.0,
        kib(runtime),
        kib(proxy)
    );
    let row = if load.idle {
        format!(
            "| {} | {relay} | {path} | {} idle | – | – | – | {held} in {:.1} s | – | {memory} | – |",
            load.name,
            load.clients,
            connect_time.as_secs_f64(),
        )
    } else {
        format!(
            "| {} | {relay} | {path} | {}{} × {} of {} @ {}/s | {} / {} / {} / {} ms | {:.0}/s | {:.0}/s | {held} | runtime {:.0}%, proxy {:.0}%, wrangler {:.0}% | {memory} | {} |",
            load.name,
            if load.active < load.clients {
                format!("{} idle + ", load.clients - load.active)
            } else {
                String::new()
            },
            load.active,
            load.per_client,
            SYMBOLS.len(),
            load.rate,
            percentile(&lat, 0.5),
            percentile(&lat, 0.9),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(0),
            deliveries,
            frames as f64 / (measured + drained),
            pct(runtime),
            pct(proxy),
            pct(node),
            if mismatched == 0 {
                format!("all equal ({drained:.1} s after the last tick)")
            } else {
                format!("{mismatched} differ after {drained:.0} s")
            }
        )
    };
    let detail = json!({
        "load": load.name, "relay": relay, "clients": load.clients, "per_client": load.per_client, "rate": load.rate,
        "connected": connected, "closed_early": closed_early, "connect_seconds": connect_time.as_secs_f64(),
        "latency_ms": {"p50": percentile(&lat, 0.5), "p90": percentile(&lat, 0.9), "p99": percentile(&lat, 0.99), "max": lat.last()},
        "price_deliveries_per_s": deliveries, "frames": frames, "prices": prices,
        "workerd_cpu_seconds": cpu, "measured_seconds": measured, "peak_rss_kib": peak_rss,
        "rss_per_connection_kib": per_conn_kb, "mismatched": mismatched, "drain_seconds": drained,
        "direct": direct, "by_process": roles, "shard_spread": spread,
    });
    eprintln!("{row}");
    Outcome { row, detail }
}

/// With fan-out shards: each shard's clients from `/health` (after their next reports), and
/// the largest deviation from the mean; `None` without shards.
fn shard_spread(stack: &Stack) -> Option<String> {
    std::thread::sleep(Duration::from_millis(2_500));
    let h = get(&format!("http://127.0.0.1:{}/health", stack.port))?;
    let counts: Vec<f64> = h["shards"]
        .as_array()?
        .iter()
        .map(|s| s["clients"]["websocket"].as_f64().unwrap_or(0.0))
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
