//! `make bench`: edgetick under load, end to end on this machine, beside the platform floor.
//!
//! Starts the fake exchange and a relay under `wrangler dev`, opens N WebSocket clients
//! subscribed to K of 20 symbols, drives the exchange at R updates per second, and reports
//! latency (exchange send → client receipt, from each price's `event_time`, which the
//! exchange stamps when it sends), price deliveries and frames per second, connections held
//! and failed, and CPU, memory and descriptors by process. After each load the exchange is
//! paused, every symbol ticks once more, and every client's last value per symbol must equal
//! the exchange's ("nothing lost beyond conflation").
//!
//! Every load runs twice: on edgetick, and on the *platform floor* (`bench/floor/floor.js`),
//! a minimal JavaScript Durable Object relay under the same wrangler that sends each upstream
//! ticker to its subscribers at once. The results put edgetick's figures beside the floor's
//! as ratios, so every change is judged against the platform itself.
//!
//! ```text
//! edgetick-bench [--loads A,B,H,S,C,D,E,B:direct,D:direct,B@4,I@4:direct,B:sio] [--duration 20]
//!                [--no-floor]
//!                [--send-mode shared|per-socket] [--flush-ms 5] [--no-inspector]
//!                [--idle-clients 10000] [--proxy-idle-clients 2500] [--storm 2000]
//!                [--storm-in-flight 0]
//!                [--out target/bench/results.md]
//! ```
//!
//! Loads: A 200 × 5 @ 100/s; B 1,000 × 5 @ 100/s; H 1,000 × 20 @ 400/s (every client gets
//! every update); C 2,000 × 1 @ 20/s; D idle connections; I 15,000 idle connections while 100
//! active clients (5 symbols each, 20 updates/s) keep receiving (run it `:direct`); S a storm
//! of connections opened at once while 20 watchers keep receiving (see `storm.rs`; with
//! `--storm-in-flight 1` one at a time, for what admitting one connection costs).
//!
//! `:sio`: the load's clients speak Socket.IO (the NestJS seed's `/prices`: `subscribe` per
//! symbol, `priceUpdate` per change, pongs to the server's pings), on edgetick and, in place
//! of the floor, on the seed's job done by a stock Node Socket.IO server
//! (`bench/peer/socketio.mjs`, one Node process, no wrangler).
//!
//! E: the application's events, 1,000 subscribers of one event channel while a publisher
//! posts 200 events/s (publish → receive latency, losses and order violations; edgetick
//! only, the floor has no publish API; see `events.rs`).
//!
//! M: heat maps, 100 listeners of all 20 symbols' `heatmap:` channels computed every second
//! while the exchange ticks at 100/s: what one map update costs the leader (`/metrics`), and
//! the maps received (edgetick only; see `heatmaps.rs`).
//!
//! `@N` after a load runs edgetick with `FANOUT_SHARDS=N` (`B@1,B@4`: one shard beside four;
//! the floor has no shards and is skipped for such items).
//!
//! `wrangler dev` runs two workerd processes: a local proxy that owns the public port and
//! forwards every request and WebSocket, and the runtime that runs the worker and the hub.
//! A load with `:direct` connects its clients to the runtime's own socket, past the proxy:
//! the proxy holds 6–7 file descriptors per WebSocket, and this machine's hard limit of
//! 20,000 per process caps it near 2,900 clients (hence `--proxy-idle-clients`), while the
//! runtime holds one. `--no-inspector` starts wrangler without its DevTools proxy (it has no
//! switch of its own; it stands down inside VS Code's debug terminal): only to attribute
//! costs, the README's table is measured with it.

mod crowd;
mod events;
mod heatmaps;
mod load;
mod stack;
mod storm;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use events::{run_events, EventLoad};
use heatmaps::{run_maps, MapLoad};
use load::{run_load, Load, Outcome};
use stack::{root, Settings, Stack, Target};
use storm::{run_storm, Storm};

/// The symbols every load draws from (the service's whitelist).
pub const SYMBOLS: [&str; 20] = [
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT",
    "DOTUSDT", "LINKUSDT", "TRXUSDT", "LTCUSDT", "BCHUSDT", "ATOMUSDT", "UNIUSDT", "ETCUSDT",
    "XLMUSDT", "NEARUSDT", "APTUSDT", "FILUSDT",
];

/// The `i`-th symbol, going round the list.
pub fn symbol(i: usize) -> &'static str {
    SYMBOLS.get(i % SYMBOLS.len()).copied().unwrap_or("BTCUSDT")
}

/// Ends the run with a message: the benchmark cannot go on (no runtime, no free port, a
/// service that never connected).
pub fn fatal(why: impl std::fmt::Display) -> ! {
    eprintln!("edgetick-bench: {why}");
    std::process::exit(1)
}

/// A tokio runtime with `threads` workers for the load's clients.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fatal(format!("cannot start the client runtime: {e}")))
}

struct Args {
    loads: String,
    duration: u64,
    settings: Settings,
    idle_clients: usize,
    proxy_idle_clients: usize,
    storm_clients: usize,
    storm_in_flight: usize,
    floor: bool,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut a = Args {
        loads: "A,B,H,S,C,D,E,B:direct,D:direct".to_string(),
        duration: 20,
        settings: Settings {
            send_mode: "shared".to_string(),
            flush_ms: 5,
            inspector: true,
            shards: 0,
        },
        idle_clients: 10_000,
        proxy_idle_clients: 2_500,
        storm_clients: 2_000,
        storm_in_flight: 0,
        floor: true,
        out: root().join("target/bench/results.md"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match flag.as_str() {
            "--loads" => a.loads = value(),
            "--duration" => a.duration = value().parse().unwrap_or(a.duration),
            "--send-mode" => a.settings.send_mode = value(),
            "--flush-ms" => a.settings.flush_ms = value().parse().unwrap_or(5),
            "--idle-clients" => a.idle_clients = value().parse().unwrap_or(a.idle_clients),
            "--proxy-idle-clients" => {
                a.proxy_idle_clients = value().parse().unwrap_or(a.proxy_idle_clients)
            }
            "--storm" => a.storm_clients = value().parse().unwrap_or(a.storm_clients),
            "--storm-in-flight" => a.storm_in_flight = value().parse().unwrap_or(0),
            "--no-inspector" => a.settings.inspector = false,
            "--no-floor" => a.floor = false,
            "--out" => a.out = PathBuf::from(value()),
            other => {
                eprintln!("edgetick-bench: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

fn raise_fd_limit() {
    // SAFETY: raises this process's own open-file limit to its hard limit.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The steady loads by letter.
fn steady_load(name: &str, a: &Args) -> Option<Load> {
    let (clients, per_client, rate, idle) = match name {
        "A" => (200, 5, 100, false),
        "B" => (1_000, 5, 100, false),
        "H" => (1_000, 20, 400, false),
        "C" => (2_000, 1, 20, false),
        "D" => (a.idle_clients, 0, 0, true),
        "I" => (15_000, 5, 20, false),
        _ => return None,
    };
    let active = match name {
        "I" => 100,
        _ => clients,
    };
    let name = ["A", "B", "H", "C", "D", "I"]
        .into_iter()
        .find(|n| *n == name)?;
    Some(Load {
        name,
        clients,
        per_client,
        rate,
        idle,
        active,
        socketio: false,
    })
}

/// How a load's clients connect: past wrangler's proxy (`:direct`), speaking Socket.IO
/// (`:sio`).
#[derive(Clone, Copy, Default)]
struct Mods {
    direct: bool,
    socketio: bool,
}

/// A table item's name and modifiers (`B`, `B:direct`, `B:sio`, `B:direct:sio`).
fn parse_mods(item: &str) -> Option<(&str, Mods)> {
    let mut parts = item.split(':');
    let head = parts.next()?;
    let mut mods = Mods::default();
    for m in parts {
        match m {
            "direct" => mods.direct = true,
            "sio" => mods.socketio = true,
            _ => return None,
        }
    }
    Some((head, mods))
}

/// Runs one table item (a load's letter, with its modifiers) on one relay.
fn run_item(name: &str, mods: Mods, shards: u32, target: Target, a: &Args) -> Option<Outcome> {
    let direct = mods.direct;
    let settings = Settings {
        shards,
        ..a.settings.clone()
    };
    let stack = Stack::start(target, &settings);
    eprintln!(
        "load {name}{} on {}: port {}, workerd pids {:?}",
        if direct { ":direct" } else { "" },
        target.label(),
        stack.port,
        stack.workerd_pids()
    );
    if let Some(o) = run_special(name, &stack, &relay_label(target, shards), direct, a) {
        return Some(o);
    }
    let mut load = steady_load(name, a)?;
    if load.idle && !direct {
        load.clients = a.proxy_idle_clients;
    }
    load.socketio = mods.socketio;
    let duration = Duration::from_secs(a.duration);
    let mut relay = relay_label(target, shards);
    if mods.socketio {
        relay.push_str(", Socket.IO");
    }
    Some(run_load(&stack, &relay, &load, duration, direct))
}

/// The loads that are not steady price loads: E (events), M (heat maps), S (a storm).
fn run_special(name: &str, stack: &Stack, relay: &str, direct: bool, a: &Args) -> Option<Outcome> {
    let duration = Duration::from_secs(a.duration);
    Some(match name {
        "E" => run_events(
            stack,
            relay,
            &EventLoad {
                clients: 1_000,
                rate: 200,
            },
            duration,
        ),
        "M" => run_maps(
            stack,
            relay,
            &MapLoad {
                clients: 100,
                rate: 100,
            },
            duration,
        ),
        "S" => {
            let storm = Storm {
                clients: a.storm_clients,
                in_flight: a.storm_in_flight,
                watchers: 20,
                rate: 100,
            };
            run_storm(stack, relay, &storm, direct)
        }
        _ => return None,
    })
}

/// Where an item runs: edgetick beside the floor (or, for `:sio`, beside the Node Socket.IO
/// server); edgetick alone with shards, and for what the floor cannot do (E, M).
fn targets_of(name: &str, mods: Mods, shards: u32, floor: bool) -> &'static [Target] {
    if floor && shards == 0 && mods.socketio && !matches!(name, "S" | "E" | "M") {
        &[Target::Edgetick, Target::NodeSocketIo]
    } else if floor && shards == 0 && !matches!(name, "E" | "M") && !mods.socketio {
        &[Target::Edgetick, Target::Floor]
    } else {
        &[Target::Edgetick]
    }
}

/// The relay column: the floor, or edgetick with its shards.
fn relay_label(target: Target, shards: u32) -> String {
    match (target, shards) {
        (Target::Edgetick, 0) => "edgetick".to_string(),
        (Target::Edgetick, 1) => "edgetick, 1 shard".to_string(),
        (Target::Edgetick, n) => format!("edgetick, {n} shards"),
        (Target::Floor | Target::NodeSocketIo, _) => target.label().to_string(),
    }
}

/// `edgetick ÷ floor` of one figure, as a table cell (lower is better for times).
fn ratio(ours: &Value, floor: &Value, path: &[&str]) -> String {
    let pick = |v: &Value| path.iter().try_fold(v, |v, k| v.get(k))?.as_f64();
    match (pick(ours), pick(floor)) {
        (Some(o), Some(f)) if f > 0.0 => format!("{:.2}×", o / f),
        _ => "–".to_string(),
    }
}

/// The ratio row of one item, from the two details.
fn ratio_row(item: &str, ours: &Value, floor: &Value) -> String {
    let p50 = ours.pointer("/latency_ms/p50").and_then(Value::as_f64);
    if ours.get("connect_seconds").is_some_and(Value::is_number) && p50 == Some(0.0) {
        format!(
            "| {item} | all connected in {} | | | connected {} |",
            ratio(ours, floor, &["connect_seconds"]),
            ratio(ours, floor, &["connected"]),
        )
    } else if ours["load"] == "S" {
        format!(
            "| {item} | all in {} | runtime CPU {} | longest gap {} | slowest ping {} | slowest /health {} |",
            ratio(ours, floor, &["all_in_seconds"]),
            ratio(ours, floor, &["runtime_cpu_seconds"]),
            ratio(ours, floor, &["longest_gap_seconds"]),
            ratio(ours, floor, &["slowest_ping_ms"]),
            ratio(ours, floor, &["slowest_health_ms"]),
        )
    } else {
        format!(
            "| {item} | p50 {} | p99 {} | p999 {} | max {} | deliveries/s {} | connected {} |",
            ratio(ours, floor, &["latency_ms", "p50"]),
            ratio(ours, floor, &["latency_ms", "p99"]),
            ratio(ours, floor, &["latency_ms", "p999"]),
            ratio(ours, floor, &["latency_ms", "max"]),
            ratio(ours, floor, &["price_deliveries_per_s"]),
            ratio(ours, floor, &["connected"]),
        )
    }
}

fn main() {
    let a = parse_args();
    raise_fd_limit();
    let (mut steady, mut storms, mut ratios, mut details) = (vec![], vec![], vec![], vec![]);
    let mut maps = vec![];
    for item in a.loads.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((head, mods)) = parse_mods(item) else {
            eprintln!("edgetick-bench: unknown load {item}");
            std::process::exit(2);
        };
        let (name, shards) = match head.split_once('@') {
            Some((n, s)) => (n, s.parse::<u32>().ok()),
            None => (head, Some(0)),
        };
        let Some(shards) = shards else {
            eprintln!("edgetick-bench: unknown load {item}");
            std::process::exit(2);
        };
        if !matches!(name, "S" | "E" | "M") && steady_load(name, &a).is_none() {
            eprintln!("edgetick-bench: unknown load {item}");
            std::process::exit(2);
        }
        // The floor has no shards, no publish API, no heat map and no Socket.IO.
        let targets = targets_of(name, mods, shards, a.floor);
        // A fresh stack per load and relay, so one run's connections do not skew the next.
        let outcomes: Vec<Outcome> = targets
            .iter()
            .filter_map(|t| run_item(name, mods, shards, *t, &a))
            .collect();
        if let [ours, floor] = outcomes.as_slice() {
            ratios.push(ratio_row(item, &ours.detail, &floor.detail));
        }
        for o in outcomes {
            if name == "S" {
                &mut storms
            } else if name == "M" {
                &mut maps
            } else {
                &mut steady
            }
            .push(o.row);
            details.push(o.detail);
        }
    }
    let mut md = report(&a, &steady, &storms, &ratios);
    if !maps.is_empty() {
        md.push_str("\n| load | relay | shape | one map update (the leader's cost) | received |\n|---|---|---|---|---|\n");
        maps.iter().for_each(|r| md.push_str(&format!("{r}\n")));
    }
    if let Some(dir) = a.out.parent() {
        let _ = fs::create_dir_all(dir);
    }
    let _ = fs::write(&a.out, &md);
    let _ = fs::write(
        a.out.with_extension("json"),
        serde_json::to_string_pretty(&details).unwrap_or_default(),
    );
    println!("{md}");
}

fn report(a: &Args, steady: &[String], storms: &[String], ratios: &[String]) -> String {
    let cpu_model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let s = &a.settings;
    let mut md = format!(
        "Machine: {cores} cores ({cpu_model}), wrangler 4.86.0 / workerd local, SEND_MODE={}, FLUSH_MS={}, {} s per load{}.\n\n",
        s.send_mode,
        s.flush_ms,
        a.duration,
        if s.inspector { "" } else { ", wrangler's inspector off" }
    );
    if !steady.is_empty() {
        md.push_str(
            "| load | relay | clients connect to | clients | latency p50 / p90 / p99 / p999 / max | price deliveries | frames | connections | CPU while measured (of one core) | workerd peak RSS | last value = exchange |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        steady.iter().for_each(|r| md.push_str(&format!("{r}\n")));
    }
    if !storms.is_empty() {
        md.push_str(
            "\n| load | relay | clients connect to | storm | admitted | CPU until all in | watchers' longest gap | slowest ping | slowest /health |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        storms.iter().for_each(|r| md.push_str(&format!("{r}\n")));
    }
    if !ratios.is_empty() {
        md.push_str("\nedgetick ÷ floor, for `:sio` loads edgetick ÷ Node Socket.IO (below 1× is better for times, above 1× for deliveries and connections):\n\n| load | | | | | | |\n|---|---|---|---|---|---|---|\n");
        ratios.iter().for_each(|r| md.push_str(&format!("{r}\n")));
    }
    md
}
