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

    /// The rate to estimate with: measured over the window; else
    /// `everywhere`, the rate jobs are decided at across all lanes (a sale's
    /// first moments, before two snapshots of this lane saw any leave);
    /// else (a paused worker) the last rate measured, which by then is the
    /// slow tail of the window it was measured over; never measured,
    /// [`DEFAULT_PER_SEC`]. Always positive.
    pub fn per_sec(&self, everywhere: Option<f64>) -> f64 {
        self.measured()
            .or(everywhere)
            .or(self.last_known)
            .unwrap_or(DEFAULT_PER_SEC)
    }

    /// Milliseconds until the job at `position` is decided at this rate.
    pub fn eta_ms(&self, position: u64, everywhere: Option<f64>) -> u64 {
        // Float to integer casts saturate: a huge estimate stays u64::MAX.
        (position as f64 * 1000.0 / self.per_sec(everywhere)).ceil() as u64
    }
}

/// Jobs decided anywhere, as the job-finished events the api receives
/// count them: the rate a lane falls back on before its own is measured.
#[derive(Debug, Default)]
pub struct Decisions {
    events: std::sync::Mutex<VecDeque<(Instant, u64)>>,
}

/// The shortest span a rate is taken over: a first event alone says little.
const MIN_SPAN: Duration = Duration::from_millis(250);

impl Decisions {
    pub fn record(&self, decided: u64, at: Instant) {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        events.push_back((at, decided));
        while events
            .front()
            .is_some_and(|(t, _)| at.saturating_duration_since(*t) >= WINDOW)
        {
            events.pop_front();
        }
    }

    /// Jobs per second over the window (or since its first event), when
    /// any was decided in it.
    pub fn per_sec(&self, now: Instant) -> Option<f64> {
        let events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent = events
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) < WINDOW);
        let (first, decided) =
            recent.fold((None, 0), |(first, n), (t, d)| (first.or(Some(*t)), n + d));
        let span = now.saturating_duration_since(first?).max(MIN_SPAN);
        (decided > 0).then(|| decided as f64 / span.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmeasured_lanes_use_the_default() {
        let rate = Rate::default();
        assert_eq!(rate.per_sec(None), DEFAULT_PER_SEC);
        assert_eq!(rate.eta_ms(20, None), 1000);
        assert_eq!(rate.eta_ms(0, None), 0);
        // Before its own is measured, a lane takes the rate everywhere.
        assert_eq!(rate.eta_ms(20, Some(2000.0)), 10);
    }

    #[test]
    fn departures_over_the_window_make_the_rate() {
        let start = Instant::now();
        let mut rate = Rate::default();
        let quarter = Duration::from_millis(250);
        rate.record(10, quarter, start + quarter);
        rate.record(30, quarter, start + 2 * quarter);
        // 40 jobs in half a second.
        assert!((rate.per_sec(None) - 80.0).abs() < 1e-9);
        assert_eq!(rate.eta_ms(8, Some(1.0)), 100);
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
        assert!((rate.per_sec(None) - 20.0).abs() < 1e-9);
        for s in 6..=12 {
            rate.record(0, second, start + s * second);
        }
        assert!((rate.per_sec(None) - 20.0).abs() < 1e-9, "last known");
    }

    #[test]
    fn decisions_everywhere_make_a_rate_over_the_window() {
        let start = Instant::now();
        let decisions = Decisions::default();
        assert_eq!(decisions.per_sec(start), None);
        decisions.record(100, start);
        decisions.record(300, start + Duration::from_millis(500));
        let rate = decisions.per_sec(start + Duration::from_secs(1));
        assert!(rate.is_some_and(|r| (r - 400.0).abs() < 1e-9), "{rate:?}");
        // Alone, a first event counts over at least MIN_SPAN.
        let fresh = Decisions::default();
        fresh.record(50, start);
        assert!(
            fresh
                .per_sec(start)
                .is_some_and(|r| (r - 200.0).abs() < 1e-9)
        );
        assert_eq!(decisions.per_sec(start + Duration::from_secs(7)), None);
    }

    #[test]
    fn long_gaps_are_not_samples() {
        let mut rate = Rate::default();
        rate.record(1000, Duration::from_secs(60), Instant::now());
        assert_eq!(rate.per_sec(None), DEFAULT_PER_SEC);
    }
}
