//! Load E: the application's events. N WebSocket clients subscribe to one event channel, a
//! publisher posts R events per second to `POST /api/publish`, and every client checks what
//! it got: publish → receive latency (the publisher stamps each event's `data.sent` just
//! before it posts), losses (an offset between the first and the last that never arrived)
//! and order violations (an offset not above the one before). Events are never conflated, so
//! both counts must be 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::load::{percentile, Outcome};
use crate::stack::{dial, now_ms, Role, Stack, PUBLISH_TOKEN};

/// The event load's shape.
pub struct EventLoad {
    /// Subscribers.
    pub clients: usize,
    /// Events published per second.
    pub rate: u32,
}

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    connected: bool,
    offsets: Vec<u64>,
    latencies_ms: Vec<u32>,
}

async fn subscriber(port: u16, i: usize, seen: Arc<Mutex<Seen>>, stop: Arc<AtomicBool>) {
    let Ok(mut ws) = dial(port, i).await else {
        return;
    };
    let sub = json!({"action": "subscribe", "channels": ["events:signals"]}).to_string();
    if ws.send(Message::text(sub)).await.is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) | Err(_) => continue,
            Ok(_) => break,
        };
        let received = now_ms();
        let Ok(v) = serde_json::from_str::<Value>(msg.as_str()) else {
            continue;
        };
        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
        match v.get("type").and_then(Value::as_str) {
            Some("subscribed") => s.connected = true,
            Some("event") => {
                s.offsets
                    .push(v.get("offset").and_then(Value::as_u64).unwrap_or(0));
                let sent = v.pointer("/data/sent").and_then(Value::as_i64);
                let sent = sent.unwrap_or(received);
                s.latencies_ms
                    .push((received - sent).clamp(0, u32::MAX as i64) as u32);
            }
            _ => {}
        }
    }
}

/// Publishers posting side by side: one publish waits for the leader's answer (its write
/// and fan-out), so a single sequential publisher would measure its own round trips.
const PUBLISHERS: u32 = 8;

/// What the publishers got back: the offsets accepted (the service's storage persists
/// across runs, so they need not start at 1) and the refusals.
#[derive(Default)]
struct Published {
    offsets: Vec<u64>,
    refused: u64,
}

/// Posts `rate` events a second for `duration` from [`PUBLISHERS`] threads.
fn publish(port: u16, rate: u32, duration: Duration) -> Published {
    let each = (f64::from(rate) / f64::from(PUBLISHERS)).max(0.1);
    let threads: Vec<_> = (0..PUBLISHERS)
        .map(|k| std::thread::spawn(move || publisher(port, each, duration, k)))
        .collect();
    let mut all = Published::default();
    for p in threads.into_iter().filter_map(|t| t.join().ok()) {
        all.offsets.extend(p.offsets);
        all.refused += p.refused;
    }
    all.offsets.sort_unstable();
    all
}

/// One publisher at `rate` a second (its first post offset by `k`, to spread them).
fn publisher(port: u16, rate: f64, duration: Duration, k: u32) -> Published {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let url = format!("http://127.0.0.1:{port}/api/publish");
    let auth = format!("Bearer {PUBLISH_TOKEN}");
    let mut out = Published::default();
    let started =
        Instant::now() + Duration::from_secs_f64(f64::from(k) / rate / f64::from(PUBLISHERS));
    let mut n: u64 = 0;
    while Instant::now() < started + duration {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body = json!({"channel": "events:signals", "event": "signal_generated",
            "data": {"n": n, "sent": now_ms(), "symbol": "BTCUSDT", "strength": "0.75"}});
        match agent
            .post(&url)
            .set("Authorization", &auth)
            .send_string(&body.to_string())
        {
            Ok(r) => {
                let answer: Value = r.into_json().unwrap_or_default();
                out.offsets
                    .extend(answer.get("offset").and_then(Value::as_u64));
            }
            Err(_) => out.refused += 1,
        }
        n += 1;
    }
    out
}

/// Losses and order violations of one subscriber, between the first and last offset
/// published.
fn check(offsets: &[u64], first: u64, last: u64) -> (u64, u64) {
    let violations = offsets.windows(2).filter(|w| w.last() <= w.first()).count() as u64;
    let mut got: Vec<u64> = offsets
        .iter()
        .copied()
        .filter(|o| (first..=last).contains(o))
        .collect();
    got.sort_unstable();
    got.dedup();
    (last + 1 - first - got.len() as u64, violations)
}

/// Runs the event load against `stack`.
pub fn run_events(stack: &Stack, relay: &str, load: &EventLoad, duration: Duration) -> Outcome {
    let rt = crate::runtime(1);
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<Arc<Mutex<Seen>>> = (0..load.clients).map(|_| Arc::default()).collect();
    for (i, s) in seen.iter().enumerate() {
        rt.spawn(subscriber(stack.port, i, s.clone(), stop.clone()));
        if i % 250 == 249 {
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let held = wait_subscribed(&seen, load.clients);
    let (cpu0, _) = stack.usage();
    let t0 = Instant::now();
    let published = publish(stack.port, load.rate, duration);
    let measured = t0.elapsed().as_secs_f64();
    let (cpu1, _) = stack.usage();
    let drained = drain(&seen, &published);
    stop.store(true, Ordering::Relaxed);
    drop(rt);
    let got = Received::of(&seen, &published);
    let cpu = |role: Role| {
        let spent =
            cpu1.get(&role).map_or(0.0, |u| u.cpu_s) - cpu0.get(&role).map_or(0.0, |u| u.cpu_s);
        spent / measured * 100.0
    };
    let (accepted, refused) = (published.offsets.len(), published.refused);
    let lat = &got.latencies;
    let row = format!(
        "| E | {relay} | wrangler port | {} subscribers of one event channel, {} events/s published | {} / {} / {} / {} / {} ms | {:.0}/s | – | {held}/{} held | runtime {:.0}%, proxy {:.0}%, wrangler {:.0}% | – | {accepted} published ({refused} refused): {} lost, {} out of order |",
        load.clients,
        load.rate,
        percentile(lat, 0.5),
        percentile(lat, 0.9),
        percentile(lat, 0.99),
        percentile(lat, 0.999),
        lat.last().copied().unwrap_or(0),
        got.deliveries as f64 / (measured + drained),
        load.clients,
        cpu(Role::Runtime),
        cpu(Role::Proxy),
        cpu(Role::Wrangler),
        got.losses,
        got.violations,
    );
    eprintln!("{row}");
    let detail = json!({
        "load": "E", "relay": relay, "clients": load.clients, "rate": load.rate,
        "connected": held, "published": accepted, "refused": refused,
        "latency_ms": {"p50": percentile(lat, 0.5), "p90": percentile(lat, 0.9),
            "p99": percentile(lat, 0.99), "p999": percentile(lat, 0.999), "max": lat.last()},
        "deliveries": got.deliveries, "losses": got.losses, "order_violations": got.violations,
        "measured_seconds": measured,
    });
    Outcome { row, detail }
}

/// Waits until every subscriber is subscribed (or 120 s); returns how many are.
fn wait_subscribed(seen: &[Arc<Mutex<Seen>>], clients: usize) -> usize {
    let connected = || {
        let subscribed = |s: &&Arc<Mutex<Seen>>| s.lock().map(|s| s.connected).unwrap_or(false);
        seen.iter().filter(subscribed).count()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while connected() < clients && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    connected()
}

/// The offsets published, first and last.
fn span(published: &Published) -> (u64, u64) {
    let first = published.offsets.first().copied().unwrap_or(1);
    (first, published.offsets.last().copied().unwrap_or(0))
}

/// Everything published must arrive: waits until every subscriber has as many (or 30 s);
/// returns the seconds waited.
fn drain(seen: &[Arc<Mutex<Seen>>], published: &Published) -> f64 {
    let (first, last) = span(published);
    let accepted = published.offsets.len();
    let drain = Instant::now();
    let count = |s: &Arc<Mutex<Seen>>| {
        let within = |s: &Seen| {
            s.offsets
                .iter()
                .filter(|o| (first..=last).contains(*o))
                .count()
        };
        s.lock().map(|s| within(&s)).unwrap_or(0)
    };
    while seen.iter().any(|s| count(s) < accepted) && drain.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drain.elapsed().as_secs_f64()
}

/// What the subscribers received, added up.
struct Received {
    latencies: Vec<u32>,
    losses: u64,
    violations: u64,
    deliveries: u64,
}

impl Received {
    fn of(seen: &[Arc<Mutex<Seen>>], published: &Published) -> Received {
        let (first, last) = span(published);
        let mut r = Received {
            latencies: Vec::new(),
            losses: 0,
            violations: 0,
            deliveries: 0,
        };
        for s in seen {
            let s = s.lock().unwrap_or_else(|p| p.into_inner());
            if !s.connected {
                continue;
            }
            let (l, v) = check(&s.offsets, first, last);
            r.losses += l;
            r.violations += v;
            r.deliveries += s.offsets.len() as u64;
            r.latencies.extend_from_slice(&s.latencies_ms);
        }
        r.latencies.sort_unstable();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn losses_and_order_violations_are_counted() {
        assert_eq!(check(&[1, 2, 3], 1, 3), (0, 0));
        assert_eq!(check(&[1, 3], 1, 3), (1, 0));
        assert_eq!(check(&[1, 3, 2], 1, 3), (0, 1));
        assert_eq!(
            check(&[1, 2, 2, 3], 1, 3),
            (0, 1),
            "a repeat is out of order"
        );
    }
}
