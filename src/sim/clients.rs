//! The simulated clients of the JSON WebSocket: what each one holds (as the server's answers
//! say: a command waits while a shard's link is down), and every frame it gets checked as it
//! arrives (a symbol's `seq` only grows while it is held; no price of a symbol it does not
//! hold; every frame is JSON; every command is answered).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::markets::{self, Seen};
use super::sio::Sio;
use crate::core::ids::{ConnId, Holder, Identity};

/// One client connection.
#[derive(Debug, Clone)]
pub struct SimClient {
    /// The object that carries it.
    pub holder: Holder,
    /// Its connection there.
    pub conn: ConnId,
    /// False once it was closed (by the server, or by a fault).
    pub open: bool,
    /// An SSE stream (its keys fixed when it opened), not a JSON WebSocket.
    pub sse: bool,
    /// Whose it is (with JWTs): its private channels are `user:<sub>:…`, and it must be
    /// closed once its token expires.
    pub who: Option<Identity>,
    /// Per private channel, the gaps in its offsets it saw (last, next): a private channel
    /// forgotten whole continues above the private floor, so a gap is a loss only when an
    /// event in between was published (the world checks).
    pub gaps: Vec<(String, u64, u64)>,
    /// Channels it asked to recover (`since` its offsets) and has had no answer for: their
    /// replayed events come before the answer, and may jump only if it says
    /// `recovered:false`.
    pub recovering: BTreeSet<String>,
    /// An SSE stream's id of the last event it got (what `Last-Event-ID` resumes).
    pub sse_id: Option<String>,
    /// It came back as another client (its positions are that one's).
    pub returned: bool,
    /// A Socket.IO session's own state (a Socket.IO client, not a JSON WebSocket).
    pub sio: Option<Sio>,
    /// The symbols it holds.
    pub subs: BTreeSet<String>,
    /// The channels it holds.
    pub channels: BTreeSet<String>,
    /// Per event channel held: the last offset it got.
    pub offsets: BTreeMap<String, u64>,
    /// Event channels whose events may repeat until one past the last arrives: the object
    /// carrying it was created again, and its new copy of the history catches its clients
    /// up with all of it (the browser module drops what it had by offset).
    pub events_may_repeat: BTreeSet<String>,
    /// Per symbol held: the last `seq` and price it saw.
    pub last: BTreeMap<String, (u64, String)>,
    /// Per symbol held: the latest exchange time of a price it saw (a stale upstream frame
    /// must never take a newer price's place).
    pub times: BTreeMap<String, i64>,
    /// Per market channel held: the last trade id, book version or candle it saw.
    pub seen: Seen,
    /// Frames received.
    pub frames: u64,
    /// Error frames received (a command refused: not a violation by itself).
    pub errors: u64,
    /// Commands sent and not answered yet.
    pub pending: usize,
    /// Symbols whose next price is exempt from the `seq` check once: the object carrying it
    /// restarted, and a new instance cannot know what the old one sent, so its catch-up
    /// repeats the latest value; when the leader restarted within its persistence window
    /// too, that value may be the stored one, up to a second older (docs/testing.md).
    pub may_repeat: BTreeSet<String>,
    /// Symbols whose prices may be older than the last one it saw (never a `seq` twice),
    /// until the new leader (a `seq` above the floor given) sent it one of at least the
    /// exchange time given: the leader restarted before it stored the latest it held, so it
    /// knows only what storage kept and cannot tell a stale frame from a newer one; once it
    /// holds a price this new, it refuses older frames, and what it sent before comes first
    /// on the same links. (A Socket.IO price carries no `seq`: its allowance stays.) Set by
    /// the world before each delivery.
    pub may_be_older: BTreeMap<String, (i64, u64)>,
    /// Per symbol, the newest exchange time the new leader sent it since the last restart
    /// that unsettled the symbol.
    pub reached: BTreeMap<String, i64>,
}

impl SimClient {
    /// A new connection on `holder`.
    pub fn new(holder: Holder, conn: ConnId) -> SimClient {
        SimClient {
            holder,
            conn,
            open: true,
            sse: false,
            sio: None,
            who: None,
            gaps: Vec::new(),
            recovering: BTreeSet::new(),
            returned: false,
            sse_id: None,
            subs: BTreeSet::new(),
            channels: BTreeSet::new(),
            offsets: BTreeMap::new(),
            events_may_repeat: BTreeSet::new(),
            last: BTreeMap::new(),
            times: BTreeMap::new(),
            seen: Seen::new(),
            frames: 0,
            errors: 0,
            pending: 0,
            may_repeat: BTreeSet::new(),
            may_be_older: BTreeMap::new(),
            reached: BTreeMap::new(),
        }
    }

    /// The client with its identity.
    pub fn with(mut self, who: Option<Identity>) -> SimClient {
        self.who = who;
        self
    }

    /// An error when `channel` is another user's private channel: it must never be granted.
    pub fn not_its_own(&self, channel: &str) -> Result<(), String> {
        let Some(rest) = channel.strip_prefix("user:") else {
            return Ok(());
        };
        let owner = rest.split(':').next().unwrap_or_default();
        match &self.who {
            Some(who) if who.sub == owner => Ok(()),
            _ => Err(format!(
                "conn {}: granted {channel}, not its own",
                self.conn
            )),
        }
    }

    /// A JSON client that left and had events, or an SSE stream that ended and had an id,
    /// and has not come back yet.
    pub fn may_come_back(&self) -> bool {
        let had = if self.sse {
            self.sse_id.is_some()
        } else {
            !self.offsets.is_empty()
        };
        !self.open && !self.returned && self.sio.is_none() && had
    }

    /// Every key it holds, sorted: symbols and channels.
    pub fn keys_held(&self) -> Vec<String> {
        let mut all: Vec<String> = self.subs.iter().chain(&self.channels).cloned().collect();
        all.sort();
        all
    }

    /// The symbols (or the channels) of an answer.
    fn keys(v: &Value, field: &str) -> Vec<String> {
        let list = v.get(field).and_then(Value::as_array);
        let names = list.into_iter().flatten().filter_map(Value::as_str);
        names.map(str::to_string).collect()
    }

    /// Bytes of an SSE stream: each event (`event:` and `data:`) checked as the JSON wire's
    /// frame of the same type would be; comments (keepalives) and `retry:` pass.
    pub fn take_sse(&mut self, text: &str) -> Result<(), String> {
        for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim_start().to_string()))
            };
            let (Some(kind), Some(data)) = (field("event:"), field("data:")) else {
                continue;
            };
            let mut v: Value = serde_json::from_str(&data)
                .map_err(|e| format!("conn {}: SSE data not JSON ({e}): {data}", self.conn))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("type".into(), Value::String(kind));
            }
            self.take(&v.to_string())?;
            if let Some(id) = field("id:") {
                self.sse_id = Some(id);
            }
        }
        Ok(())
    }

    /// One frame: a violation is returned as its description.
    pub fn take(&mut self, text: &str) -> Result<(), String> {
        self.frames += 1;
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("  conn {} on {:?} <- {text}", self.conn, self.holder);
        }
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))?;
        match v.get("type").and_then(Value::as_str) {
            Some("prices" | "snapshot") => {
                let list = v
                    .get("prices")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for p in list {
                    self.price(&p)?;
                }
            }
            Some("subscribed") => {
                self.pending = self.pending.saturating_sub(1);
                self.subs.extend(Self::keys(&v, "symbols"));
                for c in Self::keys(&v, "channels") {
                    self.not_its_own(&c)?;
                    self.channels.insert(c);
                }
                self.recovered(v.get("recovered").and_then(Value::as_bool));
            }
            Some("unsubscribed") => {
                self.pending = self.pending.saturating_sub(1);
                for s in Self::keys(&v, "symbols") {
                    self.subs.remove(&s);
                    self.last.remove(&s);
                    self.times.remove(&s);
                }
                for c in Self::keys(&v, "channels") {
                    self.offsets.remove(&c);
                    self.seen.remove(&c);
                    self.channels.remove(&c);
                }
            }
            Some("event") => self.event(&v)?,
            Some("trades" | "book" | "candle") => {
                markets::check(self.conn, &v, &self.channels, &mut self.seen)?
            }
            Some("error") => {
                self.recovering.clear();
                self.pending = self.pending.saturating_sub(1);
                self.errors += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// An event: of a channel it holds, and per channel each offset once, in order, none
    /// missed (it never asks to recover, so nothing may be lost without a word).
    fn event(&mut self, v: &Value) -> Result<(), String> {
        let channel = v["channel"].as_str().unwrap_or_default();
        let offset = v["offset"].as_u64().unwrap_or(0);
        let conn = self.conn;
        let recovering = self.recovering.contains(channel);
        if !self.channels.contains(channel) && !recovering {
            return Err(format!(
                "conn {conn}: an event of {channel}, which it does not hold"
            ));
        }
        if let Some(&last) = self.offsets.get(channel) {
            if offset <= last && self.events_may_repeat.contains(channel) {
                return Ok(());
            }
            if offset > last + 1 && (recovering || channel.starts_with("user:")) {
                self.gaps.push((channel.to_string(), last, offset));
            } else if offset != last + 1 {
                return Err(format!(
                    "conn {conn}: {channel} offset {offset} after {last} (twice, backwards or a gap)"
                ));
            }
        }
        self.events_may_repeat.remove(channel);
        self.offsets.insert(channel.to_string(), offset);
        Ok(())
    }

    /// The answer to a recovery: with `recovered:false` the jumps of its channels were
    /// announced (what it missed is gone), with `true` they must hide nothing published (the
    /// world checks the gaps left).
    fn recovered(&mut self, recovered: Option<bool>) {
        let asked = std::mem::take(&mut self.recovering);
        if recovered == Some(false) {
            self.gaps.retain(|(c, _, _)| !asked.contains(c));
        }
    }

    fn price(&mut self, p: &Value) -> Result<(), String> {
        let symbol = p.get("symbol").and_then(Value::as_str).unwrap_or_default();
        let seq = p.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let price = p.get("price").and_then(Value::as_str).unwrap_or_default();
        if !self.subs.contains(symbol) {
            return Err(format!(
                "conn {}: a price of {symbol}, which it does not hold",
                self.conn
            ));
        }
        let exempt = self.may_repeat.remove(symbol);
        let reached = self.reached.get(symbol).copied();
        let unsettled = self.may_be_older.get(symbol).copied();
        let older = unsettled.is_some_and(|(t, _)| reached.is_none_or(|r| r < t));
        let time = p.get("event_time").and_then(Value::as_i64);
        if let (Some(at), Some((_, floor))) = (time, unsettled) {
            if seq > floor {
                let newest = reached.map_or(at, |r| r.max(at));
                self.reached.insert(symbol.to_string(), newest);
            }
        }
        // A Socket.IO price carries its time, not a `seq`: the same time again is allowed (a
        // new leader's catch-up; several prices of one second from a source that stamps whole
        // seconds, as Twelve Data does), never an older one.
        let sio = self.sio.is_some();
        let again = |before: &u64, _: &String| sio && seq == *before;
        let seq_exempt = exempt || (sio && older);
        if let Some((before, was)) = self.last.get(symbol).filter(|_| !seq_exempt) {
            if seq <= *before && !again(before, was) {
                return Err(format!(
                    "conn {}: {symbol} seq {seq} after {before} (a seq twice or backwards)",
                    self.conn
                ));
            }
        }
        if let Some(at) = p.get("event_time").and_then(Value::as_i64) {
            let before = self.times.insert(symbol.to_string(), at);
            if before.is_some_and(|b| at < b) && !exempt && !older {
                return Err(format!(
                    "conn {}: {symbol} at exchange time {at} after {before:?} (a stale price)",
                    self.conn
                ));
            }
        }
        self.last
            .insert(symbol.to_string(), (seq, price.to_string()));
        Ok(())
    }
}
