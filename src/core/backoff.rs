//! Reconnect delays: capped exponential backoff with full jitter (see docs/upstream.md).
//!
//! Randomness comes in as an argument, so tests pin it and the edge supplies `Math.random()`.

/// First retry waits up to this long.
pub const BASE_MS: i64 = 1_000;
/// No retry waits longer than this.
pub const CAP_MS: i64 = 60_000;
/// Even with a jitter draw of zero, wait this long, so a broken endpoint is never hammered.
pub const FLOOR_MS: i64 = 100;

/// Delay before retry number `failures` (1 for the first retry). `jitter` is a uniform draw
/// from `[0, 1)`; full jitter spreads reconnecting clients so they do not arrive together.
pub fn delay_ms(failures: u32, jitter: f64) -> i64 {
    let exp = failures.saturating_sub(1).min(16);
    let ceiling = BASE_MS.saturating_mul(1_i64 << exp).min(CAP_MS);
    let j = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        1.0
    };
    ((ceiling as f64 * j) as i64).clamp(FLOOR_MS, ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        assert_eq!(delay_ms(1, 1.0), 1_000);
        assert_eq!(delay_ms(2, 1.0), 2_000);
        assert_eq!(delay_ms(6, 1.0), 32_000);
        assert_eq!(delay_ms(7, 1.0), 60_000);
        assert_eq!(delay_ms(1_000, 1.0), 60_000);
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        assert_eq!(delay_ms(3, 0.5), 2_000);
        assert_eq!(delay_ms(3, 0.0), FLOOR_MS);
        assert_eq!(delay_ms(3, f64::NAN), 4_000);
        for i in 0..100 {
            let d = delay_ms(10, i as f64 / 100.0);
            assert!((FLOOR_MS..=CAP_MS).contains(&d));
        }
    }
}
