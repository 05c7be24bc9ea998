//! When gathered price changes are sent: as soon as the input at hand is processed while
//! clients are far apart in time, in `FLUSH_MS` windows while sends pile up on the same
//! clients.
//!
//! "As soon as the input at hand is processed" is a flush due *now*, carried out by a timer
//! of zero delay: frames that arrived together (the exchange's ticker and book ticker of one
//! trade, a burst read in one go) are processed first and go out in one frame per client,
//! and nothing waits for input that has not arrived.
//!
//! Waiting only pays when a client would otherwise get several frames within one window:
//! then one frame carries them all and the object's one thread sends fewer frames. When each
//! client's updates are tens of milliseconds apart, a window merges nothing and every
//! delivery just waits for it. So the pacer measures how often a client's new frame follows
//! its previous one closely ("crowding"), and batches only while that is common, or while a
//! burst arrives within one instant (the previous flush is still being carried out).
//! Decisions are pure: time comes in as an argument.

/// Smoothing of the crowding measure: each flush moves it this share of the way towards
/// the flush's own ratio, so a few flushes are enough to follow a change of load.
const SMOOTHING: f64 = 0.2;
/// Start batching when at least this share of recent frames was crowded...
const ENTER_BATCHING: f64 = 0.5;
/// ... and stop only when it falls below this (hysteresis: no flapping at the boundary).
const LEAVE_BATCHING: f64 = 0.3;

/// What to do with a change that just arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// A flush is now scheduled at this time (arm a timer for it): the arrival time itself
    /// when clients are far apart, one window later while they are crowded.
    At(i64),
    /// A flush is already scheduled; the change joins it.
    Pending,
}

/// The flush pacing state of one hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    window_ms: i64,
    /// When the scheduled flush is due, and whether it waits for a window.
    due: Option<(i64, bool)>,
    last_flush_at: Option<i64>,
    crowding: f64,
    batching: bool,
}

impl Pacer {
    /// A pacer with the configured window (`0`: never a window; what arrived together still
    /// goes out together).
    pub fn new(window_ms: i64) -> Pacer {
        Pacer {
            window_ms: window_ms.max(0),
            due: None,
            last_flush_at: None,
            crowding: 0.0,
            batching: false,
        }
    }

    /// A change arrived at `now`.
    pub fn change(&mut self, now: i64) -> Pace {
        if self.due.is_some() {
            return Pace::Pending;
        }
        if self.window_ms == 0 {
            // No window, but still what arrived together goes out together: a flush due now.
            self.due = Some((now, false));
            return Pace::At(now);
        }
        let burst = self.last_flush_at == Some(now);
        let windowed = self.batching || burst;
        let at = if windowed { now + self.window_ms } else { now };
        self.due = Some((at, windowed));
        Pace::At(at)
    }

    /// When the scheduled flush is due.
    pub fn due(&self) -> Option<i64> {
        self.due.map(|(at, _)| at)
    }

    /// Whether the scheduled flush waits for a window (rather than only for the input at
    /// hand).
    pub fn windowed(&self) -> bool {
        self.due.is_some_and(|(_, w)| w)
    }

    /// Whether a frame to one client is crowded: it carries more than one change (a window
    /// merged them), or it follows that client's previous price frame by less than one and
    /// a half windows (a window would have merged them; in windowed mode frames are a window
    /// apart, so the half window tells "a change in every window" from "now and then").
    pub fn crowded(&self, changes: usize, since_last_ms: Option<i64>) -> bool {
        changes > 1 || since_last_ms.is_some_and(|gap| 2 * gap < 3 * self.window_ms)
    }

    /// A flush happened at `now`: it sent `frames` price frames, `crowded` of them crowded
    /// (see [`Pacer::crowded`]).
    pub fn flushed(&mut self, now: i64, frames: usize, crowded: usize) {
        self.due = None;
        self.last_flush_at = Some(now);
        if frames == 0 {
            return;
        }
        let ratio = crowded.min(frames) as f64 / frames as f64;
        self.crowding += (ratio - self.crowding) * SMOOTHING;
        if self.batching && self.crowding < LEAVE_BATCHING {
            self.batching = false;
        } else if !self.batching && self.crowding >= ENTER_BATCHING {
            self.batching = true;
        }
    }

    /// True while changes are gathered into windows.
    pub fn batching(&self) -> bool {
        self.batching
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_hub_flushes_as_soon_as_the_input_at_hand_is_processed() {
        let mut p = Pacer::new(5);
        assert_eq!(p.change(1_000), Pace::At(1_000), "due now: no window");
        assert!(!p.windowed());
        assert_eq!(
            p.change(1_000),
            Pace::Pending,
            "what arrived together joins it"
        );
        p.flushed(1_000, 250, 0);
        // The next change 10 ms later (load B: each client's updates ~40 ms apart).
        assert_eq!(p.change(1_010), Pace::At(1_010));
        p.flushed(1_010, 250, 20);
        assert!(!p.batching());
    }

    #[test]
    fn a_burst_within_one_instant_is_coalesced_with_bounded_delay() {
        let mut p = Pacer::new(5);
        assert_eq!(p.change(2_000), Pace::At(2_000));
        p.flushed(2_000, 1_000, 0);
        // More changes in the instant of that flush: it is still being carried out.
        assert_eq!(p.change(2_000), Pace::At(2_005));
        assert!(p.windowed());
        assert_eq!(p.change(2_001), Pace::Pending);
        assert_eq!(p.change(2_004), Pace::Pending);
        assert_eq!(p.due(), Some(2_005));
        p.flushed(2_005, 1_000, 0);
        assert_eq!(p.due(), None);
        assert_eq!(p.change(2_009), Pace::At(2_009));
    }

    #[test]
    fn crowded_clients_switch_to_windows_and_back_with_hysteresis() {
        let mut p = Pacer::new(5);
        let mut t = 0;
        // Load H: every client gets a frame every flush.
        for _ in 0..10 {
            t += 3;
            p.change(t);
            p.flushed(t, 1_000, 1_000);
        }
        assert!(p.batching());
        t += 1;
        assert_eq!(
            p.change(t),
            Pace::At(t + 5),
            "windowed: delay bounded by FLUSH_MS"
        );
        assert!(p.windowed());
        p.flushed(t + 5, 1_000, 1_000);
        // The load falls: crowding decays, batching stops only below the lower bound.
        let mut flushes = 0;
        while p.batching() {
            t += 50;
            p.change(t);
            p.flushed(t, 100, 0);
            flushes += 1;
        }
        assert!(flushes > 1, "hysteresis keeps batching for a few flushes");
        t += 50;
        assert_eq!(p.change(t), Pace::At(t));
    }

    #[test]
    fn crowded_means_merged_or_within_a_window_and_a_half() {
        let p = Pacer::new(5);
        assert!(p.crowded(2, None), "a frame that merged two changes");
        assert!(p.crowded(1, Some(7)), "7 ms after the previous frame");
        assert!(
            !p.crowded(1, Some(10)),
            "load B's neighbours, 10 ms apart: nothing to merge"
        );
        assert!(!p.crowded(1, None), "a first frame");
    }

    #[test]
    fn a_zero_window_flushes_what_arrived_together_and_never_waits_for_a_window() {
        let mut p = Pacer::new(0);
        for t in [0, 0, 0, 1] {
            assert_eq!(
                p.change(t),
                Pace::At(t),
                "due at once, after the input at hand"
            );
            assert_eq!(
                p.change(t),
                Pace::Pending,
                "what arrives meanwhile joins it"
            );
            p.flushed(t, 10, 10);
        }
        // However crowded the clients, no window.
        for t in 2..50 {
            assert_eq!(p.change(t), Pace::At(t));
            p.flushed(t, 100, 100);
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_decisions() {
        let run = || {
            let mut p = Pacer::new(5);
            (0..200)
                .map(|i| {
                    let t = i * 2;
                    let pace = p.change(t);
                    if p.due().is_some_and(|d| d <= t) {
                        p.flushed(t, 100, (i as usize * 37) % 100);
                    }
                    pace
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
