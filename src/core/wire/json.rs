//! The JSON wire (`/ws`): a payload is the JSON object `{"type":<kind>, ...body}`.

use super::Payload;

/// `{"type":"<kind>",` then the body's members.
pub fn frame(p: Payload<'_>) -> String {
    let kind = p.kind.as_str();
    let members = p.body.strip_prefix('{').unwrap_or(p.body).trim_start();
    let mut out = String::with_capacity(members.len() + kind.len() + 12);
    out.push_str(r#"{"type":""#);
    out.push_str(kind);
    out.push('"');
    if members != "}" {
        out.push(',');
    }
    out.push_str(members);
    out
}
