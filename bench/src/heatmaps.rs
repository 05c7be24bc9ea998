//! Load M: heat maps. N WebSocket clients each listen to the heat map of every symbol
//! (`heatmap:<SYMBOL>`, computed every second here) while the exchange ticks at R updates per
//! second; the figure is what one map update costs the leader, as `/metrics` reports it
//! (`edgetick_heatmap_update_seconds`: an open-interest answer taken in, the map computed and
//! fanned out to every listener), beside the maps each client received. edgetick only: the
//! floor computes nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::load::Outcome;
use crate::stack::{dial, Stack};
use crate::SYMBOLS;

/// The heat-map load's shape.
pub struct MapLoad {
    /// Listeners (each to every symbol's map).
    pub clients: usize,
    /// Exchange updates per second.
    pub rate: u32,
}

async fn listener(port: u16, i: usize, maps: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let Ok(mut ws) = dial(port, i).await else {
        return;
    };
    let channels: Vec<String> = SYMBOLS.iter().map(|s| format!("heatmap:{s}")).collect();
    let sub = json!({"action": "subscribe", "channels": channels}).to_string();
    if ws.send(Message::text(sub)).await.is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().starts_with(r#"{"type":"heatmap""#) => {
                maps.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(_) => break,
        }
    }
}

/// The update-cost histogram from `/metrics`: `(le, cumulative count)` buckets, sum, count.
fn update_cost(port: u16) -> (Vec<(f64, f64)>, f64, f64) {
    let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default();
    let name = "edgetick_heatmap_update_seconds";
    let (mut buckets, mut sum, mut count) = (Vec::new(), 0.0, 0.0);
    for line in text.lines().filter(|l| l.starts_with(name)) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let v: f64 = value.parse().unwrap_or(0.0);
        if let Some(le) = key.strip_prefix(&format!("{name}_bucket{{le=\"")) {
            let le = le.trim_end_matches("\"}").parse().unwrap_or(f64::INFINITY);
            buckets.push((le, v));
        } else if key == format!("{name}_sum") {
            sum = v;
        } else if key == format!("{name}_count") {
            count = v;
        }
    }
    (buckets, sum, count)
}

/// Runs the heat-map load against `stack` (edgetick).
pub fn run_maps(stack: &Stack, relay: &str, load: &MapLoad, duration: Duration) -> Outcome {
    stack.control(&format!("rate?value={}", load.rate));
    let rt = crate::runtime(1);
    let stop = Arc::new(AtomicBool::new(false));
    let maps = Arc::new(AtomicU64::new(0));
    for i in 0..load.clients {
        rt.spawn(listener(stack.port, i, maps.clone(), stop.clone()));
    }
    let t0 = Instant::now();
    std::thread::sleep(duration);
    let measured = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    drop(rt);
    let (buckets, sum, count) = update_cost(stack.port);
    let within = |le: f64| {
        buckets
            .iter()
            .find(|(b, _)| *b == le)
            .map_or(0.0, |(_, n)| *n)
    };
    let under_5ms = if count > 0.0 {
        within(0.005) / count * 100.0
    } else {
        0.0
    };
    let mean_ms = if count > 0.0 {
        sum / count * 1000.0
    } else {
        0.0
    };
    let worst = buckets
        .iter()
        .find(|(_, n)| *n >= count)
        .map_or(f64::INFINITY, |(le, _)| *le * 1000.0);
    let received = maps.load(Ordering::Relaxed);
    let row = format!(
        "| M | {relay} | {} listeners × {} heat maps, every 1 s, exchange at {}/s | {count:.0} updates: mean {mean_ms:.2} ms, {under_5ms:.1} % under 5 ms, all under {worst} ms | {:.0} maps/s received |",
        load.clients,
        SYMBOLS.len(),
        load.rate,
        received as f64 / measured,
    );
    eprintln!("{row}");
    let detail = json!({
        "load": "M", "relay": relay, "clients": load.clients, "rate": load.rate,
        "updates": count, "mean_ms": mean_ms, "under_5ms_percent": under_5ms,
        "worst_bucket_ms": worst, "maps_received": received, "measured_seconds": measured,
        "buckets": buckets.iter().map(|(le, n)| json!([le, n])).collect::<Vec<Value>>(),
    });
    Outcome { row, detail }
}
