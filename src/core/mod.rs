//! The pure core: every decision edgetick makes, with no I/O, no clock and no randomness.
//!
//! Nothing here imports `worker`, `js_sys` or `wasm_bindgen`; it builds and tests natively.

pub mod backoff;
pub mod batch;
pub mod cache;
pub mod config;
pub mod effect;
pub mod error;
pub mod fanout;
pub mod fastmap;
pub mod feed;
pub mod hub;
pub mod link;
pub mod metrics;
pub mod pacer;
pub mod price;
pub mod protocol;
pub mod report;
pub mod request;
pub mod rest;
pub mod session;
pub mod symbol;
pub mod upstream;
