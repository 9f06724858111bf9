//! Waiting-room accuracy: the `queue.eta_ms` a queued job's poll first
//! showed, against how long the job then took to be decided.

use serde::Serialize;

use super::latency::{percentile, round3};

/// One job whose poll showed an eta.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct EtaSample {
    /// The first `queue.eta_ms` seen.
    pub(crate) eta_ms: f64,
    /// From that poll's sending to the job's `completed_at`.
    pub(crate) actual_ms: f64,
}

/// Median and p90 of one measure.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub(crate) struct Spread {
    pub(crate) count: usize,
    pub(crate) p50: Option<f64>,
    pub(crate) p90: Option<f64>,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self {
            count: values.len(),
            p50: percentile(&values, 50.0).map(round3),
            p90: percentile(&values, 90.0).map(round3),
        }
    }

    /// `p50 X  p90 Y  (n=N)`, with `decimals` digits.
    pub(crate) fn text(&self, decimals: usize) -> String {
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"));
        format!(
            "p50 {}  p90 {}  (n={})",
            show(self.p50),
            show(self.p90),
            self.count
        )
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub(crate) struct EtaAccuracy {
    pub(crate) jobs: usize,
    /// |actual − eta| in ms.
    pub(crate) abs_error_ms: Spread,
    /// actual / eta, for the jobs whose eta was above 0.
    pub(crate) actual_to_eta: Spread,
}

impl EtaAccuracy {
    /// `None` when no poll showed an eta (an api without the waiting room).
    pub(crate) fn of(samples: &[EtaSample]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let errors = samples
            .iter()
            .map(|s| (s.actual_ms - s.eta_ms).abs())
            .collect();
        let ratios = samples
            .iter()
            .filter(|s| s.eta_ms > 0.0)
            .map(|s| s.actual_ms / s.eta_ms)
            .collect();
        Some(Self {
            jobs: samples.len(),
            abs_error_ms: Spread::of(errors),
            actual_to_eta: Spread::of(ratios),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_eta_seen_is_no_report() {
        assert_eq!(EtaAccuracy::of(&[]), None);
    }

    #[test]
    fn errors_and_ratios_are_summarised() {
        let sample = |eta_ms, actual_ms| EtaSample { eta_ms, actual_ms };
        let samples = [
            sample(100.0, 150.0),
            sample(200.0, 100.0),
            sample(0.0, 30.0),
            sample(400.0, 400.0),
        ];
        let Some(accuracy) = EtaAccuracy::of(&samples) else {
            panic!("etas were seen");
        };
        assert_eq!(accuracy.jobs, 4);
        // |errors|: 50, 100, 30, 0 → sorted 0, 30, 50, 100.
        assert_eq!(accuracy.abs_error_ms.p50, Some(30.0));
        assert_eq!(accuracy.abs_error_ms.p90, Some(100.0));
        // An eta of 0 has no ratio: 1.5, 0.5, 1.0.
        assert_eq!(accuracy.actual_to_eta.count, 3);
        assert_eq!(accuracy.actual_to_eta.p50, Some(1.0));
        assert_eq!(accuracy.actual_to_eta.p90, Some(1.5));
        assert_eq!(accuracy.actual_to_eta.text(2), "p50 1.00  p90 1.50  (n=3)");
    }
}
