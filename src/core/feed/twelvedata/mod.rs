//! Twelve Data's price WebSocket (stocks, ETFs, forex, crypto): its frames read and its
//! requests written. Not yet a [`super::source::Source`] the feed runs: that comes with
//! sources plural (one link per source); this is the codec it will stand on.
//!
//! # Layout
//! [`frames`] reads what the server sends (prices, subscribe status, heartbeats, errors) and
//! writes what the client asks (subscribe, unsubscribe, reset, heartbeat).

pub mod frames;
