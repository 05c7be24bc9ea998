//! The pure core: every decision edgetick makes, with no I/O, no clock and no randomness.
//!
//! Nothing here imports `worker`, `js_sys` or `wasm_bindgen`; it builds and tests natively.
//!
//! # Layout
//!
//! Modules depend one way (`make lint` checks): the leaves first, then the two halves and
//! the seams between them, then the objects that compose them.
//! - Leaves: [`ids`], [`upstream_state`], [`histogram`], [`text`], [`cursor`], [`fastmap`],
//!   [`backoff`], [`error`], [`symbol`], [`price`], [`config`], [`market`], [`channel`],
//!   [`auth`], [`events`], [`protocol`], [`input`], [`attachment`], [`effect`], [`batch`].
//! - [`wire`] — the client protocols: a payload (a kind and a body encoded once) framed by
//!   each wire (the JSON WebSocket, SSE).
//! - [`feed`] — the upstream side: its [`feed::source::Source`]s ([`feed::binance`],
//!   [`feed::twelvedata`]), a [`feed::link`] each, the price [`feed::cache`] with `seq`, their
//!   persistence; batches of payloads out.
//! - [`fanout`] — every client: the client table, flushes grouped by wire, flow control, SSE
//!   streams and commands: batches in, frames out.
//! - [`host`] — what the leader and a shard do alike for clients; [`hub`] the leader (the
//!   feed, its own clients, its [`tree`] of shards); [`shard`] a fan-out shard fed over its
//!   link; [`node`] either object as the edge drives it.
//! - [`report`] and [`metrics`] (`/health`, `/metrics`), [`request`] (the Worker's routing),
//!   [`rest`] (REST bodies), [`groups`] (the Flask terminal's routes by asset class).
//! - [`history`] — the candle history (series merging the REST backfill and the stream, the
//!   book planning the backfill, `/api/candles`' answer); [`heatmap`] — the liquidation heat
//!   map of `heatmap:` channels (its model, the open-interest polling). The leader runs both.

pub mod attachment;
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
pub mod groups;
pub mod heatmap;
pub mod histogram;
pub mod history;
pub mod host;
pub mod hub;
pub mod ids;
pub mod input;
pub mod market;
pub mod metrics;
pub mod node;
pub mod price;
#[cfg(test)]
mod property_tests;
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
