//! Percentiles: latency summaries and latency over time.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice.
pub(super) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let exact = p / 100.0 * sorted.len() as f64;
    // 99.9 % of 1,000 computes as 999.0000000000001: a rank within float
    // error of a whole number is that number, not the next one up.
    let nearest = exact.round();
    let rank = if (exact - nearest).abs() <= 1e-6 {
        nearest
    } else {
        exact.ceil()
    } as usize;
    let index = rank.saturating_sub(1).min(sorted.len() - 1);
    sorted.get(index).copied()
}

pub(super) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub(crate) struct LatencySummary {
    pub(crate) count: usize,
    pub(crate) p50: Option<f64>,
    p90: Option<f64>,
    pub(crate) p99: Option<f64>,
    /// Only as sharp as the count: under 1,000 values it is the max.
    pub(crate) p99_9: Option<f64>,
    pub(crate) max: Option<f64>,
}

impl LatencySummary {
    pub(crate) fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let round = |v: Option<f64>| v.map(round3);
        Self {
            count: values.len(),
            p50: round(percentile(&values, 50.0)),
            p90: round(percentile(&values, 90.0)),
            p99: round(percentile(&values, 99.0)),
            p99_9: round(percentile(&values, 99.9)),
            max: round(values.last().copied()),
        }
    }

    pub(crate) fn text(&self) -> String {
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
            show(self.p50),
            show(self.p90),
            show(self.p99),
            show(self.p99_9),
            show(self.max),
            self.count
        )
    }
}

/// Accept latency per time bucket of a phase.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub(crate) struct TimelinePoint {
    /// Bucket start, seconds since the phase start.
    pub(crate) t_s: f64,
    n: usize,
    pub(crate) p50: f64,
    p90: f64,
    pub(crate) p99: f64,
}

#[derive(Serialize, Debug, Clone)]
pub(crate) struct Timeline {
    pub(crate) bucket_ms: u64,
    pub(crate) points: Vec<TimelinePoint>,
}

/// Buckets `(sent at s, latency ms)` samples by send time; empty buckets
/// are left out.
pub(crate) fn timeline(samples: &[(f64, f64)], bucket: Duration) -> Timeline {
    let width = bucket.as_secs_f64().max(1e-3);
    let mut buckets: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for &(at, latency) in samples {
        let index = (at.max(0.0) / width).floor() as u64;
        buckets.entry(index).or_default().push(latency);
    }
    let points = buckets
        .into_iter()
        .map(|(index, mut values)| {
            values.sort_by(f64::total_cmp);
            let p = |q| round3(percentile(&values, q).unwrap_or(0.0));
            TimelinePoint {
                t_s: round3(index as f64 * width),
                n: values.len(),
                p50: p(50.0),
                p90: p(90.0),
                p99: p(99.0),
            }
        })
        .collect();
    Timeline {
        bucket_ms: bucket.as_millis() as u64,
        points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_empty_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_of_one_value_is_that_value() {
        for p in [0.0, 1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&[7.5], p), Some(7.5));
        }
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 90.0), Some(90.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        let small = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&small, 50.0), Some(2.0));
        assert_eq!(percentile(&small, 51.0), Some(3.0));
        assert_eq!(percentile(&small, 99.0), Some(4.0));
        // Ranks that are whole numbers only on paper.
        let many: Vec<f64> = (1..=41_000).map(f64::from).collect();
        assert_eq!(percentile(&many, 99.9), Some(40_959.0));
        assert_eq!(percentile(&many[..2000], 99.9), Some(1998.0));
    }

    #[test]
    fn percentile_rejects_out_of_range() {
        assert_eq!(percentile(&[1.0, 2.0], -1.0), None);
        assert_eq!(percentile(&[1.0, 2.0], 100.5), None);
        assert_eq!(percentile(&[1.0, 2.0], f64::NAN), None);
    }

    #[test]
    fn summary_sorts_its_input() {
        let summary = LatencySummary::of(vec![5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(summary.count, 5);
        assert_eq!(summary.p50, Some(3.0));
        assert_eq!(summary.p90, Some(5.0));
        assert_eq!(summary.p99, Some(5.0));
        assert_eq!(summary.max, Some(5.0));
        assert_eq!(summary.p99_9, Some(5.0));
        let empty = LatencySummary::of(Vec::new());
        assert_eq!(empty.count, 0);
        assert_eq!(empty.max, None);
    }

    #[test]
    fn summary_has_p99_9_by_nearest_rank() {
        // Reversed, so the summary has to sort.
        let summary = LatencySummary::of((1..=1000).rev().map(f64::from).collect());
        assert_eq!(summary.p99, Some(990.0));
        assert_eq!(summary.p99_9, Some(999.0));
        assert_eq!(summary.max, Some(1000.0));
        assert_eq!(
            summary.text(),
            "p50 500.0  p90 900.0  p99 990.0  p99.9 999.0  max 1000.0  (n=1000)"
        );
    }

    #[test]
    fn timeline_buckets_by_send_time() {
        let samples = [(0.01, 1.0), (0.05, 3.0), (0.09, 2.0), (0.25, 10.0)];
        let t = timeline(&samples, Duration::from_millis(100));
        assert_eq!(t.bucket_ms, 100);
        assert_eq!(t.points.len(), 2);
        assert_eq!(t.points[0].n, 3);
        assert_eq!(t.points[0].p50, 2.0);
        assert_eq!(t.points[0].p99, 3.0);
        assert_eq!(t.points[1].t_s, 0.2);
        assert_eq!(t.points[1].p50, 10.0);
    }
}
