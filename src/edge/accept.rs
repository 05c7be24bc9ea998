//! A client's WebSocket upgrade, the same for the leader and a shard: its token checked
//! again (with `JWT_SECRET` the identity stays with the connection; a Socket.IO session may
//! still owe its token to its `CONNECT`), `MAX_CONNECTIONS` (accepted and closed 4290), then
//! the hibernatable socket with its attachment.

use std::rc::Rc;

use worker::{Response, Result, WebSocketPair};

use super::env::{log_fields, now_ms};
use super::http;
use super::shared::Shared;
use crate::core::auth;
use crate::core::effect::Level;
use crate::core::error::ApiError;
use crate::core::ids::Identity;
use crate::core::protocol::close;
use crate::core::wire::Wire;

impl Shared {
    /// The token a new client connection presents, checked as an upgrade's (see
    /// [`auth::at_upgrade`]): whose it is, and whether a Socket.IO session still owes one in
    /// its `CONNECT`.
    pub(super) fn upgrade_token(
        &self,
        token: Option<&str>,
        socketio: bool,
    ) -> std::result::Result<(Option<Identity>, bool), ApiError> {
        let node = self.node.borrow();
        let cfg = node.config();
        let (jwt, shared) = (cfg.jwt_secret.as_deref(), cfg.auth_token.as_deref());
        auth::at_upgrade(jwt, shared, token, socketio, now_ms())
            .map_err(|e| ApiError::Unauthorized(e.to_string()))
    }

    /// A client's WebSocket upgrade, with the token it presented (checked again here: with
    /// `JWT_SECRET` the identity stays with the connection).
    pub(super) fn accept_client(
        self: &Rc<Self>,
        wire: Wire,
        token: Option<&str>,
    ) -> Result<Response> {
        let (who, owes_token) = match self.upgrade_token(token, matches!(wire, Wire::SocketIo(_))) {
            Ok(v) => v,
            Err(e) => return http::error(&e),
        };
        if !self.node.borrow_mut().host().admit_client() {
            let max = self.node.borrow().config().max_connections;
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
        let (conn, fx) = {
            let mut node = self.node.borrow_mut();
            let host = node.host();
            let (conn, fx) = host.client_open(wire, who.clone(), now_ms());
            if owes_token {
                host.require_auth(conn);
            }
            (conn, fx)
        };
        self.remember(&pair.server, conn);
        self.clients.borrow_mut().insert(conn, pair.server);
        self.execute(fx);
        Response::from_websocket(pair.client)
    }
}
