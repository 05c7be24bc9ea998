//! Client connections and their protocol commands: open, restore after hibernation, close,
//! and `subscribe` / `unsubscribe` / `list` / `ping` / `ack`, with the frame-size and rate
//! limits in front of them.

use std::rc::Rc;

use serde_json::Value;

use super::{market, Carrier, Fanout};
use crate::core::attachment::Attachment;
use crate::core::auth;
use crate::core::channel;
use crate::core::effect::Effect;
use crate::core::error::{ClientError, ErrorCode};
use crate::core::events::Since;
use crate::core::fanout::session::RateVerdict;
use crate::core::ids::{ConnId, Transport};
use crate::core::input::ClientInput;
use crate::core::protocol::{self, close, Command};
use crate::core::wire::body::{self, Targets};
use crate::core::wire::{Kind, Payload, Wire};

/// What a `subscribe` or `unsubscribe` names, resolved.
struct Wanted {
    symbols: Vec<String>,
    channels: Vec<String>,
}

impl Wanted {
    /// Symbols and channels, as the client table's keys.
    fn keys(&self) -> Vec<String> {
        self.symbols.iter().chain(&self.channels).cloned().collect()
    }

    /// The body of the `subscribed` / `unsubscribed` answer: a symbols-only exchange keeps
    /// its shape.
    fn answer(&self, recovered: Option<bool>, id: &Option<Value>) -> String {
        if self.channels.is_empty() && recovered.is_none() {
            return body::symbols(&self.symbols, id);
        }
        let t = Targets {
            symbols: &self.symbols,
            channels: Some(&self.channels),
            recovered,
        };
        body::targets(&t, id)
    }
}

/// Splits a connection's subscription keys into symbols and channels.
fn split(keys: Vec<String>) -> (Vec<String>, Vec<String>) {
    keys.into_iter().partition(|k| channel::is_symbol(k))
}

impl Fanout {
    /// One client input (see [`ClientInput`]).
    pub fn client(&mut self, input: ClientInput<'_>, now_ms: i64, fx: &mut Vec<Effect>) {
        if self.clients.is_polling(input.conn()) {
            // A polling session's own packets come by POST: this is its upgrade's socket.
            return self.probe_input(input, now_ms, fx);
        }
        match input {
            ClientInput::Text { conn, text } => self.client_text(conn, text, now_ms, fx),
            ClientInput::Binary { conn, len } => self.client_binary(conn, len, now_ms, fx),
            ClientInput::Closed { conn } => self.client_closed(conn, now_ms, fx),
            ClientInput::SendFailed { conn } => self.send_failed(conn, now_ms, fx),
        }
    }

    /// A binary frame from a client: the protocol is JSON text only.
    fn client_binary(&mut self, conn: ConnId, len: usize, now_ms: i64, fx: &mut Vec<Effect>) {
        if !self.admissible(conn, len, now_ms, fx) {
            return;
        }
        let e = ClientError::new(
            ErrorCode::BadRequest,
            "binary frames are not accepted; send JSON text",
        );
        self.reject(conn, e, fx);
    }

    /// A text frame from a client.
    pub(super) fn client_text(
        &mut self,
        conn: ConnId,
        text: &str,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        if !self.admissible(conn, text.len(), now_ms, fx) {
            return;
        }
        if let Some(Wire::SocketIo(nsp)) = self.clients.wire(conn) {
            return self.socketio_text(conn, nsp, text, now_ms, fx);
        }
        match protocol::parse_command(text).and_then(|cmd| self.capped(cmd)) {
            Ok(cmd) => self.command(conn, cmd, now_ms, fx),
            Err(e) => self.reject(conn, e, fx),
        }
    }

    /// The frame-size limit (close 1009) and the message rate, checked before content.
    fn admissible(&mut self, conn: ConnId, len: usize, now_ms: i64, fx: &mut Vec<Effect>) -> bool {
        if len > self.cfg.max_frame_bytes {
            self.close_client(conn, close::TOO_LARGE, "frame too large", now_ms, fx);
            return false;
        }
        self.rate_ok(conn, now_ms, fx)
    }

    /// Caps before content: a request naming more symbols than a connection may hold is
    /// refused before any name is looked at.
    fn capped(&self, cmd: Command) -> Result<Command, ClientError> {
        let named = match &cmd {
            Command::Subscribe {
                symbols, channels, ..
            }
            | Command::Unsubscribe {
                symbols, channels, ..
            } => symbols.len() + channels.len(),
            _ => 0,
        };
        let cap = self.cfg.max_symbols_per_connection;
        if named > cap {
            let e = ClientError::new(
                ErrorCode::TooManySymbols,
                format!("a request may name at most {cap} symbols; this one names {named}"),
            );
            return Err(e.with_id(cmd.id()));
        }
        Ok(cmd)
    }

    pub(super) fn command(
        &mut self,
        conn: ConnId,
        cmd: Command,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        match cmd {
            Command::Subscribe {
                symbols,
                channels,
                since,
                id,
            } => match self.resolve_targets(&symbols, &channels) {
                Err(e) => self.reject(conn, e.with_id(id), fx),
                Ok(wanted) => match self.forbidden(conn, &wanted.channels) {
                    Some(e) => self.reject(conn, e.with_id(id), fx),
                    None => self.subscribe(conn, wanted, &since, id, now_ms, fx),
                },
            },
            Command::Unsubscribe {
                symbols,
                channels,
                id,
            } => match self.resolve_targets(&symbols, &channels) {
                Err(e) => self.reject(conn, e.with_id(id), fx),
                Ok(wanted) => self.unsubscribe(conn, wanted, id, fx),
            },
            Command::List { id } => {
                let (symbols, channels) = split(self.clients.subscriptions(conn));
                let t = Targets {
                    symbols: &symbols,
                    channels: Some(&channels),
                    recovered: None,
                };
                let list = body::targets(&t, &id);
                self.send(conn, Payload::new(Kind::Subscriptions, &list), fx);
            }
            Command::Ping { id } => {
                let pong = body::pong(&id, now_ms);
                self.send(conn, Payload::new(Kind::Pong, &pong), fx)
            }
            Command::Ack { seq } => self.ack(conn, seq, true, now_ms, fx),
        }
    }

    /// Applies the per-connection message rate: `RATE_LIMITED` for a message over the rate,
    /// close 4008 for a client that keeps it up.
    fn rate_ok(&mut self, conn: ConnId, now_ms: i64, fx: &mut Vec<Effect>) -> bool {
        let rate = self.cfg.client_messages_per_second;
        let verdict = match self.clients.get_mut(conn) {
            Some(c) => c.limiter.check(rate, now_ms),
            None => RateVerdict::Allow,
        };
        match verdict {
            RateVerdict::Allow => true,
            RateVerdict::Reject { tell } => {
                self.stats.rate_limited += 1;
                if tell {
                    let e = ClientError::new(
                        ErrorCode::RateLimited,
                        format!("at most {rate} messages per second; this one was dropped"),
                    );
                    self.reject(conn, e, fx);
                }
                false
            }
            RateVerdict::Close => {
                self.stats.rate_limited += 1;
                self.stats.rate_limit_closes += 1;
                self.close_client(conn, close::RATE_LIMITED, "rate limited", now_ms, fx);
                false
            }
        }
    }

    /// A client acknowledged frames up to `seq`; one that was behind and has caught up gets
    /// the newest value of everything that changed meanwhile, in one frame.
    pub(super) fn ack(
        &mut self,
        conn: ConnId,
        seq: u64,
        by_client: bool,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        let Some(Carrier::WebSocket(flow)) = self.clients.get_mut(conn).map(|c| &mut c.carrier)
        else {
            return;
        };
        let caught_up = if by_client {
            flow.ack(seq)
        } else {
            flow.settle(seq)
        };
        if !caught_up {
            return;
        }
        let pending = std::mem::take(&mut flow.pending);
        let Some((prices, max_seq)) = self.latest.body(&pending, 0, now_ms) else {
            return;
        };
        flow.sent(max_seq, prices.len(), now_ms);
        self.send(conn, Payload::new(Kind::Prices, &prices), fx);
    }

    fn subscribe(
        &mut self,
        conn: ConnId,
        wanted: Wanted,
        since: &[(String, Since)],
        id: Option<Value>,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        let all = wanted.keys();
        let new = all.iter().filter(|s| !self.clients.holds(conn, s)).count();
        let (cap, total) = (
            self.cfg.max_symbols_per_connection,
            self.clients.count(conn) + new,
        );
        if total > cap {
            let e = ClientError::new(
                ErrorCode::TooManySymbols,
                format!("a connection may hold at most {cap} symbols and channels; this would make {total}"),
            );
            self.reject(conn, e.with_id(id), fx);
            return;
        }
        let added = self.clients.subscribe(conn, &all);
        self.interest_changed |= added.iter().any(|k| channel::from_upstream(k));
        self.save(conn, fx);
        // What was missed comes first, in order; `subscribed` then says whether that was all
        // (`recovered`), as docs/events.md promises.
        let (recovered, missed) = self.recover(&wanted.channels, since);
        self.keep_floors(conn, since);
        for event in missed {
            self.send(conn, Payload::new(Kind::Event, &event.encoded), fx);
        }
        let answer = wanted.answer(recovered, &id);
        self.send(conn, Payload::new(Kind::Subscribed, &answer), fx);
        // The snapshot and the channels' states are of what this subscribe added: a symbol
        // already held has had its latest `seq`, and a client never gets a `seq` twice. For
        // the same reason a symbol whose change waits for the flush at hand is left to it.
        let fresh = |keys: &[String]| -> Vec<String> {
            keys.iter()
                .filter(|k| added.contains(*k))
                .cloned()
                .collect()
        };
        if !wanted.symbols.is_empty() || wanted.channels.is_empty() {
            let mut symbols = fresh(&wanted.symbols);
            symbols.retain(|s| !self.dirty.contains(s));
            let parts: Vec<Rc<str>> = self.latest.parts(&symbols, 0, now_ms);
            let snapshot = body::prices(&parts);
            self.send(conn, Payload::new(Kind::Snapshot, &snapshot), fx);
        }
        for (key, state) in self.market_states(&fresh(&wanted.channels)) {
            self.send(conn, Payload::new(market::state_kind(&key), &state), fx);
        }
    }

    fn unsubscribe(
        &mut self,
        conn: ConnId,
        wanted: Wanted,
        id: Option<Value>,
        fx: &mut Vec<Effect>,
    ) {
        let all = wanted.keys();
        let removed = self.clients.unsubscribe(conn, &all);
        self.interest_changed |= removed.iter().any(|k| channel::from_upstream(k));
        self.save(conn, fx);
        let answer = wanted.answer(None, &id);
        self.send(conn, Payload::new(Kind::Unsubscribed, &answer), fx);
    }

    /// Resolves a request's symbols and channels, all or nothing.
    fn resolve_targets(
        &self,
        symbols: &[String],
        channels: &[String],
    ) -> Result<Wanted, ClientError> {
        Ok(Wanted {
            symbols: self.resolve(symbols)?,
            channels: channel::resolve_all(&self.cfg, channels)?,
        })
    }

    /// Canonicalises and whitelists symbols, keeping request order and dropping repeats.
    /// All-or-nothing: one unknown symbol rejects the whole request.
    fn resolve(&self, raw: &[String]) -> Result<Vec<String>, ClientError> {
        let mut out: Vec<String> = Vec::with_capacity(raw.len());
        let mut unknown = Vec::new();
        for s in raw {
            match self.cfg.symbols.resolve(s) {
                Some(c) if !out.contains(&c) => out.push(c),
                Some(_) => {}
                None => unknown.push(crate::core::text::truncate(s, 24)),
            }
        }
        if unknown.is_empty() {
            return Ok(out);
        }
        let shown: Vec<String> = unknown.iter().take(5).map(|s| format!("{s:?}")).collect();
        let more = if unknown.len() > 5 { ", ..." } else { "" };
        Err(ClientError::new(
            ErrorCode::UnknownSymbol,
            format!(
                "not served: {}{more}; nothing was changed",
                shown.join(", ")
            ),
        ))
    }

    /// The attachment of a client's socket, written again (none for an SSE stream or a
    /// polling session: neither has a socket, until the session upgrades); one that outgrew
    /// the socket's is kept in storage, and forgotten there once it fits again.
    pub(super) fn save(&mut self, conn: ConnId, fx: &mut Vec<Effect>) {
        let wire = self.clients.wire(conn).unwrap_or(Wire::Json);
        let keys = self.clients.subscriptions(conn);
        let Some(client) = self.clients.get_mut(conn) else {
            return;
        };
        if client.carrier.transport() != Transport::WebSocket {
            return;
        }
        let (attachment, whole) = Attachment::fitted(conn, wire, keys, client.who.clone());
        fx.push(Effect::SaveAttachment { conn, attachment });
        if whole.is_some() || client.stored {
            client.stored = whole.is_some();
            fx.push(Effect::StoreAttachment { conn, whole });
        }
    }

    /// Why this connection may not read one of `channels`, if it may not.
    fn forbidden(&mut self, conn: ConnId, channels: &[String]) -> Option<ClientError> {
        let who = self.clients.get_mut(conn).and_then(|c| c.who.clone());
        let why = channels
            .iter()
            .find_map(|c| auth::forbidden(who.as_ref(), c))?;
        Some(ClientError::new(
            ErrorCode::Forbidden,
            format!("{why}; nothing was changed"),
        ))
    }

    /// Sends `payload` to one client, framed by its wire (nothing to a client not known).
    pub fn send(&mut self, conn: ConnId, payload: Payload<'_>, fx: &mut Vec<Effect>) {
        let Some(wire) = self.clients.wire(conn) else {
            return;
        };
        for frame in wire.frames(payload, None) {
            self.emit(conn, frame, fx);
        }
    }

    /// Refuses a client's message with `err`, framed by its wire.
    pub fn reject(&mut self, conn: ConnId, err: ClientError, fx: &mut Vec<Effect>) {
        self.stats.client_errors += 1;
        let refusal = body::error(&err);
        self.send(conn, Payload::new(Kind::Error, &refusal), fx);
    }
}
