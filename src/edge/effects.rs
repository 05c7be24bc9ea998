//! Carries out the core's effects against workerd, in order: sends and closes, the upstream
//! sockets, the links between the leader and its shards, storage, timers and alarms, logs.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use worker::wasm_bindgen_futures::spawn_local;

use super::attachments;
use super::env::{log, log_error, log_fields, now_ms};
use super::links;
use super::send::SendTarget;
use super::shared::Shared;
use crate::core::attachment::Attachment;
use crate::core::effect::{Effect, Level};
use crate::core::ids::ConnId;
use crate::core::input::ClientInput;

impl Shared {
    /// Carries out `effects` in order. A failed send closes only that socket: the others
    /// already got their frame.
    pub(super) fn execute(self: &Rc<Self>, effects: Vec<Effect>) {
        let mut failed: Vec<ConnId> = Vec::new();
        for effect in effects {
            self.carry_out(effect, &mut failed);
        }
        for conn in failed {
            self.client(ClientInput::SendFailed { conn });
        }
    }

    fn carry_out(self: &Rc<Self>, effect: Effect, failed: &mut Vec<ConnId>) {
        match effect {
            Effect::Send { conn, frame } => self.send_one(conn, &frame, failed),
            Effect::Fanout { conns, frame } => self.fan_out(&conns, &frame, failed),
            Effect::Close { conn, code, reason } => self.close(conn, code, reason),
            Effect::SaveAttachment { conn, attachment } => self.save_attachment(conn, attachment),
            Effect::StoreAttachment { conn, whole } => {
                attachments::store(&self.state, conn, whole.as_ref())
            }
            e @ (Effect::ConnectUpstream { .. }
            | Effect::CloseUpstream { .. }
            | Effect::SendUpstream { .. }) => self.upstream_effect(e),
            e @ (Effect::Persist { .. }
            | Effect::SaveLink { .. }
            | Effect::Forget { .. }
            | Effect::StoreEvent { .. }
            | Effect::ForgetEvents { .. }
            | Effect::StoreCandles { .. }
            | Effect::WipeEvents { .. }) => self.store(e),
            Effect::Fetch { id, url } => self.fetch_rest(id, url),
            Effect::CandlesReady => self.candles_ready(),
            Effect::Timer { at_ms } => self.set_timer(at_ms),
            Effect::SseWake { conns } => {
                let mut wakers = self.sse_wakers.borrow_mut();
                for conn in conns {
                    if let Some(w) = wakers.remove(&conn) {
                        w.wake();
                    }
                }
            }
            Effect::SetAlarm { at_ms } => self.set_alarm(at_ms),
            Effect::SendShards { links, text } => self.send_shards(&links, &text),
            Effect::DialLeader { generation } => links::dial_leader(self.clone(), generation),
            Effect::SendLeader { generation, text } => self.send_leader(generation, &text),
            Effect::HangUpLeader { generation } => self.hang_up(generation),
            Effect::Log {
                level,
                event,
                detail,
            } => log(level, event, &detail),
        }
    }

    fn save_attachment(&self, conn: ConnId, attachment: Attachment) {
        if let Some(ws) = self.clients.borrow().get(&conn) {
            if let Err(e) = attachments::save(ws, &attachment) {
                log_error("attachment_failed", &e.to_string());
            }
        }
    }

    fn set_alarm(&self, at_ms: i64) {
        let storage = self.state.storage();
        let offset = (at_ms - now_ms()).max(1);
        spawn_local(async move {
            if let Err(e) = storage.set_alarm(offset).await {
                log_error("set_alarm_failed", &e.to_string());
            }
        });
    }

    fn send_one(&self, conn: ConnId, frame: &str, failed: &mut Vec<ConnId>) {
        if let Some(ws) = self.clients.borrow().get(&conn) {
            if ws.send_with_str(frame).is_err() {
                failed.push(conn);
            }
        }
    }

    /// One frame to many sockets: with `SEND_MODE=shared` as one JS string handed to each.
    fn fan_out(&self, conns: &[ConnId], frame: &str, failed: &mut Vec<ConnId>) {
        let started = js_sys::Date::now();
        if self.shared_send {
            let value = JsValue::from_str(frame);
            let clients = self.clients.borrow();
            for conn in conns {
                if let Some(ws) = clients.get(conn) {
                    let target: &SendTarget = ws.as_ref().unchecked_ref();
                    if target.send(&value).is_err() {
                        failed.push(*conn);
                    }
                }
            }
        } else {
            for conn in conns {
                self.send_one(*conn, frame, failed);
            }
        }
        let seconds = (js_sys::Date::now() - started) / 1000.0;
        self.node.borrow_mut().host().observe_fanout(seconds);
    }

    fn close(&self, conn: ConnId, code: u16, reason: &'static str) {
        if let Some(ws) = self.clients.borrow_mut().remove(&conn) {
            let _ = ws.close(Some(code), Some(reason));
            log_fields(
                Level::Info,
                "client_closed",
                serde_json::json!({"conn": conn, "transport": "websocket", "code": code, "reason": reason, "by": "server"}),
            );
        }
    }

    /// Wakes the core at `at_ms` (see [`super::timer::Timer`]).
    fn set_timer(self: &Rc<Self>, at_ms: i64) {
        let weak = Rc::downgrade(self);
        self.timer.arm(at_ms, now_ms(), move || {
            Closure::new(move || {
                if let Some(shared) = weak.upgrade() {
                    shared.timer.fired();
                    shared.run(|n| n.host().timer(now_ms()));
                }
            })
        });
    }
}
