//! One exchange connection: the upgrade (refused on demand, streams checked), the frames
//! queued for it, Binance's pings and incoming-message limit, and the live-subscription
//! requests it answers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{
    rejection::WebSocketUpgradeRejection, CloseFrame, Message, WebSocket, WebSocketUpgrade,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{lock, now_ms, Conn, Exchange, Flavor, Out, ATTEMPT_LOG, MAX_STREAMS, REQUEST_LOG};
use crate::market::parse_stream;

type Sink = SplitSink<WebSocket, Message>;

/// Sends one queued frame; false when the connection ends.
async fn send_out(sink: &mut Sink, out: Option<Out>) -> bool {
    match out {
        Some(Out::Text(t)) => sink.send(Message::Text(t.into())).await.is_ok(),
        Some(Out::Binary(b)) => sink.send(Message::Binary(b.into())).await.is_ok(),
        Some(Out::Close(code, reason)) => {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
            false
        }
        Some(Out::Drop) | None => false,
    }
}

impl Exchange {
    /// Counts one connection attempt (and its time) for `/control/state`.
    pub(super) fn count_attempt(&self) {
        let mut st = lock(&self.stats);
        st.attempts += 1;
        st.attempt_times_ms.push_back(now_ms());
        if st.attempt_times_ms.len() > ATTEMPT_LOG {
            st.attempt_times_ms.pop_front();
        }
    }

    pub(super) fn upgrade(
        self: Arc<Self>,
        ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
        streams: Vec<String>,
        flavor: Flavor,
    ) -> Response {
        self.count_attempt();
        if let Some(r) = self.take_refusal() {
            lock(&self.stats).refused += 1;
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            let mut resp = (
                status,
                Json(json!({"code": -1003, "msg": "refused by fake-exchange fault control"})),
            )
                .into_response();
            if let Some(secs) = r.retry_after {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert("Retry-After", v);
                }
            }
            return resp;
        }
        let ws = match ws {
            Ok(ws) => ws,
            Err(rejection) => return rejection.into_response(),
        };
        if streams.len() > MAX_STREAMS || streams.iter().any(|s| parse_stream(s).is_none()) {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"code": -1121, "msg": "Invalid symbol."})),
            )
                .into_response();
        }
        lock(&self.stats).accepted += 1;
        ws.on_upgrade(move |socket| self.serve(socket, streams, flavor))
    }

    /// Registers a new connection; returns its id and the receiving end of its queue.
    pub(super) fn register(
        &self,
        streams: Vec<String>,
        flavor: Flavor,
    ) -> (u64, UnboundedReceiver<Out>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = unbounded_channel();
        let open = {
            let mut conns = lock(&self.conns);
            let conn = Conn {
                tx,
                stalled: false,
                streams: streams.into_iter().collect(),
                flavor,
                opened_ms: now_ms(),
            };
            conns.insert(id, conn);
            conns.len()
        };
        let mut st = lock(&self.stats);
        st.peak_connections = st.peak_connections.max(open);
        (id, rx)
    }

    /// Counts one incoming message against Binance's limit in `window` (its start and
    /// count); true when it is over the limit (the connection is closed 1008).
    fn over_limit(&self, window: &mut (Instant, u32)) -> bool {
        if window.0.elapsed() >= Duration::from_secs(1) {
            *window = (Instant::now(), 0);
        }
        window.1 += 1;
        let mut st = lock(&self.stats);
        st.messages_in += 1;
        st.max_incoming_in_one_second = st.max_incoming_in_one_second.max(window.1);
        let violated = window.1 > self.settings.max_incoming_per_sec;
        st.rate_violations += u64::from(violated);
        violated
    }

    /// One connection: queued frames out, pings, requests answered, until either side ends.
    async fn serve(self: Arc<Self>, socket: WebSocket, streams: Vec<String>, flavor: Flavor) {
        let (id, mut rx) = self.register(streams, flavor);
        let (mut sink, mut incoming) = socket.split();
        let mut ping = tokio::time::interval(self.settings.ping_interval);
        ping.tick().await;
        let mut awaiting_pong: Option<Instant> = None;
        let mut window = (Instant::now(), 0u32);
        loop {
            let step = tokio::select! {
                out = rx.recv() => send_out(&mut sink, out).await,
                _ = ping.tick() => {
                    if awaiting_pong.is_some_and(|t| t.elapsed() >= self.settings.pong_timeout) {
                        lock(&self.stats).pong_timeouts += 1;
                        break;
                    }
                    awaiting_pong.get_or_insert_with(Instant::now);
                    sink.send(Message::Ping(b"fake-exchange".to_vec().into())).await.is_ok()
                }
                msg = incoming.next() => {
                    let Some(Ok(msg)) = msg else { break };
                    let pong = &mut awaiting_pong;
                    self.take_in((id, flavor), msg, &mut window, pong, &mut sink).await
                }
            };
            if !step {
                break;
            }
        }
        lock(&self.conns).remove(&id);
    }

    /// One message from the client; false when the connection ends.
    async fn take_in(
        &self,
        (id, flavor): (u64, Flavor),
        msg: Message,
        window: &mut (Instant, u32),
        awaiting_pong: &mut Option<Instant>,
        sink: &mut Sink,
    ) -> bool {
        let counted = matches!(
            msg,
            Message::Text(_) | Message::Pong(_) | Message::Binary(_)
        );
        if counted && self.over_limit(window) {
            let frame = CloseFrame {
                code: 1008,
                reason: "Too many requests".into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return false;
        }
        match msg {
            Message::Text(t) => {
                let answer = match flavor {
                    Flavor::TwelveData => self.twelvedata_request(id, t.as_str()),
                    Flavor::Combined | Flavor::Raw => self.request(id, t.as_str()),
                };
                // A stalled connection is dead silent: it answers nothing either.
                let stalled = lock(&self.conns).get(&id).is_some_and(|c| c.stalled);
                stalled || sink.send(Message::Text(answer.into())).await.is_ok()
            }
            Message::Pong(_) => {
                *awaiting_pong = None;
                lock(&self.stats).pongs += 1;
                true
            }
            Message::Close(_) => false,
            _ => true,
        }
    }

    /// Answers one JSON request of Binance's live-subscription API.
    fn request(&self, conn: u64, text: &str) -> String {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return json!({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"})
                .to_string();
        };
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        let method = v
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let params: Vec<String> = v
            .get("params")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        {
            let mut st = lock(&self.stats);
            match method.as_str() {
                "SUBSCRIBE" => st.subscribe_requests += 1,
                "UNSUBSCRIBE" => st.unsubscribe_requests += 1,
                "LIST_SUBSCRIPTIONS" => st.list_requests += 1,
                _ => {}
            }
            st.requests.push_back(json!({"at_ms": now_ms(), "conn": conn, "method": method, "params": params, "id": id}));
            if st.requests.len() > REQUEST_LOG {
                st.requests.pop_front();
            }
        }
        let mut conns = lock(&self.conns);
        let Some(c) = conns.get_mut(&conn) else {
            return json!({"code": 1, "msg": "connection gone", "id": id}).to_string();
        };
        match method.as_str() {
            "SUBSCRIBE" | "UNSUBSCRIBE" => {
                if let Some(bad) = params.iter().find(|p| parse_stream(p).is_none()) {
                    return json!({"code": 2, "msg": format!("Invalid request: unknown stream {bad}"), "id": id}).to_string();
                }
                if method == "SUBSCRIBE" {
                    c.streams.extend(params);
                    if c.streams.len() > MAX_STREAMS {
                        return json!({"code": 2, "msg": "Invalid request: too many streams", "id": id}).to_string();
                    }
                } else {
                    for p in &params {
                        c.streams.remove(p);
                    }
                }
                json!({"result": null, "id": id}).to_string()
            }
            "LIST_SUBSCRIPTIONS" => json!({"result": c.streams, "id": id}).to_string(),
            "SET_PROPERTY" => json!({"result": null, "id": id}).to_string(),
            "GET_PROPERTY" => json!({"result": false, "id": id}).to_string(),
            _ => json!({"code": 2, "msg": format!("Invalid request: unknown method {method:?}"), "id": id}).to_string(),
        }
    }
}
