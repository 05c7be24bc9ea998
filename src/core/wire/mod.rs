//! Client wire protocols: what the service says to a client is a [`Payload`] (a kind and a
//! body, a JSON object encoded once, without the kind), and each wire is a codec that
//! frames payloads its way. The fan-out groups clients by [`Wire`] when it sends, so each
//! frame is still encoded once per wire, whatever the number of clients.
//!
//! # Layout
//! [`body`] builds the bodies of the service's own messages; [`json`] is the JSON WebSocket
//! (`{"type":<kind>,...}`, commands parsed by [`crate::core::protocol`]); [`sse`] is
//! Server-Sent Events (`event: <kind>`, the JSON frame as `data`). A new wire adds a module
//! here and a variant of [`Wire`]; [`socketio`] is Socket.IO v5 over Engine.IO v4 (its
//! packets, and payloads as a namespace's events).

use serde::{Deserialize, Serialize};

use super::ids::Transport;

pub mod body;
pub mod json;
pub mod socketio;
pub mod sse;

/// How a client's connection is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    /// The JSON protocol over a WebSocket (`/ws`).
    Json,
    /// Server-Sent Events (`/api/stream`).
    Sse,
    /// Socket.IO v5 over an Engine.IO v4 WebSocket (`/socket.io/`), in a namespace.
    SocketIo(socketio::Nsp),
}

impl Wire {
    /// How a client of this wire is delivered to: pushed to (and acknowledging), or pulled.
    pub fn transport(self) -> Transport {
        match self {
            Wire::Json | Wire::SocketIo(_) => Transport::WebSocket,
            Wire::Sse => Transport::Sse,
        }
    }

    /// The path a client opens a WebSocket of this wire on (none for a wire that is not a
    /// WebSocket): the Worker's routing and the objects' both read it here.
    pub fn socket_path(self) -> Option<&'static str> {
        match self {
            Wire::Json => Some("/ws"),
            Wire::SocketIo(_) => Some("/socket.io/"),
            Wire::Sse => None,
        }
    }

    /// The wire whose WebSocket opens on `path` (a Socket.IO session before it joined a
    /// namespace).
    pub fn of_socket_path(path: &str) -> Option<Wire> {
        [
            Wire::Json,
            Wire::Sse,
            Wire::SocketIo(socketio::Nsp::Pending),
        ]
        .into_iter()
        .find(|w| w.socket_path() == Some(path))
    }

    /// `payload` as the frames of this wire, each a message on the connection (one for the
    /// JSON wire and SSE; a Socket.IO packet per price, none for what its clients are not
    /// told); `id` is an SSE stream's position (other wires carry none).
    pub fn frames(self, payload: Payload<'_>, id: Option<&str>) -> Vec<String> {
        match self {
            Wire::Json => vec![json::frame(payload)],
            Wire::Sse => vec![sse::frame(payload, id)],
            Wire::SocketIo(nsp) => socketio::frame::frames(nsp, payload),
        }
    }
}

/// What a payload is: its `type` on the JSON wire, its event name on SSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The latest values a subscription starts from.
    Snapshot,
    /// Changed prices.
    Prices,
    /// The upstream state.
    Status,
    /// One event of an event channel.
    Event,
    /// Trades of a `trades:` channel.
    Trades,
    /// A candle of a `candles:` channel.
    Candle,
    /// The top of the book of a `book:` channel.
    Book,
    /// The liquidation heat map of a `heatmap:` channel.
    Heatmap,
    /// A warning (`SLOW_CONSUMER`).
    Warning,
    /// A refused command.
    Error,
    /// The answer to a ping.
    Pong,
    /// What a `subscribe` added.
    Subscribed,
    /// What an `unsubscribe` removed.
    Unsubscribed,
    /// The answer to `list`.
    Subscriptions,
}

impl Kind {
    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Prices => "prices",
            Kind::Status => "status",
            Kind::Event => "event",
            Kind::Trades => "trades",
            Kind::Candle => "candle",
            Kind::Book => "book",
            Kind::Heatmap => "heatmap",
            Kind::Warning => "warning",
            Kind::Error => "error",
            Kind::Pong => "pong",
            Kind::Subscribed => "subscribed",
            Kind::Unsubscribed => "unsubscribed",
            Kind::Subscriptions => "subscriptions",
        }
    }
}

/// One message for clients before any wire frames it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload<'a> {
    /// What it is.
    pub kind: Kind,
    /// Its body: a JSON object (`{...}`), without the kind.
    pub body: &'a str,
}

impl<'a> Payload<'a> {
    /// A payload of `kind` with `body`.
    pub fn new(kind: Kind, body: &'a str) -> Payload<'a> {
        Payload { kind, body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_payload_framed_by_each_wire() {
        let p = Payload::new(Kind::Status, r#"{"upstream":"down","ts":5}"#);
        assert_eq!(
            Wire::Json.frames(p, None),
            [r#"{"type":"status","upstream":"down","ts":5}"#]
        );
        assert_eq!(
            Wire::Sse.frames(p, Some("7")),
            ["event: status\nid: 7\ndata: {\"type\":\"status\",\"upstream\":\"down\",\"ts\":5}\n\n"]
        );
        assert_eq!(
            Wire::SocketIo(socketio::Nsp::Prices).frames(p, None),
            [r#"42/prices,["status",{"type":"status","upstream":"down","ts":5}]"#]
        );
        let empty = Payload::new(Kind::Pong, "{}");
        assert_eq!(json::frame(empty), r#"{"type":"pong"}"#);
        assert_eq!(Wire::Json.transport(), Transport::WebSocket);
        assert_eq!(Wire::Sse.transport(), Transport::Sse);
        assert_eq!(Wire::of_socket_path("/ws"), Some(Wire::Json));
        assert_eq!(Wire::of_socket_path("/api/stream"), None);
    }
}
