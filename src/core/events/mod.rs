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
//! once, as the body every wire frames for its subscribers. Private channels are as many as
//! users, so what they keep together is bounded too ([`private`]).

pub mod private;
pub mod publish;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::rc::Rc;

use serde_json::value::RawValue;

use crate::core::channel::USER;
use private::PrivateBound;

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
    /// The kept events, oldest first, each with its arrival number (the order in which the
    /// history took events of every channel, which the private channels' bound evicts by).
    kept: VecDeque<(u64, Event)>,
}

/// Recent events of every channel under one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    epoch: String,
    cap: usize,
    logs: BTreeMap<String, Log>,
    /// Events taken so far (each one's arrival number).
    arrivals: u64,
    /// The bound on what private channels keep, all users together.
    private: PrivateBound,
    /// What the last append evicted.
    evicted: Vec<(String, u64)>,
}

impl History {
    /// An empty history keeping `cap` events per channel (and, until
    /// [`History::bound_private`] says otherwise, no bound on private channels together).
    pub fn new(epoch: String, cap: usize) -> History {
        History {
            epoch,
            cap: cap.max(1),
            logs: BTreeMap::new(),
            arrivals: 0,
            private: PrivateBound::new(usize::MAX, usize::MAX),
            evicted: Vec::new(),
        }
    }

    /// Bounds what every private channel keeps together: at most `events` events and
    /// `bytes` bytes of them, the oldest evicted first.
    pub fn bound_private(mut self, events: usize, bytes: usize) -> History {
        self.private = PrivateBound::new(events, bytes);
        self
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
        self.private.clear();
    }

    /// The leader's side: the next event of `channel`, encoded and kept (what the private
    /// channels' bound evicted to make room is then in [`History::take_evicted`]). `data` is
    /// the publisher's JSON, embedded as it came.
    pub fn append(&mut self, channel: &str, name: &str, data: &RawValue, now_ms: i64) -> Event {
        let offset = self.top(channel) + 1;
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
        self.evicted = self.keep(event.clone()).unwrap_or_default();
        event
    }

    /// What the last [`History::append`] evicted from private channels: each channel with
    /// the offset it was evicted through, for storage to forget too.
    pub fn take_evicted(&mut self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.evicted)
    }

    /// Keeps an event newer than what the channel holds (from storage, or a fan-out's copy
    /// from a batch); returns whether it was new. An older or repeated one changes nothing,
    /// so a catch-up that overlaps what was already delivered delivers nothing twice.
    pub fn record(&mut self, event: Event) -> bool {
        self.keep(event).is_some()
    }

    /// [`History::record`], returning what the private bound evicted (`None`: not new).
    fn keep(&mut self, event: Event) -> Option<Vec<(String, u64)>> {
        let private = event.channel.starts_with(USER);
        let log = self.logs.entry(event.channel.clone()).or_default();
        if event.offset <= log.top {
            return None;
        }
        self.arrivals += 1;
        let arrival = self.arrivals;
        log.top = event.offset;
        if private {
            self.private
                .add(&event.channel, event.encoded.len(), arrival);
        }
        log.kept.push_back((arrival, event));
        while log.kept.len() > self.cap {
            if let Some((_, e)) = log.kept.pop_front() {
                if private {
                    self.private.remove(e.encoded.len());
                }
            }
        }
        Some(self.evict_private(arrival))
    }

    /// Evicts the oldest private events while over their bound, never the one that just
    /// arrived (`newest`); returns each channel evicted from with the offset it was evicted
    /// through. A channel left with nothing is forgotten, its top raising the floor.
    fn evict_private(&mut self, newest: u64) -> Vec<(String, u64)> {
        let mut evicted: Vec<(String, u64)> = Vec::new();
        while self.private.over() {
            let Some((arrival, channel)) = self.private.pop_oldest(newest) else {
                break;
            };
            let Some(log) = self.logs.get_mut(&channel) else {
                continue;
            };
            // Older entries of a channel went first, so a live one is its oldest kept.
            if log.kept.front().map(|k| k.0) != Some(arrival) {
                continue;
            }
            let Some((_, event)) = log.kept.pop_front() else {
                continue;
            };
            self.private.remove(event.encoded.len());
            match evicted.last_mut() {
                Some((c, through)) if *c == channel => *through = event.offset,
                _ => evicted.push((channel.clone(), event.offset)),
            }
            if log.kept.is_empty() {
                self.private.raise_floor(log.top);
                self.logs.remove(&channel);
            }
        }
        let logs = &self.logs;
        self.private.compact(|arrival, channel| {
            logs.get(channel)
                .and_then(|l| l.kept.front())
                .is_some_and(|(oldest, _)| *oldest <= arrival)
        });
        evicted
    }

    /// The highest offset of `channel` (0 before its first event; for a private channel
    /// forgotten by the bound, the floor every private channel starts above).
    pub fn top(&self, channel: &str) -> u64 {
        match self.logs.get(channel) {
            Some(l) => l.top,
            None if channel.starts_with(USER) => self.private.floor(),
            None => 0,
        }
    }

    /// The offset every private channel created from now on starts above (stored by the
    /// leader, so a channel forgotten and written again never reuses an offset).
    pub fn private_floor(&self) -> u64 {
        self.private.floor()
    }

    /// Takes back the stored floor of private channels.
    pub fn restore_private_floor(&mut self, floor: u64) {
        self.private.raise_floor(floor);
    }

    /// What a client that stopped at `since` in `channel` missed. Nothing is missed when it
    /// is at or past the top (what comes next arrives live).
    pub fn recover(&self, channel: &str, since: &Since) -> Recovery {
        if since.epoch != self.epoch {
            return Recovery::Lost;
        }
        let Some(log) = self.logs.get(channel) else {
            // Nothing kept of a public channel: it was never written, or this copy has not
            // got its events yet (the client came from an object whose link is further on;
            // they come, and the ones it had are not sent to it again). Nothing is lost: a
            // public channel is never forgotten whole, and a wiped history has a new epoch.
            // A private channel may have been forgotten whole by the bound, and a copy that
            // linked later cannot tell, so its answer is `Lost`.
            return if !channel.starts_with(USER) {
                Recovery::Replay(Vec::new())
            } else {
                Recovery::Lost
            };
        };
        if since.offset >= log.top {
            return Recovery::Replay(Vec::new());
        }
        let oldest = log.kept.front().map_or(log.top + 1, |(_, e)| e.offset);
        if since.offset + 1 < oldest {
            return Recovery::Lost;
        }
        let missed = log
            .kept
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.offset > since.offset)
            .cloned()
            .collect();
        Recovery::Replay(missed)
    }

    /// Every kept event in the order it arrived (so in offset order per channel): a new
    /// link's catch-up, after which a fan-out's copy evicts private events as this one does.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        let mut all: Vec<&(u64, Event)> = self.logs.values().flat_map(|l| &l.kept).collect();
        all.sort_unstable_by_key(|(arrival, _)| *arrival);
        all.into_iter().map(|(_, e)| e)
    }

    /// The most events any one channel keeps (at most the configured history, a bound the
    /// simulation checks).
    pub fn longest(&self) -> usize {
        self.logs.values().map(|l| l.kept.len()).max().unwrap_or(0)
    }

    /// Events and bytes the private channels keep together, and the entries of their
    /// eviction order.
    pub fn private_kept(&self) -> (usize, usize, usize) {
        self.private.kept()
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
