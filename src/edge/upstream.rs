//! The outbound WebSocket to the exchange: one task per connection generation, feeding
//! frames and its end into the leader.

use std::rc::Rc;

use futures::StreamExt;
use worker::{
    wasm_bindgen_futures::spawn_local, Fetch, Headers, Method, Request, RequestInit, Url,
    WebSocket, WebsocketEvent,
};

use super::env::{jitter, now_ms};
use super::shared::Shared;
use crate::core::feed::link::Failure;
use crate::core::input::UpstreamEvent;

impl Shared {
    /// Runs one upstream event (the leader's).
    pub(super) fn upstream(self: &Rc<Self>, event: UpstreamEvent<'_>) {
        self.run(|n| n.on_leader(|hub| hub.upstream(event, now_ms(), jitter())));
    }

    /// Starts the leader's upstream if it is not running (every event may be the first
    /// after a wake).
    pub(super) fn kick(self: &Rc<Self>) {
        self.run(|n| n.on_leader(|hub| hub.start(now_ms())));
    }
}

/// Opens the upstream of `generation` and pumps its events into the hub until it ends.
pub fn spawn(shared: Rc<Shared>, generation: u64, url: String) {
    spawn_local(async move {
        let ws = match connect(&url).await {
            Ok(ws) => ws,
            Err(failure) => {
                shared.upstream(UpstreamEvent::Failed {
                    generation,
                    failure,
                });
                return;
            }
        };
        // Listeners first, then accept: frames that arrive in between are not lost.
        let mut events = match ws.events() {
            Ok(events) => events,
            Err(e) => {
                let failure = Failure::Network(format!("cannot listen on the socket: {e}"));
                shared.upstream(UpstreamEvent::Failed {
                    generation,
                    failure,
                });
                return;
            }
        };
        if let Err(e) = ws.accept() {
            let failure = Failure::Network(format!("cannot accept the socket: {e}"));
            shared.upstream(UpstreamEvent::Failed {
                generation,
                failure,
            });
            return;
        }
        shared.upstreams.borrow_mut().insert(generation, ws.clone());
        shared.upstream(UpstreamEvent::Opened { generation });
        let failure = loop {
            match events.next().await {
                Some(Ok(WebsocketEvent::Message(msg))) => match msg.text() {
                    Some(text) => shared.upstream(UpstreamEvent::Text {
                        generation,
                        text: &text,
                    }),
                    None => shared.upstream(UpstreamEvent::Binary { generation }),
                },
                Some(Ok(WebsocketEvent::Close(c))) => {
                    break Failure::Closed {
                        code: c.code(),
                        reason: c.reason(),
                    }
                }
                Some(Err(e)) => break Failure::Network(format!("socket error: {e}")),
                None => break Failure::Network("event stream ended".into()),
            }
        };
        shared.upstreams.borrow_mut().remove(&generation);
        shared.upstream(UpstreamEvent::Failed {
            generation,
            failure,
        });
    });
}

/// Upgrades a `ws://`/`wss://` URL through `fetch`, so a refusal reports its HTTP status
/// (429, 418, 451) and `Retry-After` instead of an anonymous failure.
async fn connect(url: &str) -> Result<WebSocket, Failure> {
    let network = |what: &str, e: String| Failure::Network(format!("{what}: {e}"));
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
