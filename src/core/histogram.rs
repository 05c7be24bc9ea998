//! The fan-out duration histogram: recorded by the fan-out, exposed by `/metrics`. A leaf,
//! so the fan-out does not depend on the exposition.

/// Upper bounds (seconds) of the fan-out duration histogram.
pub const FANOUT_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Histogram {
    counts: [u64; FANOUT_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    /// Records one observation in seconds.
    pub fn observe(&mut self, seconds: f64) {
        for (count, le) in self.counts.iter_mut().zip(FANOUT_BUCKETS.iter()) {
            if seconds <= *le {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// Each bucket's upper bound (seconds) and the observations at or below it.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        FANOUT_BUCKETS
            .iter()
            .copied()
            .zip(self.counts.iter().copied())
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their sum (seconds).
    pub fn sum(&self) -> f64 {
        self.sum
    }
}
