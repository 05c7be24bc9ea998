//! The invariants the simulation checks after every step, beyond each frame's own checks
//! (in [`super::clients`]): what each object holds against what its clients were told, stored
//! attachments, Socket.IO heartbeats, token expiry, and private channels' offsets.

use super::clients::SimClient;
use super::world::World;
use crate::core::fanout::Fanout;
use crate::core::host::ClientHost;
use crate::core::ids::{Holder, ShardId};

/// How long an SSE stream whose token expired may take to end: its object wakes it, and it
/// pulls its last bytes and then its end, within a few network delays.
const SSE_END_MS: i64 = 1_000;

/// Each object holds exactly the clients that are open on it (none forgotten, none leaked),
/// each with what its answers said it holds, and keeps a stored attachment only for an open
/// client.
pub fn bounds(w: &World) -> Option<String> {
    held_clients(w)
        .or_else(|| held_keys(w))
        .or_else(|| stored_attachments(w))
        .or_else(|| pinged(w))
        .or_else(|| expired(w))
        .or_else(|| missed(w))
        .or_else(|| histories(w))
}

/// Every copy of the event history (the leader's, and each object's that carries clients)
/// keeps at most the configured events per channel, and the private channels together at
/// most their count and bytes.
fn histories(w: &World) -> Option<String> {
    let ev = &w.cfg.events;
    let (events, bytes) = ev.private_history;
    let mut copies = vec![("the leader", w.leader.history())];
    copies.push(("the leader's fan-out", w.leader.fanout().history()));
    copies.extend(w.shards.iter().map(|s| ("a shard", s.fanout().history())));
    copies.into_iter().find_map(|(name, h)| {
        let (kept, kept_bytes, _) = h.private_kept();
        let longest = h.longest();
        (longest > ev.history || kept > events || kept_bytes > bytes).then(|| {
            format!("{name} keeps {longest} events of a channel (bound {}), {kept} private events of {kept_bytes} bytes (bounds {events}, {bytes})", ev.history)
        })
    })
}

/// No client stays open past its token's expiry (an SSE stream or a polling session ends at
/// its next pull or GET, which its object wakes at once).
fn expired(w: &World) -> Option<String> {
    w.clients.iter().filter(|c| c.open).find_map(|c| {
        let exp = c.who.as_ref()?.exp_ms;
        let pull = if c.pulls() { SSE_END_MS } else { 0 };
        (exp + pull < w.now).then(|| {
            format!(
                "conn {} on {:?}: open at {}, its token expired at {exp}",
                c.conn, c.holder, w.now
            )
        })
    })
}

/// A gap in a private channel's offsets (a channel forgotten whole continues above the
/// private floor) hides no event that was published.
fn missed(w: &World) -> Option<String> {
    w.clients.iter().find_map(|c| {
        c.gaps.iter().find_map(|(channel, last, next)| {
            let all = w.published_all.get(channel)?;
            let lost = all.range(last + 1..*next).next()?;
            Some(format!(
                "conn {}: {channel} offset {next} after {last}, {lost} was published (missed)",
                c.conn
            ))
        })
    })
}

/// Every open Socket.IO session heard a ping within the interval and timeout the handshake
/// told it (a stock client gives up on a server silent for longer).
fn pinged(w: &World) -> Option<String> {
    let sio = &w.cfg.socketio;
    let limit = sio.ping_interval_ms + sio.ping_timeout_ms;
    w.clients.iter().filter(|c| c.open).find_map(|c| {
        let last = c.sio.as_ref()?.last_ping;
        (w.now - last > limit).then(|| {
            format!(
                "conn {} on {:?}: no ping for {} ms (a stock client gives up after {limit})",
                c.conn,
                c.holder,
                w.now - last
            )
        })
    })
}

/// The fan-out of the object `holder`.
fn fanout_of(w: &World, holder: Holder) -> &Fanout {
    match holder {
        Holder::Leader => w.leader.fanout(),
        Holder::Shard(s) => w.shards[s as usize].fanout(),
    }
}

/// Every open client holds what its answers said (an SSE stream or polling session its
/// object ended, waiting for its next pull or GET to learn it, holds nothing).
fn held_keys(w: &World) -> Option<String> {
    w.clients
        .iter()
        .filter(|c| c.open && c.pending == 0)
        .filter(|c| !c.pulls() || fanout_of(w, c.holder).has_client(c.conn))
        .find_map(|c| {
            let held = fanout_of(w, c.holder).subscriptions(c.conn);
            let model = c.keys_held();
            (held != model).then(|| {
                format!(
                    "conn {} on {:?} holds {held:?}, its answers said {model:?}",
                    c.conn, c.holder
                )
            })
        })
}

fn stored_attachments(w: &World) -> Option<String> {
    w.stored_attachments.keys().find_map(|(holder, conn)| {
        let holder = holder.map_or(Holder::Leader, Holder::Shard);
        let open = w
            .clients
            .iter()
            .any(|c| c.open && c.holder == holder && c.conn == *conn);
        (!open).then(|| format!("a stored attachment of conn {conn} on {holder:?}, not open"))
    })
}

/// Every open client is held by its object, and nothing else is. An SSE stream (or polling
/// session) the object ended is forgotten there at once; its reader learns it at its next
/// pull (or GET), so until then it is open here and not held there. Here streams pull and
/// sessions GET whenever woken (never too slow), and sessions answer every ping, so the one
/// reason the object may end one is its token's expiry.
fn held_clients(w: &World) -> Option<String> {
    let forgotten = w.clients.iter().filter(|c| c.open && c.pulls()).find(|c| {
        let expired = c.who.as_ref().is_some_and(|who| who.exp_ms <= w.now);
        !expired && !fanout_of(w, c.holder).has_client(c.conn)
    });
    if let Some(c) = forgotten {
        return Some(format!(
            "conn {} on {:?} (SSE or polling) forgotten by its object, its token not expired",
            c.conn, c.holder
        ));
    }
    let mut fanouts = vec![(Holder::Leader, w.leader.fanout())];
    for (s, shard) in w.shards.iter().enumerate() {
        fanouts.push((Holder::Shard(s as ShardId), shard.fanout()));
    }
    fanouts.into_iter().find_map(|(holder, fanout)| {
        let on = w.clients.iter().filter(|c| c.open && c.holder == holder);
        let ws = on.clone().filter(|c| !c.sse && !c.polling()).count();
        let held = |c: &&SimClient| fanout.has_client(c.conn);
        let sse = on.clone().filter(|c| c.sse).filter(held).count();
        let polling = on.filter(|c| c.polling()).filter(held).count();
        let r = fanout.report();
        let n = (r.websocket, r.sse, r.polling);
        (n != (ws, sse, polling)).then(|| {
            format!(
                "{holder:?} holds (WebSocket, SSE, polling) {n:?}, open are {:?}",
                (ws, sse, polling)
            )
        })
    })
}
