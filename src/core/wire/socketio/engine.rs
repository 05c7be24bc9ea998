//! Engine.IO v4 packets, the layer under Socket.IO: a type digit and its data, one per
//! WebSocket frame, or joined by the record separator (0x1E) in a long-polling body.
//! Binary packets (`b` + base64 in a polling body, binary WebSocket frames) are refused:
//! nothing edgetick sends or reads is binary.

/// Separates packets in a long-polling body.
pub const SEPARATOR: char = '\u{1e}';

/// Packets a long-polling body may hold before the rest is refused (a client batches what
/// it has; the default client sends a handful).
pub const MAX_PACKETS_PER_BODY: usize = 64;

/// One Engine.IO packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `0`: the handshake's answer (server to client).
    Open(&'a str),
    /// `1`: the transport may close.
    Close,
    /// `2`: a ping, `2probe` during an upgrade.
    Ping(&'a str),
    /// `3`: a pong, `3probe` during an upgrade.
    Pong(&'a str),
    /// `4`: a message: a Socket.IO packet.
    Message(&'a str),
    /// `5`: the upgrade to WebSocket is complete.
    Upgrade,
    /// `6`: nothing (ends a held long-polling GET during an upgrade).
    Noop,
}

/// Why an Engine.IO packet cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Empty text.
    #[error("an empty Engine.IO packet")]
    Empty,
    /// A binary packet (`b…` in a polling body).
    #[error("binary packets are not accepted")]
    Binary,
    /// Not a packet type.
    #[error("unknown Engine.IO packet type {0:?}")]
    UnknownType(char),
    /// More packets in one body than [`MAX_PACKETS_PER_BODY`].
    #[error("more than {MAX_PACKETS_PER_BODY} packets in one body")]
    TooMany,
}

impl<'a> EnginePacket<'a> {
    /// Reads one packet (a WebSocket frame, or one part of a polling body).
    pub fn decode(text: &'a str) -> Result<EnginePacket<'a>, EngineError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(EngineError::Empty)?;
        let data = chars.as_str();
        Ok(match kind {
            '0' => EnginePacket::Open(data),
            '1' => EnginePacket::Close,
            '2' => EnginePacket::Ping(data),
            '3' => EnginePacket::Pong(data),
            '4' => EnginePacket::Message(data),
            '5' => EnginePacket::Upgrade,
            '6' => EnginePacket::Noop,
            'b' => return Err(EngineError::Binary),
            other => return Err(EngineError::UnknownType(other)),
        })
    }

    /// The packet as text.
    pub fn encode(&self) -> String {
        let (kind, data) = match *self {
            EnginePacket::Open(d) => ('0', d),
            EnginePacket::Close => ('1', ""),
            EnginePacket::Ping(d) => ('2', d),
            EnginePacket::Pong(d) => ('3', d),
            EnginePacket::Message(d) => ('4', d),
            EnginePacket::Upgrade => ('5', ""),
            EnginePacket::Noop => ('6', ""),
        };
        let mut out = String::with_capacity(data.len() + 1);
        out.push(kind);
        out.push_str(data);
        out
    }
}

/// The packets of a long-polling body, each read (at most [`MAX_PACKETS_PER_BODY`]).
pub fn split_body(body: &str) -> Result<Vec<EnginePacket<'_>>, EngineError> {
    let parts: Vec<&str> = body.split(SEPARATOR).collect();
    if parts.len() > MAX_PACKETS_PER_BODY {
        return Err(EngineError::TooMany);
    }
    parts.into_iter().map(EnginePacket::decode).collect()
}

/// Encoded packets as one long-polling body.
pub fn join_body<S: AsRef<str>>(packets: &[S]) -> String {
    let len: usize = packets.iter().map(|p| p.as_ref().len() + 1).sum();
    let mut out = String::with_capacity(len);
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        out.push_str(p.as_ref());
    }
    out
}

/// What the handshake's `open` packet tells a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake<'a> {
    /// The session id (it also names the object that holds the session).
    pub sid: &'a str,
    /// Whether the client may upgrade to a WebSocket (a long-polling start may; a direct
    /// WebSocket has nothing to upgrade to).
    pub upgrade: bool,
    /// How often the server pings.
    pub ping_interval_ms: u64,
    /// How long the server waits for the pong.
    pub ping_timeout_ms: u64,
    /// The most bytes a client may put in one long-polling body.
    pub max_payload: usize,
}

impl Handshake<'_> {
    /// The `open` packet: `0{"sid":…,"upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`.
    pub fn open_packet(&self) -> String {
        let upgrades = if self.upgrade {
            r#"["websocket"]"#
        } else {
            "[]"
        };
        // A sid is letters, digits, `-` and `_`: nothing to escape.
        let data = format!(
            r#"{{"sid":"{}","upgrades":{upgrades},"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            self.sid, self.ping_interval_ms, self.ping_timeout_ms, self.max_payload
        );
        EnginePacket::Open(&data).encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_read_and_write_back() {
        for text in [
            "1",
            "2",
            "2probe",
            "3probe",
            "4hello",
            "5",
            "6",
            r#"0{"sid":"a"}"#,
        ] {
            assert_eq!(EnginePacket::decode(text).unwrap().encode(), text);
        }
        assert_eq!(
            EnginePacket::decode("2probe"),
            Ok(EnginePacket::Ping("probe"))
        );
        assert_eq!(EnginePacket::decode(""), Err(EngineError::Empty));
        assert_eq!(EnginePacket::decode("bAQID"), Err(EngineError::Binary));
        assert_eq!(
            EnginePacket::decode("9"),
            Err(EngineError::UnknownType('9'))
        );
    }

    #[test]
    fn a_polling_body_holds_packets_joined_by_the_record_separator() {
        let body = join_body(&["4hello", "2", "4world"]);
        assert_eq!(body, "4hello\u{1e}2\u{1e}4world");
        assert_eq!(
            split_body(&body).unwrap(),
            [
                EnginePacket::Message("hello"),
                EnginePacket::Ping(""),
                EnginePacket::Message("world")
            ]
        );
        let many = join_body(&vec!["6"; MAX_PACKETS_PER_BODY + 1]);
        assert_eq!(split_body(&many), Err(EngineError::TooMany));
    }

    #[test]
    fn the_open_packet_says_what_the_client_may_do() {
        let h = Handshake {
            sid: "s1",
            upgrade: true,
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_payload: 1_000_000,
        };
        let open = h.open_packet();
        let v: serde_json::Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
        assert_eq!(v["upgrades"][0], "websocket");
        assert_eq!(
            (v["pingInterval"].as_u64(), v["maxPayload"].as_u64()),
            (Some(25_000), Some(1_000_000))
        );
        let direct = Handshake {
            upgrade: false,
            ..h
        };
        assert!(direct.open_packet().contains(r#""upgrades":[]"#));
    }

    #[test]
    fn arbitrary_text_never_panics() {
        for text in [
            "\u{1e}",
            "4\u{1e}\u{1e}",
            "é",
            "0",
            "\u{0}",
            "44/x,",
            "2\u{1e}b",
        ] {
            let _ = EnginePacket::decode(text);
            let _ = split_body(text);
        }
    }
}
