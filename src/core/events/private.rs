//! The bound on the history of private channels. Each user's channel keeps its last
//! `EVENT_HISTORY` events like any other, but users are many: all private channels together
//! keep at most `PRIVATE_HISTORY_EVENTS` events and `PRIVATE_HISTORY_BYTES` bytes, the oldest
//! (by arrival, whichever user's) evicted first. A channel whose last kept event goes is
//! forgotten whole; its offsets must still never repeat, so every private channel created
//! from then on starts above a floor: the highest offset any forgotten channel reached.

use std::collections::VecDeque;

/// What private channels keep together, and in which order they took it.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivateBound {
    max_events: usize,
    max_bytes: usize,
    events: usize,
    bytes: usize,
    /// Every private event taken (its arrival number and channel), oldest first; an entry
    /// whose event the channel's own cap has dropped since is stale, skipped on the way.
    order: VecDeque<(u64, String)>,
    /// The highest offset of any private channel forgotten so far.
    floor: u64,
}

impl PrivateBound {
    /// At most `max_events` events and `max_bytes` bytes together.
    pub fn new(max_events: usize, max_bytes: usize) -> PrivateBound {
        PrivateBound {
            max_events: max_events.max(1),
            max_bytes,
            events: 0,
            bytes: 0,
            order: VecDeque::new(),
            floor: 0,
        }
    }

    /// Forgets what is kept (a new epoch); the floor stays (offsets never go back).
    pub fn clear(&mut self) {
        self.events = 0;
        self.bytes = 0;
        self.order.clear();
    }

    /// An event of `bytes` of `channel` is kept, the `arrival`-th the history took.
    pub fn add(&mut self, channel: &str, bytes: usize, arrival: u64) {
        self.events += 1;
        self.bytes += bytes;
        self.order.push_back((arrival, channel.to_string()));
    }

    /// An event of `bytes` is no longer kept.
    pub fn remove(&mut self, bytes: usize) {
        self.events -= 1;
        self.bytes -= bytes;
    }

    /// True while more is kept than the bound allows.
    pub fn over(&self) -> bool {
        self.events > self.max_events || self.bytes > self.max_bytes
    }

    /// The oldest entry of the order, unless it is `newest`'s or later (what just arrived
    /// is never evicted); it may be stale.
    pub fn pop_oldest(&mut self, newest: u64) -> Option<(u64, String)> {
        let (arrival, _) = self.order.front()?;
        if *arrival >= newest {
            return None;
        }
        self.order.pop_front()
    }

    /// Drops stale entries (`live` says which are not) once they outnumber the live ones, so
    /// the order stays within twice what is kept.
    pub fn compact(&mut self, live: impl Fn(u64, &str) -> bool) {
        if self.order.len() > 2 * self.events + 64 {
            self.order
                .retain(|(arrival, channel)| live(*arrival, channel));
        }
    }

    /// The offset private channels created from now on start above.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Raises the floor (to a forgotten channel's top, or to one taken back from storage).
    pub fn raise_floor(&mut self, floor: u64) {
        self.floor = self.floor.max(floor);
    }

    /// Events and bytes kept together, and the entries of the order (live and stale).
    pub fn kept(&self) -> (usize, usize, usize) {
        (self.events, self.bytes, self.order.len())
    }
}
