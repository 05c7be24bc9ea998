//! Engine.IO session ids of long-polling sessions: they name the object that holds the
//! session (so the stateless Worker sends every later request of it there), the connection
//! inside that object, and a random nonce (so a session cannot be taken over by counting:
//! connection ids are sequential).
//!
//! `L<conn>_<nonce>` for the leader, `S<shard>_<conn>_<nonce>` for a shard, numbers in hex:
//! only letters, digits and `_`, nothing a query string needs to escape.

use crate::core::ids::{ConnId, Holder};

/// A polling session's id, read or to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sid {
    /// The object that holds the session.
    pub holder: Holder,
    /// The connection inside it.
    pub conn: ConnId,
    /// The session's secret part.
    pub nonce: u64,
}

impl Sid {
    /// The id as clients see it.
    pub fn encode(&self) -> String {
        match self.holder {
            Holder::Leader => format!("L{:x}_{:016x}", self.conn, self.nonce),
            Holder::Shard(n) => format!("S{n:x}_{:x}_{:016x}", self.conn, self.nonce),
        }
    }

    /// Reads an id [`Sid::encode`] wrote; anything else is `None` (an unknown session).
    pub fn decode(text: &str) -> Option<Sid> {
        if text.len() > 64 {
            return None;
        }
        let hex = |s: &str| {
            let ok = !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
            ok.then(|| u64::from_str_radix(s, 16).ok()).flatten()
        };
        let (holder, rest) = if let Some(rest) = text.strip_prefix('L') {
            (Holder::Leader, rest)
        } else {
            let (shard, rest) = text.strip_prefix('S')?.split_once('_')?;
            let n = u32::try_from(hex(shard)?).ok()?;
            (Holder::Shard(n), rest)
        };
        let (conn, nonce) = rest.split_once('_')?;
        Some(Sid {
            holder,
            conn: hex(conn)?,
            nonce: hex(nonce)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_and_name_their_holder() {
        for holder in [Holder::Leader, Holder::Shard(0), Holder::Shard(31)] {
            let sid = Sid {
                holder,
                conn: 0x1f,
                nonce: u64::MAX - 7,
            };
            let text = sid.encode();
            assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            assert_eq!(Sid::decode(&text), Some(sid), "{text}");
        }
        assert_eq!(
            Sid::decode("S3_a_00000000000000ff").map(|s| (s.holder, s.conn, s.nonce)),
            Some((Holder::Shard(3), 10, 255))
        );
    }

    #[test]
    fn anything_else_is_no_session() {
        for text in [
            "",
            "L",
            "L1",
            "L1_",
            "L_1",
            "Lx_1",
            "S1_2",
            "S_1_2",
            "X1_2",
            "L1_2_3",
            "L1_+2",
            "S100000000_1_1",
            "L11111111111111111_1",
            "4f7a9c0e2b",
        ] {
            assert_eq!(Sid::decode(text), None, "{text:?}");
        }
    }
}
