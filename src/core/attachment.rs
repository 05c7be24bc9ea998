//! The socket attachment: what each client connection carries through hibernation, and
//! when it outgrows what the runtime lets a socket carry, the whole of it kept in the
//! object's storage instead.

use crate::core::ids::{ConnId, Identity};
use crate::core::wire::Wire;

/// Version of the per-socket attachment: 2 records the wire. Version 1 (before wires
/// existed, every socket spoke the JSON protocol) reads as the JSON wire; a socket carrying
/// any other version is closed with a retryable code so its client reconnects and
/// resubscribes.
pub const ATTACHMENT_VERSION: u8 = 2;

/// The most a serialised attachment may take here. The runtime refuses an attachment over
/// 2,048 bytes; the edge writes it as its JSON text, whose structured clone is that length
/// and a few bytes, so a JSON length under this budget leaves room to spare.
pub const ATTACHMENT_BUDGET: usize = 1_800;

/// What each client socket carries through hibernation: its connection id, its wire and
/// its subscriptions. The one codec of it: [`Attachment::fitted`] writes, [`Attachment::valid`]
/// reads back (written by the edge as JSON text with the runtime's attachment API).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    v: u8,
    /// The connection id.
    pub id: ConnId,
    /// How the socket's frames are framed (absent in version 1: the JSON wire).
    #[serde(default = "json_wire")]
    pub wire: Wire,
    /// Its subscriptions (empty when the attachment is `stored`).
    pub subs: Vec<String>,
    /// Whose connection it is (with `JWT_SECRET`); absent in attachments written before
    /// private channels, which read as no identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<Identity>,
    /// The whole attachment outgrew the socket's and is kept in the object's storage under
    /// the connection id instead (absent, false, in attachments written before).
    #[serde(default, skip_serializing_if = "is_false")]
    pub stored: bool,
}

fn json_wire() -> Wire {
    Wire::Json
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Attachment {
    /// The current version's attachment, subscriptions included.
    pub fn new(id: ConnId, wire: Wire, subs: Vec<String>, who: Option<Identity>) -> Attachment {
        Attachment {
            v: ATTACHMENT_VERSION,
            id,
            wire,
            subs,
            who,
            stored: false,
        }
    }

    /// The attachment to write for this connection, and the whole of it when it would
    /// outgrow [`ATTACHMENT_BUDGET`] (many subscriptions, or a token listing many channels):
    /// that goes to the object's storage, and the socket's attachment keeps only the id, the
    /// wire and the word that the rest is stored. Small ones (the common case) cost no
    /// storage write.
    pub fn fitted(
        id: ConnId,
        wire: Wire,
        subs: Vec<String>,
        who: Option<Identity>,
    ) -> (Attachment, Option<Attachment>) {
        let whole = Attachment::new(id, wire, subs, who);
        if whole.size_bound() <= ATTACHMENT_BUDGET {
            return (whole, None);
        }
        let slim = Attachment {
            stored: true,
            ..Attachment::new(id, wire, Vec::new(), None)
        };
        (slim, Some(whole))
    }

    /// An upper bound of its JSON's length, counted rather than encoded (an encoder here
    /// would be one more in the worker): subscription keys are validated ASCII without
    /// quotes; the identity's strings are counted twice over, for any escaping.
    pub fn size_bound(&self) -> usize {
        let quoted = |s: &String| s.len() + 3;
        let escaped = |s: &String| 2 * s.len() + 3;
        let who = self.who.as_ref().map_or(0, |w| {
            let channels = w.channels.iter().flatten().map(escaped).sum::<usize>();
            64 + escaped(&w.sub) + channels
        });
        128 + self.subs.iter().map(quoted).sum::<usize>() + who
    }

    /// The attachment a woken object restores its connection from: this one, or, when it
    /// says the whole is stored, the whole read through `stored` (`None` when that is
    /// missing or not this connection's: the socket cannot be trusted and is closed).
    pub fn restored(self, stored: impl FnOnce(ConnId) -> Option<Attachment>) -> Option<Attachment> {
        let a = self.valid()?;
        if !a.stored {
            return Some(a);
        }
        let whole = stored(a.id)?.valid()?;
        // Still `stored`: the client's later saves and its close must know to keep or
        // forget that copy.
        (whole.id == a.id && !whole.stored).then_some(Attachment {
            stored: true,
            ..whole
        })
    }

    /// The attachment when it is of a version this code reads (the current one, or 1 as
    /// the JSON wire); another version cannot be trusted.
    pub fn valid(self) -> Option<Attachment> {
        (self.v == ATTACHMENT_VERSION || self.v == 1).then_some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attachment_of_another_version_is_not_trusted() {
        let a = Attachment::new(7, Wire::Json, vec!["BTCUSDT".into()], None);
        assert_eq!(a.clone().valid(), Some(a.clone()));
        let old = Attachment { v: 0, ..a };
        assert_eq!(old.valid(), None);
    }

    #[test]
    fn a_version_1_attachment_reads_as_the_json_wire() {
        let v1: Attachment = serde_json::from_str(r#"{"v":1,"id":3,"subs":["BTCUSDT"]}"#).unwrap();
        let a = v1.valid().unwrap();
        assert_eq!((a.id, a.wire, a.subs.len()), (3, Wire::Json, 1));
        let sse = Attachment::new(4, Wire::Sse, vec![], None);
        let back: Attachment = serde_json::from_str(&serde_json::to_string(&sse).unwrap()).unwrap();
        assert_eq!(back.valid(), Some(sse));
    }

    fn json_len(a: &Attachment) -> usize {
        serde_json::to_string(a).unwrap().len()
    }

    #[test]
    fn an_attachment_that_outgrows_the_socket_goes_to_storage_and_small_ones_stay() {
        let few: Vec<String> = (0..10).map(|i| format!("SYM{i}USDT")).collect();
        let (a, stored) = Attachment::fitted(1, Wire::Json, few.clone(), None);
        assert_eq!((a.subs, a.stored, stored), (few, false, None));
        let many: Vec<String> = (0..200)
            .map(|i| format!("candles:SYM{i}USDT:15m"))
            .collect();
        let (slim, stored) = Attachment::fitted(2, Wire::Sse, many.clone(), None);
        assert!(slim.stored && slim.subs.is_empty(), "{slim:?}");
        assert!(json_len(&slim) <= ATTACHMENT_BUDGET);
        let whole = stored.unwrap();
        assert_eq!(whole, Attachment::new(2, Wire::Sse, many, None));
        let back: Attachment =
            serde_json::from_str(&serde_json::to_string(&slim).unwrap()).unwrap();
        let restored = back
            .clone()
            .restored(|conn| (conn == 2).then_some(whole.clone()));
        let restored = restored.unwrap();
        assert!(
            restored.stored,
            "restored, it still knows its copy is in storage"
        );
        assert_eq!(restored.subs, whole.subs);
        assert_eq!(
            back.clone().restored(|_| None),
            None,
            "its stored copy is gone"
        );
        let other = Attachment::new(4, Wire::Json, Vec::new(), None);
        assert_eq!(back.restored(|_| Some(other)), None, "another connection's");
    }

    #[test]
    fn the_size_bound_is_never_below_the_json_and_counts_the_identity() {
        let keys: Vec<String> = (0..80).map(|i| format!("events:ch{i:07}")).collect();
        let who = Identity {
            sub: "u\"".repeat(32),
            exp_ms: i64::MAX,
            channels: Some(keys.iter().map(|k| format!("{k}\\")).collect()),
        };
        let bare = Identity {
            sub: "u".into(),
            exp_ms: i64::MIN,
            channels: Some(Vec::new()),
        };
        for wire in [
            Wire::Json,
            Wire::Sse,
            Wire::SocketIo(crate::core::wire::socketio::Nsp::Pending),
        ] {
            for who in [None, Some(who.clone()), Some(bare.clone())] {
                for n in [0, 1, 40, 80] {
                    let a = Attachment::new(u64::MAX >> 11, wire, keys[..n].to_vec(), who.clone());
                    assert!(a.size_bound() >= json_len(&a), "{a:?}");
                    let stored = Attachment { stored: true, ..a };
                    assert!(stored.size_bound() >= json_len(&stored));
                }
            }
        }
        // Keys under the budget alone, pushed over by a token listing many channels.
        let (alone, stored) = Attachment::fitted(3, Wire::Json, keys.clone(), None);
        assert!(stored.is_none() && alone.size_bound() <= ATTACHMENT_BUDGET);
        let (slim, stored) = Attachment::fitted(3, Wire::Json, keys, Some(who.clone()));
        assert!(slim.stored && slim.who.is_none() && json_len(&slim) <= ATTACHMENT_BUDGET);
        assert_eq!(stored.unwrap().who, Some(who));
    }
}
