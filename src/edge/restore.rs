//! What a re-created leader object takes back: prices, the `seq` floor and the link's memory
//! from its storage, and the client sockets that survived hibernation from the runtime.

use worker::{State, WebSocket};

use super::attachments;
use super::env::{log_error, now_ms};
use super::storage::{Store, EPOCH_KEY, PRIVATE_FLOOR_KEY};
use crate::core::events::History;
use crate::core::fastmap::FastMap;
use crate::core::hub::Hub;
use crate::core::ids::ConnId;
use crate::core::node::Node;
use crate::core::protocol::close;

/// Opens the object's database and gives the hub back its prices, `seq` floor and link
/// memory; without storage the hub starts empty (and says so in the log).
pub(super) fn restore_storage(state: &State, hub: &mut Hub) -> Option<Store> {
    let store = match Store::open(state.storage().sql()) {
        Ok(store) => store,
        Err(e) => {
            log_error("storage_unavailable", &e.to_string());
            let epoch = History::new_epoch(now_ms(), js_sys::Math::random());
            hub.restore_events(epoch, Vec::new());
            return None;
        }
    };
    match store.load() {
        Ok((prices, floor, skipped)) => {
            if skipped > 0 {
                log_error(
                    "restore_skipped_rows",
                    &format!("{skipped} unreadable rows"),
                );
            }
            hub.restore_prices(prices, floor, now_ms());
        }
        Err(e) => log_error("restore_failed", &e.to_string()),
    }
    restore_events(&store, hub);
    match store.load_candles() {
        Ok(series) => {
            for ((symbol, interval), candles) in series {
                hub.restore_candles(&symbol, &interval, candles);
            }
        }
        Err(e) => log_error("restore_candles_failed", &e.to_string()),
    }
    for source in hub.sources() {
        match store.get_text(source.link_key()) {
            Ok(Some(json)) => {
                if let Err(e) = hub.restore_link(source, &json) {
                    log_error("restore_link_failed", &e);
                }
            }
            Ok(None) => {}
            Err(e) => log_error("restore_link_failed", &e.to_string()),
        }
    }
    Some(store)
}

/// Takes back the event history and its epoch; a history never stored starts a new epoch
/// (stored at once, so every later instance keeps it).
fn restore_events(store: &Store, hub: &mut Hub) {
    let epoch = match store.get_text(EPOCH_KEY) {
        Ok(Some(epoch)) => epoch,
        other => {
            if let Err(e) = other {
                log_error("restore_events_failed", &e.to_string());
            }
            let epoch = History::new_epoch(now_ms(), js_sys::Math::random());
            if let Err(e) = store.put_text(EPOCH_KEY, &epoch) {
                log_error("store_epoch_failed", &e.to_string());
            }
            epoch
        }
    };
    if let Ok(Some(floor)) = store.get_text(PRIVATE_FLOOR_KEY) {
        hub.restore_private_floor(floor.parse().unwrap_or(0));
    }
    let events = store.load_events().unwrap_or_else(|e| {
        log_error("restore_events_failed", &e.to_string());
        Vec::new()
    });
    hub.restore_events(epoch, events);
}

/// Re-registers the sockets that survived hibernation (with the attachments some of them
/// keep in storage; those of connections gone meanwhile are forgotten); one whose attachment
/// cannot be trusted is closed with a retryable code, so its client reconnects and
/// resubscribes.
pub(super) fn restore_clients(state: &State, node: &mut Node) -> FastMap<ConnId, WebSocket> {
    attachments::open(state);
    let mut clients = FastMap::default();
    let mut stored = Vec::new();
    for ws in state.get_websockets() {
        match attachments::read(state, &ws) {
            Some(a) => {
                if a.stored {
                    stored.push(a.id);
                }
                clients.insert(a.id, ws);
                node.host().client_restore(a);
            }
            None => {
                let _ = ws.close(Some(close::INTERNAL), Some("session state lost; reconnect"));
            }
        }
    }
    attachments::keep_only(state, &stored);
    clients
}
