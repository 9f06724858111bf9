//! The waiting room: a queued hold's or order's place in line and an
//! estimate of when it is decided (`queue` on the job), by polling or as a
//! stream of the job (`GET /api/v1/jobs/{id}`, `Accept: text/event-stream`).
//!
//! Cheap at polling rates by design. A poll costs the one read of its job
//! row (which says the job's lane); places come from `lanes`, one shared
//! snapshot per lane read at most every 250 ms while someone asks; ETAs
//! from the rate jobs leave that snapshot (`rate`). An open stream costs
//! no query while it waits: its places come from the same snapshot, and its
//! final state from `streams`, which reads the final states of every
//! streamed job an event names in one statement. The [`Reads`] counters
//! make that visible.

mod feed;
mod lanes;
mod rate;
mod reads;
mod streams;

use std::sync::{Arc, atomic::Ordering};

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use feed::Feed;
pub use lanes::{LaneKey, Lanes, REFRESH_EVERY};
use rate::Decisions;
pub use rate::{DEFAULT_PER_SEC, WINDOW as RATE_WINDOW};
pub use reads::Reads;
pub use streams::Streams;

use crate::{
    db::jobs,
    domain::{Job, JobKind, JobStatus},
};

/// Cheap to clone.
#[derive(Clone)]
pub struct WaitingRoom {
    pool: MySqlPool,
    pub reads: Arc<Reads>,
    pub lanes: Lanes,
    pub streams: Streams,
    decisions: Arc<Decisions>,
}

impl WaitingRoom {
    pub fn new(pool: MySqlPool) -> Self {
        let reads = Arc::new(Reads::default());
        let streams = Streams::default();
        let decisions = Arc::new(Decisions::default());
        Self {
            lanes: Lanes::new(
                pool.clone(),
                reads.clone(),
                streams.clone(),
                decisions.clone(),
            ),
            pool,
            reads,
            streams,
            decisions,
        }
    }

    /// The job, with its lane: one read of its row.
    pub async fn read_job(&self, id: Uuid) -> sqlx::Result<Option<Job>> {
        self.reads.job_rows.fetch_add(1, Ordering::Relaxed);
        jobs::get(&self.pool, id).await
    }

    /// `job` with its place in line, when it is a queued hold or order.
    pub async fn with_place(&self, mut job: Job) -> sqlx::Result<Job> {
        if let Some(key) = lane_of(&job) {
            job.queue = Some(self.lanes.place(key, job.job_id).await?);
        }
        Ok(job)
    }

    /// A stream of the job `id`, or None when there is no such job.
    pub async fn stream(&self, id: Uuid) -> sqlx::Result<Option<Feed>> {
        let subscription = self.streams.open(id);
        let Some(mut job) = self.read_job(id).await? else {
            return Ok(None);
        };
        let following = match lane_of(&job) {
            Some(key) => {
                let following = self.lanes.follow(key, id).await?;
                job.queue = Some(following.place(None));
                Some(following)
            }
            None => {
                if job.status == JobStatus::Queued {
                    subscription.without_lane();
                }
                None
            }
        };
        let closing = self.streams.closing().clone();
        Ok(Some(Feed::new(job, subscription, following, closing)))
    }

    /// Jobs a worker reported finished: their streams end.
    pub fn finished(&self, job_ids: &[Uuid]) {
        self.decisions
            .record(job_ids.len() as u64, std::time::Instant::now());
        self.streams.check(job_ids.iter().copied());
    }

    /// Reads streamed jobs' final states until `shutdown` (the api runs it
    /// beside its event listener), then ends every stream.
    pub async fn run(self, shutdown: CancellationToken) {
        self.streams
            .clone()
            .run(self.pool.clone(), self.reads.clone(), shutdown)
            .await
    }
}

/// The lane a job waits in: queued holds and orders recorded with one.
fn lane_of(job: &Job) -> Option<LaneKey> {
    match (job.status, job.kind, job.lane) {
        (JobStatus::Queued, JobKind::Hold | JobKind::Order, Some(lane)) => Some(LaneKey {
            kind: job.kind,
            lane,
        }),
        _ => None,
    }
}
