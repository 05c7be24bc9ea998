//! History: what the leader keeps of the past so a chart starts full. Today the pieces the
//! candle history stands on: a series of closed candles per symbol and interval that merges
//! Binance's REST backfill with the stream's closed candles (one per open time, the last
//! `CANDLE_HISTORY`, what is missing computed), the REST klines codec, and the book that
//! plans the backfill's requests with the stream's backoff discipline. The leader does not
//! run them yet: carrying requests out, storage and `/api/candles` come next.
//!
//! # Layout
//! [`candles`] the series; [`klines`] Binance's REST answer read; [`book`] the series kept
//! and their backfill.

pub mod book;
pub mod candles;
pub mod klines;
