//! What the upstreams say to the feed: a connection opened or failed, and each frame read
//! by its source (prices into the cache, market updates, the source's control frames).

use super::link::{Failure, FrameVerdict};
use super::source::SourceFrame;
use super::{change_of, Feed, MAX_UPSTREAM_FRAME_BYTES};
use crate::core::batch::Batch;
use crate::core::effect::{Effect, Level};
use crate::core::ids::SourceId;

impl Feed {
    /// The upstream WebSocket of `source`'s `generation` is open.
    pub fn upstream_opened(
        &mut self,
        source: SourceId,
        generation: u64,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(u) = self.upstream(source) {
            u.link.opened(generation, now_ms, fx);
        }
        self.schedule(now_ms, fx);
    }

    /// The upstream of `source`'s `generation` failed to open, errored or closed.
    pub fn upstream_failed(
        &mut self,
        (source, generation): (SourceId, u64),
        failure: Failure,
        now_ms: i64,
        jitter: f64,
        fx: &mut Vec<Effect>,
    ) {
        if let Some(u) = self.upstream(source) {
            u.link.failed(generation, failure, now_ms, jitter, fx);
        }
        self.schedule(now_ms, fx);
    }

    /// One text frame from `source`'s `generation`; a changed price joins `out`.
    pub fn upstream_text(
        &mut self,
        (source, generation): (SourceId, u64),
        text: &str,
        now_ms: i64,
        fx: &mut Vec<Effect>,
        out: &mut Batch,
    ) {
        let Some((i, verdict)) = self.frame_of(source, generation, now_ms, fx) else {
            return;
        };
        if text.len() > MAX_UPSTREAM_FRAME_BYTES {
            self.skip(i, format!("{} byte frame skipped unparsed", text.len()), fx);
        } else {
            self.take_frame((i, generation), text, now_ms, fx, out);
        }
        // A switch changes timers; a breaker change is written at once, so a restarted
        // instance never starts from a breaker this one already closed.
        let timers_changed = matches!(verdict, FrameVerdict::Switched | FrameVerdict::FirstFrame);
        let dirty = self.upstreams.get(i).is_some_and(|u| u.link.is_dirty());
        if timers_changed || dirty {
            self.schedule(now_ms, fx);
        }
    }

    fn take_frame(
        &mut self,
        (i, generation): (usize, u64),
        text: &str,
        now_ms: i64,
        fx: &mut Vec<Effect>,
        out: &mut Batch,
    ) {
        let Some(up) = self.upstreams.get_mut(i) else {
            return;
        };
        match up.source.parse(text) {
            Ok(SourceFrame::Price(mut u)) if up.symbols.contains(&u.symbol) => {
                u.fields.source = Some(up.source.id());
                if let Some(entry) = self.cache.apply(&u, now_ms) {
                    out.prices.push(change_of(entry));
                    self.changed(&u.symbol, now_ms);
                }
            }
            Ok(SourceFrame::Price(u)) => {
                self.skip(i, format!("unrequested symbol {}", u.symbol), fx)
            }
            // A channel nobody follows any more (its UNSUBSCRIBE is on its way) is dropped.
            Ok(SourceFrame::Market(m)) if self.interest.contains(&m.channel) => {
                self.market.keep(&m);
                out.market.push(m);
            }
            Ok(SourceFrame::Market(_)) => {}
            Ok(SourceFrame::Closing) => {
                up.link.server_shutdown(generation, now_ms, fx);
                self.schedule(now_ms, fx);
            }
            Ok(SourceFrame::Control) => {}
            Ok(SourceFrame::Failed(symbols)) => {
                let named = symbols.join(", ");
                up.failed.extend(symbols);
                fx.push(Effect::Log {
                    level: Level::Warn,
                    event: "upstream_symbols_failed",
                    detail: crate::core::text::truncate(
                        &format!("{} would not subscribe {named}", up.source.id().as_str()),
                        200,
                    ),
                });
            }
            Ok(SourceFrame::Refusal { code, msg }) => {
                let msg = crate::core::text::truncate(&msg, 200);
                self.skip(i, format!("refusal {code}: {msg}"), fx)
            }
            Err(e) => self.skip(i, e.to_string(), fx),
        }
    }

    /// A binary upstream frame: the sources here send none, so it is skipped.
    pub fn upstream_binary(
        &mut self,
        (source, generation): (SourceId, u64),
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) {
        if let Some((i, _)) = self.frame_of(source, generation, now_ms, fx) {
            self.skip(i, "binary frame skipped".into(), fx);
        }
    }

    /// A frame arrived on `source`'s `generation`: its upstream's index and the link's
    /// verdict, counted, when it is to be read (`None` for an unknown source or a connection
    /// no longer active).
    fn frame_of(
        &mut self,
        source: SourceId,
        generation: u64,
        now_ms: i64,
        fx: &mut Vec<Effect>,
    ) -> Option<(usize, FrameVerdict)> {
        let i = self.index_of(source)?;
        let u = self.upstreams.get_mut(i)?;
        let verdict = u.link.frame(generation, now_ms, fx);
        if verdict == FrameVerdict::Ignore {
            return None;
        }
        u.frames += 1;
        self.stats.upstream_frames += 1;
        Some((i, verdict))
    }

    fn skip(&mut self, i: usize, detail: String, fx: &mut Vec<Effect>) {
        if let Some(u) = self.upstreams.get_mut(i) {
            u.errors += 1;
        }
        self.stats.upstream_errors += 1;
        fx.push(Effect::Log {
            level: Level::Warn,
            event: "upstream_bad_frame",
            detail: crate::core::text::truncate(&detail, 200),
        });
    }
}
