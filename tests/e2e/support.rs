//! Test harness: the fake exchange and `wrangler dev` as real processes (each in its own
//! process group, stopped with it), and real WebSocket and HTTP clients.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where process logs go (kept for CI's output when something fails).
pub fn log_dir() -> PathBuf {
    let dir = root().join("target/e2e-logs");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// Now, in ms since the epoch (the unit of prices' event times; a JWT's `exp` is its seconds).
pub fn epoch_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.map_or(0, |d| d.as_millis() as i64)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    devstack::free_port().expect("bind an ephemeral port")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_group(child: &mut Child) {
    devstack::stop_group(child, Duration::from_secs(5));
}

fn spawn(cmd: &mut Command, log: &Path) -> Child {
    devstack::spawn_group(cmd, log).unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// HTTP GET; returns status, headers of interest and body.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body text.
    pub body: String,
    /// `Retry-After`, if any.
    pub retry_after: Option<String>,
    /// `Content-Type`.
    pub content_type: String,
}

impl Reply {
    /// Body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends a request; network errors are returned, HTTP errors are replies.
pub fn request(method: &str, url: &str) -> Result<Reply, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let resp = match agent.request(method, url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let retry_after = resp.header("Retry-After").map(str::to_string);
    let content_type = resp.header("Content-Type").unwrap_or_default().to_string();
    let body = resp.into_string().map_err(|e| e.to_string())?;
    Ok(Reply {
        status,
        body,
        retry_after,
        content_type,
    })
}

/// POST with headers and a body; HTTP errors are replies.
pub fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut req = agent.post(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    Reply {
        status: resp.status(),
        retry_after: resp.header("Retry-After").map(str::to_string),
        content_type: resp.header("Content-Type").unwrap_or_default().to_string(),
        body: resp.into_string().unwrap_or_default(),
    }
}

/// GET that must reach the server.
/// Publishes `body` to `/api/publish` with the publish token; the answer must be 200.
pub fn publish_json(svc: &Service, token: &str, body: &Value) -> Value {
    let auth = format!("Bearer {token}");
    let r = post(
        &svc.url("/api/publish"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    );
    assert_eq!(r.status, 200, "publish: {}", r.body);
    r.json()
}

pub fn get(url: &str) -> Reply {
    request("GET", url).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The fake exchange as a child process.
pub struct Exchange {
    /// Its port (kept across restarts).
    pub port: u16,
    child: Option<Child>,
    args: Vec<String>,
}

impl Exchange {
    /// Starts the exchange on a free port with extra CLI flags.
    pub fn start(args: &[&str]) -> Exchange {
        let mut ex = Exchange {
            port: free_port(),
            child: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        ex.restart();
        ex
    }

    /// Combined-stream URL for `UPSTREAM_URL`.
    pub fn stream_url(&self) -> String {
        format!("ws://127.0.0.1:{}/stream", self.port)
    }

    /// Base URL of its REST endpoints (klines, open interest) for `BINANCE_REST_URL`.
    pub fn rest_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process on the same port.
    pub fn restart(&mut self) {
        let bin = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join("target"))
            .join("debug/fake-exchange");
        assert!(
            bin.exists(),
            "{} is missing: run `make test`",
            bin.display()
        );
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(&self.args);
        let log = log_dir().join(format!("exchange-{}.log", self.port));
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log);
        self.child = Some(spawn(&mut cmd, &log));
        wait_until(
            "the fake exchange to listen",
            Duration::from_secs(10),
            || request("GET", &self.control_url("state")).ok(),
        );
    }

    /// Kills the process outright (no close frames: connections just die).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            devstack::kill_group(&mut c);
        }
    }

    fn control_url(&self, action: &str) -> String {
        format!("http://127.0.0.1:{}/control/{action}", self.port)
    }

    /// `/control/state`.
    pub fn state(&self) -> Value {
        get(&self.control_url("state")).json()
    }

    /// Posts a control action such as `pause?on=1`.
    pub fn control(&self, action_and_query: &str) -> Value {
        let r = request("POST", &self.control_url(action_and_query))
            .unwrap_or_else(|e| panic!("control {action_and_query}: {e}"));
        assert_eq!(r.status, 200, "control {action_and_query}: {}", r.body);
        r.json()
    }

    /// The exchange's latest price of `symbol`.
    pub fn latest(&self, symbol: &str) -> Option<String> {
        self.state()["prices"][symbol]["price"]
            .as_str()
            .map(str::to_string)
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_group(&mut c);
        }
    }
}

/// The built worker under `wrangler dev`.
pub struct Service {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
    vars: Vec<(String, String)>,
    persist: PathBuf,
    name: String,
}

impl Service {
    /// Starts `wrangler dev` with `--var` overrides and its own persistence folder. A service
    /// whose `UPSTREAM_URL` is a fake exchange's backfills its candles and reads open interest
    /// from the same fake (`BINANCE_REST_URL`, `FUTURES_REST_URL`) unless told otherwise: no
    /// test reaches for the real Binance.
    pub fn start(name: &str, vars: &[(&str, &str)]) -> Service {
        let persist = root().join("target/e2e-state").join(name);
        let _ = std::fs::remove_dir_all(&persist);
        let mut vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let fake_rest = vars.iter().find_map(|(k, v)| {
            let rest = v.strip_prefix("ws://127.0.0.1:")?.strip_suffix("/stream")?;
            (k == "UPSTREAM_URL").then(|| format!("http://127.0.0.1:{rest}"))
        });
        for name in ["BINANCE_REST_URL", "FUTURES_REST_URL"] {
            let given = vars.iter().any(|(k, _)| k == name);
            if let Some(url) = fake_rest.clone().filter(|_| !given) {
                vars.push((name.into(), url));
            }
        }
        let mut s = Service {
            port: free_port(),
            child: None,
            vars,
            persist,
            name: name.to_string(),
        };
        s.restart();
        s
    }

    /// Stops the service (its storage stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_group(&mut c);
        }
    }

    /// Starts it again with the same storage and port.
    pub fn restart(&mut self) {
        self.stop();
        let root = root();
        assert!(
            root.join("build/index.js").exists(),
            "build/index.js is missing: run `make test`"
        );
        let mut cmd = Command::new(root.join("node_modules/.bin/wrangler"));
        cmd.current_dir(&root)
            .args(["dev", "--ip", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args([
                "--local",
                "--show-interactive-dev-session=false",
                "--inspector-port",
            ])
            .arg(free_port().to_string())
            .arg("--persist-to")
            .arg(&self.persist)
            .env("EDGETICK_SKIP_BUILD", "1")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false");
        for (k, v) in &self.vars {
            cmd.arg("--var").arg(format!("{k}:{v}"));
        }
        let log = log_dir().join(format!("wrangler-{}-{}.log", self.name, self.port));
        self.child = Some(spawn(&mut cmd, &log));
        let url = self.url("/health");
        wait_until(
            "wrangler dev to answer /health",
            Duration::from_secs(90),
            || request("GET", &url).ok(),
        );
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Opens a WebSocket client to `/ws`.
    pub fn ws(&self) -> Client {
        self.ws_with("/ws", &[])
            .unwrap_or_else(|status| panic!("upgrade refused with {status}"))
    }

    /// Opens a WebSocket to `path_and_query` with extra request headers; a refused upgrade
    /// returns its HTTP status.
    pub fn ws_with(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
        use tungstenite::client::IntoClientRequest;
        let url = format!("ws://127.0.0.1:{}{path_and_query}", self.port);
        let mut req = url.as_str().into_client_request().expect("a request");
        for (k, v) in headers {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                v.parse().expect("header value"),
            );
        }
        match tungstenite::connect(req) {
            Ok((ws, _)) => {
                if let MaybeTlsStream::Plain(s) = ws.get_ref() {
                    s.set_read_timeout(Some(Duration::from_millis(100)))
                        .expect("set read timeout");
                }
                Ok(Client { ws, closed: None })
            }
            Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("connect {url}: {e}"),
        }
    }

    /// Opens an SSE stream (`path_and_query` under this service) with extra headers; a
    /// refusal is returned as its reply.
    pub fn sse(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Result<SseReader, Reply> {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(Duration::from_millis(200))
            .build();
        let mut req = agent.get(&self.url(path_and_query));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(status, r)) => {
                return Err(Reply {
                    status,
                    retry_after: r.header("Retry-After").map(str::to_string),
                    content_type: r.header("Content-Type").unwrap_or_default().to_string(),
                    body: r.into_string().unwrap_or_default(),
                })
            }
            Err(e) => panic!("SSE {path_and_query}: {e}"),
        };
        let headers = [
            "Content-Type",
            "Cache-Control",
            "X-Accel-Buffering",
            "Access-Control-Allow-Origin",
        ]
        .iter()
        .map(|h| {
            (
                h.to_ascii_lowercase(),
                resp.header(h).unwrap_or_default().to_string(),
            )
        })
        .collect();
        Ok(SseReader {
            headers,
            reader: std::io::BufReader::new(resp.into_reader()),
            partial: String::new(),
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One Server-Sent Event, or a comment (`event` = `"comment"`), or a `retry:` line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SseEvent {
    /// `event:` (or `comment` / `retry`).
    pub event: String,
    /// `id:`'s price `seq` (its first part).
    pub id: Option<u64>,
    /// `id:` as sent (with event channels it also carries their positions).
    pub raw_id: Option<String>,
    /// `data:` (or the comment / retry text).
    pub data: String,
}

impl SseEvent {
    /// `data` as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.data))
    }
}

/// A streaming SSE reader with deadline-bounded reads.
pub struct SseReader {
    /// Response headers of interest (lower-case names).
    pub headers: Vec<(String, String)>,
    reader: std::io::BufReader<Box<dyn std::io::Read + Send + Sync + 'static>>,
    partial: String,
}

impl SseReader {
    /// A response header (lower-case name).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn line(&mut self, deadline: Instant) -> Option<String> {
        use std::io::BufRead;
        while Instant::now() < deadline {
            let mut buf = String::new();
            match self.reader.read_line(&mut buf) {
                Ok(0) => return None,
                Ok(_) => {
                    self.partial.push_str(&buf);
                    if self.partial.ends_with('\n') {
                        let line = std::mem::take(&mut self.partial);
                        return Some(line.trim_end_matches(['\n', '\r']).to_string());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    self.partial.push_str(&buf);
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// The next event (or comment, or `retry:`) before `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut ev = SseEvent::default();
        loop {
            let line = self.line(deadline)?;
            if line.is_empty() {
                if !ev.event.is_empty() || !ev.data.is_empty() {
                    if ev.event.is_empty() {
                        ev.event = "message".into();
                    }
                    return Some(ev);
                }
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                return Some(SseEvent {
                    event: "comment".into(),
                    id: None,
                    raw_id: None,
                    data: c.trim().to_string(),
                });
            }
            let (field, value) = line.split_once(':').map_or((line.as_str(), ""), |(f, v)| {
                (f, v.strip_prefix(' ').unwrap_or(v))
            });
            match field {
                "event" => ev.event = value.to_string(),
                "id" => {
                    ev.id = value.split('_').next().and_then(|v| v.parse().ok());
                    ev.raw_id = Some(value.to_string());
                }
                "data" => ev.data.push_str(value),
                "retry" => {
                    return Some(SseEvent {
                        event: "retry".into(),
                        id: None,
                        raw_id: None,
                        data: value.to_string(),
                    })
                }
                _ => {}
            }
        }
    }

    /// Reads until an event named `event` arrives; panics after `timeout`.
    pub fn wait_for(&mut self, event: &str, timeout: Duration) -> SseEvent {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(e) = self.next(deadline - Instant::now()) {
                if e.event == event {
                    return e;
                }
            }
        }
        panic!("no `{event}` event within {timeout:?}")
    }
}

/// What a client read.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A JSON text frame.
    Json(Value),
    /// A text frame that is not JSON (e.g. the bare `pong`).
    Text(String),
}

/// A WebSocket client with deadline-bounded reads.
pub struct Client {
    ws: WebSocket<MaybeTlsStream<std::net::TcpStream>>,
    /// Close code once the server closed the connection.
    pub closed: Option<u16>,
}

impl Client {
    /// Sends a JSON value as a text frame.
    pub fn send_json(&mut self, v: Value) {
        self.send_text(&v.to_string());
    }

    /// Sends raw text.
    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .expect("send a text frame");
    }

    /// Sends a binary frame.
    pub fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .expect("send a binary frame");
    }

    /// The next text frame before `timeout`, or `None` (also when closed).
    pub fn next(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && self.closed.is_none() {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return Some(match serde_json::from_str(t.as_str()) {
                        Ok(v) => Frame::Json(v),
                        Err(_) => Frame::Text(t.to_string()),
                    })
                }
                Ok(Message::Close(c)) => {
                    self.closed = Some(c.map_or(1005, |f| u16::from(f.code)));
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(
                    tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Protocol(_),
                ) => {
                    self.closed.get_or_insert(1006);
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
        None
    }

    /// The next JSON frame (panics on timeout or on a non-JSON frame).
    pub fn next_json(&mut self, timeout: Duration) -> Value {
        match self.next(timeout) {
            Some(Frame::Json(v)) => v,
            other => panic!("expected a JSON frame within {timeout:?}, got {other:?}"),
        }
    }

    /// Reads until a JSON frame satisfies `pred`; frames before it are returned too.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        while Instant::now() < deadline {
            if let Some(Frame::Json(v)) = self.next(deadline - Instant::now()) {
                if pred(&v) {
                    return (v, skipped);
                }
                skipped.push(v);
            }
            if self.closed.is_some() {
                break;
            }
        }
        panic!(
            "no frame matching {what} within {timeout:?} (closed: {:?}); saw {skipped:?}",
            self.closed
        )
    }

    /// Waits for the server's close and returns its code.
    pub fn wait_closed(&mut self, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        while self.closed.is_none() && Instant::now() < deadline {
            self.next(deadline - Instant::now());
        }
        self.closed
            .unwrap_or_else(|| panic!("connection not closed within {timeout:?}"))
    }
}
