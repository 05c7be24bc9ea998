//! `make bench`: edgetick under load, end to end on this machine.
//!
//! Starts the fake exchange and the built worker under `wrangler dev`, opens N WebSocket
//! clients subscribed to K of S symbols, drives the exchange at R updates per second, and
//! reports latency (exchange send → client receipt, from each price's `event_time`, which the
//! exchange stamps when it sends), price deliveries and frames per second, connections held
//! and failed, and the CPU time and peak memory of the workerd processes. After each load the
//! exchange is paused, every symbol ticks once more, and every client's last value per symbol
//! must equal the exchange's ("nothing lost beyond conflation").
//!
//! ```text
//! edgetick-bench [--loads A,B,C,D,B:direct,D:direct] [--duration 20]
//!                [--send-mode shared|per-socket] [--flush-ms 5] [--no-inspector]
//!                [--idle-clients 10000] [--proxy-idle-clients 2500]
//!                [--out target/bench/results.md]
//! ```
//!
//! `wrangler dev` runs two workerd processes: a local proxy that owns the public port and
//! forwards every request and WebSocket, and the runtime that runs the worker and the hub.
//! A load with `:direct` connects its clients to the runtime's own socket, past the proxy:
//! the proxy holds 6–7 file descriptors per WebSocket, and this machine's hard limit of
//! 20,000 per process caps it near 2,900 clients (hence `--proxy-idle-clients`), while the
//! runtime holds one. `--no-inspector` starts wrangler without its DevTools proxy (it has no
//! switch of its own; it stands down inside VS Code's debug terminal): only to attribute
//! costs, the README's table is measured with it.

use std::collections::HashMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SYMBOLS: [&str; 20] = [
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT",
    "DOTUSDT", "LINKUSDT", "TRXUSDT", "LTCUSDT", "BCHUSDT", "ATOMUSDT", "UNIUSDT", "ETCUSDT",
    "XLMUSDT", "NEARUSDT", "APTUSDT", "FILUSDT",
];

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn(cmd: &mut Command, log: &str) -> Child {
    let dir = root().join("target/bench");
    let _ = fs::create_dir_all(&dir);
    let out = fs::File::create(dir.join(log)).expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

fn stop(child: &mut Child) {
    let pgid = child.id() as libc::pid_t;
    if pgid > 1 {
        // SAFETY: signals only the process group this program created with process_group(0).
        unsafe {
            libc::killpg(pgid, libc::SIGTERM);
        }
        std::thread::sleep(Duration::from_millis(500));
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
    let _ = child.wait();
}

fn get(url: &str) -> Option<Value> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    resp.into_json().ok()
}

fn post(url: &str) {
    let _ = ureq::post(url).timeout(Duration::from_secs(10)).call();
}

/// The processes under test.
struct Stack {
    exchange: Child,
    exchange_port: u16,
    wrangler: Child,
    port: u16,
}

impl Stack {
    fn start(send_mode: &str, flush_ms: u32, inspector: bool) -> Stack {
        let exchange_port = free_port();
        let bin = root().join("target/release/fake-exchange");
        let exchange = spawn(
            Command::new(bin)
                .args(["--port", &exchange_port.to_string(), "--rate", "0"])
                .args(["--ping-interval-ms", "20000"]),
            "exchange.log",
        );
        let port = free_port();
        let vars = [
            format!("UPSTREAM_URL:ws://127.0.0.1:{exchange_port}/stream"),
            format!("SYMBOLS:{}", SYMBOLS.join(",")),
            "MAX_CONNECTIONS:30000".to_string(),
            "CLIENT_MESSAGES_PER_SECOND:100".to_string(),
            format!("SEND_MODE:{send_mode}"),
            format!("FLUSH_MS:{flush_ms}"),
        ];
        let mut cmd = Command::new("sh");
        let mut line = format!(
            "ulimit -n 20000; exec node_modules/.bin/wrangler dev --ip 127.0.0.1 --port {port} --local \
             --show-interactive-dev-session=false --log-level warn --inspector-port {} --persist-to target/bench/state",
            free_port()
        );
        for v in &vars {
            line.push_str(&format!(" --var '{v}'"));
        }
        cmd.arg("-c")
            .arg(line)
            .current_dir(root())
            .env("EDGETICK_SKIP_BUILD", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false");
        if !inspector {
            // wrangler has no switch for its DevTools proxy; it stands it down inside VS Code's
            // debug terminal, recognised by this variable. Only for attributing costs.
            cmd.env("VSCODE_INSPECTOR_OPTIONS", "{}");
        }
        let wrangler = spawn(&mut cmd, "wrangler.log");
        let stack = Stack {
            exchange,
            exchange_port,
            wrangler,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let h = get(&format!("http://127.0.0.1:{port}/health"));
            if h.as_ref()
                .is_some_and(|h| h["upstream"]["state"] == "connected")
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not connect in 90 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        stack
    }

    fn control(&self, action: &str) {
        post(&format!(
            "http://127.0.0.1:{}/control/{action}",
            self.exchange_port
        ));
    }

    fn exchange_prices(&self) -> HashMap<String, String> {
        let s = get(&format!(
            "http://127.0.0.1:{}/control/state",
            self.exchange_port
        ))
        .unwrap_or_default();
        s["prices"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v["price"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The processes of this stack by role: wrangler's Node CLI, the local proxy workerd
    /// (it owns the public port) and the runtime workerd that runs the worker and the hub.
    fn processes(&self) -> Vec<(Role, i32)> {
        let pgid = self.wrangler.id() as i32;
        let mut out = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let pg: i32 = stat_fields(pid)
                .get(2)
                .and_then(|f| f.parse().ok())
                .unwrap_or(0);
            if pg != pgid {
                continue;
            }
            let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            let role = if cmdline.contains("wrangler-dist/cli.js") {
                Role::Wrangler
            } else if !cmdline.contains("bin/workerd") {
                continue;
            } else if cmdline.contains(&format!("entry=127.0.0.1:{} ", self.port)) {
                Role::Proxy
            } else {
                Role::Runtime
            };
            out.push((role, pid));
        }
        out
    }

    fn workerd_pids(&self) -> Vec<i32> {
        self.processes()
            .into_iter()
            .filter(|(r, _)| *r != Role::Wrangler)
            .map(|(_, p)| p)
            .collect()
    }

    /// Usage by role, and the workerd total (CPU seconds, RSS KiB).
    fn usage(&self) -> (HashMap<Role, Usage>, (f64, u64)) {
        let mut by_role: HashMap<Role, Usage> = HashMap::new();
        let mut total = (0.0, 0);
        for (role, pid) in self.processes() {
            let u = Usage::of(pid);
            if role != Role::Wrangler {
                total.0 += u.cpu_s;
                total.1 += u.rss_kib;
            }
            let e = by_role.entry(role).or_default();
            e.cpu_s += u.cpu_s;
            e.rss_kib += u.rss_kib;
            e.fds += u.fds;
        }
        (by_role, total)
    }

    /// (CPU seconds so far, current RSS in KiB) summed over the workerd processes.
    fn workerd_usage(&self) -> (f64, u64) {
        self.usage().1
    }

    /// The runtime workerd's own HTTP socket, found among its listening sockets by asking
    /// each for /health: a `:direct` load connects its clients there, past wrangler's proxy.
    fn runtime_port(&self) -> Option<u16> {
        let (_, pid) = self
            .processes()
            .into_iter()
            .find(|(r, _)| *r == Role::Runtime)?;
        let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read_link(e.path()).ok())
            .filter_map(|l| {
                let l = l.to_string_lossy().to_string();
                l.strip_prefix("socket:[")?
                    .strip_suffix(']')
                    .map(str::to_string)
            })
            .collect();
        let tcp = fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        tcp.lines()
            .skip(1)
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let listening = f.get(3) == Some(&"0A");
                let inode = f.get(9)?;
                if !listening || !inodes.iter().any(|i| i == inode) {
                    return None;
                }
                let port = f.get(1)?.rsplit_once(':')?.1;
                u16::from_str_radix(port, 16).ok()
            })
            .find(|port| {
                get(&format!("http://127.0.0.1:{port}/health"))
                    .is_some_and(|h| h.get("upstream").is_some())
            })
    }
}

/// Which process of the dev stack a measurement belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Role {
    Wrangler,
    Proxy,
    Runtime,
}

impl Role {
    /// Every role, in the order the results list them.
    const ALL: [Role; 3] = [Role::Wrangler, Role::Proxy, Role::Runtime];

    fn label(self) -> &'static str {
        match self {
            Role::Wrangler => "wrangler (node)",
            Role::Proxy => "proxy workerd",
            Role::Runtime => "runtime workerd",
        }
    }
}

/// One process's CPU time, resident memory and open descriptors.
#[derive(Clone, Copy, Default, Debug)]
struct Usage {
    cpu_s: f64,
    rss_kib: u64,
    fds: usize,
}

impl Usage {
    fn of(pid: i32) -> Usage {
        let tick = 100.0; // USER_HZ on Linux
        let stat = stat_fields(pid);
        let ticks = |i: usize| {
            stat.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Usage {
            cpu_s: (ticks(11) + ticks(12)) / tick,
            rss_kib: fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|status| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))?
                        .split_whitespace()
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(0),
            fds: fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| d.count())
                .unwrap_or(0),
        }
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (whose parentheses may hold
/// spaces): 2 is the process group, 11 and 12 user and system CPU ticks. Empty if the
/// process is gone.
fn stat_fields(pid: i32) -> Vec<String> {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1;
            Some(after.split_whitespace().map(str::to_string).collect())
        })
        .unwrap_or_default()
}

impl Drop for Stack {
    fn drop(&mut self) {
        stop(&mut self.wrangler);
        stop(&mut self.exchange);
    }
}

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
fn field<'a>(obj: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":");
    let start = obj.find(&pat)? + pat.len();
    let rest = &obj[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}

async fn client(
    port: u16,
    handshakes: Arc<tokio::sync::Semaphore>,
    symbols: Vec<String>,
    tally: Arc<Mutex<Tally>>,
    stop_at: Arc<AtomicU64>,
    measuring: Arc<AtomicU64>,
) {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let Ok(slot) = handshakes.acquire_owned().await else {
        return;
    };
    let Ok(Ok((mut ws, _))) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(url),
    )
    .await
    else {
        return;
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

struct Load {
    name: &'static str,
    clients: usize,
    per_client: usize,
    rate: u32,
    idle: bool,
}

struct Outcome {
    row: String,
    detail: Value,
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn run_load(stack: &Stack, load: &Load, duration: Duration, direct: bool) -> Outcome {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    stack.control("pause?on=1");
    stack.control(&format!("rate?value={}", load.rate));
    let (before, (_, rss0)) = stack.usage();
    let port = if direct {
        stack
            .runtime_port()
            .expect("the runtime workerd's HTTP socket")
    } else {
        stack.port
    };
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
        let symbols: Vec<String> = if load.idle {
            Vec::new()
        } else {
            (0..load.per_client)
                .map(|j| SYMBOLS[(i + j * 7) % SYMBOLS.len()].to_string())
                .collect()
        };
        handles.push(rt.spawn(client(
            port,
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
    // Wait until every client connected (or 120 s).
    let deadline = Instant::now() + Duration::from_secs(120);
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
        "{}/{} held, {} failed",
        connected - closed_early,
        load.clients,
        load.clients - connected + closed_early
    );
    let memory = format!(
        "{:.0} MiB; per connection: runtime {:.0} KiB, proxy {:.0} KiB",
        peak_rss as f64 / 1024.0,
        kib(runtime),
        kib(proxy)
    );
    let row = if load.idle {
        format!(
            "| {} | {path} | {} idle | – | – | – | {held} in {:.1} s | – | {memory} | – |",
            load.name,
            load.clients,
            connect_time.as_secs_f64(),
        )
    } else {
        format!(
            "| {} | {path} | {} × {} of 20 @ {}/s | {} / {} / {} / {} ms | {:.0}/s | {:.0}/s | {held} | runtime {:.0}%, proxy {:.0}%, wrangler {:.0}% | {memory} | {} |",
            load.name,
            load.clients,
            load.per_client,
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
        "load": load.name, "clients": load.clients, "per_client": load.per_client, "rate": load.rate,
        "connected": connected, "closed_early": closed_early, "connect_seconds": connect_time.as_secs_f64(),
        "latency_ms": {"p50": percentile(&lat, 0.5), "p90": percentile(&lat, 0.9), "p99": percentile(&lat, 0.99), "max": lat.last()},
        "price_deliveries_per_s": deliveries, "frames": frames, "prices": prices,
        "workerd_cpu_seconds": cpu, "measured_seconds": measured, "peak_rss_kib": peak_rss,
        "rss_per_connection_kib": per_conn_kb, "mismatched": mismatched, "drain_seconds": drained,
        "direct": direct, "by_process": roles,
    });
    eprintln!("{row}");
    Outcome { row, detail }
}

fn main() {
    let mut loads = "A,B,C,D,B:direct,D:direct".to_string();
    let mut duration = 20u64;
    let mut send_mode = "shared".to_string();
    let mut flush_ms = 5u32;
    let mut idle_clients = 10_000usize;
    let mut proxy_idle_clients = 2_500usize;
    let mut inspector = true;
    let mut out = root().join("target/bench/results.md");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--loads" => loads = args.next().unwrap_or(loads),
            "--duration" => duration = args.next().and_then(|v| v.parse().ok()).unwrap_or(duration),
            "--send-mode" => send_mode = args.next().unwrap_or(send_mode),
            "--flush-ms" => flush_ms = args.next().and_then(|v| v.parse().ok()).unwrap_or(flush_ms),
            "--idle-clients" => {
                idle_clients = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(idle_clients)
            }
            "--proxy-idle-clients" => {
                proxy_idle_clients = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(proxy_idle_clients)
            }
            "--no-inspector" => inspector = false,
            "--out" => out = args.next().map(PathBuf::from).unwrap_or(out),
            other => {
                eprintln!("edgetick-bench: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
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
    let all = [
        Load {
            name: "A",
            clients: 200,
            per_client: 5,
            rate: 100,
            idle: false,
        },
        Load {
            name: "B",
            clients: 1_000,
            per_client: 5,
            rate: 100,
            idle: false,
        },
        Load {
            name: "C",
            clients: 2_000,
            per_client: 1,
            rate: 20,
            idle: false,
        },
        Load {
            name: "D",
            clients: idle_clients,
            per_client: 0,
            rate: 0,
            idle: true,
        },
    ];
    let mut rows = Vec::new();
    let mut details = Vec::new();
    // Each item is a load's letter, with ":direct" to connect its clients to the runtime
    // workerd's own socket rather than wrangler's port (see the module comment).
    for item in loads.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, direct) = match item.split_once(':') {
            Some((n, "direct")) => (n, true),
            None => (item, false),
            Some(_) => {
                eprintln!("edgetick-bench: unknown load {item}");
                std::process::exit(2);
            }
        };
        let Some(load) = all.iter().find(|l| l.name == name) else {
            eprintln!("edgetick-bench: unknown load {item}");
            std::process::exit(2);
        };
        let load = Load {
            clients: match (load.idle, direct) {
                (true, true) => idle_clients,
                (true, false) => proxy_idle_clients,
                _ => load.clients,
            },
            ..*load
        };
        // A fresh stack per load, so one load's connections and memory do not skew the next.
        let stack = Stack::start(&send_mode, flush_ms, inspector);
        eprintln!(
            "load {item}: service on {}, workerd pids {:?}",
            stack.port,
            stack.workerd_pids()
        );
        let o = run_load(&stack, &load, Duration::from_secs(duration), direct);
        rows.push(o.row);
        details.push(o.detail);
        drop(stack);
    }
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
    let mut md = format!(
        "Machine: {cores} cores ({cpu_model}), wrangler 4.86.0 / workerd local, SEND_MODE={send_mode}, FLUSH_MS={flush_ms}, {duration} s per load{}.\n\n\
         | load | clients connect to | clients | latency p50 / p90 / p99 / max | price deliveries | frames | connections | CPU while measured (of one core) | workerd peak RSS | last value = exchange |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        if inspector { "" } else { ", wrangler's inspector off" }
    );
    for r in &rows {
        md.push_str(r);
        md.push('\n');
    }
    if let Some(dir) = out.parent() {
        let _ = fs::create_dir_all(dir);
    }
    let _ = fs::write(&out, &md);
    let _ = fs::write(
        out.with_extension("json"),
        serde_json::to_string_pretty(&details).unwrap_or_default(),
    );
    println!("{md}");
}
