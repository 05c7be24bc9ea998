//! The outbound WebSocket to the exchange: one task per connection generation, feeding
//! frames and its end into the hub.

use std::rc::Rc;

use futures::StreamExt;
use worker::{
    wasm_bindgen_futures::spawn_local, Fetch, Headers, Method, Request, RequestInit, Url,
    WebSocket, WebsocketEvent,
};

use super::env::{jitter, now_ms};
use super::hub_do::Shared;

/// Opens the upstream of `generation` and pumps its events into the hub until it ends.
pub fn spawn(shared: Rc<Shared>, generation: u64, url: String) {
    spawn_local(async move {
        let ws = match connect(&url).await {
            Ok(ws) => ws,
            Err(reason) => {
                shared.run(|hub| hub.upstream_failed(generation, &reason, now_ms(), jitter()));
                return;
            }
        };
        // Listeners first, then accept: frames that arrive in between are not lost.
        let mut events = match ws.events() {
            Ok(events) => events,
            Err(e) => {
                let reason = format!("cannot listen on the socket: {e}");
                shared.run(|hub| hub.upstream_failed(generation, &reason, now_ms(), jitter()));
                return;
            }
        };
        if let Err(e) = ws.accept() {
            let reason = format!("cannot accept the socket: {e}");
            shared.run(|hub| hub.upstream_failed(generation, &reason, now_ms(), jitter()));
            return;
        }
        shared.upstreams.borrow_mut().insert(generation, ws.clone());
        shared.run(|hub| hub.upstream_opened(generation, now_ms()));
        let reason = loop {
            match events.next().await {
                Some(Ok(WebsocketEvent::Message(msg))) => match msg.text() {
                    Some(text) => shared.run(|hub| hub.upstream_text(generation, &text, now_ms())),
                    None => shared.run(|hub| hub.upstream_binary(generation, now_ms())),
                },
                Some(Ok(WebsocketEvent::Close(c))) => {
                    break format!("closed by the exchange: {} {}", c.code(), c.reason())
                }
                Some(Err(e)) => break format!("socket error: {e}"),
                None => break "event stream ended".to_string(),
            }
        };
        shared.upstreams.borrow_mut().remove(&generation);
        shared.run(|hub| hub.upstream_failed(generation, &reason, now_ms(), jitter()));
    });
}

/// Upgrades a `ws://`/`wss://` URL through `fetch`, so a refusal reports its HTTP status
/// (429, 418, 451) instead of an anonymous failure.
async fn connect(url: &str) -> Result<WebSocket, String> {
    let mut parsed = Url::parse(url).map_err(|e| format!("bad upstream URL: {e}"))?;
    let scheme = if parsed.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    parsed
        .set_scheme(scheme)
        .map_err(|_| "cannot map the upstream URL to http(s)".to_string())?;
    let headers = Headers::new();
    headers
        .set("Upgrade", "websocket")
        .map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let req = Request::new_with_init(parsed.as_str(), &init).map_err(|e| e.to_string())?;
    let resp = Fetch::Request(req)
        .send()
        .await
        .map_err(|e| format!("connect failed: {e}"))?;
    let status = resp.status_code();
    resp.websocket()
        .ok_or_else(|| format!("HTTP {status} instead of a WebSocket upgrade"))
}
