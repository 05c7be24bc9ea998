//! SQLite persistence of the leader: the latest price per symbol (written in batches) and
//! the reserved `seq` high-water mark, so a restarted object serves its cache at once and
//! never reuses a `seq`.

use std::rc::Rc;

use serde::Deserialize;
use worker::{SqlStorage, SqlStorageValue};

use crate::core::events::Event;
use crate::core::feed::cache::{read_stored, StoredPrice};

#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

/// Where the events' epoch is kept.
pub const EPOCH_KEY: &str = "events_epoch";

/// Where the floor private channels start above is kept.
pub const PRIVATE_FLOOR_KEY: &str = "private_events_floor";

#[derive(Deserialize)]
struct EventRow {
    channel: String,
    offset: i64,
    json: String,
}

#[derive(Deserialize)]
struct TextRow {
    value: String,
}

#[derive(Deserialize)]
struct SeqRow {
    value: i64,
}

/// The object's SQL database.
pub struct Store {
    pub(super) sql: SqlStorage,
}

impl Store {
    /// Opens the database and creates the tables on first use.
    pub fn open(sql: SqlStorage) -> worker::Result<Store> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS prices (symbol TEXT PRIMARY KEY, json TEXT NOT NULL, seq INTEGER NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS events (channel TEXT NOT NULL, offset INTEGER NOT NULL, \
             json TEXT NOT NULL, PRIMARY KEY (channel, offset))",
            None,
        )?;
        let store = Store { sql };
        store.open_candles()?;
        Ok(store)
    }

    /// Every stored price (rows that no longer parse are skipped and reported in the count)
    /// and the `seq` high-water mark.
    pub fn load(&self) -> worker::Result<(Vec<StoredPrice>, u64, usize)> {
        let rows: Vec<JsonRow> = self.sql.exec("SELECT json FROM prices", None)?.to_array()?;
        let total = rows.len();
        let prices: Vec<StoredPrice> = rows.iter().filter_map(|r| read_stored(&r.json)).collect();
        let skipped = total - prices.len();
        let seq: Vec<SeqRow> = self
            .sql
            .exec("SELECT value FROM meta WHERE key = 'seq'", None)?
            .to_array()?;
        let floor = seq.first().map_or(0, |r| r.value.max(0) as u64);
        Ok((prices, floor, skipped))
    }

    /// Writes a batch of prices and raises the `seq` high-water mark. The statements run in
    /// one synchronous turn, so the object's implicit transaction commits them together.
    pub fn save(&self, prices: &[(String, Rc<str>, u64)], seq_floor: u64) -> worker::Result<()> {
        for (symbol, json, seq) in prices {
            let seq = SqlStorageValue::try_from_i64(*seq as i64)?;
            self.sql.exec(
                "INSERT INTO prices (symbol, json, seq) VALUES (?, ?, ?) \
                 ON CONFLICT(symbol) DO UPDATE SET json = excluded.json, seq = excluded.seq",
                vec![symbol.as_str().into(), json.as_ref().into(), seq],
            )?;
        }
        let floor = SqlStorageValue::try_from_i64(seq_floor as i64)?;
        self.sql.exec(
            "INSERT INTO meta (key, value) VALUES ('seq', ?) \
             ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
            vec![floor],
        )?;
        Ok(())
    }

    /// Every stored event in the order it was stored (so in offset order per channel): the
    /// order the history took them, which its bound on private channels evicts by.
    pub fn load_events(&self) -> worker::Result<Vec<Event>> {
        let rows: Vec<EventRow> = self
            .sql
            .exec(
                "SELECT channel, offset, json FROM events ORDER BY rowid",
                None,
            )?
            .to_array()?;
        Ok(rows
            .into_iter()
            .map(|r| Event::stored(r.channel, r.offset.max(0) as u64, &r.json))
            .collect())
    }

    /// Stores one event and forgets its channel's events older than the last `keep`.
    pub fn save_event(
        &self,
        channel: &str,
        offset: u64,
        json: &str,
        keep: usize,
    ) -> worker::Result<()> {
        let at = SqlStorageValue::try_from_i64(offset as i64)?;
        self.sql.exec(
            "INSERT OR REPLACE INTO events (channel, offset, json) VALUES (?, ?, ?)",
            vec![channel.into(), at, json.into()],
        )?;
        let below = SqlStorageValue::try_from_i64(offset.saturating_sub(keep as u64) as i64)?;
        self.sql.exec(
            "DELETE FROM events WHERE channel = ? AND offset <= ?",
            vec![channel.into(), below],
        )?;
        Ok(())
    }

    /// Forgets the events of private channels their bound evicted, and keeps the floor.
    pub fn forget_events(&self, through: &[(String, u64)], floor: u64) -> worker::Result<()> {
        for (channel, offset) in through {
            let at = SqlStorageValue::try_from_i64(*offset as i64)?;
            self.sql.exec(
                "DELETE FROM events WHERE channel = ? AND offset <= ?",
                vec![channel.as_str().into(), at],
            )?;
        }
        self.put_text(PRIVATE_FLOOR_KEY, &floor.to_string())
    }

    /// Forgets every event and stores a new epoch.
    pub fn wipe_events(&self, epoch: &str) -> worker::Result<()> {
        self.sql.exec("DELETE FROM events", None)?;
        self.put_text(EPOCH_KEY, epoch)
    }

    /// Stores a small document under `key` (a link's memory, the events' epoch, the private
    /// channels' floor).
    pub fn put_text(&self, key: &str, value: &str) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO kv (key, value) VALUES (?, ?) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    /// The document stored under `key`, if any.
    pub fn get_text(&self, key: &str) -> worker::Result<Option<String>> {
        let rows: Vec<TextRow> = self
            .sql
            .exec("SELECT value FROM kv WHERE key = ?", vec![key.into()])?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    /// Deletes expired prices (the `seq` high-water mark stays).
    pub fn forget(&self, symbols: &[String]) -> worker::Result<()> {
        for s in symbols {
            self.sql.exec(
                "DELETE FROM prices WHERE symbol = ?",
                vec![s.as_str().into()],
            )?;
        }
        Ok(())
    }
}
