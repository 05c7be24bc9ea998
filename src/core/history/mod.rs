//! History: what the leader keeps of the past so a chart starts full. Today the pieces the
//! candle history stands on: a series of closed candles per symbol and interval that merges
//! Binance's REST backfill with the stream's closed candles (one per open time, the last
//! `CANDLE_HISTORY`, what is missing computed), the REST klines codec, the book that
//! plans the backfill's requests with the stream's backoff discipline, and the answer of
//! `GET /api/candles`. The leader runs them (`hub/candles.rs`); the edge carries the
//! requests out and stores what the book gains.
//!
//! # Layout
//! [`candles`] the series; [`klines`] Binance's REST answer read; [`book`] the series kept
//! and their backfill; [`api`] the REST answer.

pub mod api;
pub mod book;
pub mod candles;
pub mod klines;
