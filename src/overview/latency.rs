//! A small log-scale latency histogram: classes about 5 % wide over
//! milliseconds, so a percentile is a walk over a few dozen counters and
//! at most 5 % above the true value, whatever the spread.
//!
//! Class 0 holds everything up to 1 ms; class `k` ≥ 1 holds
//! (1.05^(k-1), 1.05^k] ms. A percentile is reported as its class's upper
//! bound, rounded up to a whole millisecond.

use std::collections::BTreeMap;

/// Width of a class: each bound is this factor times the previous one.
const GROWTH: f64 = 1.05;
/// Highest class: about 1.05^400 ms ≈ 3 × 10^8 ms (3.5 days); anything
/// longer (a job that waited through an outage) is counted in it.
const TOP_CLASS: u16 = 400;

/// Latencies counted by class. Sparse: a second of one product's
/// decisions touches only a few classes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: BTreeMap<u16, u64>,
}

/// The class of a latency of `ms` milliseconds (negative: a clock ahead of
/// ours; counted as 0).
pub fn class_of(ms: f64) -> u16 {
    if ms.is_nan() || ms <= 1.0 {
        return 0;
    }
    let mut class = (ms.ln() / GROWTH.ln())
        .ceil()
        .clamp(1.0, f64::from(TOP_CLASS)) as u16;
    // The logarithm may put a latency at a bound one class off; checking
    // the bounds keeps (1.05^(k-1), 1.05^k] exact.
    if class > 1 && upper_bound(class - 1) >= ms {
        class -= 1;
    } else if class < TOP_CLASS && upper_bound(class) < ms {
        class += 1;
    }
    class
}

/// The largest latency in `class`, in ms.
fn upper_bound(class: u16) -> f64 {
    GROWTH.powi(i32::from(class))
}

/// The largest latency in `class`, rounded up to a whole millisecond.
pub fn reported_ms(class: u16) -> u64 {
    upper_bound(class).ceil() as u64
}

impl Histogram {
    pub fn record(&mut self, ms: f64) {
        *self.counts.entry(class_of(ms)).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (class, count) in &other.counts {
            *self.counts.entry(*class).or_default() += count;
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The `q`-quantile (0 < q ≤ 1) by nearest rank, in whole ms (its
    /// class's upper bound); `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (class, count) in &self.counts {
            seen += count;
            if seen >= rank {
                return Some(reported_ms(*class));
            }
        }
        self.counts.keys().next_back().map(|c| reported_ms(*c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_about_five_percent_wide() {
        assert_eq!(class_of(-3.0), 0);
        assert_eq!(class_of(0.4), 0);
        assert_eq!(class_of(1.0), 0);
        assert_eq!(class_of(1.01), 1);
        assert_eq!(class_of(1.05), 1);
        assert_eq!(class_of(1.0501), 2);
        for ms in [2.0, 17.3, 250.0, 999.9, 12_345.0, 600_000.0] {
            let class = class_of(ms);
            let (low, high) = (upper_bound(class - 1), upper_bound(class));
            assert!(low < ms && ms <= high, "{ms} not in ({low}, {high}]");
            assert!(high / low <= GROWTH + 1e-9);
        }
        assert_eq!(class_of(f64::INFINITY), TOP_CLASS);
    }

    #[test]
    fn percentiles_are_at_most_five_percent_high() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        // 1..=1000 ms, one each: the true p50 is 500, p99 990.
        for ms in 1..=1000 {
            h.record(f64::from(ms));
        }
        assert_eq!(h.count(), 1000);
        let p50 = h.quantile_ms(0.5).expect("p50");
        let p99 = h.quantile_ms(0.99).expect("p99");
        assert!((500..=525).contains(&p50), "p50 {p50}");
        assert!((990..=1040).contains(&p99), "p99 {p99}");
        assert_eq!(h.quantile_ms(1.0), Some(reported_ms(class_of(1000.0))));
    }

    #[test]
    fn one_sample_is_every_percentile_and_merging_adds() {
        let mut a = Histogram::default();
        a.record(40.0);
        assert_eq!(a.quantile_ms(0.5), a.quantile_ms(0.99));
        assert!((40..=42).contains(&a.quantile_ms(0.5).expect("p50")));
        let mut b = Histogram::default();
        for _ in 0..99 {
            b.record(0.5);
        }
        b.merge(&a);
        assert_eq!(b.count(), 100);
        assert_eq!(b.quantile_ms(0.5), Some(1));
        assert_eq!(b.quantile_ms(0.99), Some(1));
        assert_eq!(b.quantile_ms(1.0), a.quantile_ms(1.0));
    }
}
