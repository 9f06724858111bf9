//! What the waiting room costs the database, counted.

use std::sync::atomic::{AtomicU64, Ordering};

/// The queries the waiting room has sent, by kind.
#[derive(Debug, Default)]
pub struct Reads {
    /// Reads of one job's row (a poll, a stream's first read, `Prefer: wait`).
    pub job_rows: AtomicU64,
    /// Reads of a lane's queued ids.
    pub lane_snapshots: AtomicU64,
    /// Reads of streamed jobs' final states, each for many jobs.
    pub final_states: AtomicU64,
}

impl Reads {
    /// (job rows, lane snapshots, final states) so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.job_rows.load(Ordering::Relaxed),
            self.lane_snapshots.load(Ordering::Relaxed),
            self.final_states.load(Ordering::Relaxed),
        )
    }
}
