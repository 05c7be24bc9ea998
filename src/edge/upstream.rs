//! The outbound WebSocket to the exchange: one task per connection generation, feeding
//! frames and its end into the leader.

use std::rc::Rc;

use worker::{
    wasm_bindgen_futures::spawn_local, Fetch, Headers, Method, Request, RequestInit, Url, WebSocket,
};

use super::env::{jitter, log_error, now_ms};
use super::listeners::Listeners;
use super::shared::Shared;
use crate::core::effect::Effect;
use crate::core::feed::link::Failure;
use crate::core::ids::SourceId;
use crate::core::input::UpstreamEvent;
use crate::core::protocol::close;
use crate::core::text::redact_query;

impl Shared {
    /// The upstream effects: connect, close, send a request.
    pub(super) fn upstream_effect(self: &Rc<Self>, effect: Effect) {
        match effect {
            Effect::ConnectUpstream {
                source,
                generation,
                url,
            } => spawn(self.clone(), source, generation, url),
            Effect::CloseUpstream { source, generation } => {
                if let Some(ws) = self.upstreams.borrow_mut().remove(&(source, generation)) {
                    let _ = ws.close(Some(close::NORMAL), Some("replaced"));
                }
            }
            Effect::SendUpstream {
                source,
                generation,
                text,
            } => {
                let upstreams = self.upstreams.borrow();
                let sent = upstreams
                    .get(&(source, generation))
                    .map(|ws| ws.send_with_str(&text));
                if let Some(Err(e)) = sent {
                    log_error("upstream_send_failed", &e.to_string());
                }
            }
            _ => {}
        }
    }

    /// Runs one event of an upstream of `source` (the leader's).
    pub(super) fn upstream(self: &Rc<Self>, source: SourceId, event: UpstreamEvent<'_>) {
        self.run(|n| n.on_leader(|hub| hub.upstream(source, event, now_ms(), jitter())));
    }

    /// Starts the leader's upstream if it is not running (every event may be the first
    /// after a wake).
    pub(super) fn kick(self: &Rc<Self>) {
        self.run(|n| n.on_leader(|hub| hub.start(now_ms())));
    }
}

/// Opens the upstream of `generation` and pumps its events into the hub until it ends.
pub fn spawn(shared: Rc<Shared>, source: SourceId, generation: u64, url: String) {
    spawn_local(async move {
        let failure = match connect(&url).await {
            Ok(ws) => run(&shared, source, generation, &ws).await,
            Err(failure) => failure,
        };
        let failed = UpstreamEvent::Failed {
            generation,
            failure,
        };
        shared.upstream(source, failed);
    });
}

/// Listens, then accepts (listeners first: frames that arrive in between are not lost),
/// and hands every frame to the leader until the socket ends; returns why it ended.
async fn run(shared: &Rc<Shared>, source: SourceId, generation: u64, ws: &WebSocket) -> Failure {
    let (listeners, ended) = match Listeners::add(shared, source, generation, ws) {
        Ok(added) => added,
        Err(e) => return Failure::Network(format!("cannot listen on the socket: {e:?}")),
    };
    if let Err(e) = ws.accept() {
        listeners.remove(ws);
        return Failure::Network(format!("cannot accept the socket: {e}"));
    }
    let key = (source, generation);
    shared.upstreams.borrow_mut().insert(key, ws.clone());
    shared.upstream(source, UpstreamEvent::Opened { generation });
    let failure = ended
        .await
        .unwrap_or_else(|_| Failure::Network("the socket's listeners went away".into()));
    listeners.remove(ws);
    shared.upstreams.borrow_mut().remove(&key);
    failure
}

/// Upgrades a `ws://`/`wss://` URL through `fetch`, so a refusal reports its HTTP status
/// (429, 418, 451) and `Retry-After` instead of an anonymous failure.
async fn connect(url: &str) -> Result<WebSocket, Failure> {
    // The URL may carry an API key: an error that quotes it is redacted.
    let network =
        |what: &str, e: String| Failure::Network(format!("{what}: {}", redact_query(&e, url)));
    let mut parsed = Url::parse(url).map_err(|e| network("bad upstream URL", e.to_string()))?;
    let scheme = if parsed.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    parsed
        .set_scheme(scheme)
        .map_err(|_| Failure::Network("cannot map the upstream URL to http(s)".into()))?;
    let headers = Headers::new();
    headers
        .set("Upgrade", "websocket")
        .map_err(|e| network("headers", e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init(parsed.as_str(), &init)
        .map_err(|e| network("request", e.to_string()))?;
    let resp = Fetch::Request(req)
        .send()
        .await
        .map_err(|e| network("connect failed", e.to_string()))?;
    let status = resp.status_code();
    let retry_after_ms = resp
        .headers()
        .get("Retry-After")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map(|s| s.saturating_mul(1000));
    resp.websocket().ok_or(Failure::Refused {
        status,
        retry_after_ms,
    })
}
