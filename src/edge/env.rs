//! What the core takes as arguments, read from the runtime: configuration, time, randomness,
//! and the structured log sink.

use worker::{console_error, console_log, console_warn, Env};

use crate::core::config::Config;
use crate::core::error::ConfigError;
use crate::core::hub::Level;

/// Reads every variable of docs/configuration.md from `[vars]` (or a secret of the same name).
pub fn load_config(env: &Env) -> Result<Config, ConfigError> {
    Config::from_lookup(|name| {
        env.var(name)
            .map(|v| v.to_string())
            .ok()
            .or_else(|| env.secret(name).map(|v| v.to_string()).ok())
    })
}

/// Milliseconds since the epoch. In workerd this advances only across I/O, which is exactly
/// the granularity the core needs.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A uniform draw from `[0, 1)` for backoff jitter.
pub fn jitter() -> f64 {
    js_sys::Math::random()
}

/// 64 random bits from the runtime's cryptographic source (`crypto.getRandomValues`), for
/// what must not be guessed (a polling session's id); `Math.random` if it is missing.
pub fn random_u64() -> u64 {
    use wasm_bindgen::JsCast;
    let words = js_sys::Uint32Array::new_with_length(2);
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into()).ok();
    let filled = crypto.and_then(|c| {
        let fill = js_sys::Reflect::get(&c, &"getRandomValues".into()).ok()?;
        let fill = fill.dyn_into::<js_sys::Function>().ok()?;
        fill.call1(&c, &words).ok()
    });
    if filled.is_none() {
        for i in 0..2 {
            words.set_index(i, (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
        }
    }
    (u64::from(words.get_index(0)) << 32) | u64::from(words.get_index(1))
}

/// One JSON object per line (`wrangler tail` shows them as they are).
pub fn log(level: Level, event: &str, detail: &str) {
    let line = serde_json::json!({"level": level_name(level), "event": event, "detail": detail})
        .to_string();
    match level {
        Level::Info => console_log!("{line}"),
        Level::Warn => console_warn!("{line}"),
    }
}

/// A log line with structured fields besides `level` and `event` (never a secret).
pub fn log_fields(level: Level, event: &str, fields: serde_json::Value) {
    let mut line = serde_json::json!({"level": level_name(level), "event": event});
    if let (Some(obj), serde_json::Value::Object(extra)) = (line.as_object_mut(), fields) {
        obj.extend(extra);
    }
    match level {
        Level::Info => console_log!("{line}"),
        Level::Warn => console_warn!("{line}"),
    }
}

/// Logs an error that the core did not anticipate (a runtime API failing).
pub fn log_error(event: &str, detail: &str) {
    let line = serde_json::json!({"level": "error", "event": event, "detail": detail}).to_string();
    console_error!("{line}");
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Info => "info",
        Level::Warn => "warn",
    }
}
