//! The application's event channels (docs/events.md): each event gets the next `offset` of its
//! channel and is kept, with the last `EVENT_HISTORY` of the channel, under an `epoch` that
//! changes when history is lost, so a client that was away can ask for exactly what it
//! missed and learn when that is no longer possible.
//!
//! The leader's [`History`] is the one that hands out offsets (and is stored); every
//! fan-out keeps a copy fed by the same batches as its prices, so recovery is answered where
//! the client is connected, by the leader or a shard alike, without asking anyone.
//!
//! Events are not state: unlike prices they are never conflated, and each event is encoded
//! once, as the body every wire frames for its subscribers.

pub mod publish;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::rc::Rc;

use serde_json::value::RawValue;

/// One event as it travels: its channel, offset and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `events:<name>`.
    pub channel: String,
    /// Its place in the channel, from 1.
    pub offset: u64,
    /// The event's body (`channel`, `offset`, `epoch`, `event`, `data`, `ts`), framed by
    /// each subscriber's wire.
    pub encoded: Rc<str>,
}

impl Event {
    /// An event as storage keeps it. Storage written before events were kept as bodies holds
    /// the JSON wire's frame (`{"type":"event",...}`): its `type` is dropped.
    pub fn stored(channel: String, offset: u64, json: &str) -> Event {
        let body = match json.strip_prefix(r#"{"type":"event","#) {
            Some(rest) => format!("{{{rest}"),
            None => json.to_string(),
        };
        Event {
            channel,
            offset,
            encoded: body.into(),
        }
    }
}

/// Where a client says it stopped in one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The last offset it applied.
    pub offset: u64,
    /// The epoch that offset belongs to.
    pub epoch: String,
}

/// What a recovery finds.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// Everything missed, in order (possibly nothing).
    Replay(Vec<Event>),
    /// Some of what was missed is no longer kept, or the epoch changed.
    Lost,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Log {
    /// The highest offset of the channel so far.
    top: u64,
    kept: VecDeque<Event>,
}

/// Recent events of every channel under one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    epoch: String,
    cap: usize,
    logs: BTreeMap<String, Log>,
}

impl History {
    /// An empty history keeping `cap` events per channel.
    pub fn new(epoch: String, cap: usize) -> History {
        History {
            epoch,
            cap: cap.max(1),
            logs: BTreeMap::new(),
        }
    }

    /// A fresh epoch from the clock and a random number: short, URL- and `Last-Event-ID`-safe
    /// (letters and digits only), and different for every loss of history.
    pub fn new_epoch(now_ms: i64, random: f64) -> String {
        let r = (random.clamp(0.0, 1.0) * 1_679_616.0) as u64; // 36^4
        format!("{}{}", base36(now_ms.max(0) as u64), base36(r))
    }

    /// The current epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Forgets everything and starts `epoch`.
    pub fn reset(&mut self, epoch: String) {
        self.epoch = epoch;
        self.logs.clear();
    }

    /// The leader's side: the next event of `channel`, encoded and kept. `data` is the
    /// publisher's JSON, embedded as it came.
    pub fn append(&mut self, channel: &str, name: &str, data: &RawValue, now_ms: i64) -> Event {
        let offset = self.logs.get(channel).map_or(0, |l| l.top) + 1;
        let mut frame = String::with_capacity(data.get().len() + channel.len() + 96);
        let _ = write!(
            frame,
            r#"{{"channel":"{channel}","offset":{offset},"epoch":"{}","event":{},"data":{},"ts":{now_ms}}}"#,
            self.epoch,
            serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into()),
            data.get()
        );
        let event = Event {
            channel: channel.to_string(),
            offset,
            encoded: frame.into(),
        };
        self.record(event.clone());
        event
    }

    /// Keeps an event newer than what the channel holds (from storage, or a fan-out's copy
    /// from a batch); returns whether it was new. An older or repeated one changes nothing,
    /// so a catch-up that overlaps what was already delivered delivers nothing twice.
    pub fn record(&mut self, event: Event) -> bool {
        let log = self.logs.entry(event.channel.clone()).or_default();
        if event.offset <= log.top {
            return false;
        }
        log.top = event.offset;
        log.kept.push_back(event);
        while log.kept.len() > self.cap {
            log.kept.pop_front();
        }
        true
    }

    /// The highest offset of `channel` (0 before its first event).
    pub fn top(&self, channel: &str) -> u64 {
        self.logs.get(channel).map_or(0, |l| l.top)
    }

    /// What a client that stopped at `since` in `channel` missed. Nothing is missed when it
    /// is at or past the top (what comes next arrives live).
    pub fn recover(&self, channel: &str, since: &Since) -> Recovery {
        if since.epoch != self.epoch {
            return Recovery::Lost;
        }
        let Some(log) = self.logs.get(channel) else {
            return if since.offset == 0 {
                Recovery::Replay(Vec::new())
            } else {
                Recovery::Lost
            };
        };
        if since.offset >= log.top {
            return Recovery::Replay(Vec::new());
        }
        let oldest = log.kept.front().map_or(log.top + 1, |e| e.offset);
        if since.offset + 1 < oldest {
            return Recovery::Lost;
        }
        let missed = log
            .kept
            .iter()
            .filter(|e| e.offset > since.offset)
            .cloned()
            .collect();
        Recovery::Replay(missed)
    }

    /// Every kept event, channel by channel in offset order (a new link's catch-up).
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.logs.values().flat_map(|l| l.kept.iter())
    }
}

fn base36(mut n: u64) -> String {
    let mut out = Vec::new();
    loop {
        out.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.iter().rev().collect()
}

#[cfg(test)]
mod tests;
