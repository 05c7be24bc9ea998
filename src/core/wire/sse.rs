//! The Server-Sent Events wire (`/api/stream`): a payload is an event named by its kind,
//! with the stream's position as its `id` where it has one and the JSON frame as `data`.

use super::{json, Payload};

/// One Server-Sent Event. The data is a single line (JSON always is: serde escapes control
/// characters inside strings).
pub fn frame(p: Payload<'_>, id: Option<&str>) -> String {
    event(p.kind.as_str(), id, &json::frame(p))
}

/// An event named `name` with `data`.
pub fn event(name: &str, id: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + name.len() + 32);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(data);
    out.push_str("\n\n");
    out
}
