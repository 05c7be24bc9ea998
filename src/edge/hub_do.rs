//! The `PriceHub` Durable Object: the single leader. It holds the one upstream WebSocket and
//! the hibernatable client sockets, feeds their events to the core [`Hub`] and carries out
//! the [`Effect`]s it returns.
//!
//! Borrow rule: the hub's `RefCell` is borrowed only inside [`Shared::run`]'s closure, which
//! never awaits; effects are carried out after the borrow ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::{abortable, AbortHandle};
use futures::Stream;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use worker::{
    durable_object, wasm_bindgen_futures::spawn_local, Delay, DurableObject, Env, Headers, Request,
    Response, Result, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
    WebSocketRequestResponsePair,
};

use super::env::{jitter, load_config, log, log_error, log_fields, now_ms};
use super::http;
use super::storage::Store;
use super::upstream;
use crate::core::error::ApiError;
use crate::core::fastmap::FastMap;
use crate::core::hub::{Effect, Hub, Level, SseTake};
use crate::core::protocol::close;
use crate::core::registry::ConnId;
use crate::core::session::Transport;

/// Version of the per-socket attachment; a socket carrying another version is closed with a
/// retryable code so its client reconnects and resubscribes.
const ATTACHMENT_VERSION: u8 = 1;

#[wasm_bindgen]
extern "C" {
    /// Anything with a `send(data)` method: a WebSocket seen through its JS interface.
    type SendTarget;

    /// `WebSocket.prototype.send` taking an existing JS value, so one JS string built per
    /// fan-out is handed to every socket; `send_with_str` would copy and decode the Rust
    /// string into a new JS string for each socket.
    #[wasm_bindgen(method, catch, js_name = send)]
    fn send(this: &SendTarget, data: &JsValue) -> std::result::Result<(), JsValue>;
}

/// Storage key of the upstream link's memory.
const LINK_KEY: &str = "link";

/// What each client socket carries through hibernation.
#[derive(Serialize, Deserialize)]
struct Attachment {
    v: u8,
    id: ConnId,
    subs: Vec<String>,
}

/// State shared by the object's handlers and its upstream task.
pub struct Shared {
    state: State,
    hub: RefCell<Hub>,
    store: Option<Store>,
    clients: RefCell<FastMap<ConnId, WebSocket>>,
    /// Open upstream sockets by generation (more than one only while one is being replaced).
    pub(super) upstreams: RefCell<HashMap<u64, WebSocket>>,
    /// Parked SSE streams waiting for data.
    sse_wakers: RefCell<FastMap<ConnId, Waker>>,
    /// `SEND_MODE=shared`: one JS string per fan-out.
    shared_send: bool,
    /// The pending in-memory timer, cancelled when the hub asks for an earlier one.
    timer: RefCell<Option<AbortHandle>>,
    /// Connection ids by socket object (see [`Shared::remember`]).
    conn_ids: js_sys::WeakMap,
}

impl Shared {
    /// Runs one core input and carries out what it returns.
    pub(super) fn run(self: &Rc<Self>, input: impl FnOnce(&mut Hub) -> Vec<Effect>) {
        let fx = input(&mut self.hub.borrow_mut());
        self.execute(fx);
    }

    fn execute(self: &Rc<Self>, effects: Vec<Effect>) {
        let mut failed: Vec<ConnId> = Vec::new();
        let mut fanouts: Vec<f64> = Vec::new();
        for effect in effects {
            match effect {
                Effect::Send { conn, frame } => self.send(conn, &frame, &mut failed),
                Effect::Fanout { conns, frame } => {
                    let started = js_sys::Date::now();
                    if self.shared_send {
                        let value = JsValue::from_str(&frame);
                        let clients = self.clients.borrow();
                        for conn in conns {
                            if let Some(ws) = clients.get(&conn) {
                                let target: &SendTarget = ws.as_ref().unchecked_ref();
                                if target.send(&value).is_err() {
                                    failed.push(conn);
                                }
                            }
                        }
                    } else {
                        for conn in conns {
                            self.send(conn, &frame, &mut failed);
                        }
                    }
                    fanouts.push((js_sys::Date::now() - started) / 1000.0);
                }
                Effect::Close { conn, code, reason } => {
                    if let Some(ws) = self.clients.borrow_mut().remove(&conn) {
                        let _ = ws.close(Some(code), Some(reason));
                        log_fields(
                            Level::Info,
                            "client_closed",
                            serde_json::json!({"conn": conn, "transport": "websocket", "code": code, "reason": reason, "by": "server"}),
                        );
                    }
                }
                Effect::SaveSubscriptions { conn, symbols } => {
                    if let Some(ws) = self.clients.borrow().get(&conn) {
                        let a = Attachment {
                            v: ATTACHMENT_VERSION,
                            id: conn,
                            subs: symbols,
                        };
                        if let Err(e) = ws.serialize_attachment(a) {
                            log_error("attachment_failed", &e.to_string());
                        }
                    }
                }
                Effect::ConnectUpstream { generation, url } => {
                    upstream::spawn(self.clone(), generation, url)
                }
                Effect::CloseUpstream { generation } => {
                    if let Some(ws) = self.upstreams.borrow_mut().remove(&generation) {
                        let _ = ws.close(Some(close::NORMAL), Some("replaced"));
                    }
                }
                Effect::SendUpstream { generation, text } => {
                    let sent = self
                        .upstreams
                        .borrow()
                        .get(&generation)
                        .map(|ws| ws.send_with_str(&text));
                    if let Some(Err(e)) = sent {
                        log_error("upstream_send_failed", &e.to_string());
                    }
                }
                Effect::Persist { prices, seq_floor } => {
                    if let Some(store) = &self.store {
                        if let Err(e) = store.save(&prices, seq_floor) {
                            log_error("persist_failed", &e.to_string());
                        }
                    }
                }
                Effect::SaveLink { json } => {
                    if let Some(store) = &self.store {
                        if let Err(e) = store.put_text(LINK_KEY, &json) {
                            log_error("save_link_failed", &e.to_string());
                        }
                    }
                }
                Effect::Forget { symbols } => {
                    if let Some(store) = &self.store {
                        if let Err(e) = store.forget(&symbols) {
                            log_error("forget_failed", &e.to_string());
                        }
                    }
                }
                Effect::Timer { at_ms } => {
                    // One timer at a time: the hub asks for an earlier one only, and the
                    // one it replaces would wake it for nothing.
                    let shared = self.clone();
                    let wait = (at_ms - now_ms()).max(0) as u64;
                    let (task, handle) = abortable(async move {
                        Delay::from(Duration::from_millis(wait)).await;
                        shared.run(|hub| hub.timer(now_ms()));
                    });
                    if let Some(old) = self.timer.replace(Some(handle)) {
                        old.abort();
                    }
                    spawn_local(async move {
                        let _ = task.await;
                    });
                }
                Effect::SseWake { conns } => {
                    let mut wakers = self.sse_wakers.borrow_mut();
                    for conn in conns {
                        if let Some(w) = wakers.remove(&conn) {
                            w.wake();
                        }
                    }
                }
                Effect::SetAlarm { at_ms } => {
                    let storage = self.state.storage();
                    let offset = (at_ms - now_ms()).max(1);
                    spawn_local(async move {
                        if let Err(e) = storage.set_alarm(offset).await {
                            log_error("set_alarm_failed", &e.to_string());
                        }
                    });
                }
                Effect::Log {
                    level,
                    event,
                    detail,
                } => log(level, event, &detail),
            }
        }
        if !fanouts.is_empty() {
            let mut hub = self.hub.borrow_mut();
            for seconds in fanouts {
                hub.observe_fanout(seconds);
            }
        }
        // A failed send closes only that socket: the others already got their frame.
        for conn in failed {
            if let Some(ws) = self.clients.borrow_mut().remove(&conn) {
                let _ = ws.close(Some(close::INTERNAL), Some("send failed"));
            }
            self.run(|hub| hub.client_closed(conn, now_ms()));
        }
    }

    fn send(&self, conn: ConnId, frame: &str, failed: &mut Vec<ConnId>) {
        if let Some(ws) = self.clients.borrow().get(&conn) {
            if ws.send_with_str(frame).is_err() {
                failed.push(conn);
            }
        }
    }

    /// Starts the upstream if it is not running (every event may be the first after a wake).
    fn kick(self: &Rc<Self>) {
        self.run(|hub| hub.start(now_ms()));
    }

    fn accept_client(self: &Rc<Self>) -> Result<Response> {
        if !self.hub.borrow_mut().admit_client() {
            let max = self.hub.borrow().config().max_connections;
            log_fields(
                Level::Warn,
                "client_refused",
                serde_json::json!({"reason": "at_capacity", "max_connections": max}),
            );
            // Accept and close at once with 4290: a browser never sees the HTTP status of a
            // failed upgrade, but it does see a close code (4000-4499: retry with backoff).
            let pair = WebSocketPair::new()?;
            pair.server.accept()?;
            pair.server
                .close(Some(close::AT_CAPACITY), Some("server at capacity"))?;
            return Response::from_websocket(pair.client);
        }
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        let (conn, fx) = self
            .hub
            .borrow_mut()
            .client_open(Transport::WebSocket, now_ms());
        pair.server.serialize_attachment(Attachment {
            v: ATTACHMENT_VERSION,
            id: conn,
            subs: Vec::new(),
        })?;
        self.remember(&pair.server, conn);
        self.clients.borrow_mut().insert(conn, pair.server);
        self.execute(fx);
        Response::from_websocket(pair.client)
    }

    /// The connection id of a client socket, re-registering it if this instance has not
    /// seen it (which the constructor normally prevents).
    fn conn_of(&self, ws: &WebSocket) -> Option<ConnId> {
        let key: &js_sys::Object = ws.as_ref().unchecked_ref();
        if let Some(id) = self.conn_ids.get(key).as_f64() {
            let id = id as ConnId;
            if self.hub.borrow().has_client(id) {
                return Some(id);
            }
        }
        let a: Attachment = ws.deserialize_attachment().ok().flatten()?;
        if a.v != ATTACHMENT_VERSION {
            return None;
        }
        let mut hub = self.hub.borrow_mut();
        if !hub.has_client(a.id) {
            hub.client_restore(a.id, &a.subs);
            self.clients.borrow_mut().insert(a.id, ws.clone());
        }
        self.remember(ws, a.id);
        Some(a.id)
    }

    /// Keeps `conn` findable from its socket object without reading the attachment back
    /// (a structured-clone deserialisation per incoming message otherwise).
    fn remember(&self, ws: &WebSocket, conn: ConnId) {
        let key: &js_sys::Object = ws.as_ref().unchecked_ref();
        self.conn_ids.set(key, &JsValue::from_f64(conn as f64));
    }

    fn forget_client(self: &Rc<Self>, ws: &WebSocket, code: usize, reason: &str) {
        if let Some(conn) = self.conn_of(ws) {
            if code != 1000 && code != 1001 && code != 1005 {
                let reason = crate::core::protocol::truncate(reason, 120);
                log_fields(
                    Level::Info,
                    "client_closed",
                    serde_json::json!({"conn": conn, "transport": "websocket", "code": code, "reason": reason}),
                );
            }
            self.clients.borrow_mut().remove(&conn);
            self.run(|hub| hub.client_closed(conn, now_ms()));
        }
    }
}

/// The body of one SSE response: pull-based, so a reader that stops reading stops the
/// pulls, and its updates conflate in the hub instead of queueing here.
struct SseBody {
    shared: Rc<Shared>,
    conn: ConnId,
    first: Option<String>,
    done: bool,
}

impl Stream for SseBody {
    type Item = Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first.into_bytes())));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let take = match self.shared.hub.try_borrow_mut() {
            Ok(mut hub) => hub.sse_take(self.conn, now_ms()),
            Err(_) => {
                // The hub is busy in this very turn: ask to be polled again.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        };
        match take {
            SseTake::Data(text) => Poll::Ready(Some(Ok(text.into_bytes()))),
            SseTake::Closed => {
                self.done = true;
                Poll::Ready(None)
            }
            SseTake::Pending => {
                self.shared
                    .sse_wakers
                    .borrow_mut()
                    .insert(self.conn, cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for SseBody {
    /// The reader went away (or the stream ended): forget the client promptly. Deferred to
    /// its own task so it never runs inside another borrow of the hub.
    fn drop(&mut self) {
        self.shared.sse_wakers.borrow_mut().remove(&self.conn);
        let shared = self.shared.clone();
        let conn = self.conn;
        spawn_local(async move {
            shared.run(|hub| hub.sse_closed(conn, now_ms()));
        });
    }
}

impl Shared {
    fn open_stream(self: &Rc<Self>, url: &worker::Url) -> Result<Response> {
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let last = param("last").and_then(|v| v.parse::<u64>().ok());
        let symbols = self
            .hub
            .borrow()
            .parse_symbol_query(&param("symbols").unwrap_or_default());
        let symbols = match symbols {
            Ok(s) => s,
            Err(e) => return http::error(&e),
        };
        let opened = self.hub.borrow_mut().sse_open(&symbols, last, now_ms());
        let (conn, first, fx) = match opened {
            Ok(v) => v,
            Err(e) => return http::error(&e),
        };
        self.execute(fx);
        let body = SseBody {
            shared: self.clone(),
            conn,
            first: Some(first),
            done: false,
        };
        let headers = Headers::new();
        headers.set("Content-Type", "text/event-stream; charset=utf-8")?;
        headers.set("Cache-Control", "no-cache, no-transform")?;
        headers.set("X-Accel-Buffering", "no")?;
        Ok(Response::from_stream(body)?.with_headers(headers))
    }
}

/// The leader object. Holds either its running state or the configuration error that
/// stops it from starting.
#[durable_object]
pub struct PriceHub {
    shared: std::result::Result<Rc<Shared>, String>,
}

impl PriceHub {
    fn shared(&self) -> std::result::Result<Rc<Shared>, ApiError> {
        self.shared.clone().map_err(ApiError::Config)
    }
}

impl DurableObject for PriceHub {
    fn new(state: State, env: Env) -> Self {
        console_error_panic_hook::set_once();
        let cfg = match load_config(&env) {
            Ok(cfg) => cfg,
            Err(e) => {
                log_error("config_invalid", &e.to_string());
                return PriceHub {
                    shared: Err(e.to_string()),
                };
            }
        };
        let shared_send = cfg.shared_send;
        let mut hub = Hub::new(cfg);
        let store = match Store::open(state.storage().sql()) {
            Ok(store) => {
                match store.load() {
                    Ok((prices, floor, skipped)) => {
                        if skipped > 0 {
                            log_error(
                                "restore_skipped_rows",
                                &format!("{skipped} unreadable rows"),
                            );
                        }
                        hub.restore_prices(prices, floor, now_ms());
                    }
                    Err(e) => log_error("restore_failed", &e.to_string()),
                }
                match store.get_text(LINK_KEY) {
                    Ok(Some(json)) => {
                        if let Err(e) = hub.restore_link(&json) {
                            log_error("restore_link_failed", &e);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => log_error("restore_link_failed", &e.to_string()),
                }
                Some(store)
            }
            Err(e) => {
                log_error("storage_unavailable", &e.to_string());
                None
            }
        };
        match WebSocketRequestResponsePair::new("ping", "pong") {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => log_error("auto_response_failed", &format!("{e:?}")),
        }
        let mut clients = FastMap::default();
        for ws in state.get_websockets() {
            match ws.deserialize_attachment::<Attachment>() {
                Ok(Some(a)) if a.v == ATTACHMENT_VERSION => {
                    hub.client_restore(a.id, &a.subs);
                    clients.insert(a.id, ws);
                }
                _ => {
                    let _ = ws.close(Some(close::INTERNAL), Some("session state lost; reconnect"));
                }
            }
        }
        PriceHub {
            shared: Ok(Rc::new(Shared {
                state,
                hub: RefCell::new(hub),
                store,
                clients: RefCell::new(clients),
                upstreams: RefCell::new(HashMap::new()),
                sse_wakers: RefCell::new(FastMap::default()),
                shared_send,
                timer: RefCell::new(None),
                conn_ids: js_sys::WeakMap::new(),
            })),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let shared = match self.shared() {
            Ok(s) => s,
            Err(e) => return http::error(&e),
        };
        shared.kick();
        let url = req.url()?;
        let now = now_ms();
        let path = url.path();
        match path {
            "/ws" => shared.accept_client(),
            "/health" => {
                let (status, body) = shared.hub.borrow().health(now);
                http::json(status, body)
            }
            "/metrics" => Response::ok(shared.hub.borrow().metrics(now)),
            "/stream" => shared.open_stream(&url),
            "/prices" => {
                let mut hub = shared.hub.borrow_mut();
                let raw = url
                    .query_pairs()
                    .find(|(k, _)| k == "symbols")
                    .map(|(_, v)| v.into_owned());
                match raw.map(|r| hub.parse_symbol_query(&r)).transpose() {
                    Ok(list) => {
                        let (body, etag) = hub.rest_prices(list.as_deref(), now);
                        http::json_tagged(200, body, &etag)
                    }
                    Err(e) => http::error(&e),
                }
            }
            p if p.starts_with("/prices/") => {
                let symbol = p.strip_prefix("/prices/").unwrap_or_default();
                let mut hub = shared.hub.borrow_mut();
                let answer = hub
                    .parse_symbol_query(symbol)
                    .and_then(|s| match s.first() {
                        Some(symbol) => hub.rest_price(symbol, now),
                        None => Err(ApiError::BadRequest("name one symbol".into())),
                    });
                match answer {
                    Ok((body, etag)) => http::json_tagged(200, body, &etag),
                    Err(e) => http::error(&e),
                }
            }
            _ => http::error(&ApiError::NotFound(format!("no route for {path}"))),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Ok(shared) = self.shared() {
            shared.run(|hub| hub.alarm(now_ms(), jitter()));
        }
        Response::ok("")
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let shared = match self.shared() {
            Ok(s) => s,
            Err(_) => {
                let _ = ws.close(Some(close::INTERNAL), Some("misconfigured"));
                return Ok(());
            }
        };
        shared.kick();
        let Some(conn) = shared.conn_of(&ws) else {
            let _ = ws.close(Some(close::INTERNAL), Some("session state lost; reconnect"));
            return Ok(());
        };
        match message {
            WebSocketIncomingMessage::String(text) => {
                shared.run(|hub| hub.client_text(conn, &text, now_ms()))
            }
            WebSocketIncomingMessage::Binary(bytes) => {
                shared.run(|hub| hub.client_binary(conn, bytes.len(), now_ms()))
            }
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: usize,
        reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        if let Ok(shared) = self.shared() {
            shared.forget_client(&ws, code, &reason);
        }
        // Reciprocate the close. 1005/1006/1015 are reserved and cannot be sent back.
        let code = match code {
            1005 | 1006 | 1015 => close::NORMAL,
            c => u16::try_from(c).unwrap_or(close::NORMAL),
        };
        let _ = ws.close(Some(code), Some(reason));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, error: worker::Error) -> Result<()> {
        if let Ok(shared) = self.shared() {
            shared.forget_client(&ws, 1006, "socket error");
        }
        log_error("client_socket_error", &error.to_string());
        let _ = ws.close(Some(close::INTERNAL), Some("socket error"));
        Ok(())
    }
}
