//! State shared by an object's handlers and its tasks (upstream, links of the tree), and the
//! client table's edge side: accepting sockets and finding a socket's connection (their
//! events are in [`super::sockets`]).
//!
//! Borrow rule: the node's `RefCell` is borrowed only inside [`Shared::run`]'s closure, which
//! never awaits; effects are carried out after the borrow ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::task::Waker;

use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;
use worker::{Env, Request, Response, Result, State, WebSocket};

use super::attachments;
use super::env::now_ms;
use super::http;
use super::storage::Store;
use super::timer::Timer;
use crate::core::effect::Effect;
use crate::core::error::ApiError;
use crate::core::fastmap::FastMap;
use crate::core::ids::ConnId;
use crate::core::ids::{ShardId, SourceId};
use crate::core::input::ClientInput;
use crate::core::node::Node;
use crate::core::request::{presented_token, ObjectRequest};

/// State shared by the object's handlers and its tasks.
pub struct Shared {
    pub(super) state: State,
    pub(super) env: Env,
    pub(super) node: RefCell<Node>,
    pub(super) store: Option<Store>,
    pub(super) clients: RefCell<FastMap<ConnId, WebSocket>>,
    /// (Leader) Open upstream sockets by source and generation (two of a source only while
    /// one is replaced).
    pub(super) upstreams: RefCell<HashMap<(SourceId, u64), WebSocket>>,
    /// (Leader) Each linked shard's socket, with its link's generation.
    pub(super) shard_links: RefCell<FastMap<ShardId, (u64, WebSocket)>>,
    /// (Shard) This shard's number, and its link to the leader with the link's generation.
    pub(super) shard_id: ShardId,
    pub(super) leader_link: RefCell<Option<(u64, WebSocket)>>,
    /// Parked SSE streams waiting for data.
    pub(super) sse_wakers: RefCell<FastMap<ConnId, Waker>>,
    /// `SEND_MODE=shared`: one JS string per fan-out.
    pub(super) shared_send: bool,
    /// The in-memory timer that wakes the core.
    pub(super) timer: Timer,
    /// Connection ids by socket object (see [`Shared::remember`]).
    pub(super) conn_ids: js_sys::WeakMap,
    /// (Leader) `/api/candles` reads waiting for a backfill.
    pub(super) candle_waiters: RefCell<Vec<futures::channel::oneshot::Sender<()>>>,
}

impl Shared {
    /// A new object's state around `node`.
    pub(super) fn new(
        state: State,
        env: Env,
        node: Node,
        store: Option<Store>,
        shard_id: ShardId,
    ) -> Shared {
        let shared_send = node.config().shared_send;
        Shared {
            state,
            env,
            node: RefCell::new(node),
            store,
            clients: RefCell::new(FastMap::default()),
            upstreams: RefCell::new(HashMap::new()),
            shard_links: RefCell::new(FastMap::default()),
            shard_id,
            leader_link: RefCell::new(None),
            sse_wakers: RefCell::new(FastMap::default()),
            shared_send,
            timer: Timer::default(),
            conn_ids: js_sys::WeakMap::new(),
            candle_waiters: RefCell::new(Vec::new()),
        }
    }

    /// Runs one core input and carries out what it returns.
    pub(super) fn run(self: &Rc<Self>, input: impl FnOnce(&mut Node) -> Vec<Effect>) {
        let fx = input(&mut self.node.borrow_mut());
        self.execute(fx);
    }

    /// Runs one client input.
    pub(super) fn client(self: &Rc<Self>, input: ClientInput<'_>) {
        self.run(|n| n.host().client(input, now_ms()));
    }

    /// A client connection handed to this object (the leader without shards, or a shard):
    /// the WebSocket upgrade with the token it presents, an SSE stream, or a request of an
    /// Engine.IO session.
    pub(super) async fn serve_client(
        self: &Rc<Self>,
        req: Request,
        query: &[(String, String)],
        to: ObjectRequest,
    ) -> Result<Response> {
        match to {
            ObjectRequest::Polling { sid } => self.serve_polling(req, query, sid).await,
            ObjectRequest::Upgrade { sid } => self.accept_upgrade(&sid),
            ObjectRequest::WebSocket { wire } => {
                let authorization = req.headers().get("Authorization")?;
                self.accept_client(wire, presented_token(authorization.as_deref(), query))
            }
            ObjectRequest::Stream {
                symbols,
                channels,
                refused,
                last,
                token,
            } => {
                let lists = (&symbols[..], &channels[..], refused);
                self.open_stream(lists, last, token).await
            }
            _ => http::error(&ApiError::NotFound("not a client connection".into())),
        }
    }

    /// The connection id of a client socket, re-registering it if this instance has not
    /// seen it (which the constructor normally prevents).
    pub(super) fn conn_of(&self, ws: &WebSocket) -> Option<ConnId> {
        let key: &js_sys::Object = ws.as_ref().unchecked_ref();
        if let Some(id) = self.conn_ids.get(key).as_f64() {
            let id = id as ConnId;
            if self.node.borrow().host_ref().has_client(id) {
                return Some(id);
            }
        }
        let a = attachments::read(&self.state, ws)?;
        let id = a.id;
        let mut node = self.node.borrow_mut();
        let host = node.host();
        if !host.has_client(id) {
            host.client_restore(a);
            self.clients.borrow_mut().insert(id, ws.clone());
        }
        self.remember(ws, id);
        Some(id)
    }

    /// Keeps `conn` findable from its socket object without reading the attachment back
    /// (a structured-clone deserialisation per incoming message otherwise).
    pub(super) fn remember(&self, ws: &WebSocket, conn: ConnId) {
        let key: &js_sys::Object = ws.as_ref().unchecked_ref();
        self.conn_ids.set(key, &JsValue::from_f64(conn as f64));
    }
}
