//! Twelve Data in the simulation, a second source beside the exchange (on two seeds in
//! five): its own connection, frames and faults, read by the real Twelve Data source.
//!
//! It behaves as the service does: symbols are streamed only once subscribed on the open
//! connection (the URL cannot carry them), prices are JSON numbers stamped in whole seconds
//! (so several prices of a second share a time), the client's heartbeats are answered, and a
//! closed market sends nothing else: no cadence repeats a price, so a price missed while the
//! connection was down stays missed until the symbol moves again. Frames on one connection
//! arrive in order (a WebSocket is FIFO), which is what makes prices of the same second safe.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::core::config::Config;
use crate::core::feed::neutral::Neutral;
use crate::core::feed::source::Source;
use crate::core::feed::twelvedata::TwelveData;
use crate::core::hub::Hub;

/// Whether `seed` runs with Twelve Data (none of the regression seeds does, so each still
/// runs the way it failed).
pub fn with_twelve_data(seed: u64) -> bool {
    matches!(seed % 5, 1 | 4)
}

/// The variables that turn it on: two symbols in its own spelling.
pub fn variables() -> [(&'static str, &'static str); 3] {
    [
        ("TWELVEDATA_SYMBOLS", "AAPL,EUR/USD"),
        ("TWELVEDATA_API_KEY", "sim-key"),
        ("TWELVEDATA_URL", "ws://sim.invalid/td"),
    ]
}

/// A leader following the exchange, and Twelve Data when `cfg` has it.
pub fn leader(cfg: &Config) -> Hub {
    let mut sources: Vec<Rc<dyn Source>> = vec![Rc::new(Neutral)];
    if let Some(td) = &cfg.twelvedata {
        sources.push(Rc::new(TwelveData::new(&td.api_key, td.heartbeat_ms)));
    }
    Hub::with_sources(cfg.clone(), sources)
}

/// Twelve Data's side: its connection, what is subscribed on it, and its order of frames.
#[derive(Debug, Default)]
pub struct Twelve {
    /// The connection it streams to.
    pub conn: Option<u64>,
    /// A connection it keeps open and answers nothing on.
    pub stalled: Option<u64>,
    /// The symbols subscribed on `conn`.
    pub subscribed: BTreeSet<String>,
    /// When the last frame on each connection arrives (FIFO).
    pub last: BTreeMap<u64, i64>,
}

/// A price frame as Twelve Data writes one: the price a JSON number, the time in seconds.
pub(super) fn price_frame(symbol: &str, price: &str, seconds: i64) -> String {
    format!(
        r#"{{"event":"price","symbol":"{symbol}","currency":"USD","exchange":"SIM","type":"Common Stock","timestamp":{seconds},"price":{price}}}"#
    )
}
