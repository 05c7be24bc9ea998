//! `POST /api/publish`: what a publish body must be, and how fast publishes are accepted.
//! The token is checked by the Worker before the body is read (docs/events.md).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::core::channel::{self, EVENTS};
use crate::core::config::{Config, EventsConfig};
use crate::core::error::ApiError;

/// A publish, checked.
#[derive(Debug)]
pub struct Publish {
    /// `events:<name>`, on the whitelist.
    pub channel: String,
    /// The event's name, e.g. `signal_generated`.
    pub event: String,
    /// The publisher's JSON, kept as it came (never re-encoded).
    pub data: Box<RawValue>,
}

#[derive(Deserialize)]
struct Body {
    channel: Option<String>,
    event: Option<String>,
    data: Option<Box<RawValue>>,
}

/// The longest event name accepted.
const MAX_NAME: usize = 128;

/// Checks a publish body: size first (before parsing), then shape, then channel: a public
/// `events:<name>` or a private `user:<id>:<name>`, `<name>` on `EVENT_CHANNELS`.
pub fn parse(config: &Config, body: &str) -> Result<Publish, ApiError> {
    let cfg = &config.events;
    if body.len() > cfg.max_event_bytes {
        return Err(too_large(cfg, body.len()));
    }
    let bad = |why: &str| {
        ApiError::BadRequest(format!(
            "{why}; send {{\"channel\":\"events:<name>\",\"event\":\"<name>\",\"data\":{{...}}}}"
        ))
    };
    let parsed: Body = serde_json::from_str(body).map_err(|_| bad("the body is not that JSON"))?;
    let channel = parsed.channel.ok_or_else(|| bad("`channel` is missing"))?;
    let event = parsed.event.ok_or_else(|| bad("`event` is missing"))?;
    if event.is_empty() || event.chars().count() > MAX_NAME {
        return Err(bad("`event` must be 1 to 128 characters"));
    }
    let served = channel
        .strip_prefix(EVENTS)
        .is_some_and(|name| cfg.channels.iter().any(|c| c == name))
        || channel::is_private(config, &channel);
    if !served {
        let list: Vec<String> = cfg
            .channels
            .iter()
            .map(|c| format!("{EVENTS}{c}"))
            .collect();
        return Err(ApiError::UnknownChannel(format!(
            "{channel:?} is not an event channel here; EVENT_CHANNELS serves {} (and user:<id>:<name> for those names)",
            list.join(", ")
        )));
    }
    let data = match parsed.data {
        Some(d) => d,
        None => RawValue::from_string("null".into()).map_err(|_| ApiError::Internal)?,
    };
    Ok(Publish {
        channel,
        event,
        data,
    })
}

/// The 413 for a body of `len` bytes.
pub fn too_large(cfg: &EventsConfig, len: usize) -> ApiError {
    ApiError::TooLarge(format!(
        "the body is {len} bytes; MAX_EVENT_BYTES is {}",
        cfg.max_event_bytes
    ))
}

/// A token bucket of `PUBLISH_PER_SECOND` with one second of burst.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Option<i64>,
}

impl Bucket {
    /// Takes one publish at `now_ms`, or says how long to wait.
    pub fn take(&mut self, per_second: u32, now_ms: i64) -> Result<(), ApiError> {
        let cap = f64::from(per_second.max(1));
        let elapsed = self
            .at
            .map_or(cap, |at| (now_ms - at).max(0) as f64 / 1000.0 * cap);
        self.tokens = (self.tokens + elapsed).min(cap);
        self.at = Some(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(ApiError::RateLimited {
            message: format!("at most {per_second} publishes per second (PUBLISH_PER_SECOND)"),
            retry_after_s: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let vars = [
            ("PUBLISH_TOKEN", "t"),
            ("EVENT_CHANNELS", "signals"),
            ("MAX_EVENT_BYTES", "100"),
            ("PUBLISH_PER_SECOND", "2"),
        ];
        Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    #[test]
    fn a_body_is_checked_for_size_shape_and_channel() {
        let c = cfg();
        let ok = parse(
            &c,
            r#"{"channel":"events:signals","event":"x","data":{"a":1.50}}"#,
        );
        let p = ok.unwrap();
        assert_eq!(
            (p.channel.as_str(), p.event.as_str()),
            ("events:signals", "x")
        );
        assert_eq!(p.data.get(), r#"{"a":1.50}"#, "kept as it came");
        let code = |body: &str| parse(&c, body).unwrap_err().status();
        assert_eq!(code(&"x".repeat(101)), 413);
        assert_eq!(code("nope"), 400);
        assert_eq!(code(r#"{"event":"x"}"#), 400);
        assert_eq!(code(r#"{"channel":"events:signals","event":""}"#), 400);
        assert_eq!(code(r#"{"channel":"events:other","event":"x"}"#), 400);
        let e = parse(&c, r#"{"channel":"signals","event":"x"}"#).unwrap_err();
        assert_eq!(e.code(), "UNKNOWN_CHANNEL");
        let p = parse(&c, r#"{"channel":"events:signals","event":"x"}"#).unwrap();
        assert_eq!(p.data.get(), "null", "no data is null");
        let p = parse(&c, r#"{"channel":"user:alice:signals","event":"x"}"#).unwrap();
        assert_eq!(p.channel, "user:alice:signals", "a private channel");
        assert_eq!(code(r#"{"channel":"user:alice:other","event":"x"}"#), 400);
        assert_eq!(code(r#"{"channel":"user:a:b:signals","event":"x"}"#), 400);
    }

    #[test]
    fn publishes_are_limited_per_second() {
        let mut b = Bucket::default();
        assert!(b.take(2, 1_000).is_ok() && b.take(2, 1_000).is_ok());
        let e = b.take(2, 1_000).unwrap_err();
        assert_eq!((e.status(), e.retry_after()), (429, Some(1)));
        assert!(b.take(2, 1_500).is_ok(), "half a second refills one");
    }
}
