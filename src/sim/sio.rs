//! A simulated Socket.IO session's own state: its namespace, whether it joined, the acks it
//! waits for, when it last heard a ping and, long-polling, its GET's state; its packets are
//! read in [`super::socketio`].

use std::collections::BTreeMap;

use serde_json::json;

/// A Socket.IO session's own state.
#[derive(Debug, Clone, Default)]
pub struct Sio {
    /// Joined `/` (every broadcast symbol, prices as numbers), not `/prices`.
    pub root: bool,
    /// Its namespace answered its `CONNECT`.
    pub joined: bool,
    /// The acks it waits for: id → (a subscribe, not an unsubscribe; the key).
    pub acks: BTreeMap<u64, (bool, String)>,
    /// The last ack id used.
    pub last_id: u64,
    /// When it last heard the server's ping (or the handshake).
    pub last_ping: i64,
    /// What `/` broadcasts (the symbols a root session holds once joined).
    pub broadcast: Vec<String>,
    /// A long-polling session's transport (none on a WebSocket).
    pub poll: Option<Poll>,
}

impl Sio {
    /// The namespace part of its packets (`/prices,`, nothing for `/`).
    pub fn nsp(&self) -> &'static str {
        if self.root {
            ""
        } else {
            "/prices,"
        }
    }

    /// The packet of one command on one key (`symbol` or `channel`), with its ack id.
    pub fn command(&mut self, subscribe: bool, key: &str) -> String {
        self.last_id += 1;
        let id = self.last_id;
        self.acks.insert(id, (subscribe, key.to_string()));
        let name = if subscribe {
            "subscribe"
        } else {
            "unsubscribe"
        };
        let field = if key.contains(':') {
            "channel"
        } else {
            "symbol"
        };
        let arg = json!({ field: key });
        format!("42{}{id}{}", self.nsp(), json!([name, arg]))
    }
}

/// A polling session's transport state.
#[derive(Debug, Clone)]
pub struct Poll {
    /// The session id its handshake gave it.
    pub sid: String,
    /// Its GET is held by its object, waiting to be woken.
    pub parked: bool,
    /// Its next GET is on its way (a wake meanwhile is not another GET: a client never has
    /// two out at once).
    pub sent: bool,
    /// Its upgrade's probe socket is open ([`super::upgrade`]).
    pub socket: bool,
    /// That socket answered the probe: the session says `5` once its GET is back.
    pub probed: bool,
}
