//! Prometheus text exposition (format 0.0.4) of the hub's counters. Names follow Prometheus
//! conventions: `edgetick_` prefix, `_total` for counters, base units (seconds, bytes).

use std::fmt::Write;

/// Upper bounds (seconds) of the fan-out duration histogram.
pub const FANOUT_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Clone, Default, PartialEq)]
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
}

/// Builds an exposition: each family gets `# HELP` and `# TYPE` once, then its samples.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: f64) -> &mut Self {
        let _ = writeln!(self.out, "{name}{} {}", labels(pairs), fmt_value(value));
        self
    }

    /// A whole counter or gauge family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], value)
    }

    /// A histogram family.
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) -> &mut Self {
        self.family(name, "histogram", help);
        for (le, count) in FANOUT_BUCKETS.iter().zip(h.counts.iter()) {
            let le = le.to_string();
            self.sample(&format!("{name}_bucket"), &[("le", &le)], *count as f64);
        }
        self.sample(&format!("{name}_bucket"), &[("le", "+Inf")], h.count as f64);
        self.sample(&format!("{name}_sum"), &[], h.sum);
        self.sample(&format!("{name}_count"), &[], h.count as f64)
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut h = Histogram::default();
        h.observe(0.0);
        h.observe(0.003);
        h.observe(1.0);
        let mut e = Exposition::default();
        e.single("edgetick_x_total", "counter", "Things.", 3.0);
        e.family("edgetick_conn", "gauge", "Connections.")
            .sample("edgetick_conn", &[("transport", "websocket")], 2.0)
            .sample("edgetick_conn", &[("transport", "sse")], 0.0);
        e.histogram("edgetick_fanout_duration_seconds", "Fan-out time.", &h);
        let text = e.finish();
        assert!(text.starts_with("# HELP edgetick_x_total Things.\n# TYPE edgetick_x_total counter\nedgetick_x_total 3\n"));
        assert!(text.contains("edgetick_conn{transport=\"websocket\"} 2\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_count 3\n"));
        assert!(text.contains("edgetick_fanout_duration_seconds_sum 1.003\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut e = Exposition::default();
        e.family("m", "gauge", "h")
            .sample("m", &[("k", "a\"b\\c\nd")], 1.0);
        assert!(e.finish().contains(r#"m{k="a\"b\\c\nd"} 1"#));
    }
}
