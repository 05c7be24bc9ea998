//! Inputs as data, the way effects come back out as one enum: what a client connection does
//! (the same inputs reach the leader and a shard, through
//! [`crate::core::host::ClientHost::client`]) and what an upstream connection does (the
//! leader's [`crate::core::hub::Hub::upstream`]).

use super::feed::link::Failure;
use super::ids::{ConnId, Holder, Identity};

/// One thing a client connection did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInput<'a> {
    /// A text frame.
    Text {
        /// From whom.
        conn: ConnId,
        /// The frame.
        text: &'a str,
    },
    /// A binary frame of `len` bytes (the protocols here are text: refused).
    Binary {
        /// From whom.
        conn: ConnId,
        /// Its size.
        len: usize,
    },
    /// The connection closed or errored (an SSE reader went away).
    Closed {
        /// Which.
        conn: ConnId,
    },
    /// A send to it failed: it is closed (1011, retryable) and forgotten.
    SendFailed {
        /// Which.
        conn: ConnId,
    },
}

impl ClientInput<'_> {
    /// The connection it concerns.
    pub fn conn(&self) -> ConnId {
        match *self {
            ClientInput::Text { conn, .. }
            | ClientInput::Binary { conn, .. }
            | ClientInput::Closed { conn }
            | ClientInput::SendFailed { conn } => conn,
        }
    }
}

/// A Server-Sent Events stream to open: canonical symbols, served channels, the id a
/// returning reader resumes from, and whose stream it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOpen {
    /// Canonical, whitelisted symbols.
    pub symbols: Vec<String>,
    /// Served channels.
    pub channels: Vec<String>,
    /// Channels asked for that are not served: told in a `warning` after `subscribed`.
    pub refused: Vec<String>,
    /// The `Last-Event-ID` it resumes from.
    pub last: Option<String>,
    /// Whose it is (with `JWT_SECRET`).
    pub who: Option<Identity>,
}

/// One request of an Engine.IO long-polling session (Socket.IO's default start), as the
/// object that holds it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollInput<'a> {
    /// The handshake: a new session held by `holder`, with its secret `nonce` (random).
    Open {
        /// This object.
        holder: Holder,
        /// The session id's random part.
        nonce: u64,
        /// Whose it is (with `JWT_SECRET` and a valid token on the request).
        who: Option<Identity>,
        /// The request presented no valid token: the `CONNECT` packet must.
        owes_token: bool,
    },
    /// A GET: the packets waiting for the client. `parked` when this GET already waited and
    /// was woken (a session that ended meanwhile then answers with the close packet).
    Get {
        /// The session id.
        sid: &'a str,
        /// It waited already.
        parked: bool,
    },
    /// A POST: packets from the client, joined by the record separator.
    Post {
        /// The session id.
        sid: &'a str,
        /// The body.
        body: &'a str,
    },
    /// A WebSocket opened to upgrade the session (its probe comes next).
    Upgrade {
        /// The session id.
        sid: &'a str,
    },
}

/// The answer to a [`PollInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollAnswer {
    /// A GET's body: packets joined by the record separator.
    Body(String),
    /// Nothing for the GET yet: hold it until an
    /// [`crate::core::effect::Effect::SseWake`] names `conn`, then ask again with `parked`.
    Wait(ConnId),
    /// A POST was taken (`ok`).
    Taken,
    /// Accept the upgrade's WebSocket as the session's connection `conn` (no attachment:
    /// the session is not the socket's until the client says `5`).
    Upgrade(ConnId),
}

/// What an upstream connection of the leader did; `generation` names the connection (events
/// of a connection since replaced are stale).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamEvent<'a> {
    /// It opened.
    Opened {
        /// Which connection.
        generation: u64,
    },
    /// A text frame arrived.
    Text {
        /// Which connection.
        generation: u64,
        /// The frame.
        text: &'a str,
    },
    /// A binary frame arrived (skipped: the exchanges here send text).
    Binary {
        /// Which connection.
        generation: u64,
    },
    /// It failed to open, errored or closed.
    Failed {
        /// Which connection.
        generation: u64,
        /// Why.
        failure: Failure,
    },
}
