//! The storage effects of the core, carried out against the object's SQLite database.

use std::rc::Rc;

use super::env::log_error;
use super::shared::Shared;
use super::storage::Store;
use crate::core::effect::Effect;

impl Shared {
    /// The storage effects: each write in its own call (the output gate holds later
    /// outgoing messages until it is durable).
    pub(super) fn store(self: &Rc<Self>, effect: Effect) {
        match effect {
            Effect::Persist { prices, seq_floor } => {
                self.with_store("persist_failed", |s| s.save(&prices, seq_floor))
            }
            Effect::SaveLink { source, json } => {
                let key = source.link_key();
                self.with_store("save_link_failed", |s| s.put_text(key, &json))
            }
            Effect::Forget { symbols } => self.with_store("forget_failed", |s| s.forget(&symbols)),
            Effect::StoreEvent {
                channel,
                offset,
                body,
                keep,
            } => self.with_store("store_event_failed", |s| {
                s.save_event(&channel, offset, &body, keep)
            }),
            Effect::StoreCandles { gained } => {
                self.with_store("store_candles_failed", |s| s.save_candles(&gained))
            }
            Effect::ForgetEvents { through, floor } => {
                self.with_store("forget_events_failed", |s| s.forget_events(&through, floor))
            }
            Effect::WipeEvents { epoch } => {
                self.with_store("wipe_events_failed", |s| s.wipe_events(&epoch))
            }
            _ => {}
        }
    }

    /// Runs one write against the object's database, if it has one; a failure is logged.
    fn with_store(&self, event: &str, write: impl FnOnce(&Store) -> worker::Result<()>) {
        if let Some(store) = &self.store {
            if let Err(e) = write(store) {
                log_error(event, &e.to_string());
            }
        }
    }
}
