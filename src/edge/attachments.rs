//! The socket attachments that outgrew what the runtime lets a socket carry (2,048 bytes):
//! kept whole in the object's SQLite database under the connection id, read back when the
//! object wakes, forgotten when the connection closes. Small ones never touch storage.

use serde::Deserialize;
use worker::{SqlStorage, State, WebSocket};

use super::env::log_error;
use crate::core::attachment::Attachment;
use crate::core::ids::ConnId;

#[derive(Deserialize)]
struct JsonRow {
    json: String,
}

#[derive(Deserialize)]
struct ConnRow {
    conn: i64,
}

/// Creates the table on first use (every object, the leader and each shard, has one).
pub(super) fn open(state: &State) {
    let made = state.storage().sql().exec(
        "CREATE TABLE IF NOT EXISTS attachments (conn INTEGER PRIMARY KEY, json TEXT NOT NULL)",
        None,
    );
    if let Err(e) = made {
        log_error("attachments_unavailable", &e.to_string());
    }
}

/// Keeps (`Some`) or forgets (`None`) `conn`'s whole attachment.
pub(super) fn store(state: &State, conn: ConnId, json: Option<&str>) {
    let sql = state.storage().sql();
    let done = match json {
        Some(json) => sql.exec(
            "INSERT OR REPLACE INTO attachments (conn, json) VALUES (?, ?)",
            vec![(conn as i64).into(), json.into()],
        ),
        None => sql.exec(
            "DELETE FROM attachments WHERE conn = ?",
            vec![(conn as i64).into()],
        ),
    };
    if let Err(e) = done {
        log_error("store_attachment_failed", &e.to_string());
    }
}

/// A socket's attachment as the core restores it (the whole one, when it is stored); `None`
/// when it is missing, of an unknown version, or its stored copy is gone.
pub(super) fn read(state: &State, ws: &WebSocket) -> Option<Attachment> {
    let a = ws.deserialize_attachment::<Attachment>().ok().flatten()?;
    a.restored(|conn| stored(&state.storage().sql(), conn))
}

fn stored(sql: &SqlStorage, conn: ConnId) -> Option<String> {
    let rows: Vec<JsonRow> = sql
        .exec(
            "SELECT json FROM attachments WHERE conn = ?",
            vec![(conn as i64).into()],
        )
        .and_then(|c| c.to_array())
        .map_err(|e| log_error("read_attachment_failed", &e.to_string()))
        .ok()?;
    rows.into_iter().next().map(|r| r.json)
}

/// Forgets the stored attachments of connections that did not survive (closed while the
/// object was away): only `kept` remain.
pub(super) fn keep_only(state: &State, kept: &[ConnId]) {
    let sql = state.storage().sql();
    let rows: Vec<ConnRow> = match sql
        .exec("SELECT conn FROM attachments", None)
        .and_then(|c| c.to_array())
    {
        Ok(rows) => rows,
        Err(e) => return log_error("read_attachment_failed", &e.to_string()),
    };
    for row in rows {
        if !kept.contains(&(row.conn as ConnId)) {
            store(state, row.conn as ConnId, None);
        }
    }
}
