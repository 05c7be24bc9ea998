//! Client socket events, the same for the leader and a shard: a message, a close (always
//! answered), an error.

use std::rc::Rc;

use worker::{WebSocket, WebSocketIncomingMessage};

use super::env::{log_error, log_fields};
use super::shared::Shared;
use crate::core::effect::Level;
use crate::core::input::ClientInput;
use crate::core::protocol::close;

impl Shared {
    /// A message from a client socket (on the leader, also a chance to restart the upstream).
    pub(super) fn client_message(
        self: &Rc<Self>,
        ws: &WebSocket,
        message: WebSocketIncomingMessage,
    ) {
        self.kick();
        let Some(conn) = self.conn_of(ws) else {
            let _ = ws.close(Some(close::INTERNAL), Some("session state lost; reconnect"));
            return;
        };
        match message {
            WebSocketIncomingMessage::String(text) => {
                self.client(ClientInput::Text { conn, text: &text })
            }
            WebSocketIncomingMessage::Binary(bytes) => {
                let len = bytes.len();
                self.client(ClientInput::Binary { conn, len })
            }
        }
    }

    /// A client socket closed: forget it, and answer its close.
    pub(super) fn client_close(self: &Rc<Self>, ws: &WebSocket, code: usize, reason: String) {
        self.forget_client(ws, code, &reason);
        let _ = ws.close(Some(close::reciprocal(code)), Some(reason));
    }

    /// A client socket failed.
    pub(super) fn client_error(self: &Rc<Self>, ws: &WebSocket, error: &worker::Error) {
        self.forget_client(ws, 1006, "socket error");
        log_error("client_socket_error", &error.to_string());
        let _ = ws.close(Some(close::INTERNAL), Some("socket error"));
    }

    fn forget_client(self: &Rc<Self>, ws: &WebSocket, code: usize, reason: &str) {
        if let Some(conn) = self.conn_of(ws) {
            if code != 1000 && code != 1001 && code != 1005 {
                let reason = crate::core::text::truncate(reason, 120);
                log_fields(
                    Level::Info,
                    "client_closed",
                    serde_json::json!({"conn": conn, "transport": "websocket", "code": code, "reason": reason}),
                );
            }
            self.clients.borrow_mut().remove(&conn);
            self.client(ClientInput::Closed { conn });
        }
    }
}

/// A client socket's message, for either kind of object (closed when it failed to start).
pub(super) fn on_message(
    shared: &std::result::Result<Rc<Shared>, String>,
    ws: &WebSocket,
    message: WebSocketIncomingMessage,
) {
    match shared {
        Ok(shared) => shared.client_message(ws, message),
        Err(_) => {
            let _ = ws.close(Some(close::INTERNAL), Some("misconfigured"));
        }
    }
}

/// A client socket's close, for either kind of object: always answered.
pub(super) fn on_close(
    shared: &std::result::Result<Rc<Shared>, String>,
    ws: &WebSocket,
    code: usize,
    reason: String,
) {
    match shared {
        Ok(shared) => shared.client_close(ws, code, reason),
        Err(_) => {
            let _ = ws.close(Some(close::reciprocal(code)), Some(reason));
        }
    }
}

/// A client socket's error, for either kind of object.
pub(super) fn on_error(
    shared: &std::result::Result<Rc<Shared>, String>,
    ws: &WebSocket,
    error: &worker::Error,
) {
    if let Ok(shared) = shared {
        shared.client_error(ws, error);
    }
}
