//! Inputs as data, the way effects come back out as one enum: what a client connection does
//! (the same inputs reach the leader and a shard, through
//! [`crate::core::host::ClientHost::client`]) and what an upstream connection does (the
//! leader's [`crate::core::hub::Hub::upstream`]).

use super::feed::link::Failure;
use super::ids::{ConnId, Identity};

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
    /// The `Last-Event-ID` it resumes from.
    pub last: Option<String>,
    /// Whose it is (with `JWT_SECRET`).
    pub who: Option<Identity>,
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
