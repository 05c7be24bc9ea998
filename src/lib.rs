//! edgetick: live market prices for any number of browsers, served from the edge.
//!
//! # Layout
//!
//! - [`core`] — the pure core. The feed ([`core::feed`]: the upstream link, the price cache
//!   with `seq`, TTL and freshness) follows an upstream through the [`core::feed::source::Source`]
//!   seam and hands the fan-out ([`core::fanout`]: clients, flushes, flow control, SSE)
//!   batches of payloads ([`core::batch`]), which each client protocol frames through the
//!   [`core::wire::Wire`] seam; the hub ([`core::hub`]) composes them, and with fan-out shards
//!   ([`core::shard`]) the fan-out runs in other objects fed over a link. Inputs come in as
//!   data ([`core::input`]) and turn into [`core::effect::Effect`]s. Channels ride the same
//!   batches: market channels ([`core::market`]) from the feed, the application's events with
//!   their history ([`core::events`]) from the publish API, private ones guarded by
//!   [`core::auth`]. Time and randomness come in as arguments; `cargo test` runs it natively.
//! - `edge` (wasm32 only) — the thin layer facing workerd: the stateless Worker router, the
//!   `PriceHub` Durable Object (the single leader holding the upstream WebSocket), the
//!   `FanoutShard` objects, SQLite storage and alarms. It translates events into core inputs
//!   and carries out the effects; it decides nothing.
//!
//! Every file, and what a new source or a new wire touches: docs/layout.md.
//!
//! The Binance-compatible fake exchange used by tests and the offline demo lives in the
//! `fake-exchange/` workspace member and is never compiled into the worker.

pub mod core;

/// The deterministic simulation of the tree (a test target: `make test` runs its fixed seeds,
/// `make sim SEEDS=…` as many as asked).
#[cfg(test)]
mod sim;

#[cfg(target_arch = "wasm32")]
mod edge;
