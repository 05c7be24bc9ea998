//! Socket attachments: each one on its socket as JSON text, and the ones that outgrew what
//! the runtime lets a socket carry (2,048 bytes) kept whole in the object's SQLite database
//! under the connection id, read back when the object wakes, forgotten when the connection
//! closes. Small ones never touch storage. JSON text, written by the codec the worker uses
//! for everything else, because building a JS object field by field (the runtime API's own
//! path) cost about 70 µs a socket, the largest part of admitting a connection.

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::worker_sys::ext::WebSocketExt;
use worker::{SqlStorage, SqlStorageValue, State, WebSocket};

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
pub(super) fn store(state: &State, conn: ConnId, whole: Option<&Attachment>) {
    let sql = state.storage().sql();
    let id = || SqlStorageValue::from(conn as i64);
    let done = match whole.map(encode) {
        Some(Ok(json)) => sql.exec(
            "INSERT OR REPLACE INTO attachments (conn, json) VALUES (?, ?)",
            vec![id(), json.into()],
        ),
        Some(Err(e)) => Err(e),
        None => sql.exec("DELETE FROM attachments WHERE conn = ?", vec![id()]),
    };
    if let Err(e) = done {
        log_error("store_attachment_failed", &e.to_string());
    }
}

fn encode(a: &Attachment) -> worker::Result<String> {
    Ok(serde_json::to_string(a)?)
}

/// Puts `a` on its socket, as JSON text.
pub(super) fn save(ws: &WebSocket, a: &Attachment) -> worker::Result<()> {
    let text = JsValue::from_str(&encode(a)?);
    ws.as_ref().serialize_attachment(text)?;
    Ok(())
}

/// A socket's attachment as the core restores it (the whole one, when it is stored); `None`
/// when it is missing, of an unknown version, or its stored copy is gone.
pub(super) fn read(state: &State, ws: &WebSocket) -> Option<Attachment> {
    let value = ws.as_ref().deserialize_attachment().ok()?;
    let a: Attachment = match value.as_string() {
        Some(text) => serde_json::from_str(&text).ok()?,
        None if value.is_null() || value.is_undefined() => return None,
        // Written by a version that kept it as a JS object.
        None => serde_wasm_bindgen::from_value(value).ok()?,
    };
    a.restored(|conn| stored(&state.storage().sql(), conn))
}

fn stored(sql: &SqlStorage, conn: ConnId) -> Option<Attachment> {
    let rows: Vec<JsonRow> = sql
        .exec(
            "SELECT json FROM attachments WHERE conn = ?",
            vec![(conn as i64).into()],
        )
        .and_then(|c| c.to_array())
        .map_err(|e| log_error("read_attachment_failed", &e.to_string()))
        .ok()?;
    serde_json::from_str(&rows.first()?.json).ok()
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
    let mut kept = kept.to_vec();
    kept.sort_unstable();
    for row in rows {
        if kept.binary_search(&(row.conn as ConnId)).is_err() {
            store(state, row.conn as ConnId, None);
        }
    }
}
