//! The whole run's report: every run's record, plus what only the set of
//! runs can say (one chart scale, the throughput ratio, the verdict).

use std::time::Duration;

use serde::Serialize;

use crate::{
    config::{FINE_BUCKETS_UP_TO, Flow, Mode},
    measure::timeline,
    scenarios::records::RunReport,
};

#[derive(Serialize, Debug)]
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) mode: &'static str,
    pub(crate) runs: Vec<RunReport>,
    /// pipeline end_to_end_decided_per_s / baseline end_to_end_decided_per_s
    /// (holds flow only).
    pub(crate) pipeline_to_baseline_ratio: Option<f64>,
    pub(crate) pass: bool,
}

impl Report {
    pub(crate) fn new(url: String, mode: Mode, mut runs: Vec<RunReport>) -> Self {
        // One bucket width for every run, so their charts line up.
        let longest = runs
            .iter()
            .map(|run| run.samples.iter().map(|s| s.0).fold(0.0, f64::max))
            .fold(0.0, f64::max);
        let bucket = if longest <= FINE_BUCKETS_UP_TO.as_secs_f64() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        for run in &mut runs {
            run.accept_latency_timeline = Some(timeline(&run.samples, bucket));
        }

        let holds_rate = |mode: Mode| {
            runs.iter()
                .find(|run| run.mode == mode.as_str() && run.flow == Flow::Holds.as_str())
                .map(|run| run.end_to_end_decided_per_s)
        };
        let ratio = match (holds_rate(Mode::Pipeline), holds_rate(Mode::Baseline)) {
            (Some(pipeline), Some(baseline)) if baseline > 0.0 => Some(pipeline / baseline),
            _ => None,
        };
        let pass = runs.iter().all(RunReport::passed);
        Self {
            url,
            mode: mode.as_str(),
            runs,
            pipeline_to_baseline_ratio: ratio,
            pass,
        }
    }
}
