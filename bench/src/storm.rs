//! The connection storm: N connections opened at once while a few watchers, connected
//! before, keep receiving prices and pinging. Reports how long until every newcomer has its
//! snapshot, the watchers' longest gap between price frames and slowest `ping` round trip,
//! and the slowest `/health` answer while the storm was being admitted.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::load::{cpu_spent, Outcome};
use crate::stack::{dial, Role, Stack};

/// A storm's shape.
#[derive(Clone, Copy, Debug)]
pub struct Storm {
    /// Connections opened at once.
    pub clients: usize,
    /// Clients connected beforehand that must keep receiving.
    pub watchers: usize,
    /// Exchange updates per second meanwhile.
    pub rate: u32,
    /// Newcomers between dialling and their snapshot at any time (0: no limit, all at once).
    /// One at a time gives a steady measure of what admitting one connection costs the
    /// runtime, without the storm's noise.
    pub in_flight: usize,
}

/// How the newcomers got in: how many, when the last one was in, and the CPU seconds the
/// runtime and the proxy spent from the storm's start until then (steadier than the time:
/// it does not depend on what else the machine was doing).
struct Admission {
    admitted: usize,
    all_in: Duration,
    runtime_cpu: f64,
    /// The runtime's CPU less what serving the watchers alone costs over the same time.
    admission_cpu: f64,
    proxy_cpu: f64,
}

/// What the watchers saw during the storm.
#[derive(Default)]
struct Watch {
    longest_gap: Duration,
    slowest_ping: Duration,
    pings: usize,
}

/// The longest a newcomer waits for its snapshot before it counts as not admitted.
const ADMIT_TIMEOUT: Duration = Duration::from_secs(60);

async fn watcher(port: u16, i: usize, storming: Arc<AtomicBool>, watch: Arc<Mutex<Watch>>) {
    let Ok(mut ws) = dial(port, i).await else {
        return;
    };
    let symbols: Vec<&str> = (0..5).map(|j| crate::symbol(i + j * 3)).collect();
    let sub = json!({"action": "subscribe", "symbols": symbols}).to_string();
    if ws.send(Message::text(sub)).await.is_err() {
        return;
    }
    let mut last_price = Instant::now();
    let mut ping_sent: Option<(u64, Instant)> = None;
    let mut next_id = 1u64;
    loop {
        if ping_sent.is_none() {
            let text = json!({"action": "ping", "id": next_id}).to_string();
            if ws.send(Message::text(text)).await.is_err() {
                return;
            }
            ping_sent = Some((next_id, Instant::now()));
            next_id += 1;
        }
        let msg = match tokio::time::timeout(Duration::from_millis(250), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) | Err(_) => continue,
            Ok(_) => return,
        };
        let now = Instant::now();
        let measuring = storming.load(Ordering::Relaxed);
        if msg.starts_with("{\"type\":\"prices\"") {
            if measuring {
                let mut w = watch.lock().unwrap_or_else(|p| p.into_inner());
                w.longest_gap = w.longest_gap.max(now - last_price);
            }
            last_price = now;
        } else if msg.starts_with("{\"type\":\"pong\"") {
            if let Some((id, at)) = ping_sent {
                if msg.contains(&format!("\"id\":{id}")) {
                    if measuring {
                        let mut w = watch.lock().unwrap_or_else(|p| p.into_inner());
                        w.slowest_ping = w.slowest_ping.max(now - at);
                        w.pings += 1;
                    }
                    ping_sent = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// One newcomer: connects, subscribes to one symbol, counts itself in at its snapshot, and
/// stays connected until the runtime is dropped.
async fn newcomer(port: u16, i: usize, admitted: Arc<AtomicUsize>, gate: Option<Arc<Semaphore>>) {
    let permit = match &gate {
        Some(g) => g.clone().acquire_owned().await.ok(),
        None => None,
    };
    let Ok(Ok(mut ws)) = tokio::time::timeout(ADMIT_TIMEOUT, dial(port, i)).await else {
        return;
    };
    let sub = json!({"action": "subscribe", "symbols": [crate::symbol(i)]});
    if ws.send(Message::text(sub.to_string())).await.is_err() {
        return;
    }
    let mut permit = permit;
    let mut counted = false;
    while let Some(Ok(msg)) = ws.next().await {
        if !counted
            && msg
                .to_text()
                .is_ok_and(|t| t.starts_with("{\"type\":\"snapshot\""))
        {
            admitted.fetch_add(1, Ordering::Relaxed);
            counted = true;
            permit.take();
        }
    }
}

/// Runs `storm` against `stack`; `direct` connects past wrangler's proxy.
pub fn run_storm(stack: &Stack, relay: &str, storm: &Storm, direct: bool) -> Outcome {
    let rt = crate::runtime(2);
    let port = stack.client_port(direct);
    stack.control(&format!("rate?value={}", storm.rate));
    stack.control("pause?on=0");
    let storming = Arc::new(AtomicBool::new(false));
    let watch = Arc::new(Mutex::new(Watch::default()));
    for i in 0..storm.watchers {
        rt.spawn(watcher(port, i, storming.clone(), watch.clone()));
    }
    // Let the watchers settle into a steady stream before the storm; the last two seconds
    // give the runtime's CPU rate for the watchers alone, to take out of the admission's.
    std::thread::sleep(Duration::from_secs(1));
    let (quiet, _) = stack.usage();
    let quiet_from = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let admitted = Arc::new(AtomicUsize::new(0));
    let health_slowest = Arc::new(Mutex::new(Duration::ZERO));
    let (before, _) = stack.usage();
    let watchers_rate =
        cpu_spent(&quiet, &before, Role::Runtime) / quiet_from.elapsed().as_secs_f64();
    storming.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let gate = (storm.in_flight > 0).then(|| Arc::new(Semaphore::new(storm.in_flight)));
    for i in 0..storm.clients {
        rt.spawn(newcomer(port, i, admitted.clone(), gate.clone()));
    }
    let prober = probe_health(stack.port, storming.clone(), health_slowest.clone());
    while admitted.load(Ordering::Relaxed) < storm.clients && started.elapsed() < ADMIT_TIMEOUT {
        std::thread::sleep(Duration::from_millis(20));
    }
    let all_in = started.elapsed();
    let (after, _) = stack.usage();
    let spent = |r: Role| cpu_spent(&before, &after, r);
    // Watch one more second after the last admission, then stop.
    std::thread::sleep(Duration::from_secs(1));
    storming.store(false, Ordering::Relaxed);
    let _ = prober.join();
    let admission = Admission {
        admitted: admitted.load(Ordering::Relaxed),
        all_in,
        runtime_cpu: spent(Role::Runtime),
        admission_cpu: spent(Role::Runtime) - watchers_rate * all_in.as_secs_f64(),
        proxy_cpu: spent(Role::Proxy),
    };
    stack.control("pause?on=1");
    rt.shutdown_timeout(Duration::from_secs(5));
    let w = watch.lock().unwrap_or_else(|p| p.into_inner());
    let health = *health_slowest.lock().unwrap_or_else(|p| p.into_inner());
    outcome(relay, storm, direct, &admission, &w, health)
}

/// `/health` every 100 ms while the storm lasts; the slowest answer is kept.
fn probe_health(
    port: u16,
    storming: Arc<AtomicBool>,
    slowest: Arc<Mutex<Duration>>,
) -> std::thread::JoinHandle<()> {
    let url = format!("http://127.0.0.1:{port}/health");
    std::thread::spawn(move || {
        while storming.load(Ordering::Relaxed) {
            let t = Instant::now();
            let _ = crate::stack::get(&url);
            let took = t.elapsed();
            let mut s = slowest.lock().unwrap_or_else(|p| p.into_inner());
            *s = (*s).max(took);
            drop(s);
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// The storm's row and details: admitted clients and when the last was in, the CPU spent
/// admitting them, the watchers' longest gap and slowest ping, the slowest `/health`.
fn outcome(
    relay: &str,
    storm: &Storm,
    direct: bool,
    a: &Admission,
    w: &Watch,
    health: Duration,
) -> Outcome {
    let path = if direct {
        "runtime socket"
    } else {
        "wrangler port"
    };
    let pace = match storm.in_flight {
        0 => "at once".to_string(),
        n => format!("{n} at a time"),
    };
    let each_ms = a.admission_cpu * 1000.0 / a.admitted.max(1) as f64;
    let row = format!(
        "| S | {relay} | {path} | {} {pace}, {} watching @ {}/s | {}/{} in after {:.2} s | runtime {:.2} s (admission {each_ms:.2} ms each), proxy {:.2} s | {:.2} s | {} ms ({} pings) | {} ms |",
        storm.clients,
        storm.watchers,
        storm.rate,
        a.admitted,
        storm.clients,
        a.all_in.as_secs_f64(),
        a.runtime_cpu,
        a.proxy_cpu,
        w.longest_gap.as_secs_f64(),
        w.slowest_ping.as_millis(),
        w.pings,
        health.as_millis(),
    );
    eprintln!("{row}");
    let detail = json!({
        "load": "S", "relay": relay, "clients": storm.clients, "watchers": storm.watchers,
        "rate": storm.rate, "in_flight": storm.in_flight, "admitted": a.admitted, "all_in_seconds": a.all_in.as_secs_f64(),
        "runtime_cpu_seconds": a.runtime_cpu, "admission_cpu_ms_each": each_ms, "proxy_cpu_seconds": a.proxy_cpu,
        "longest_gap_seconds": w.longest_gap.as_secs_f64(),
        "slowest_ping_ms": w.slowest_ping.as_millis() as u64, "pings": w.pings,
        "slowest_health_ms": health.as_millis() as u64, "direct": direct,
    });
    Outcome { row, detail }
}
