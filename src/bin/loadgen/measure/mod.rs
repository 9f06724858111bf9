//! Layer 0: pure measurement helpers (rates, spans, counts, percentiles),
//! shared by the layers that measure and the one that reports. Imports
//! nothing else of loadgen.

mod cpu;
mod eta;
mod exposition;
mod latency;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde::Serialize;

pub(crate) use cpu::{CpuReadings, CpuReport, ProcessCpu};
pub(crate) use eta::{EtaAccuracy, EtaSample};
pub(crate) use exposition::family_sum;
pub(crate) use latency::{LatencySummary, Timeline, TimelinePoint, timeline};

pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub(crate) fn per_second(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// Requests of one kind: from the first sent to the last answered.
#[derive(Serialize, Debug, Clone)]
pub(crate) struct PhaseStat {
    pub(crate) name: String,
    pub(crate) requests: usize,
    pub(crate) elapsed_s: f64,
    pub(crate) requests_per_s: f64,
}

impl PhaseStat {
    pub(crate) fn new(name: &str, requests: usize, elapsed: Duration) -> Self {
        Self {
            name: name.to_owned(),
            requests,
            elapsed_s: elapsed.as_secs_f64(),
            requests_per_s: per_second(requests, elapsed),
        }
    }
}

/// First send and last answer of one kind of request.
#[derive(Default, Clone, Copy)]
pub(crate) struct Span {
    pub(crate) count: usize,
    first: Option<Instant>,
    pub(crate) last: Option<Instant>,
}

impl Span {
    pub(crate) fn add(&mut self, sent: Instant, answered: Instant) {
        self.count += 1;
        self.first = Some(self.first.map_or(sent, |t| t.min(sent)));
        self.last = Some(self.last.map_or(answered, |t| t.max(answered)));
    }

    pub(crate) fn elapsed(&self) -> Duration {
        match (self.first, self.last) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        }
    }

    pub(crate) fn phase(&self, name: &str) -> PhaseStat {
        PhaseStat::new(name, self.count, self.elapsed())
    }
}

/// Counts one more of `key` (an outcome or error bucket).
pub(crate) fn bump(map: &mut BTreeMap<String, usize>, key: String) {
    *map.entry(key).or_default() += 1;
}

/// `key: n, …`, or `none`: how counts read in the text report and warnings.
pub(crate) fn counts_text(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(key, n)| format!("{key}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
