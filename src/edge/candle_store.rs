//! The candle history in the leader's SQLite database: one row per symbol, interval and open
//! time holding the candle's encoding (so a candle stored twice is one row), the oldest
//! beyond `CANDLE_HISTORY` deleted as a series grows.

use serde::Deserialize;
use worker::SqlStorageValue;

use super::storage::Store;
use crate::core::history::book::Gained;
use crate::core::history::candles::Candle;

#[derive(Deserialize)]
struct CandleRow {
    symbol: String,
    interval: String,
    t: i64,
    json: String,
}

/// Candles of one series as storage gives them back.
pub type StoredSeries = ((String, String), Vec<Candle>);

impl Store {
    /// Creates the table on first use.
    pub(super) fn open_candles(&self) -> worker::Result<()> {
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS candles (symbol TEXT NOT NULL, interval TEXT NOT NULL, \
             t INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY (symbol, interval, t))",
            None,
        )?;
        Ok(())
    }

    /// Stores what a series gained and forgets its candles older than it keeps.
    pub fn save_candles(&self, g: &Gained) -> worker::Result<()> {
        for c in &g.candles {
            self.sql.exec(
                "INSERT OR REPLACE INTO candles (symbol, interval, t, json) VALUES (?, ?, ?, ?)",
                vec![
                    g.symbol.as_str().into(),
                    g.interval.as_str().into(),
                    SqlStorageValue::try_from_i64(c.t)?,
                    c.json.as_ref().into(),
                ],
            )?;
        }
        self.sql.exec(
            "DELETE FROM candles WHERE symbol = ? AND interval = ? AND t < ?",
            vec![
                g.symbol.as_str().into(),
                g.interval.as_str().into(),
                SqlStorageValue::try_from_i64(g.keep_from)?,
            ],
        )?;
        Ok(())
    }

    /// Every stored series, its candles oldest first.
    pub fn load_candles(&self) -> worker::Result<Vec<StoredSeries>> {
        let rows: Vec<CandleRow> = self
            .sql
            .exec(
                "SELECT symbol, interval, t, json FROM candles ORDER BY symbol, interval, t",
                None,
            )?
            .to_array()?;
        let mut out: Vec<StoredSeries> = Vec::new();
        for r in rows {
            let candle = Candle {
                t: r.t,
                json: r.json.into(),
            };
            match out.last_mut() {
                Some((key, list)) if key.0 == r.symbol && key.1 == r.interval => list.push(candle),
                _ => out.push(((r.symbol, r.interval), vec![candle])),
            }
        }
        Ok(out)
    }
}
