//! How fast a lane is being decided: the jobs that left it between two
//! snapshots, over the time between them, smoothed over the last
//! [`WINDOW`].

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// How far back departures count toward the rate.
pub const WINDOW: Duration = Duration::from_secs(5);

/// Jobs per second assumed for a lane whose rate was never measured (no
/// snapshot has seen a job leave yet, e.g. before the sale's first batch):
/// deliberately low, so a first estimate errs long rather than promising
/// what the worker may not do. A worker decides hundreds to thousands of
/// holds a second (docs/BENCHMARKS.md); the first measured interval
/// replaces this.
pub const DEFAULT_PER_SEC: f64 = 20.0;

/// Departures seen between two consecutive snapshots.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// When the later snapshot was taken.
    at: Instant,
    span: Duration,
    departed: u64,
}

#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<Sample>,
    /// The last rate measured with departures in the window.
    last_known: Option<f64>,
}

impl Rate {
    /// `departed` jobs left the lane over `span`, ending at `at`. An interval
    /// longer than the window (nobody asked for a while) says too little
    /// about when they left and is not counted.
    pub fn record(&mut self, departed: u64, span: Duration, at: Instant) {
        if span.is_zero() || span > WINDOW {
            return;
        }
        self.samples.push_back(Sample { at, span, departed });
        while self
            .samples
            .front()
            .is_some_and(|s| at.saturating_duration_since(s.at) >= WINDOW)
        {
            self.samples.pop_front();
        }
        if let Some(rate) = self.measured() {
            self.last_known = Some(rate);
        }
    }

    /// Departures per second over the window, when any job left in it.
    fn measured(&self) -> Option<f64> {
        let departed: u64 = self.samples.iter().map(|s| s.departed).sum();
        let span: f64 = self.samples.iter().map(|s| s.span.as_secs_f64()).sum();
        (departed > 0 && span > 0.0).then(|| departed as f64 / span)
    }

    /// The rate to estimate with: measured over the window; when nothing
    /// left in it (a paused worker), the last rate measured, which by then
    /// is the slow tail of the window it was measured over; never measured,
    /// [`DEFAULT_PER_SEC`]. Always positive.
    pub fn per_sec(&self) -> f64 {
        self.measured()
            .or(self.last_known)
            .unwrap_or(DEFAULT_PER_SEC)
    }

    /// Milliseconds until the job at `position` is decided at this rate.
    pub fn eta_ms(&self, position: u64) -> u64 {
        // Float to integer casts saturate: a huge estimate stays u64::MAX.
        (position as f64 * 1000.0 / self.per_sec()).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmeasured_lanes_use_the_default() {
        let rate = Rate::default();
        assert_eq!(rate.per_sec(), DEFAULT_PER_SEC);
        assert_eq!(rate.eta_ms(20), 1000);
        assert_eq!(rate.eta_ms(0), 0);
    }

    #[test]
    fn departures_over_the_window_make_the_rate() {
        let start = Instant::now();
        let mut rate = Rate::default();
        let quarter = Duration::from_millis(250);
        rate.record(10, quarter, start + quarter);
        rate.record(30, quarter, start + 2 * quarter);
        // 40 jobs in half a second.
        assert!((rate.per_sec() - 80.0).abs() < 1e-9);
        assert_eq!(rate.eta_ms(8), 100);
    }

    #[test]
    fn a_pause_keeps_the_last_measured_rate_and_old_samples_expire() {
        let start = Instant::now();
        let mut rate = Rate::default();
        let second = Duration::from_secs(1);
        rate.record(100, second, start + second);
        for s in 2..=5 {
            rate.record(0, second, start + s * second);
        }
        // 100 over the 5 s window.
        assert!((rate.per_sec() - 20.0).abs() < 1e-9);
        for s in 6..=12 {
            rate.record(0, second, start + s * second);
        }
        assert!((rate.per_sec() - 20.0).abs() < 1e-9, "last known");
    }

    #[test]
    fn long_gaps_are_not_samples() {
        let mut rate = Rate::default();
        rate.record(1000, Duration::from_secs(60), Instant::now());
        assert_eq!(rate.per_sec(), DEFAULT_PER_SEC);
    }
}
