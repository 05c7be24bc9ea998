//! The leader's event channels: publishing (offset, storage, fan-out to its clients and
//! every shard), restoring the history, the link's catch-up, and wiping (a test fault).

use serde_json::json;

use super::Hub;
use crate::core::batch::{Batch, WireKind};
use crate::core::effect::Effect;
use crate::core::error::ApiError;
use crate::core::events::{publish, Event};

/// A link's catch-up is sent in messages of at most about this many bytes of events.
const CATCH_UP_BYTES: usize = 256 * 1024;

impl Hub {
    /// Takes back the floor private channels start above (stored when the bound forgot one).
    pub fn restore_private_floor(&mut self, floor: u64) {
        self.history.restore_private_floor(floor);
    }

    /// Takes back the stored history (`events` in offset order per channel) under `epoch`.
    pub fn restore_events(&mut self, epoch: String, events: Vec<Event>) {
        self.history.reset(epoch.clone());
        for e in events {
            self.history.record(e);
        }
        let batch = Batch {
            events: self.history.events().cloned().collect(),
            epoch: Some(epoch),
            ..Batch::default()
        };
        self.fanout.load(&batch);
    }

    /// The events' epoch.
    pub fn epoch(&self) -> &str {
        self.history.epoch()
    }

    /// A publish that passed the token check: checked, given its offset, stored, then fanned
    /// out once to the leader's clients and every linked shard. Returns the answer's body.
    pub fn publish(&mut self, body: &str, now_ms: i64) -> Result<(String, Vec<Effect>), ApiError> {
        let p = publish::parse(&self.cfg, body)?;
        self.publishes
            .take(self.cfg.events.publish_per_second, now_ms)?;
        let event = self.history.append(&p.channel, &p.event, &p.data, now_ms);
        let answer = json!({
            "channel": event.channel,
            "offset": event.offset,
            "epoch": self.history.epoch(),
        })
        .to_string();
        let mut stores = vec![Effect::StoreEvent {
            channel: event.channel.clone(),
            offset: event.offset,
            body: event.encoded.clone(),
            keep: self.cfg.events.history,
        }];
        let through = self.history.take_evicted();
        if !through.is_empty() {
            let floor = self.history.private_floor();
            stores.push(Effect::ForgetEvents { through, floor });
        }
        let batch = Batch {
            events: vec![event],
            epoch: Some(self.history.epoch().to_string()),
            ..Batch::default()
        };
        Ok((answer, self.finish(now_ms, stores, Vec::new(), batch)))
    }

    /// Forgets every event under a new epoch (a test fault: what a lost history looks like).
    /// The caller unlinks the shards, which catch up with the new epoch when they re-link.
    pub fn wipe_events(&mut self, epoch: String, now_ms: i64) -> Vec<Effect> {
        self.history.reset(epoch.clone());
        let wipe = Effect::WipeEvents {
            epoch: epoch.clone(),
        };
        let batch = Batch {
            epoch: Some(epoch),
            ..Batch::default()
        };
        self.fanout.load(&batch);
        self.finish(now_ms, vec![wipe], Vec::new(), Batch::default())
    }

    /// The history as link messages (batches of events, a few hundred KiB each).
    pub(super) fn history_messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut chunk: Vec<Event> = Vec::new();
        let mut bytes = 0;
        let epoch = Some(self.history.epoch().to_string());
        for e in self.history.events() {
            bytes += e.encoded.len();
            chunk.push(e.clone());
            if bytes >= CATCH_UP_BYTES {
                let events = std::mem::take(&mut chunk);
                out.push(message(events, epoch.clone()));
                bytes = 0;
            }
        }
        if !chunk.is_empty() {
            out.push(message(chunk, epoch));
        }
        out
    }
}

fn message(events: Vec<Event>, epoch: Option<String>) -> String {
    Batch {
        events,
        epoch,
        ..Batch::default()
    }
    .encode(WireKind::Batch)
}
