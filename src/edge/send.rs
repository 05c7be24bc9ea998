//! One JS string to many sockets: `WebSocket.prototype.send` bound so that an existing JS
//! value is handed over as it is. A leaf, shared by the client fan-out and the leader's
//! links to its shards.

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// Anything with a `send(data)` method: a WebSocket seen through its JS interface.
    pub(super) type SendTarget;

    /// `WebSocket.prototype.send` taking an existing JS value, so one JS string built per
    /// fan-out is handed to every socket; `send_with_str` would copy and decode the Rust
    /// string into a new JS string for each socket.
    #[wasm_bindgen(method, catch, js_name = send)]
    pub(super) fn send(this: &SendTarget, data: &JsValue) -> std::result::Result<(), JsValue>;
}
