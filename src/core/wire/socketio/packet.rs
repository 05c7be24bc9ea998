//! Socket.IO v5 packets, carried in Engine.IO `message` packets:
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`. Read with the checks the
//! reference parser makes (a payload of the wrong shape is refused), written for the few
//! packets a server sends. Binary packets are refused.

use serde_json::Value;

/// A namespace longer than this is refused.
pub const MAX_NAMESPACE: usize = 128;
/// Ack ids stay within what JavaScript counts exactly (15 digits).
const MAX_ID_DIGITS: usize = 15;
/// Event names a client may not emit (the reference server reserves them).
const RESERVED: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// What a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: join a namespace (client), joined (server, with the `sid`).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event: `[name, ...args]`.
    Event,
    /// `3`: the answer to an event that asked for one.
    Ack,
    /// `4`: a refused `CONNECT` (server).
    ConnectError,
}

/// One packet as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet<'a> {
    /// Its type.
    pub kind: PacketType,
    /// Its namespace (`/` when the packet names none).
    pub nsp: &'a str,
    /// The ack id an event asks to be answered with.
    pub id: Option<u64>,
    /// Its payload.
    pub data: Option<Value>,
}

/// Why a packet cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Empty, or not a packet type.
    #[error("not a Socket.IO packet type")]
    UnknownType,
    /// `BINARY_EVENT` or `BINARY_ACK`.
    #[error("binary attachments are not accepted")]
    Binary,
    /// A namespace too long or not closed.
    #[error("a namespace must start with / and be at most {MAX_NAMESPACE} characters")]
    BadNamespace,
    /// An ack id that is not a small integer.
    #[error("an ack id must be an integer of at most {MAX_ID_DIGITS} digits")]
    BadId,
    /// A payload that is not JSON, or not of its type's shape.
    #[error("the payload is not what a {0} packet carries")]
    BadPayload(&'static str),
}

impl PacketType {
    fn of(c: char) -> Result<PacketType, PacketError> {
        Ok(match c {
            '0' => PacketType::Connect,
            '1' => PacketType::Disconnect,
            '2' => PacketType::Event,
            '3' => PacketType::Ack,
            '4' => PacketType::ConnectError,
            '5' | '6' => return Err(PacketError::Binary),
            _ => return Err(PacketError::UnknownType),
        })
    }

    fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Event => "EVENT",
            PacketType::Ack => "ACK",
            PacketType::ConnectError => "CONNECT_ERROR",
        }
    }

    /// The payload's shape, as the reference parser checks it.
    fn accepts(self, payload: Option<&Value>) -> bool {
        match (self, payload) {
            (PacketType::Connect, p) => p.is_none_or(Value::is_object),
            (PacketType::Disconnect, p) => p.is_none(),
            (PacketType::ConnectError, Some(p)) => p.is_string() || p.is_object(),
            (PacketType::Event, Some(Value::Array(a))) => match a.first() {
                Some(Value::String(name)) => !RESERVED.contains(&name.as_str()),
                Some(Value::Number(_)) => true,
                _ => false,
            },
            (PacketType::Ack, Some(p)) => p.is_array(),
            _ => false,
        }
    }
}

impl<'a> Packet<'a> {
    /// Reads one packet (the data of an Engine.IO `message`).
    pub fn decode(text: &'a str) -> Result<Packet<'a>, PacketError> {
        let mut chars = text.chars();
        let kind = PacketType::of(chars.next().ok_or(PacketError::UnknownType)?)?;
        let mut rest = chars.as_str();
        let nsp = if rest.starts_with('/') {
            let end = rest.find(',').unwrap_or(rest.len());
            let (nsp, after) = rest.split_at(end);
            rest = after.strip_prefix(',').unwrap_or(after);
            nsp
        } else {
            "/"
        };
        if nsp.chars().count() > MAX_NAMESPACE {
            return Err(PacketError::BadNamespace);
        }
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (id, json) = rest.split_at(digits);
        let id = match id {
            "" => None,
            d if d.len() > MAX_ID_DIGITS => return Err(PacketError::BadId),
            d => Some(d.parse().map_err(|_| PacketError::BadId)?),
        };
        let data = match json {
            "" => None,
            j => Some(serde_json::from_str(j).map_err(|_| PacketError::BadPayload(kind.name()))?),
        };
        if !kind.accepts(data.as_ref()) {
            return Err(PacketError::BadPayload(kind.name()));
        }
        Ok(Packet {
            kind,
            nsp,
            id,
            data,
        })
    }

    /// An event's name and arguments.
    pub fn event(&self) -> Option<(&str, &[Value])> {
        match (&self.kind, &self.data) {
            (PacketType::Event, Some(Value::Array(a))) => {
                let (name, args) = a.split_first()?;
                Some((name.as_str()?, args))
            }
            _ => None,
        }
    }
}

/// `<type>[<nsp>,]`: the namespace is written only when it is not `/`.
fn head(kind: char, nsp: &str, extra: usize) -> String {
    let mut out = String::with_capacity(nsp.len() + extra + 2);
    out.push(kind);
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    out
}

/// An event `name` with one argument already encoded as JSON (`body`): the payload of a
/// price, a trade or a status, written once per namespace and event.
pub fn event(nsp: &str, name: &str, body: &str) -> String {
    let mut out = head('2', nsp, name.len() + body.len() + 6);
    out.push_str("[\"");
    out.push_str(name);
    out.push_str("\",");
    out.push_str(body);
    out.push(']');
    out
}

/// The answer to the event that asked for ack `id`, with one argument (`body`, JSON).
pub fn ack(nsp: &str, id: u64, body: &str) -> String {
    let mut out = head('3', nsp, body.len() + 24);
    out.push_str(&id.to_string());
    out.push('[');
    out.push_str(body);
    out.push(']');
    out
}

/// A namespace joined: `CONNECT` with the socket's id.
pub fn connect(nsp: &str, sid: &str) -> String {
    let mut out = head('0', nsp, sid.len() + 10);
    out.push_str(&serde_json::json!({ "sid": sid }).to_string());
    out
}

/// A namespace refused: `CONNECT_ERROR` with a message.
pub fn connect_error(nsp: &str, message: &str) -> String {
    let mut out = head('4', nsp, message.len() + 16);
    out.push_str(&serde_json::json!({ "message": message }).to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packets_are_read_as_the_reference_parser_reads_them() {
        let p = Packet::decode(r#"2/prices,12["subscribe",{"symbol":"BTCUSDT"}]"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp, p.id),
            (PacketType::Event, "/prices", Some(12))
        );
        let (name, args) = p.event().unwrap();
        assert_eq!(
            (name, args),
            ("subscribe", &[json!({"symbol":"BTCUSDT"})][..])
        );
        assert_eq!(Packet::decode("0").unwrap().nsp, "/");
        let c = Packet::decode(r#"0/prices,{"token":"t"}"#).unwrap();
        assert_eq!(
            (c.kind, c.data),
            (PacketType::Connect, Some(json!({"token":"t"})))
        );
        assert_eq!(
            Packet::decode("1/prices,").unwrap().kind,
            PacketType::Disconnect
        );
        assert_eq!(Packet::decode("3/prices,4[1]").unwrap().id, Some(4));
    }

    #[test]
    fn wrong_shapes_are_refused_with_their_reason() {
        for (text, why) in [
            ("", PacketError::UnknownType),
            ("9", PacketError::UnknownType),
            (
                r#"51-["x",{"_placeholder":true,"num":0}]"#,
                PacketError::Binary,
            ),
            ("2[]", PacketError::BadPayload("EVENT")),
            (r#"2["connect"]"#, PacketError::BadPayload("EVENT")),
            (r#"2{"a":1}"#, PacketError::BadPayload("EVENT")),
            ("2[", PacketError::BadPayload("EVENT")),
            ("0[1]", PacketError::BadPayload("CONNECT")),
            ("1{}", PacketError::BadPayload("DISCONNECT")),
            ("3{}", PacketError::BadPayload("ACK")),
            ("21234567890123456[\"x\"]", PacketError::BadId),
        ] {
            assert_eq!(Packet::decode(text), Err(why), "{text}");
        }
        let long = format!("0/{},", "n".repeat(MAX_NAMESPACE));
        assert_eq!(Packet::decode(&long), Err(PacketError::BadNamespace));
    }

    #[test]
    fn what_a_server_sends_reads_back() {
        let e = event(
            "/prices",
            "priceUpdate",
            r#"{"symbol":"BTCUSDT","price":"1.5"}"#,
        );
        assert_eq!(
            e,
            r#"2/prices,["priceUpdate",{"symbol":"BTCUSDT","price":"1.5"}]"#
        );
        assert_eq!(event("/", "connected", "{}"), r#"2["connected",{}]"#);
        let a = ack("/prices", 7, r#"{"ok":true}"#);
        assert_eq!(a, r#"3/prices,7[{"ok":true}]"#);
        assert_eq!(Packet::decode(&a).unwrap().id, Some(7));
        assert_eq!(connect("/prices", "s-1"), r#"0/prices,{"sid":"s-1"}"#);
        assert_eq!(
            connect_error("/nope", "Invalid namespace"),
            r#"4/nope,{"message":"Invalid namespace"}"#
        );
        for text in [e, a, connect("/", "x"), connect_error("/", "no")] {
            let p = Packet::decode(&text).unwrap();
            assert!(p.data.is_some(), "{text}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics() {
        let samples = [
            "0/",
            "2/,",
            "2/é,1[\"x\"]",
            "3",
            "4",
            "0/a",
            "29999",
            "2\u{0}",
            "ééé",
        ];
        for text in samples {
            let _ = Packet::decode(text);
        }
        for n in 0..200u32 {
            let text: String = (0..(n % 23))
                .map(|i| char::from_u32((n * 7 + i * 13) % 128).unwrap_or('x'))
                .collect();
            let _ = Packet::decode(&text);
        }
    }
}
