//! The liquidation heat map's model (docs/history.md#the-heat-map): where the positions opened
//! in the last 15 minutes would be liquidated, as long and short densities on a price grid.
//!
//! 1. **Created and consumed.** Open interest is sampled every interval; between two samples
//!    a rise is positions created, a fall positions consumed (closed). Created positions enter
//!    at the price of the sample that saw them, longs and shorts split by the price's move
//!    between the samples (a rise with new interest is mostly longs opening: up to 75 %).
//!    A fall takes from every earlier cohort in proportion.
//! 2. **Liquidation levels.** Each cohort is spread over leverage tiers ([`TIERS`]); a long
//!    opened at `P` with leverage `L` is liquidated at `P × (1 − 1/L + m)`, a short at
//!    `P × (1 + 1/L − m)`, `m` the maintenance margin ([`MAINTENANCE`]).
//! 3. **Already liquidated.** The 5-minute candles of the window give the path the price took:
//!    a level the path crossed after the cohort opened (a candle's low at or under a long's
//!    level, its high at or over a short's, or the current price) has been liquidated: those
//!    positions are consumed too, and leave the map.
//! 4. **Buckets.** The grid is [`LEVELS_EACH_SIDE`] steps either side of the current price, a
//!    step about 0.5 % of it rounded to 1, 2 or 5 times a power of ten (so a small move does
//!    not shift the grid); each surviving position adds its contracts to the nearest level, and
//!    densities are divided by the densest level's (0 to 1).
//!
//! Pure and deterministic: the same inputs give the same map.

/// Leverage tiers and the share of positions taken at each.
pub const TIERS: [(f64, f64); 5] = [
    (10.0, 0.15),
    (20.0, 0.2),
    (25.0, 0.25),
    (50.0, 0.25),
    (100.0, 0.15),
];

/// Maintenance margin, as a fraction of the position.
pub const MAINTENANCE: f64 = 0.004;

/// Levels either side of the current price's.
pub const LEVELS_EACH_SIDE: i64 = 20;

/// The window the map covers.
pub const WINDOW_MS: i64 = 15 * 60_000;

/// A move of this fraction between two samples makes created positions 75 % one side.
const DECISIVE_MOVE: f64 = 0.001;

/// One open-interest sample, with the price when it was taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When (ms).
    pub at_ms: i64,
    /// Open interest, in contracts.
    pub oi: f64,
    /// The price then.
    pub price: f64,
}

/// The part of a 5-minute candle the model reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// When it closed (ms).
    pub close_ms: i64,
    /// Its high.
    pub high: f64,
    /// Its low.
    pub low: f64,
}

/// A price grid step: `mantissa × 10^exp`, mantissa 1, 2 or 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// 1, 2 or 5.
    pub mantissa: i64,
    /// The power of ten.
    pub exp: i32,
}

impl Step {
    /// About 0.5 % of `price`, rounded to 1, 2 or 5 times a power of ten.
    pub fn of(price: f64) -> Step {
        let raw = (price * 0.005).max(1e-12);
        let exp = raw.log10().floor() as i32;
        let lead = raw / 10f64.powi(exp);
        let mantissa = match lead {
            l if l < 1.5 => 1,
            l if l < 3.5 => 2,
            l if l < 7.5 => 5,
            _ => 10,
        };
        if mantissa == 10 {
            Step {
                mantissa: 1,
                exp: exp + 1,
            }
        } else {
            Step { mantissa, exp }
        }
    }

    /// Its size.
    pub fn size(self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exp)
    }

    /// Level `k` (`k` steps from zero) as a decimal string, exactly.
    pub fn price_text(self, k: i64) -> String {
        let units = k * self.mantissa;
        if self.exp >= 0 {
            return (units * 10i64.pow(self.exp.unsigned_abs())).to_string();
        }
        let places = self.exp.unsigned_abs() as usize;
        let digits = format!("{:0>width$}", units.unsigned_abs(), width = places + 1);
        let (int, frac) = digits.split_at(digits.len() - places);
        let sign = if units < 0 { "-" } else { "" };
        format!("{sign}{int}.{frac}")
    }
}

/// One level of the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// Its index on the step's grid.
    pub k: i64,
    /// Long positions that would be liquidated here, 0 to 1.
    pub long: f64,
    /// Short positions, 0 to 1.
    pub short: f64,
}

/// The map.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    /// The grid.
    pub step: Step,
    /// Lowest price first.
    pub levels: Vec<Level>,
    /// Contracts created in the window.
    pub created: f64,
    /// Contracts consumed in the window (closed, or liquidated on the way).
    pub consumed: f64,
}

/// Positions opened together.
#[derive(Debug, Clone, Copy)]
struct Cohort {
    at_ms: i64,
    entry: f64,
    long: f64,
    short: f64,
}

/// The share of new positions that are longs, from the price's move while they opened.
fn long_share(before: f64, after: f64) -> f64 {
    let moved = if before > 0.0 {
        (after - before) / before
    } else {
        0.0
    };
    0.5 + 0.25 * (moved / DECISIVE_MOVE).clamp(-1.0, 1.0)
}

/// Step 1: the cohorts the samples describe, and what was created and closed.
fn cohorts(samples: &[Sample]) -> (Vec<Cohort>, f64, f64) {
    let (mut list, mut created, mut closed) = (Vec::<Cohort>::new(), 0.0, 0.0);
    for pair in samples.windows(2) {
        let [a, b] = pair else { continue };
        let d = b.oi - a.oi;
        if d > 0.0 {
            created += d;
            let share = long_share(a.price, b.price);
            let (long, short) = (d * share, d * (1.0 - share));
            list.push(Cohort {
                at_ms: b.at_ms,
                entry: b.price,
                long,
                short,
            });
        } else if d < 0.0 {
            closed += -d;
            let held: f64 = list.iter().map(|c| c.long + c.short).sum();
            let keep = if held > 0.0 {
                (1.0 - -d / held).max(0.0)
            } else {
                0.0
            };
            for c in &mut list {
                c.long *= keep;
                c.short *= keep;
            }
        }
    }
    (list, created, closed)
}

/// Computes the map at `price` from the window's samples and bars (any order).
pub fn compute(price: f64, samples: &[Sample], bars: &[Bar]) -> HeatMap {
    let step = Step::of(price);
    let size = step.size();
    let center = (price / size).round() as i64;
    let low_k = center - LEVELS_EACH_SIDE;
    let mut long = vec![0.0; (2 * LEVELS_EACH_SIDE + 1) as usize];
    let mut short = long.clone();
    let (list, created, mut consumed) = cohorts(samples);
    for c in &list {
        // The path since the cohort opened: later bars, and where the price is now.
        let later = bars.iter().filter(|b| b.close_ms > c.at_ms);
        let path_low = later.clone().map(|b| b.low).fold(price, f64::min);
        let path_high = later.map(|b| b.high).fold(price, f64::max);
        for (lev, share) in TIERS {
            let at_long = c.entry * (1.0 - 1.0 / lev + MAINTENANCE);
            let at_short = c.entry * (1.0 + 1.0 / lev - MAINTENANCE);
            for (level, qty, hit, side) in [
                (at_long, c.long * share, path_low <= at_long, &mut long),
                (at_short, c.short * share, path_high >= at_short, &mut short),
            ] {
                if hit {
                    consumed += qty;
                } else if let Some(slot) =
                    side.get_mut(((level / size).round() as i64 - low_k) as usize)
                {
                    *slot += qty;
                }
            }
        }
    }
    let densest = long.iter().chain(&short).fold(0.0_f64, |m, v| m.max(*v));
    let norm = |v: f64| {
        if densest > 0.0 {
            (v / densest * 10_000.0).round() / 10_000.0
        } else {
            0.0
        }
    };
    let levels = (0..long.len())
        .map(|i| Level {
            k: low_k + i as i64,
            long: norm(long.get(i).copied().unwrap_or(0.0)),
            short: norm(short.get(i).copied().unwrap_or(0.0)),
        })
        .collect();
    HeatMap {
        step,
        levels,
        created,
        consumed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: i64, oi: f64, price: f64) -> Sample {
        Sample {
            at_ms: at_s * 1_000,
            oi,
            price,
        }
    }

    fn at(map: &HeatMap, k: i64) -> (f64, f64) {
        let l = map.levels.iter().find(|l| l.k == k).unwrap();
        (l.long, l.short)
    }

    #[test]
    fn the_grid_steps_by_one_two_or_five_and_writes_prices_exactly() {
        assert_eq!(
            Step::of(92_011.0),
            Step {
                mantissa: 5,
                exp: 2
            }
        );
        assert_eq!(Step::of(92_011.0).price_text(184), "92000");
        assert_eq!(
            Step::of(3_000.0),
            Step {
                mantissa: 2,
                exp: 1
            }
        );
        assert_eq!(
            Step::of(100.0),
            Step {
                mantissa: 5,
                exp: -1
            }
        );
        assert_eq!(Step::of(100.0).price_text(181), "90.5");
        assert_eq!(
            Step::of(0.25),
            Step {
                mantissa: 1,
                exp: -3
            }
        );
        assert_eq!(Step::of(0.25).price_text(250), "0.250");
        assert_eq!(Step::of(0.25).price_text(7), "0.007");
        assert_eq!(
            Step::of(1_900.0),
            Step {
                mantissa: 1,
                exp: 1
            }
        );
    }

    #[test]
    fn without_a_change_of_open_interest_the_map_is_empty() {
        let map = compute(100.0, &[sample(0, 1_000.0, 100.0)], &[]);
        assert_eq!(map.levels.len(), 41);
        assert!(map.levels.iter().all(|l| l.long == 0.0 && l.short == 0.0));
        assert_eq!((map.created, map.consumed), (0.0, 0.0));
        assert_eq!(map.levels[0].k, 180, "20 steps of 0.5 under 100");
    }

    #[test]
    fn created_positions_are_placed_at_their_tiers_liquidation_levels() {
        // Open interest rose by 100 while the price rose 0.2 %: 75 longs, 25 shorts at 100.2.
        let samples = [sample(0, 1_000.0, 100.0), sample(5, 1_100.0, 100.2)];
        let map = compute(100.0, &samples, &[]);
        assert_eq!(map.created, 100.0);
        assert_eq!(map.consumed, 0.0);
        // Longs: 10x at 90.58, 20x 95.59, 25x 96.59, 50x 98.60, 100x 99.60 (step 0.5).
        assert_eq!(at(&map, 181), (0.6, 0.0));
        assert_eq!(at(&map, 191), (0.8, 0.0));
        assert_eq!(at(&map, 193), (1.0, 0.0), "the densest level is 1");
        assert_eq!(at(&map, 197), (1.0, 0.0));
        assert_eq!(at(&map, 199), (0.6, 0.0));
        // Shorts: 100x at 100.80, 50x 101.80, 25x 103.81, 20x 104.81, 10x 109.82.
        assert_eq!(at(&map, 202), (0.0, 0.2));
        assert_eq!(at(&map, 204), (0.0, 0.3333));
        assert_eq!(at(&map, 208), (0.0, 0.3333));
        assert_eq!(at(&map, 210), (0.0, 0.2667));
        assert_eq!(at(&map, 220), (0.0, 0.2));
        let placed = map.levels.iter().filter(|l| l.long + l.short > 0.0).count();
        assert_eq!(placed, 10);
        assert_eq!(compute(100.0, &samples, &[]), map, "deterministic");
    }

    #[test]
    fn a_level_the_price_crossed_is_consumed_and_leaves_the_map() {
        let samples = [sample(0, 1_000.0, 100.0), sample(5, 1_100.0, 100.2)];
        // A bar closing after the cohort opened went down to 99: the 100x longs (99.60) are
        // liquidated; the 50x longs (98.60) are not. A bar before the cohort changes nothing.
        let bars = [
            Bar {
                close_ms: 1_000,
                high: 130.0,
                low: 70.0,
            },
            Bar {
                close_ms: 60_000,
                high: 100.3,
                low: 99.0,
            },
        ];
        let map = compute(100.0, &samples, &bars);
        assert_eq!(map.consumed, 75.0 * 0.15);
        assert_eq!(at(&map, 199), (0.0, 0.0));
        assert_eq!(at(&map, 197), (1.0, 0.0));
    }

    #[test]
    fn a_fall_of_open_interest_closes_positions_in_proportion() {
        let samples = [
            sample(0, 1_000.0, 100.0),
            sample(5, 1_100.0, 100.2),
            sample(10, 1_050.0, 100.2),
        ];
        let map = compute(100.0, &samples, &[]);
        assert_eq!((map.created, map.consumed), (100.0, 50.0));
        // Half of every cohort is gone; the densest level is still the densest.
        assert_eq!(at(&map, 193), (1.0, 0.0));
        assert_eq!(at(&map, 202), (0.0, 0.2));
        let unchanged = compute(100.0, &samples[..2], &[]);
        assert_eq!(
            unchanged.levels, map.levels,
            "proportional: the shape stays"
        );
    }
}
