//! Deterministic simulation of the tree (docs/testing.md#the-simulation): the leader, its
//! shards, JSON WebSocket, Socket.IO (over WebSocket and, on some seeds, long-polling) and
//! SSE clients, the exchange and (on those seeds) Twelve Data as a second source run in
//! virtual time from one seed, through random faults (link breaks, delays, restarts with
//! hibernated sockets, upstream drops, stalls and garbage, clock jumps, the leader out of
//! the shards' reach for a minute, expiring tokens), with the invariants checked after every
//! step and, after a quiet end, every client's last value compared with the source's. A
//! failing seed prints the one command that replays it.
//!
//! # Layout
//! [`rng`] the seeded randomness; [`world`] the objects, the network and time; [`faults`]
//! restarts, broken links and the exchange's faults; [`io`] what clients do and get;
//! [`streams`] SSE streams (and their resumption); [`invariants`] what is checked after
//! every step beyond each frame; [`clients`] the clients and the per-frame checks,
//! [`socketio`] a Socket.IO client's packets, [`sio`] its state, [`polling`] the
//! long-polling sessions' GETs and POSTs and [`upgrade`] their upgrade to a WebSocket;
//! [`twelve`] Twelve Data's side and [`twelve_io`] what it does; [`markets`] the market
//! channels' checks and [`market_io`] the exchange's trades, books and candles; [`storage`]
//! the leader's storage; this module the scenario: the configuration a seed draws, the
//! actions, the quiet end and the final check.

mod clients;
mod faults;
mod invariants;
mod io;
mod market_io;
mod markets;
mod polling;
mod rng;
mod sio;
mod socketio;
mod storage;
mod streams;
mod twelve;
mod twelve_io;
mod upgrade;
mod world;

use std::collections::HashMap;

use crate::core::config::Config;
use crate::core::ids::{ShardId, SourceId};
use world::World;

/// Event channels enough, with names long enough, that a client holding many of them
/// outgrows a socket's attachment (kept in storage then).
const DESKS: usize = 60;

fn desk(n: usize) -> String {
    format!("events:signals-of-the-trading-desk-{n:02}")
}

/// User `u`'s private channel of desk `n`.
fn private_desk(u: &str, n: usize) -> String {
    format!("user:{u}:{}", &desk(n)["events:".len()..])
}

/// The configuration a seed runs: 0 to 3 shards, a flush window or none, JWTs (with
/// private channels and expiring tokens) or no tokens.
fn config(w_seed: u64) -> Config {
    let shards = (w_seed % 4).to_string();
    let flush = if w_seed.is_multiple_of(3) { "0" } else { "5" };
    let jwt = (w_seed / 4) % 2 == 1;
    let desks: Vec<String> = (0..DESKS)
        .map(|n| desk(n)["events:".len()..].to_string())
        .collect();
    let desks = desks.join(",");
    let map: HashMap<&str, &str> = [
        ("SYMBOLS", "BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT"),
        ("UPSTREAM_URL", "ws://sim.invalid/stream"),
        ("FANOUT_SHARDS", shards.as_str()),
        ("FLUSH_MS", flush),
        ("CLIENT_MESSAGES_PER_SECOND", "1000"),
        ("EVENT_CHANNELS", desks.as_str()),
        ("PUBLISH_PER_SECOND", "10000"),
        ("PRIVATE_HISTORY_EVENTS", "40"),
        ("EVENT_HISTORY", "8"),
    ]
    .into_iter()
    .chain(jwt.then_some(("JWT_SECRET", "sim-secret-of-at-least-32-bytes-long")))
    .chain(
        twelve::variables()
            .into_iter()
            .filter(|_| twelve::with_twelve_data(w_seed)),
    )
    .collect();
    Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).unwrap_or_else(|e| panic!("{e}"))
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Clients opened.
    pub clients: usize,
    /// Frames the clients received.
    pub frames: u64,
}

/// One random action.
fn act(w: &mut World) {
    let symbols = w.symbols();
    let symbol = symbols[w.rng.below(symbols.len())].clone();
    let open: Vec<usize> = (0..w.clients.len())
        .filter(|i| w.clients[*i].open)
        .collect();
    let pick = |w: &mut World| open.get(w.rng.below(open.len())).copied();
    let shards = w.shards.len();
    let roll = w.rng.below(100);
    match roll {
        0..=49 if w.with_markets() && w.rng.chance(0.3) => {
            let channel = w.any_market();
            w.market_tick(&channel);
        }
        0..=49 => w.tick(&symbol),
        50..=59 if open.len() < 40 => open_one(w, &symbol),
        60..=69 => {
            if let Some(i) = pick(w) {
                let key = key_of(w, symbol);
                w.ask(i, true, &[key]);
            }
        }
        70..=74 => {
            if let Some(i) = pick(w) {
                let key = key_of(w, symbol);
                w.ask(i, false, &[key]);
            }
        }
        75..=76 => {
            if let Some(i) = pick(w) {
                w.client_leaves(i);
            }
        }
        77 => come_back(w),
        78..=81 if shards > 0 => {
            let s = w.rng.below(shards) as ShardId;
            w.break_link(s);
        }
        82..=83 if shards > 0 => {
            let s = w.rng.below(shards) as ShardId;
            w.restart_shard(s);
        }
        84 => w.restart_leader(),
        85 => drop_upstream(w),
        86 => w.garbage(&symbol),
        87 => w.stall(),
        89 if shards > 0 && w.rng.chance(0.2) => {
            let ms = w.rng.between(30_000, 90_000);
            w.leader_out_of_reach(ms);
        }
        88..=89 => {
            let jump = w.rng.between(1_000, 15_000);
            w.advance_to(w.now + jump);
        }
        90..=99 => channels_and_streams(w, roll, &open),
        _ => {}
    }
}

/// A client opens (a Socket.IO session now and then, on some seeds long-polling half the
/// time) and subscribes to `symbol`.
fn open_one(w: &mut World, symbol: &str) {
    let i = match w.rng.below(8) {
        n @ 0..=2 if w.with_polling() && w.rng.chance(0.5) => w.open_polling(n == 2),
        0..=1 => Some(w.open_sio(false)),
        2 => Some(w.open_sio(true)),
        _ => Some(w.open_client()),
    };
    if let Some(i) = i {
        subscribe(w, i, symbol);
    }
}

/// A JSON client that left comes back and recovers its channels.
fn come_back(w: &mut World) {
    let gone: Vec<usize> = (0..w.clients.len())
        .filter(|i| w.clients[*i].may_come_back())
        .collect();
    if let Some(&i) = gone.get(w.rng.below(gone.len().max(1))) {
        if w.clients[i].sse {
            w.resume_stream(i);
        } else {
            w.come_back(i);
        }
    }
}

/// Client `i` subscribes to (or unsubscribes from) a random run of the event channels: many
/// at once outgrow its attachment, few fit again.
fn desks(w: &mut World, i: usize, subscribe: bool) {
    let from = w.rng.below(DESKS);
    let to = (from + w.rng.between(1, DESKS as i64) as usize).min(DESKS);
    // With a JWT, now and then its own private channels, rarely another user's (refused).
    let own = w.clients[i].who.as_ref().map(|who| who.sub.clone());
    let user = match own.filter(|_| w.rng.chance(0.3)) {
        Some(_) if w.rng.chance(0.1) => Some(format!("u{}", w.rng.below(world::USERS))),
        own => own,
    };
    let names: Vec<String> = match user {
        Some(u) => (from..to).map(|n| private_desk(&u, n)).collect(),
        None => (from..to).map(desk).collect(),
    };
    w.ask(i, subscribe, &names);
}

/// The actions on event channels and SSE streams: a run of channels subscribed to or left,
/// an event published, a stream opened.
fn channels_and_streams(w: &mut World, roll: usize, open: &[usize]) {
    let pick = |w: &mut World, open: &[usize]| open.get(w.rng.below(open.len())).copied();
    match roll {
        90..=92 => {
            if let Some(i) = pick(w, open) {
                desks(w, i, true);
            }
        }
        93..=94 => {
            if let Some(i) = pick(w, open) {
                desks(w, i, false);
            }
        }
        95..=97 => {
            let (d, n) = (w.rng.below(DESKS), w.rng.between(0, 1_000_000) as u64);
            let channel = match w.cfg.jwt_secret.is_some() && w.rng.chance(0.4) {
                true => private_desk(&format!("u{}", w.rng.below(world::USERS)), d),
                false => desk(d),
            };
            publish(w, &channel, n);
        }
        _ if open.len() < 40 => {
            let mut keys: Vec<String> = w
                .symbols()
                .into_iter()
                .filter(|_| w.rng.chance(0.5))
                .collect();
            keys.extend((0..w.rng.below(3)).map(|_| desk(w.rng.below(DESKS))));
            if w.with_markets() && w.rng.chance(0.3) {
                keys.push(w.any_market());
            }
            let who = w.identity();
            if let Some(who) = who.as_ref().filter(|_| w.rng.chance(0.5)) {
                keys.push(private_desk(&who.sub, w.rng.below(DESKS)));
            }
            keys.sort();
            keys.dedup();
            if !keys.is_empty() {
                w.ask_stream(keys, who, None);
            }
        }
        _ => {}
    }
}

/// The publisher sends event `n` to `channel`; the answer's offset is the channel's top.
fn publish(w: &mut World, channel: &str, n: u64) {
    w.trace(|| format!("publish {n} to {channel}"));
    let body = format!(r#"{{"channel":"{channel}","event":"e","data":{{"n":{n}}}}}"#);
    match w.leader.publish(&body, w.now) {
        Ok((answer, fx)) => {
            let offset = serde_json::from_str::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v["offset"].as_u64())
                .unwrap_or(0);
            w.published.insert(channel.to_string(), offset);
            let all = w.published_all.entry(channel.to_string()).or_default();
            all.insert(offset);
            w.leader_effects(fx);
        }
        Err(e) => w
            .violations
            .push(format!("publish to {channel} refused: {e}")),
    }
}

/// What a client asks for: `symbol`, or now and then a market channel (on the seeds that
/// stream them).
fn key_of(w: &mut World, symbol: String) -> String {
    if w.with_markets() && w.rng.chance(0.3) {
        return w.any_market();
    }
    symbol
}

fn subscribe(w: &mut World, i: usize, symbol: &str) {
    w.ask(i, true, &[symbol.to_string()]);
}

/// The exchange drops the upstream connection.
fn drop_upstream(w: &mut World) {
    if w.cfg.twelvedata.is_some() && w.rng.chance(0.3) {
        return w.td_drop();
    }
    if let Some(generation) = w.exchange.conn.take() {
        w.dropped(SourceId::Neutral, generation);
    }
}

/// Runs `seed` for `steps` random steps, then a quiet end; `Err` names the first violation.
pub fn run(seed: u64, steps: usize) -> Result<Summary, String> {
    let mut w = World::new(config(seed), seed);
    for step in 0..steps {
        act(&mut w);
        let dt = w.rng.between(0, 40);
        w.advance_to(w.now + dt);
        if let Some(v) = w
            .violations
            .first()
            .cloned()
            .or_else(|| invariants::bounds(&w))
        {
            return Err(format!("step {step}: {v}"));
        }
    }
    quiet_end(&mut w)?;
    Ok(Summary {
        clients: w.clients.len(),
        frames: w.clients.iter().map(|c| c.frames).sum(),
    })
}

/// Faults stop; the tree gets time to heal (reconnects back off up to a minute) while the
/// exchange repeats its tickers every second, as Binance does; every symbol moves once more;
/// newcomers subscribe to the state channels held; then every open client must hold the
/// exchange's last price of every symbol it holds (and the last of its market channels).
fn quiet_end(w: &mut World) -> Result<(), String> {
    for _ in 0..120 {
        w.cadence();
        w.advance_to(w.now + 1_000);
    }
    for s in w.symbols() {
        w.tick(&s);
    }
    if w.with_markets() {
        for m in markets::MARKETS {
            w.market_tick(m);
        }
    }
    for _ in 0..30 {
        w.cadence();
        w.advance_to(w.now + 1_000);
    }
    w.state_newcomers();
    for _ in 0..5 {
        w.cadence();
        w.advance_to(w.now + 1_000);
    }
    if let Some(v) = w.violations.first() {
        return Err(format!("the quiet end: {v}"));
    }
    for c in w.clients.iter().filter(|c| c.open) {
        holds_the_last(w, c)?;
    }
    Ok(())
}

/// After quiet, open client `c` has every answer, is at the top of every event channel it
/// had events of, and holds the source's last value of every symbol and market channel.
fn holds_the_last(w: &World, c: &clients::SimClient) -> Result<(), String> {
    if c.pending > 0 {
        return Err(format!(
            "after quiet, conn {} on {:?} has {} commands unanswered",
            c.conn, c.holder, c.pending
        ));
    }
    for (channel, last) in &c.offsets {
        let top = w.published.get(channel).copied().unwrap_or(0);
        if *last != top {
            return Err(format!(
                "after quiet, conn {} on {:?} is at {channel} offset {last}, its top is {top}",
                c.conn, c.holder
            ));
        }
    }
    for market in c
        .channels
        .iter()
        .filter(|ch| markets::MARKETS.contains(&ch.as_str()))
    {
        let (want, got) = (w.exchange.markets.get(market), c.seen.get(market));
        if want != got {
            return Err(format!(
                "after quiet, conn {} on {:?} holds {market} at {got:?}, the exchange at {want:?}",
                c.conn, c.holder
            ));
        }
    }
    for s in &c.subs {
        let want = w.exchange.prices.get(s).map(|p| p.0.as_str());
        let got = c.last.get(s).map(|p| p.1.as_str());
        // `/` sends prices as JSON numbers: the same number, however written.
        let number = |p: Option<&str>| p.and_then(|p| p.parse::<f64>().ok());
        let root = c.sio.as_ref().is_some_and(|s| s.root);
        if want != got && !(root && number(want).is_some() && number(want) == number(got)) {
            return Err(format!(
                "after quiet, conn {} on {:?} holds {s} at {got:?}, the exchange at {want:?}",
                c.conn, c.holder
            ));
        }
    }
    Ok(())
}

/// The command that replays `seed`, step by step.
pub fn replay_command(seed: u64) -> String {
    format!("make sim SEED={seed} TRACE=1")
}

/// The seed of `SIM_SEED`, or the seeds of `SIM_SEEDS` (`N`: 1 to N; `A-B`; `A,B,C`), or
/// `default` seeds.
fn seeds(default: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return vec![seed];
    }
    let Ok(spec) = std::env::var("SIM_SEEDS") else {
        return default.collect();
    };
    if let Some((a, b)) = spec.split_once('-') {
        let (a, b) = (a.trim().parse().unwrap_or(1), b.trim().parse().unwrap_or(1));
        return (a..=b).collect();
    }
    if spec.contains(',') {
        return spec
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
    }
    spec.trim()
        .parse()
        .map(|n: u64| (1..=n).collect())
        .unwrap_or_default()
}

fn run_all(list: &[u64], steps: usize) {
    let mut failed = Vec::new();
    for &seed in list {
        if let Err(why) = run(seed, steps) {
            eprintln!(
                "sim: seed {seed} failed: {why}\n  replay: {}",
                replay_command(seed)
            );
            failed.push(seed);
        }
    }
    assert!(
        failed.is_empty(),
        "sim: {} of {} seeds failed: {failed:?}",
        failed.len(),
        list.len()
    );
}

#[test]
fn fixed_seeds_find_no_violation() {
    run_all(&seeds(1..=200), 400);
}

/// Seeds that found a bug while the simulation was built, kept as regressions (each one
/// failed before its fix):
/// - 5: a subscribe held while a shard's link was down got the symbol in its snapshot and
///   again in the catch-up of the same relink (a `seq` twice);
/// - 10: a shard created again with surviving sockets did not link to the leader until one
///   of its clients spoke: its clients got nothing;
/// - 303: a shard whose link closed with no client left kept its timer due in the past (a
///   busy loop);
/// - 707: a restarted leader took its stored prices back without the order of their
///   streams, so a stale frame from the exchange took the latest price's place;
/// - 3930: a client that came back `since` an offset its new shard had not got yet was told
///   `recovered:false`, then got the event it had again when it arrived;
/// - 14770: an SSE stream that resumed at a shard behind the one it left got prices it had
///   (older than its `Last-Event-ID`) again;
/// - 54158: a stream told `recovered:false` at such a shard restarted its position at that
///   shard's top, behind where it was, so its next resumption got an event again;
/// - 8546: a long-polling session that left a symbol got the price noted for its next GET
///   while it held it, after the answer to its `unsubscribe`;
/// - 1994: a polling session's `5`, said while its shard was linking to the leader, was held
///   behind the link: the client had stopped polling, its object still counted it polling;
/// - 7785 and 61271 (the model's): a restarted leader's allowance for older prices missed a
///   symbol whose only price was a stale frame and never ended; ended when the leader had
///   the latest, it flagged older prices still on the links, and ended by a client's newest
///   price, one a shard kept from the old leader.
#[test]
fn seeds_that_found_bugs_stay_fixed() {
    run_all(
        &[5, 10, 303, 707, 1994, 3930, 7785, 8546, 14770, 54158, 61271],
        400,
    );
}

#[test]
fn the_same_seed_runs_the_same_way() {
    let a = run(7, 300).map(|s| (s.clients, s.frames));
    let b = run(7, 300).map(|s| (s.clients, s.frames));
    assert_eq!(a, b);
}
