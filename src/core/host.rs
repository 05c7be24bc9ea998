//! The interface of an object that carries client connections: the leader (without shards)
//! and every fan-out shard. Client inputs are data ([`ClientInput`], [`StreamOpen`]) and
//! reach either through one method; what both do the same way is written here once.

use super::attachment::Attachment;
use super::config::Config;
use super::effect::Effect;
use super::error::ApiError;
use super::fanout::{Fanout, SseTake};
use super::ids::{ConnId, Identity};
use super::input::{ClientInput, PollAnswer, PollInput, StreamOpen};
use super::wire::Wire;

/// What the leader and a shard have in common: they carry client connections. What differs
/// is what follows an input (the leader's feed follows the clients' interest; a shard dials
/// or hangs up its link) and when an input is carried out (a shard holds client messages
/// until the leader's snapshot is in).
pub trait ClientHost {
    /// The configuration.
    fn config(&self) -> &Config;
    /// The object's fan-out.
    fn fanout(&self) -> &Fanout;
    /// The object's fan-out, to change.
    fn fanout_mut(&mut self) -> &mut Fanout;
    /// One client input.
    fn client(&mut self, input: ClientInput<'_>, now_ms: i64) -> Vec<Effect>;
    /// Registers a new connection and returns its id.
    fn client_open(
        &mut self,
        wire: Wire,
        who: Option<Identity>,
        now_ms: i64,
    ) -> (ConnId, Vec<Effect>);
    /// Opens an SSE stream: its id, its first bytes, and the effects of a new listener.
    fn sse_open(
        &mut self,
        open: &StreamOpen,
        now_ms: i64,
    ) -> Result<(ConnId, String, Vec<Effect>), ApiError>;
    /// What follows any client input on this object (the leader's feed follows the
    /// interest, a shard dials its link), appended to the input's own effects.
    fn settle(&mut self, now_ms: i64, fx: Vec<Effect>) -> Vec<Effect>;

    /// One request of an Engine.IO long-polling session: the answer, and the effects.
    fn poll(
        &mut self,
        input: PollInput<'_>,
        now_ms: i64,
    ) -> (Result<PollAnswer, ApiError>, Vec<Effect>) {
        let mut fx = Vec::new();
        let answer = self.fanout_mut().poll(input, now_ms, &mut fx);
        (answer, self.settle(now_ms, fx))
    }
    /// The in-memory timer fired.
    fn timer(&mut self, now_ms: i64) -> Vec<Effect>;

    /// True while another client fits under `MAX_CONNECTIONS`; a refusal is counted.
    fn admit_client(&mut self) -> bool {
        self.fanout_mut().admit_client()
    }

    /// Re-registers a connection found after the object woke from hibernation, from its
    /// (whole) attachment.
    fn client_restore(&mut self, attachment: Attachment) {
        self.fanout_mut().client_restore(attachment);
    }

    /// A Socket.IO session whose upgrade presented no valid token: it joins a namespace only
    /// with one in its `CONNECT` packet.
    fn require_auth(&mut self, conn: ConnId) {
        self.fanout_mut().require_auth(conn);
    }

    /// True when the connection is registered.
    fn has_client(&self, conn: ConnId) -> bool {
        self.fanout().has_client(conn)
    }

    /// Client connections by transport: (WebSocket, SSE).
    fn client_counts(&self) -> (usize, usize) {
        self.fanout().client_counts()
    }

    /// The stream of `conn` asks for its next bytes.
    fn sse_take(&mut self, conn: ConnId, now_ms: i64) -> SseTake {
        self.fanout_mut().sse_take(conn, now_ms)
    }

    /// Records how long the edge took to carry out one fan-out.
    fn observe_fanout(&mut self, seconds: f64) {
        self.fanout_mut().observe_fanout(seconds);
    }
}
