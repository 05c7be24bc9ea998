//! The object's one in-memory timer: a JS callback made once, armed with `setTimeout` for
//! the core's next deadline.
//!
//! Why not a task awaiting `worker::Delay`: re-arming then spawned a task, made a closure
//! and a promise, and aborted the task it replaced, each time. The core asks for a timer
//! after most inputs (a flush 5 ms after a price, a connection's first check), and a
//! profile of a 2,000-connection storm put that machinery at about a tenth of the object's
//! time. Now re-arming is a `clearTimeout` and a `setTimeout`.

use std::cell::{OnceCell, RefCell};

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use worker::web_sys::WorkerGlobalScope;

/// The callback (made on first use) and the armed timeout with its deadline.
#[derive(Default)]
pub(super) struct Timer {
    callback: OnceCell<Closure<dyn FnMut()>>,
    armed: RefCell<Option<(i32, i64)>>,
}

fn scope() -> WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

impl Timer {
    /// Cancels the armed timeout, if any (a new instance starts without one).
    pub(super) fn cancel(&self) {
        if let Some((id, _)) = self.armed.borrow_mut().take() {
            scope().clear_timeout_with_handle(id);
        }
    }

    /// Wakes the core at `at_ms` (`now_ms` now) through the callback `make` makes on first
    /// use. An armed timeout due no later is kept: the core, woken then, asks again for
    /// what is still ahead.
    pub(super) fn arm(&self, at_ms: i64, now_ms: i64, make: impl FnOnce() -> Closure<dyn FnMut()>) {
        if self.armed.borrow().is_some_and(|(_, at)| at <= at_ms) {
            return;
        }
        self.cancel();
        let callback = self.callback.get_or_init(make);
        let wait = (at_ms - now_ms).clamp(0, i64::from(i32::MAX)) as i32;
        let set = scope().set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.as_ref().unchecked_ref(),
            wait,
        );
        if let Ok(id) = set {
            *self.armed.borrow_mut() = Some((id, at_ms));
        }
    }

    /// The timeout fired: nothing is armed now. (Were it the callback of one replaced just
    /// as it fired, the one armed since is forgotten and the next request arms another: one
    /// more wake-up of the core, which does nothing that is not due.)
    pub(super) fn fired(&self) {
        self.armed.borrow_mut().take();
    }
}
