//! One client of the fan-out: its transport's delivery state ([`Carrier`]: how a change, an
//! event or a status reaches it, and what the periodic check finds), its rate limiter, its
//! identity and its subscriptions (kept in [`super::table::Clients`]).

use std::collections::BTreeSet;

use crate::core::events::Event;
use crate::core::fanout::session::{PollState, RateLimiter, SseState, WsFlow, MAX_POLL_PACKETS};
use crate::core::ids::{Identity, Transport};
use crate::core::wire::{sse, Kind, Payload, Wire};

/// An SSE stream idle this long gets a `: keepalive` comment (docs/protocol.md: at least every 15 s).
pub const KEEPALIVE_MS: i64 = 10_000;
/// A reader that has not taken pending updates for this long is warned `SLOW_CONSUMER`.
pub const SLOW_WARN_MS: i64 = 5_000;
/// ... and closed after this long (it reconnects and resumes).
pub const SLOW_CLOSE_MS: i64 = 30_000;

/// Each transport's delivery state: a WebSocket is pushed to and acknowledges; an SSE stream
/// and a long-polling session pull, so what they have not pulled yet waits here (prices
/// conflated).
#[derive(Debug, Clone, PartialEq)]
pub enum Carrier {
    /// Flow control by acknowledgement.
    WebSocket(WsFlow),
    /// The pull-based stream's pending set and events.
    Sse(SseState),
    /// An Engine.IO long-polling session's queue and pending set.
    Poll(PollState),
}

/// Where a change for one client goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Into a frame sent now (shared with every client that has the same changes).
    Send,
    /// Held for later (a WebSocket behind its window, an SSE reader busy reading).
    Held,
    /// Into a parked SSE stream: wake it.
    Wake,
}

/// Unread events an SSE stream may hold before it counts as too slow for them.
pub const MAX_QUEUED_EVENTS: usize = 256;

/// Where an event goes for one client.
#[derive(Debug, PartialEq, Eq)]
pub enum EventRoute {
    /// Into the frame sent now; `fell_behind` when that put the WebSocket over its window.
    Send {
        /// The send put it behind.
        fell_behind: bool,
    },
    /// Queued for an SSE reader busy reading.
    Held,
    /// Queued for a parked SSE stream: wake it.
    Wake,
    /// Too slow for events: close it (an SSE stream is forgotten, its response ends at its
    /// next pull).
    TooSlow,
}

/// What the periodic check found for one client.
#[derive(Debug, PartialEq, Eq)]
pub enum Tick {
    /// Nothing to do.
    Fine,
    /// Behind for [`SLOW_WARN_MS`]: warn it (an SSE stream got its warning queued).
    Warn,
    /// Behind for [`SLOW_CLOSE_MS`]: close it (an SSE stream is forgotten, its response ends
    /// at its next pull).
    Close,
    /// A parked SSE stream is due a keepalive: wake it.
    Keepalive,
}

impl Carrier {
    /// The transport kind.
    pub fn transport(&self) -> Transport {
        match self {
            Carrier::WebSocket(_) => Transport::WebSocket,
            Carrier::Sse(_) => Transport::Sse,
            Carrier::Poll(_) => Transport::Polling,
        }
    }

    /// Routes changed symbols to this client.
    pub fn change(&mut self, symbols: &[&String], now_ms: i64) -> Route {
        match self {
            Carrier::WebSocket(flow) if flow.behind_since.is_some() => {
                flow.pending.extend(symbols.iter().map(|s| (*s).clone()));
                Route::Held
            }
            Carrier::WebSocket(_) => Route::Send,
            Carrier::Sse(sse) => {
                sse.pending.extend(symbols.iter().map(|s| (*s).clone()));
                sse.pending_since.get_or_insert(now_ms);
                if sse.waiting {
                    Route::Wake
                } else {
                    Route::Held
                }
            }
            Carrier::Poll(poll) => {
                poll.pending.extend(symbols.iter().map(|s| (*s).clone()));
                if poll.waiting {
                    Route::Wake
                } else {
                    Route::Held
                }
            }
        }
    }

    /// Routes an event. Events are never conflated or skipped: a WebSocket already behind,
    /// or an SSE reader with `MAX_QUEUED_EVENTS` unread, is too slow for them.
    pub fn event(&mut self, event: &Event, now_ms: i64) -> EventRoute {
        let at = Some((event.channel.as_str(), event.offset));
        let payload = Payload::new(Kind::Event, &event.encoded);
        self.whole(payload, at, EventRoute::TooSlow, now_ms)
    }

    /// Routes a market payload: a WebSocket behind its window skips it (the next state
    /// brings it back); an SSE reader queues it, and one with `MAX_QUEUED_EVENTS` unread is
    /// too slow and ends.
    pub fn market(&mut self, payload: Payload<'_>, now_ms: i64) -> EventRoute {
        self.whole(payload, None, EventRoute::Held, now_ms)
    }

    /// A payload that is delivered whole, never merged into another: sent to a WebSocket
    /// within its window (`behind` decides for one past it), queued for an SSE stream
    /// (moving its position in an event channel to `at`).
    fn whole(
        &mut self,
        payload: Payload<'_>,
        at: Option<(&str, u64)>,
        behind: EventRoute,
        now_ms: i64,
    ) -> EventRoute {
        match self {
            Carrier::WebSocket(flow) if flow.behind_since.is_some() => behind,
            // A polling session's packets are queued where they are emitted.
            Carrier::Poll(poll) if poll.queue.len() >= MAX_POLL_PACKETS => behind,
            Carrier::Poll(_) => EventRoute::Send { fell_behind: false },
            Carrier::WebSocket(flow) => {
                // The frame's size on the wire, near enough for the flow-control window.
                let len = payload.body.len() + 24;
                let fell_behind = flow.sent(flow.mark(), len, now_ms);
                EventRoute::Send { fell_behind }
            }
            Carrier::Sse(sse) if sse.events.len() >= MAX_QUEUED_EVENTS => EventRoute::TooSlow,
            Carrier::Sse(sse) => {
                if let (Some(pos), Some((channel, offset))) = (&mut sse.events_at, at) {
                    pos.advance(channel, offset);
                }
                let id = sse.id();
                sse.events.push_back(sse::frame(payload, Some(&id)));
                if sse.waiting {
                    EventRoute::Wake
                } else {
                    EventRoute::Held
                }
            }
        }
    }

    /// Routes a status: sent to a WebSocket (queued for a polling session where it is
    /// emitted), queued as an event for an SSE stream.
    pub fn status(&mut self, payload: Payload<'_>) -> Route {
        match self {
            Carrier::WebSocket(_) | Carrier::Poll(_) => Route::Send,
            Carrier::Sse(sse) => {
                sse.events.push_back(sse::frame(payload, None));
                if sse.waiting {
                    Route::Wake
                } else {
                    Route::Held
                }
            }
        }
    }

    /// The periodic check of one client at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Tick {
        match self {
            Carrier::WebSocket(flow) => match flow.behind_since.map(|t| now_ms - t) {
                Some(ms) if ms >= SLOW_CLOSE_MS => Tick::Close,
                Some(ms) if ms >= SLOW_WARN_MS && !flow.warned => {
                    flow.warned = true;
                    Tick::Warn
                }
                _ => Tick::Fine,
            },
            Carrier::Sse(sse) => sse_tick(sse, now_ms),
            // The heartbeat ends a session that stops polling.
            Carrier::Poll(_) => Tick::Fine,
        }
    }

    /// True while the periodic check has something to watch: every SSE stream (keepalives),
    /// and a WebSocket that is behind.
    pub fn watched(&self) -> bool {
        match self {
            Carrier::WebSocket(flow) => flow.behind_since.is_some(),
            Carrier::Sse(_) => true,
            Carrier::Poll(_) => false,
        }
    }
}

/// An SSE stream is behind while updates wait and it is not parked waiting for them.
fn sse_tick(sse: &mut SseState, now_ms: i64) -> Tick {
    let behind = sse
        .pending_since
        .filter(|_| !sse.waiting)
        .map(|t| now_ms - t);
    match behind {
        Some(ms) if ms >= SLOW_CLOSE_MS => return Tick::Close,
        Some(ms) if ms >= SLOW_WARN_MS && !sse.warned => {
            sse.warned = true;
            let warning = Payload::new(Kind::Warning, SSE_SLOW_WARNING);
            sse.events.push_back(sse::frame(warning, None));
            return Tick::Warn;
        }
        _ => {}
    }
    if now_ms - sse.last_sent >= KEEPALIVE_MS {
        sse.keepalive_due = true;
        if sse.waiting {
            return Tick::Keepalive;
        }
        // It has not come back for more in a keepalive's interval: its reader stopped (or
        // a proxy holds the stream open without reading). The keepalive it cannot take is
        // pending like an update, so a quiet stream is closed as a slow one is, instead of
        // lingering for ever.
        sse.pending_since.get_or_insert(now_ms);
    }
    Tick::Fine
}

/// The `SLOW_CONSUMER` warning an SSE reader gets.
const SSE_SLOW_WARNING: &str = r#"{"code":"SLOW_CONSUMER","message":"you are not reading fast enough; you get the newest value of each symbol, and the stream closes if this goes on"}"#;

/// One client.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// How its frames are framed.
    pub wire: Wire,
    /// Its transport's delivery state.
    pub carrier: Carrier,
    /// Its message rate limiter.
    pub limiter: RateLimiter,
    /// (Socket.IO) Its upgrade presented no valid token: its `CONNECT` must.
    pub needs_auth: bool,
    /// (Socket.IO) When the pong to the last ping is due, while it has not come, and the
    /// flow-control mark of what was sent before that ping (the pong settles it).
    pub pong_due: Option<(i64, u64)>,
    /// When the last price frame went out to it (the flush pacer's crowding measure).
    pub last_price_at: Option<i64>,
    /// Whose connection it is (with `JWT_SECRET`).
    pub who: Option<Identity>,
    /// Its attachment outgrew the socket's and is kept in the object's storage.
    pub stored: bool,
    /// Per event channel, the offset it resumed from where this object's copy of the
    /// history had not got to yet (its link lags the one the client came from): events up
    /// to it are not sent again. Gone once an event past it comes.
    pub floors: Vec<(String, u64)>,
    pub(super) subs: BTreeSet<String>,
}

impl Client {
    /// True when it listens to a symbol or a market channel (what the feed's interest
    /// follows; event channels are not the upstream's business).
    pub fn has_subscriptions(&self) -> bool {
        self.subs
            .iter()
            .any(|k| crate::core::channel::from_upstream(k))
    }

    /// True when an event of `channel` at `offset` is one it had (see [`Client::floors`]);
    /// an event past its floor lifts it.
    pub fn had(&mut self, channel: &str, offset: u64) -> bool {
        let Some(i) = self.floors.iter().position(|(c, _)| c == channel) else {
            return false;
        };
        if self
            .floors
            .get(i)
            .is_some_and(|(_, floor)| offset <= *floor)
        {
            return true;
        }
        self.floors.swap_remove(i);
        false
    }

    /// True for an SSE stream.
    pub fn is_sse(&self) -> bool {
        self.carrier.transport() == Transport::Sse
    }

    pub(super) fn new(wire: Wire, rate: u32, now_ms: i64) -> Client {
        let carrier = match wire.transport() {
            Transport::WebSocket => Carrier::WebSocket(WsFlow::default()),
            Transport::Sse => Carrier::Sse(SseState {
                last_sent: now_ms,
                ..SseState::default()
            }),
            Transport::Polling => Carrier::Poll(PollState::default()),
        };
        Client {
            wire,
            carrier,
            limiter: RateLimiter::new(rate, now_ms),
            needs_auth: false,
            pong_due: None,
            last_price_at: None,
            who: None,
            stored: false,
            floors: Vec::new(),
            subs: BTreeSet::new(),
        }
    }
}
