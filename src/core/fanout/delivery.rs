//! Event channels in the fan-out: each event once, in offset order, to every subscriber,
//! and a returning client's recovery from this fan-out's copy of the history.

use std::collections::BTreeMap;

use super::clients::EventRoute;
use super::{Carrier, Fanout};
use crate::core::batch::Batch;
use crate::core::effect::Effect;
use crate::core::events::{Event, Recovery, Since};
use crate::core::ids::ConnId;
use crate::core::protocol::close;
use crate::core::wire::{Kind, Payload, Wire};

impl Fanout {
    /// Takes the batch's epoch (a new one means history was lost: the copy starts over) and
    /// keeps its events; with `deliver`, each one not seen before goes to its subscribers.
    pub(super) fn apply_events(
        &mut self,
        batch: &Batch,
        deliver: bool,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(epoch) = &batch.epoch {
            if epoch != self.history.epoch() {
                self.history.reset(epoch.clone());
            }
        }
        for event in &batch.events {
            if self.history.record(event.clone()) && deliver {
                self.deliver(event, now_ms, fx);
            }
        }
    }

    /// One event to every subscriber of its channel: one frame for every WebSocket that
    /// keeps up, queued for SSE streams; the too slow are closed 4009 (they recover from
    /// history when they return).
    fn deliver(&mut self, event: &Event, now_ms: i64, fx: &mut Vec<Effect>) {
        let payload = Payload::new(Kind::Event, &event.encoded);
        let route = |c: &mut Carrier, now: i64| c.event(event, now);
        let at = Some(event.offset);
        let slow = self.deliver_whole(&event.channel, at, payload, route, now_ms, fx);
        let mut wake = Vec::new();
        for conn in slow {
            self.stats.slow_consumer_closes += 1;
            if self.clients.get_mut(conn).is_some_and(|c| c.is_sse()) {
                wake.push(conn);
            } else {
                let why = "too slow for an event channel";
                self.close_client(conn, close::SLOW_CONSUMER, why, now_ms, fx);
            }
        }
        self.end_streams(wake, now_ms, fx);
    }

    /// A payload delivered whole to every subscriber of `channel` (an event, a market
    /// frame), each client routing it its own way (`route`): one frame per wire, shared by
    /// every pushed-to client of that wire, and a wake for the SSE readers it was queued
    /// for; an event (`offset`) skips the clients that had it. Returns the clients too slow
    /// for it, for the caller to deal with.
    pub(super) fn deliver_whole(
        &mut self,
        channel: &str,
        offset: Option<u64>,
        payload: Payload<'_>,
        route: impl Fn(&mut Carrier, i64) -> EventRoute,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) -> Vec<ConnId> {
        let subscribers: Vec<ConnId> = self.clients.subscribers(channel).collect();
        let mut pushed: BTreeMap<Wire, Vec<ConnId>> = BTreeMap::new();
        let (mut wake, mut slow) = (Vec::new(), Vec::new());
        let mut fell_behind = false;
        for conn in subscribers {
            let Some(client) = self.clients.get_mut(conn) else {
                continue;
            };
            if offset.is_some_and(|o| client.had(channel, o)) {
                continue;
            }
            match route(&mut client.carrier, now_ms) {
                EventRoute::Send { fell_behind: f } => {
                    fell_behind |= f;
                    pushed.entry(client.wire).or_default().push(conn);
                }
                EventRoute::Wake => wake.push(conn),
                EventRoute::Held => {}
                EventRoute::TooSlow => slow.push(conn),
            }
        }
        if fell_behind {
            self.watch(now_ms);
        }
        self.push_per_wire(pushed, payload, fx);
        if !wake.is_empty() {
            fx.push(Effect::SseWake { conns: wake });
        }
        slow
    }

    /// What a subscriber of `channels` missed since the positions in `since`, in order;
    /// `None` when no position was given, `Some(false)` when any of it is lost.
    pub(super) fn recover(
        &self,
        channels: &[String],
        since: &[(String, Since)],
    ) -> (Option<bool>, Vec<Event>) {
        let mut recovered = None;
        let mut frames = Vec::new();
        for (channel, at) in since {
            if !channels.contains(channel) {
                continue;
            }
            match self.history.recover(channel, at) {
                Recovery::Replay(missed) => {
                    recovered.get_or_insert(true);
                    frames.extend(missed);
                }
                Recovery::Lost => recovered = Some(false),
            }
        }
        (recovered, frames)
    }

    /// Where a client that resumes `since` positions is ahead of this copy of the history
    /// (it came from an object whose link is further on), the events up to its position are
    /// not sent to it again when they arrive here.
    pub(super) fn keep_floors(&mut self, conn: ConnId, since: &[(String, Since)]) {
        let ahead: Vec<(String, u64)> = since
            .iter()
            .filter(|(c, at)| at.epoch == self.history.epoch() && at.offset > self.history.top(c))
            .map(|(c, at)| (c.clone(), at.offset))
            .collect();
        if let Some(client) = self.clients.get_mut(conn) {
            client
                .floors
                .retain(|(c, _)| !ahead.iter().any(|(a, _)| a == c));
            client.floors.extend(ahead);
        }
    }

    /// The events' epoch this fan-out knows.
    pub fn epoch(&self) -> &str {
        self.history.epoch()
    }
}
