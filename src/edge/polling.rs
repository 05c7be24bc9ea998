//! Engine.IO long-polling at the object that holds the session: the handshake, a GET held
//! until the core has packets for it (woken like an SSE stream), a POST's packets handed
//! to the core, and the WebSocket that upgrades a session.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use worker::{Headers, Method, Request, Response, Result, WebSocketPair};

use super::env::{now_ms, random_u64};
use super::http;
use super::shared::Shared;
use crate::core::error::ApiError;
use crate::core::ids::{ConnId, Holder};
use crate::core::input::{PollAnswer, PollInput};
use crate::core::node::Node;
use crate::core::request::presented_token;

/// Resolves once the core has woken `conn`'s held GET (its waker taken by an `SseWake`).
struct Woken {
    shared: Rc<Shared>,
    conn: ConnId,
    parked: bool,
}

impl Future for Woken {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut wakers = self.shared.sse_wakers.borrow_mut();
        if self.parked && !wakers.contains_key(&self.conn) {
            return Poll::Ready(());
        }
        wakers.insert(self.conn, cx.waker().clone());
        drop(wakers);
        self.parked = true;
        Poll::Pending
    }
}

fn engine_error(code: u8, message: &'static str) -> Result<Response> {
    http::error(&ApiError::EngineIo { code, message })
}

/// A GET's body: packets, as Engine.IO serves them.
fn packets(body: String) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "text/plain; charset=UTF-8")?;
    headers.set("Cache-Control", "no-store")?;
    Ok(Response::ok(body)?.with_headers(headers))
}

impl Shared {
    /// A long-polling request of `/socket.io/` (the client's own, forwarded).
    pub(super) async fn serve_polling(
        self: &Rc<Self>,
        mut req: Request,
        query: &[(String, String)],
        sid: Option<String>,
    ) -> Result<Response> {
        match (req.method(), sid) {
            (Method::Get, None) => self.poll_open(&req, query),
            (Method::Get, Some(sid)) => self.poll_get(&sid).await,
            (Method::Post, Some(sid)) => {
                let max = self.node.borrow().config().max_frame_bytes;
                match http::body_within(&mut req, max).await? {
                    Ok(body) => self.poll_post(&sid, &body).await,
                    // Engine.IO answers an oversized POST with a bare 413.
                    Err(_) => Ok(Response::empty()?.with_status(413)),
                }
            }
            (_, None) => engine_error(2, "Bad handshake method"),
            (_, Some(_)) => engine_error(3, "Bad request"),
        }
    }

    /// Runs one polling input and carries out its effects.
    fn poll_input(
        self: &Rc<Self>,
        input: PollInput<'_>,
    ) -> std::result::Result<PollAnswer, ApiError> {
        let (answer, fx) = self.node.borrow_mut().host().poll(input, now_ms());
        self.execute(fx);
        answer
    }

    /// The handshake: the token checked as an upgrade's would be, then a new session.
    fn poll_open(self: &Rc<Self>, req: &Request, query: &[(String, String)]) -> Result<Response> {
        let authorization = req.headers().get("Authorization")?;
        let token = presented_token(authorization.as_deref(), query);
        let (who, owes_token) = match self.upgrade_token(token, true) {
            Ok(v) => v,
            Err(e) => return http::error(&e),
        };
        let holder = match &*self.node.borrow() {
            Node::Leader(_) => Holder::Leader,
            Node::Shard(_) => Holder::Shard(self.shard_id),
        };
        let open = PollInput::Open {
            holder,
            nonce: random_u64(),
            who,
            owes_token,
        };
        match self.poll_input(open) {
            Ok(PollAnswer::Body(body)) => packets(body),
            Ok(_) => http::error(&ApiError::Internal),
            Err(e) => http::error(&e),
        }
    }

    /// A GET: answered at once when packets wait, else held until the core wakes it.
    async fn poll_get(self: &Rc<Self>, sid: &str) -> Result<Response> {
        let mut parked = false;
        loop {
            match self.poll_input(PollInput::Get { sid, parked }) {
                Ok(PollAnswer::Body(body)) => return packets(body),
                Ok(PollAnswer::Wait(conn)) => {
                    let shared = self.clone();
                    Woken {
                        shared,
                        conn,
                        parked: false,
                    }
                    .await;
                    parked = true;
                }
                Ok(_) => return http::error(&ApiError::Internal),
                Err(e) => return http::error(&e),
            }
        }
    }

    /// A POST: its packets read once the object can carry them out (a shard waits for the
    /// leader's snapshot, as a stream does), answered `ok` as Engine.IO does.
    async fn poll_post(self: &Rc<Self>, sid: &str, body: &str) -> Result<Response> {
        self.await_sync().await;
        match self.poll_input(PollInput::Post { sid, body }) {
            Ok(_) => {
                let headers = Headers::new();
                headers.set("Content-Type", "text/html")?;
                Ok(Response::ok("ok")?.with_headers(headers))
            }
            Err(e) => http::error(&e),
        }
    }

    /// The WebSocket that upgrades session `sid`: accepted as the session's connection,
    /// with no attachment (the session is not the socket's until the client says `5`; an
    /// object that wakes from hibernation before then finds nothing to restore and closes
    /// it, and the client starts again).
    pub(super) fn accept_upgrade(self: &Rc<Self>, sid: &str) -> Result<Response> {
        let conn = match self.poll_input(PollInput::Upgrade { sid }) {
            Ok(PollAnswer::Upgrade(conn)) => conn,
            Ok(_) => return http::error(&ApiError::Internal),
            Err(e) => return http::error(&e),
        };
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        self.remember(&pair.server, conn);
        self.clients.borrow_mut().insert(conn, pair.server);
        Response::from_websocket(pair.client)
    }
}
