//! The thin edge (wasm32 only): translates workerd events into core inputs and carries out
//! the core's effects. It makes no decisions of its own.
//!
//! - [`entry`]: the stateless Worker's `fetch`, run in every isolate: reads a request once
//!   ([`read`]) and hands a WebSocket upgrade to its object; [`router`] its other routes,
//!   [`edge_cache`] its REST cache, [`objects`] the objects it reaches.
//! - [`hub_do`]: the `PriceHub` Durable Object, the single leader; [`shared`] its state and
//!   client table, [`effects`] the effects it carries out, [`sse`] its SSE bodies,
//!   [`restore`] what it takes back when it is created again.
//! - [`boot`]: how either kind of object starts.
//! - [`shard_do`]: the `FanoutShard` Durable Objects carrying the clients when
//!   `FANOUT_SHARDS` > 0; [`links`] the links between them and the leader.
//! - [`accept`]: a client's WebSocket upgrade; [`polling`] Engine.IO's long-polling
//!   requests and the WebSocket that upgrades them.
//! - [`glue`]: the runtime's methods of both kinds of object; [`sockets`]: client socket
//!   events, the same for both.
//! - [`send`]: one JS string handed to many sockets.
//! - [`faults`]: the test faults of `TEST_FAULTS=on`.
//! - [`upstream`]: the outbound WebSocket to the exchange ([`listeners`] hands its frames to
//!   the leader); [`history`] the REST requests
//!   of the candle history and the `/api/candles` reads.
//! - [`storage`]: SQLite persistence of the latest prices, the `seq` high-water mark and the
//!   event history, [`candle_store`] the candle history; [`persist`] carries the core's
//!   storage effects out against them; [`attachments`] the socket attachments that outgrew
//!   a socket (in every object).
//! - [`http`]: JSON responses and the one mapping from [`crate::core::error::ApiError`].
//! - [`env`]: configuration, clock, randomness and logging from the runtime.

mod accept;
mod attachments;
mod boot;
mod candle_store;
mod edge_cache;
mod effects;
mod entry;
mod env;
mod faults;
mod glue;
mod history;
mod http;
pub mod hub_do;
mod links;
mod listeners;
mod objects;
mod persist;
mod polling;
mod read;
mod restore;
mod router;
mod send;
pub mod shard_do;
mod shared;
mod sockets;
mod sse;
mod storage;
mod timer;
mod upstream;
