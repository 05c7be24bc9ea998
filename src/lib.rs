//! edgetick: live market prices for any number of browsers, served from the edge.
//!
//! # Layout
//!
//! - [`core`] — the pure core. Parses Binance frames ([`core::upstream`]) and client
//!   commands ([`core::protocol`]), keeps subscriptions ([`core::registry`]) and the latest
//!   price per symbol with `seq`, TTL and freshness ([`core::cache`]), and runs the hub state
//!   machine ([`core::hub`]) that turns inputs into [`core::hub::Effect`]s. Time and randomness
//!   come in as arguments; `cargo test` runs it natively.
//! - `edge` (wasm32 only) — the thin layer facing workerd: the stateless Worker router, the
//!   `PriceHub` Durable Object (the single leader holding the one upstream WebSocket), its
//!   SQLite storage and alarms. It translates events into core inputs and carries out the
//!   effects; it decides nothing.
//!
//! The Binance-compatible fake exchange used by tests and the offline demo lives in the
//! `fake-exchange/` workspace member and is never compiled into the worker.

pub mod core;

#[cfg(target_arch = "wasm32")]
mod edge;
