//! The pure core: every decision edgetick makes, with no I/O, no clock and no randomness.
//!
//! Nothing here imports `worker`, `js_sys` or `wasm_bindgen`; it builds and tests natively.
//!
//! # Layout
//!
//! Two halves and the narrow interface between them:
//! - [`feed`] — the upstream [`feed::link`], the price [`feed::cache`] with `seq`, and their
//!   persistence: Binance frames in, [`batch::Batch`]es of encoded changes out.
//! - [`fanout`] — every client: the client table, flush pacing, flow control, SSE streams
//!   and protocol commands: batches in, frames out.
//! - [`batch`] — what crosses from the feed to the fan-out, in-process or over the link to a
//!   fan-out shard.
//! - [`hub`] — the leader object: the feed, its own clients, and its [`shards`].
//! - [`shard`] — a fan-out shard: a fan-out fed over its link to the leader; [`node`] is
//!   either object as the edge drives it.
//!
//! - [`events`] — the application's event channels: history with `offset` and `epoch`
//!   (the leader's, and each fan-out's copy for recovery) and the publish API's checks;
//!   [`channel`] names what a client can follow.
//!
//! Shared by both: [`protocol`] (frames and commands), [`effect`] (what the edge carries
//! out), [`report`] and [`metrics`] (`/health`, `/metrics`), [`request`] (the Worker's
//! routing), [`rest`], [`config`], [`symbol`], [`price`], [`error`], [`fastmap`],
//! [`backoff`].

pub mod auth;
pub mod backoff;
pub mod batch;
pub mod channel;
pub mod config;
pub mod cursor;
pub mod effect;
pub mod error;
pub mod events;
pub mod fanout;
pub mod fastmap;
pub mod feed;
pub mod histogram;
pub mod host;
pub mod hub;
pub mod ids;
pub mod input;
pub mod market;
pub mod metrics;
pub mod node;
pub mod price;
pub mod protocol;
pub mod report;
pub mod request;
pub mod rest;
pub mod shard;
pub mod symbol;
pub mod text;
pub mod tree;
pub mod upstream_state;
pub mod wire;
