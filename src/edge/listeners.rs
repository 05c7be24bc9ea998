//! The upstream socket's listeners: each frame handed to the leader from the runtime's
//! message event itself, and the socket's end (a close or an error) as a future.

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::oneshot;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use worker::web_sys::{CloseEvent, ErrorEvent, MessageEvent};
use worker::WebSocket;

use super::shared::Shared;
use crate::core::feed::link::Failure;
use crate::core::ids::SourceId;
use crate::core::input::UpstreamEvent;

type Listener<E> = Closure<dyn FnMut(E)>;

/// The socket's listeners. A frame goes to the leader from the runtime's message event
/// itself: no channel, task or promise between them (that hop cost about as much as what
/// the leader does with a frame). A close or an error ends the socket's future with why.
pub(super) struct Listeners {
    message: Listener<MessageEvent>,
    close: Listener<CloseEvent>,
    error: Listener<ErrorEvent>,
}

impl Listeners {
    pub(super) fn add(
        shared: &Rc<Shared>,
        source: SourceId,
        generation: u64,
        ws: &WebSocket,
    ) -> Result<(Listeners, oneshot::Receiver<Failure>), JsValue> {
        let (tx, rx) = oneshot::channel();
        let end = Rc::new(RefCell::new(Some(tx)));
        let finish = move |failure: Failure| {
            if let Some(tx) = end.borrow_mut().take() {
                let _ = tx.send(failure);
            }
        };
        let shared = shared.clone();
        let message = Closure::new(move |e: MessageEvent| match e.data().as_string() {
            Some(text) => shared.upstream(
                source,
                UpstreamEvent::Text {
                    generation,
                    text: &text,
                },
            ),
            None => shared.upstream(source, UpstreamEvent::Binary { generation }),
        });
        let on_close = finish.clone();
        let close = Closure::new(move |e: CloseEvent| {
            on_close(Failure::Closed {
                code: e.code(),
                reason: e.reason(),
            })
        });
        let error = Closure::new(move |e: ErrorEvent| {
            finish(Failure::Network(format!("socket error: {}", e.message())))
        });
        let listeners = Listeners {
            message,
            close,
            error,
        };
        for (kind, f) in listeners.each() {
            ws.as_ref().add_event_listener_with_callback(kind, f)?;
        }
        Ok((listeners, rx))
    }

    fn each(&self) -> [(&'static str, &js_sys::Function); 3] {
        [
            ("message", self.message.as_ref().unchecked_ref()),
            ("close", self.close.as_ref().unchecked_ref()),
            ("error", self.error.as_ref().unchecked_ref()),
        ]
    }

    /// Takes the listeners off the socket, so they can go.
    pub(super) fn remove(self, ws: &WebSocket) {
        for (kind, f) in self.each() {
            let _ = ws.as_ref().remove_event_listener_with_callback(kind, f);
        }
    }
}
