//! The thin edge (wasm32 only): translates workerd events into core inputs and carries out
//! the core's effects. It makes no decisions of its own.
//!
//! - [`router`]: the stateless Worker, run in every isolate; [`edge_cache`] its REST cache.
//! - [`hub_do`]: the `PriceHub` Durable Object, the single leader; [`shared`] its state and
//!   client table, [`effects`] the effects it carries out, [`sse`] its SSE bodies,
//!   [`restore`] what it takes back when it is created again.
//! - [`upstream`]: the outbound WebSocket to the exchange.
//! - [`storage`]: SQLite persistence of the latest prices and the `seq` high-water mark.
//! - [`http`]: JSON responses and the one mapping from [`crate::core::error::ApiError`].
//! - [`env`]: configuration, clock, randomness and logging from the runtime.

mod edge_cache;
mod effects;
mod env;
mod http;
pub mod hub_do;
mod restore;
mod router;
mod shared;
mod sse;
mod storage;
mod upstream;
