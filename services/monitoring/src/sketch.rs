//! Mergeable latency sketches (DDSketch, `sketches-ddsketch`).
//!
//! A quantile read from a sketch is within [`RELATIVE_ERROR`] of the true
//! quantile of the values it holds, relative to that value, and this stays
//! true after any number of merges: p95 over a day is the p95 of the day's
//! calls, not an average of hourly p95s.

use sketches_ddsketch::{Config, DDSketch};

/// The sketches' relative accuracy (α).
pub const RELATIVE_ERROR: f64 = 0.01;
/// Bins a sketch may grow to. With α = 1% this spans 1 µs to ~10⁸ ms
/// before the lowest bins collapse (only then would the bound weaken, at
/// the low end).
const MAX_BINS: u32 = 4096;
/// Values below this (ms) count as this.
const MIN_VALUE_MS: f64 = 1e-3;

#[derive(Clone)]
pub struct Sketch(DDSketch);

impl Default for Sketch {
    fn default() -> Self {
        Self(DDSketch::new(Config::new(
            RELATIVE_ERROR,
            MAX_BINS,
            MIN_VALUE_MS,
        )))
    }
}

impl std::fmt::Debug for Sketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sketch(count={})", self.0.count())
    }
}

impl Sketch {
    pub fn add(&mut self, ms: f64) {
        if ms.is_finite() && ms >= 0.0 {
            self.0.add(ms.max(MIN_VALUE_MS));
        }
    }

    pub fn count(&self) -> u64 {
        self.0.count() as u64
    }

    /// Adds `other`'s values.
    pub fn merge(&mut self, other: &Sketch) {
        if other.0.count() == 0 {
            return;
        }
        if self.0.count() == 0 {
            *self = other.clone();
            return;
        }
        if let Err(e) = self.0.merge(&other.0) {
            tracing::warn!(error = %e, "latency sketches with different settings not merged");
        }
    }

    /// The `q` quantile (0 to 1); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q).ok().flatten()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    /// A stored sketch; an unreadable one reads as empty (and is logged).
    pub fn from_json(s: &str) -> Self {
        if s.is_empty() {
            return Self::default();
        }
        match serde_json::from_str::<DDSketch>(s) {
            Ok(d) => Self(d),
            Err(e) => {
                tracing::warn!(error = %e, "unreadable latency sketch");
                Self::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of log-normal-ish latencies (ms).
    fn latencies(n: usize) -> Vec<f64> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                let v = ((x.rotate_left(17) >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
                let z = (-2.0 * v.ln()).sqrt() * (2.0 * std::f64::consts::PI * u).cos();
                (3.0 + 1.2 * z).exp()
            })
            .collect()
    }

    fn exact(sorted: &[f64], q: f64) -> f64 {
        // The lower nearest rank, as DDSketch's quantile reads its rank.
        let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
        sorted[rank]
    }

    #[test]
    fn merged_partial_sketches_stay_within_the_stated_error() {
        let values = latencies(20_000);
        // Ten partial sketches, stored and read back, merged: as rollups are.
        let mut merged = Sketch::default();
        for part in values.chunks(2_000) {
            let mut s = Sketch::default();
            for v in part {
                s.add(*v);
            }
            merged.merge(&Sketch::from_json(&s.to_json()));
        }
        assert_eq!(merged.count(), 20_000);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
            let want = exact(&sorted, q);
            let got = merged.quantile(q).unwrap();
            let err = (got - want).abs() / want;
            assert!(
                err <= RELATIVE_ERROR + 1e-9,
                "q{q}: {got} vs {want} ({err})"
            );
        }
    }

    #[test]
    fn averaging_percentiles_is_not_what_we_do() {
        // Two buckets: many fast calls, a few slow ones. The merged p99 is
        // the slow calls'; the mean of the buckets' p99s is not.
        let mut fast = Sketch::default();
        let mut slow = Sketch::default();
        for _ in 0..990 {
            fast.add(10.0);
        }
        for _ in 0..10 {
            slow.add(1000.0);
        }
        let mut all = fast.clone();
        all.merge(&slow);
        let p = all.quantile(0.995).unwrap();
        assert!((p - 1000.0).abs() / 1000.0 <= RELATIVE_ERROR, "{p}");
        assert!(all.quantile(0.5).unwrap() < 10.5);
    }

    #[test]
    fn junk_reads_as_empty() {
        assert_eq!(Sketch::from_json("{not json").count(), 0);
        assert_eq!(Sketch::from_json("").quantile(0.5), None);
        let mut s = Sketch::default();
        s.add(f64::NAN);
        s.add(-1.0);
        assert_eq!(s.count(), 0);
    }
}
