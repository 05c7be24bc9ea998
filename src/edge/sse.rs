//! Server-Sent Events: a pull-based response body per stream, fed by the object's core.

use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use worker::{wasm_bindgen_futures::spawn_local, Delay, Headers, Response, Result};

use super::env::now_ms;
use super::http;
use super::shared::Shared;
use crate::core::auth;
use crate::core::error::ApiError;
use crate::core::fanout::SseTake;
use crate::core::ids::ConnId;
use crate::core::input::{ClientInput, StreamOpen};
use crate::core::request::{parse_symbol_query, stream_channels};

/// The body of one SSE response: pull-based, so a reader that stops reading stops the
/// pulls, and its updates conflate in the core instead of queueing here.
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
        let take = match self.shared.node.try_borrow_mut() {
            Ok(mut node) => node.host().sse_take(self.conn, now_ms()),
            Err(_) => {
                // The core is busy in this very turn: ask to be polled again.
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
    /// its own task so it never runs inside another borrow of the core.
    fn drop(&mut self) {
        self.shared.sse_wakers.borrow_mut().remove(&self.conn);
        let shared = self.shared.clone();
        let conn = self.conn;
        spawn_local(async move {
            shared.client(ClientInput::Closed { conn });
        });
    }
}

/// How long a stream opening at a shard waits for the leader's snapshot.
const SYNC_WAIT_MS: i64 = 5_000;

impl Shared {
    /// (Shard) Waits, on this request's own timer, until the leader's snapshot is in: a
    /// stream opens with current values. The leader is always in sync.
    pub(super) async fn await_sync(self: &Rc<Self>) {
        if self.node.borrow().synced() {
            return;
        }
        self.run(|n| n.on_shard(|s| s.prepare(now_ms())));
        let deadline = now_ms() + SYNC_WAIT_MS;
        while !self.node.borrow().synced() && now_ms() < deadline {
            Delay::from(Duration::from_millis(10)).await;
        }
    }

    /// Opens an SSE stream of `symbols` and `channels` (and the names the Worker refused, to
    /// say so), resuming from the stream id `last`.
    pub(super) async fn open_stream(
        self: &Rc<Self>,
        (symbols, channels, refused): (&[String], &[String], Vec<String>),
        last: Option<String>,
        token: Option<String>,
    ) -> Result<Response> {
        let secret = self.node.borrow().config().jwt_secret.clone();
        let who = match auth::identify(secret.as_deref(), token.as_deref(), now_ms()) {
            Ok(who) => who,
            Err(e) => return http::error(&ApiError::Unauthorized(e.to_string())),
        };
        // The Worker validated the lists; the object checks them again against its own
        // configuration, so nothing unserved is ever registered.
        let checked = {
            let node = self.node.borrow();
            let symbols = if symbols.is_empty() {
                Ok(Vec::new())
            } else {
                parse_symbol_query(node.config(), &symbols.join(","))
            };
            let channels = stream_channels(node.config(), &channels.join(","));
            symbols.and_then(|s| Ok((s, channels?.0)))
        };
        let (symbols, channels) = match checked {
            Ok(v) => v,
            Err(e) => return http::error(&e),
        };
        self.await_sync().await;
        let open = StreamOpen {
            symbols,
            channels,
            refused,
            last,
            who,
        };
        let opened = self.node.borrow_mut().host().sse_open(&open, now_ms());
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
