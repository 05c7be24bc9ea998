//! An SSE stream's position, as its `id:` lines carry it and `Last-Event-ID` brings it back.
//!
//! A browser's `EventSource` resends only the last `id:` it saw, so that one string must say
//! everything a resume needs: the price `seq` (`42`), and for a stream with event channels
//! also the events' epoch and the offset reached in each of its event channels, in the
//! order the stream named them (`42_lx3k9a1b_7_0`). Letters, digits and `_` only: safe in
//! a header and in a query string.

use crate::core::events::Since;

/// Where a stream with event channels stands in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsAt {
    /// The epoch of the offsets.
    pub epoch: String,
    /// Per event channel of the stream, in its order: the last offset delivered.
    pub offsets: Vec<(String, u64)>,
}

impl EventsAt {
    /// Starts at the top of each channel (a stream that resumes nothing).
    pub fn new(epoch: &str, channels: &[(String, u64)]) -> EventsAt {
        EventsAt {
            epoch: epoch.to_string(),
            offsets: channels.to_vec(),
        }
    }

    /// An event of `channel` at `offset` was queued for the reader.
    pub fn advance(&mut self, channel: &str, offset: u64) {
        if let Some((_, at)) = self.offsets.iter_mut().find(|(c, _)| c == channel) {
            *at = (*at).max(offset);
        }
    }

    /// The `since` of each channel, for recovery.
    pub fn since(&self) -> Vec<(String, Since)> {
        self.offsets
            .iter()
            .map(|(c, o)| {
                let at = Since {
                    offset: *o,
                    epoch: self.epoch.clone(),
                };
                (c.clone(), at)
            })
            .collect()
    }
}

/// The `id:` of a stream at price `seq` and, with event channels, at `events`.
pub fn id(seq: u64, events: Option<&EventsAt>) -> String {
    let Some(at) = events else {
        return seq.to_string();
    };
    let mut out = format!("{seq}_{}", at.epoch);
    for (_, o) in &at.offsets {
        out.push('_');
        out.push_str(&o.to_string());
    }
    out
}

/// Reads a `Last-Event-ID` back against the stream's event channels (in its order): the
/// price `seq`, and the events' position when the id carries one for exactly those
/// channels. `None` for an id that is not one of ours.
pub fn parse(raw: &str, event_channels: &[String]) -> Option<(u64, Option<EventsAt>)> {
    let mut parts = raw.trim().split('_');
    let seq = parts.next()?.parse::<u64>().ok()?;
    let Some(epoch) = parts.next() else {
        return Some((seq, None));
    };
    if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let offsets: Vec<u64> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if offsets.len() != event_channels.len() {
        return Some((seq, None));
    }
    let offsets = event_channels.iter().cloned().zip(offsets).collect();
    Some((
        seq,
        Some(EventsAt {
            epoch: epoch.to_string(),
            offsets,
        }),
    ))
}

/// True for text that may be a stream id (checked before it reaches an object).
pub fn well_formed(raw: &str) -> bool {
    let raw = raw.trim();
    !raw.is_empty()
        && raw.len() <= 512
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && raw.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_round_trips_with_and_without_events() {
        assert_eq!(id(42, None), "42");
        assert_eq!(parse("42", &[]), Some((42, None)));
        let chans = vec!["events:a".to_string(), "events:b".to_string()];
        let mut at = EventsAt::new("e1", &[(chans[0].clone(), 3), (chans[1].clone(), 0)]);
        at.advance("events:b", 5);
        at.advance("events:b", 4);
        assert_eq!(id(42, Some(&at)), "42_e1_3_5");
        assert_eq!(parse("42_e1_3_5", &chans), Some((42, Some(at.clone()))));
        assert_eq!(at.since()[1].1.offset, 5);
        assert_eq!(
            parse("42_e1_3", &chans),
            Some((42, None)),
            "other channels: prices only"
        );
        assert_eq!(parse("x", &chans), None);
        assert_eq!(parse("4_e-1_3", &chans), None);
        assert!(well_formed("42_e1_3_5") && !well_formed("_1") && !well_formed("4 2"));
    }
}
