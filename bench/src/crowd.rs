//! The clients of a steady load: each one a WebSocket that subscribes, acknowledges what it
//! received every second, and keeps its latencies (from each price's `event_time`) and the
//! last price of each symbol; the crowd connects in batches and adds them up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::stack::{dial, dial_path, now_ms, Ws};

/// What every client reports.
#[derive(Default)]
pub struct Tally {
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
    let rest = obj.get(start..)?;
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest.get(..end)?.trim_matches('"'))
}

/// Handshakes that failed in this run.
static HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// What every client shares: the handshake slots, when to stop, whether to measure, and
/// whether the clients speak Socket.IO (`/prices`, as the NestJS seed's front end does).
#[derive(Clone)]
struct Shared {
    port: u16,
    socketio: bool,
    handshakes: Arc<tokio::sync::Semaphore>,
    stop_at: Arc<AtomicU64>,
    measuring: Arc<AtomicU64>,
}

fn lock(t: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Dials with a handshake slot held; the first few failures say why.
async fn connect(s: &Shared, i: usize) -> Option<Ws> {
    let slot = s.handshakes.acquire().await.ok()?;
    let dialing = async {
        if s.socketio {
            dial_path(s.port, i, "/socket.io/?EIO=4&transport=websocket").await
        } else {
            dial(s.port, i).await
        }
    };
    let ws = match tokio::time::timeout(Duration::from_secs(30), dialing).await {
        Ok(Ok(ws)) => ws,
        failed => {
            if HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed) < 5 {
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => "no answer within 30 s".to_string(),
                };
                eprintln!("  a handshake failed: {why}");
            }
            return None;
        }
    };
    drop(slot);
    Some(ws)
}

/// One client's own counts, kept off the shared tally until it ends.
#[derive(Default)]
struct Local {
    latencies: Vec<u32>,
    frames: u64,
    prices: u64,
    max_seq: u64,
}

impl Local {
    /// Takes in one Socket.IO `priceUpdate` (`{"price","symbol","ts"}`, `ts` the event time).
    fn take_socketio(&mut self, text: &str, measure: bool, received: i64, tally: &Mutex<Tally>) {
        self.frames += 1;
        self.prices += 1;
        let (Some(symbol), Some(price)) = (field(text, "symbol"), field(text, "price")) else {
            return;
        };
        lock(tally)
            .last
            .insert(symbol.to_string(), price.to_string());
        if measure {
            if let Some(ts) =
                field(text, "ts").and_then(|s| s.trim_end_matches([']', '}']).parse::<i64>().ok())
            {
                self.latencies
                    .push((received - ts).clamp(0, u32::MAX as i64) as u32);
            }
        }
    }

    /// Takes in one `prices` or `snapshot` frame.
    fn take(&mut self, text: &str, measure: bool, received: i64, tally: &Mutex<Tally>) {
        self.frames += 1;
        let mut t = lock(tally);
        for obj in text.split("{\"symbol\":").skip(1) {
            self.prices += 1;
            let symbol = obj.split('"').nth(1).unwrap_or_default().to_string();
            if let Some(p) = field(obj, "price") {
                t.last.insert(symbol, p.to_string());
            }
            if let Some(seq) = field(obj, "seq").and_then(|s| s.parse::<u64>().ok()) {
                self.max_seq = self.max_seq.max(seq);
            }
            if measure {
                if let Some(e) = field(obj, "event_time").and_then(|s| s.parse::<i64>().ok()) {
                    self.latencies
                        .push((received - e).clamp(0, u32::MAX as i64) as u32);
                }
            }
        }
    }
}

/// A Socket.IO client's start: the open packet, `/prices` joined, a `subscribe` per symbol.
async fn socketio_start(ws: &mut Ws, symbols: &[String]) -> Option<()> {
    let mut joined = false;
    while !joined {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .ok()??
            .ok()?;
        let Message::Text(text) = msg else { continue };
        if text.starts_with("0{") {
            ws.send(Message::text("40/prices,")).await.ok()?;
        }
        joined = text.starts_with("40/prices,{");
    }
    for s in symbols {
        let sub = format!(r#"42/prices,["subscribe",{{"symbol":"{s}"}}]"#);
        ws.send(Message::text(sub)).await.ok()?;
    }
    Some(())
}

async fn client(s: Shared, i: usize, symbols: Vec<String>, tally: Arc<Mutex<Tally>>) {
    let Some(mut ws) = connect(&s, i).await else {
        return;
    };
    if s.socketio {
        if socketio_start(&mut ws, &symbols).await.is_none() {
            return;
        }
    } else if !symbols.is_empty() {
        let sub = json!({"action": "subscribe", "symbols": symbols}).to_string();
        if ws.send(Message::text(sub)).await.is_err() {
            return;
        }
    }
    {
        let mut t = lock(&tally);
        t.connected = true;
        t.subscribed = symbols;
    }
    let mut local = Local::default();
    let mut last_ack = Instant::now();
    while (now_ms() as u64) < s.stop_at.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(Some(Ok(m))) => m,
            Ok(_) => {
                lock(&tally).closed_early = true;
                break;
            }
            Err(_) => continue,
        };
        let Message::Text(text) = msg else { continue };
        let (received, text) = (now_ms(), text.as_str());
        if s.socketio {
            if text == "2" {
                let _ = ws.send(Message::text("3")).await;
            } else if text.starts_with("42/prices,[\"priceUpdate\"") {
                let measure = s.measuring.load(Ordering::Relaxed) == 1;
                local.take_socketio(text, measure, received, &tally);
            }
            continue;
        }
        let live = text.starts_with("{\"type\":\"prices\"");
        if !live && !text.starts_with("{\"type\":\"snapshot\"") {
            continue;
        }
        let measure = live && s.measuring.load(Ordering::Relaxed) == 1;
        local.take(text, measure, received, &tally);
        // Idle clients have nothing to acknowledge, and say nothing.
        if local.max_seq > 0 && last_ack.elapsed() > Duration::from_secs(1) {
            last_ack = Instant::now();
            let ack = json!({"action": "ack", "seq": local.max_seq}).to_string();
            let _ = ws.send(Message::text(ack)).await;
        }
    }
    let mut t = lock(&tally);
    t.latencies_ms = local.latencies;
    t.frames = local.frames;
    t.prices = local.prices;
}

/// Every client's sums.
pub struct Totals {
    /// Latencies (ms), sorted.
    pub latencies: Vec<u32>,
    /// Frames received.
    pub frames: u64,
    /// Prices received.
    pub prices: u64,
    /// Clients the service closed before the end.
    pub closed_early: usize,
}

/// The clients of one load.
pub struct Crowd {
    shared: Shared,
    tallies: Vec<Arc<Mutex<Tally>>>,
    handles: Vec<JoinHandle<()>>,
}

impl Crowd {
    /// Starts a client per entry of `subscriptions` on `rt`, in batches of 250 a quarter
    /// second apart: a real crowd arrives over time, and a thundering herd of upgrades would
    /// measure the local dev proxy's accept queue rather than the service.
    pub fn start(
        rt: &Runtime,
        port: u16,
        socketio: bool,
        subscriptions: Vec<Vec<String>>,
    ) -> Crowd {
        // At most this many handshakes in flight: a client that waits for a slot is not
        // counted against the service, and none times out in the dev proxy's accept queue.
        let shared = Shared {
            port,
            socketio,
            handshakes: Arc::new(tokio::sync::Semaphore::new(256)),
            stop_at: Arc::new(AtomicU64::new(u64::MAX)),
            measuring: Arc::new(AtomicU64::new(0)),
        };
        let (mut tallies, mut handles) = (Vec::new(), Vec::new());
        for (i, symbols) in subscriptions.into_iter().enumerate() {
            let tally: Arc<Mutex<Tally>> = Arc::default();
            tallies.push(tally.clone());
            handles.push(rt.spawn(client(shared.clone(), i, symbols, tally)));
            if i % 250 == 249 {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        Crowd {
            shared,
            tallies,
            handles,
        }
    }

    /// Clients connected (and subscribed) so far.
    pub fn connected(&self) -> usize {
        self.tallies.iter().filter(|t| lock(t).connected).count()
    }

    /// Latencies are recorded only while measuring.
    pub fn measure(&self, on: bool) {
        self.shared
            .measuring
            .store(u64::from(on), Ordering::Relaxed);
    }

    /// Subscriptions (of connected clients) whose last price is not `want`'s.
    pub fn differing(&self, want: &HashMap<String, String>) -> usize {
        let differ = |t: &Tally| {
            let subscribed = t.subscribed.iter();
            subscribed
                .filter(|s| t.last.get(*s) != want.get(*s))
                .count()
        };
        let counts = self.tallies.iter().map(|t| lock(t));
        counts.filter(|t| t.connected).map(|t| differ(&t)).sum()
    }

    /// Stops every client and adds up what they saw.
    pub fn finish(self, rt: Runtime) -> Totals {
        self.shared
            .stop_at
            .store(now_ms() as u64, Ordering::Relaxed);
        rt.block_on(async {
            for h in self.handles {
                let _ = h.await;
            }
        });
        rt.shutdown_timeout(Duration::from_secs(5));
        let mut totals = Totals {
            latencies: Vec::new(),
            frames: 0,
            prices: 0,
            closed_early: 0,
        };
        for t in &self.tallies {
            let t = lock(t);
            totals.latencies.extend_from_slice(&t.latencies_ms);
            totals.frames += t.frames;
            totals.prices += t.prices;
            totals.closed_early += usize::from(t.closed_early);
        }
        totals.latencies.sort_unstable();
        totals
    }
}
