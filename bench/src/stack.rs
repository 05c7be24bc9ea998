//! The processes under test: the fake exchange and a relay under `wrangler dev` (edgetick,
//! or the platform floor of `bench/floor/`), with their CPU, memory and descriptors by
//! process.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::SYMBOLS;

/// Which relay runs under wrangler.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    /// This project's worker.
    Edgetick,
    /// A minimal JavaScript Durable Object relay (`bench/floor/floor.js`): the platform itself.
    Floor,
    /// The NestJS seed's job on a stock Node Socket.IO server (`bench/peer/socketio.mjs`),
    /// no wrangler: what the `:sio` loads are put beside.
    NodeSocketIo,
}

impl Target {
    /// Its name in the results.
    pub fn label(self) -> &'static str {
        match self {
            Target::Edgetick => "edgetick",
            Target::Floor => "floor (JS DO)",
            Target::NodeSocketIo => "Node Socket.IO",
        }
    }
}

/// How edgetick is configured for a run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `SEND_MODE`.
    pub send_mode: String,
    /// `FLUSH_MS`.
    pub flush_ms: u32,
    /// Whether wrangler's DevTools proxy runs (it does in a normal `wrangler dev`).
    pub inspector: bool,
    /// `FANOUT_SHARDS`.
    pub shards: u32,
}

/// The publish token the benchmark's edgetick runs with (load E).
pub const PUBLISH_TOKEN: &str = "bench-publish-token";

/// How many loopback source addresses the clients take turns on (127.0.0.2 …).
const SOURCES: usize = 16;

/// A client's WebSocket.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens client `i`'s WebSocket to `/ws` on `port`, from loopback source address
/// `127.0.0.{2 + i % 16}`. Every address has its own ~28,000 ephemeral ports: from one
/// address, a load of 15,000 clients started while the previous load's 15,000 closed
/// connections still sat in TIME_WAIT (60 s) had ~1% of its handshakes cut off before any
/// answer ("Handshake not finished"), which measured the load generator, not the service.
pub async fn dial(port: u16, i: usize) -> Result<Ws, String> {
    dial_path(port, i, "/ws").await
}

/// Like [`dial`], to `path` (e.g. Socket.IO's `/socket.io/?EIO=4&transport=websocket`).
pub async fn dial_path(port: u16, i: usize, path: &str) -> Result<Ws, String> {
    let from = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8);
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind((from, 0).into())
        .map_err(|e| format!("bind {from}: {e}"))?;
    let stream = socket
        .connect((std::net::Ipv4Addr::LOCALHOST, port).into())
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("ws://127.0.0.1:{port}{path}");
    let (ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The repository: the working directory when it is one (`make bench` runs there), else
/// where this program was built from.
pub fn root() -> PathBuf {
    std::env::current_dir()
        .ok()
        .filter(|d| d.join("wrangler.toml").exists() && d.join("bench").exists())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
}

/// `wrangler dev` running `target` on `port` against the exchange on `exchange_port`.
fn wrangler_command(target: Target, settings: &Settings, exchange_port: u16, port: u16) -> Command {
    let mut vars = vec![
        format!("UPSTREAM_URL:ws://127.0.0.1:{exchange_port}/stream"),
        format!("SYMBOLS:{}", SYMBOLS.join(",")),
    ];
    let config = match target {
        Target::Edgetick => {
            vars.extend([
                "MAX_CONNECTIONS:30000".to_string(),
                "CLIENT_MESSAGES_PER_SECOND:100".to_string(),
                format!("SEND_MODE:{}", settings.send_mode),
                format!("FLUSH_MS:{}", settings.flush_ms),
                format!("FANOUT_SHARDS:{}", settings.shards),
                format!("PUBLISH_TOKEN:{PUBLISH_TOKEN}"),
                "EVENT_CHANNELS:signals".to_string(),
                "PUBLISH_PER_SECOND:10000".to_string(),
                format!("BINANCE_REST_URL:http://127.0.0.1:{exchange_port}"),
                format!("FUTURES_REST_URL:http://127.0.0.1:{exchange_port}"),
                "HEATMAP_INTERVAL_SECONDS:1".to_string(),
            ]);
            "wrangler.toml"
        }
        // The Node peer runs without wrangler (`node_peer_command`); the floor's config
        // would do for it all the same.
        Target::Floor | Target::NodeSocketIo => "bench/floor/wrangler.toml",
    };
    let inspector = settings.inspector;
    let mut cmd = Command::new("sh");
    let mut line = format!(
        "ulimit -n 20000; exec node_modules/.bin/wrangler dev --ip 127.0.0.1 --port {port} --local \
         --show-interactive-dev-session=false --log-level warn --inspector-port {} --persist-to target/bench/state \
         --config {config}",
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
    cmd
}

/// The Node Socket.IO peer on `port` against the exchange on `exchange_port`.
fn node_peer_command(exchange_port: u16, port: u16) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -n 20000; exec node bench/peer/socketio.mjs --port {port} \
             --upstream ws://127.0.0.1:{exchange_port}/stream --symbols {}",
            SYMBOLS.join(",")
        ))
        .current_dir(root());
    cmd
}

fn free_port() -> u16 {
    devstack::free_port().unwrap_or_else(|e| crate::fatal(format!("no free port: {e}")))
}

fn spawn(cmd: &mut Command, log: &str) -> Child {
    let dir = root().join("target/bench");
    let _ = fs::create_dir_all(&dir);
    let path = dir.join(log);
    let _ = fs::remove_file(&path);
    devstack::spawn_group(cmd, &path)
        .unwrap_or_else(|e| crate::fatal(format!("cannot start {cmd:?}: {e}")))
}

fn stop(child: &mut Child) {
    devstack::stop_group(child, Duration::from_millis(500));
}

pub fn get(url: &str) -> Option<Value> {
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
pub struct Stack {
    exchange: Child,
    exchange_port: u16,
    /// wrangler, or the Node peer.
    relay: Child,
    /// wrangler's public port (the Node peer's own).
    pub port: u16,
    target: Target,
}

impl Stack {
    /// Starts the exchange and `target` (under wrangler, or the Node peer), and waits until
    /// it is connected.
    pub fn start(target: Target, settings: &Settings) -> Stack {
        let exchange_port = free_port();
        let bin = root().join("target/release/fake-exchange");
        let exchange = spawn(
            Command::new(bin)
                .args(["--port", &exchange_port.to_string(), "--rate", "0"])
                .args(["--ping-interval-ms", "20000"]),
            "exchange.log",
        );
        let port = free_port();
        let relay = if target == Target::NodeSocketIo {
            spawn(&mut node_peer_command(exchange_port, port), "peer.log")
        } else {
            spawn(
                &mut wrangler_command(target, settings, exchange_port, port),
                "wrangler.log",
            )
        };
        let stack = Stack {
            exchange,
            exchange_port,
            relay,
            port,
            target,
        };
        stack.await_connected();
        stack
    }

    /// Waits until the relay's upstream is connected (90 s at most).
    fn await_connected(&self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let h = get(&format!("http://127.0.0.1:{}/health", self.port));
            let state = h.as_ref().and_then(|h| h.pointer("/upstream/state"));
            if state.and_then(Value::as_str) == Some("connected") {
                return;
            }
            if Instant::now() >= deadline {
                crate::fatal("the service did not connect in 90 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn control(&self, action: &str) {
        post(&format!(
            "http://127.0.0.1:{}/control/{action}",
            self.exchange_port
        ));
    }

    pub fn exchange_prices(&self) -> HashMap<String, String> {
        let s = get(&format!(
            "http://127.0.0.1:{}/control/state",
            self.exchange_port
        ))
        .unwrap_or_default();
        s.get("prices")
            .and_then(Value::as_object)
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
    /// (it owns the public port) and the runtime workerd that runs the worker and the hub;
    /// the Node Socket.IO peer counts as the runtime (it is the relay).
    fn processes(&self) -> Vec<(Role, i32)> {
        let pgid = self.relay.id() as i32;
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
            let role = if cmdline.contains("bench/peer/") {
                Role::Runtime
            } else if cmdline.contains("wrangler-dist/cli.js") {
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

    pub fn workerd_pids(&self) -> Vec<i32> {
        self.processes()
            .into_iter()
            .filter(|(r, _)| *r != Role::Wrangler)
            .map(|(_, p)| p)
            .collect()
    }

    /// Usage by role, and the workerd total (CPU seconds, RSS KiB).
    pub fn usage(&self) -> (HashMap<Role, Usage>, (f64, u64)) {
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
    pub fn workerd_usage(&self) -> (f64, u64) {
        self.usage().1
    }

    /// Where clients connect: wrangler's port, or with `direct` the runtime's own socket.
    pub fn client_port(&self, direct: bool) -> u16 {
        if direct && self.target != Target::NodeSocketIo {
            self.runtime_port()
                .unwrap_or_else(|| crate::fatal("the runtime workerd's HTTP socket was not found"))
        } else {
            self.port
        }
    }

    /// Where clients connect, in the results' words.
    pub fn entry(&self, direct: bool) -> &'static str {
        match (self.target, direct) {
            (Target::NodeSocketIo, _) => "Node's port",
            (_, true) => "runtime socket",
            (_, false) => "wrangler port",
        }
    }

    /// The runtime workerd's own HTTP socket, found among its listening sockets by asking
    /// each for /health: a `:direct` load connects its clients there, past wrangler's proxy.
    pub fn runtime_port(&self) -> Option<u16> {
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
pub enum Role {
    /// wrangler's Node CLI.
    Wrangler,
    /// wrangler's local proxy workerd (owns the public port).
    Proxy,
    /// The runtime workerd (runs the relay).
    Runtime,
}

impl Role {
    /// Every role, in the order the results list them.
    pub const ALL: [Role; 3] = [Role::Wrangler, Role::Proxy, Role::Runtime];

    pub fn label(self) -> &'static str {
        match self {
            Role::Wrangler => "wrangler (node)",
            Role::Proxy => "proxy workerd",
            Role::Runtime => "runtime workerd (or the Node peer)",
        }
    }
}

/// One process's CPU time, resident memory and open descriptors.
#[derive(Clone, Copy, Default, Debug)]
pub struct Usage {
    /// CPU seconds (user + system).
    pub cpu_s: f64,
    /// Resident memory.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: usize,
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
        stop(&mut self.relay);
        stop(&mut self.exchange);
    }
}
