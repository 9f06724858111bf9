//! Open job streams, by job, and the one task that reads their final
//! states. Nothing here queries per stream: a job-finished event (or a job
//! gone from its lane's snapshot) names jobs, those with open streams are
//! gathered, and one statement reads all of them; each stream of a job
//! shares its outcome.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError, atomic::Ordering},
    time::Duration,
};

use sqlx::MySqlPool;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::reads::Reads;
use crate::{
    db::queue,
    domain::{Job, JobStatus},
};

/// The most jobs one final-state read names.
const READ_AT_MOST: usize = 1000;
/// After a failed read, the pause before reading its jobs again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Streamed jobs with no lane (payments, rows older than lanes) have no
/// snapshot to vanish from; a lost event is caught by reading them all
/// again this often.
const LANELESS_AGAIN_EVERY: Duration = Duration::from_secs(5);

/// How a streamed job ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    Decided(Arc<Job>),
    /// The row is gone (retention removed it): nothing more to say.
    Gone,
}

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Streams {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    open: Mutex<HashMap<Uuid, Open>>,
    /// Jobs whose final state is to be read.
    pending: Mutex<HashSet<Uuid>>,
    wake: Notify,
    /// Cancelled when the api stops: streams end so connections can drain.
    closing: CancellationToken,
}

struct Open {
    outcome: watch::Sender<Option<Outcome>>,
    streams: usize,
    laneless: bool,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Streams {
    /// Registers a stream of `job_id`; open it before reading the job, so
    /// an outcome announced between that read and the wait is not missed.
    pub fn open(&self, job_id: Uuid) -> Subscription {
        let mut open = locked(&self.inner.open);
        let entry = open.entry(job_id).or_insert_with(|| Open {
            outcome: watch::Sender::new(None),
            streams: 0,
            laneless: false,
        });
        entry.streams += 1;
        Subscription {
            outcome: entry.outcome.subscribe(),
            streams: self.clone(),
            job_id,
        }
    }

    /// Streams left open (jobs with at least one).
    pub fn len(&self) -> usize {
        locked(&self.inner.open).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cancelled when the api stops.
    pub fn closing(&self) -> &CancellationToken {
        &self.inner.closing
    }

    /// Jobs reported finished (an event) or gone from their lane: those
    /// with open streams get their final state read.
    pub fn check(&self, job_ids: impl IntoIterator<Item = Uuid>) {
        let wanted: Vec<Uuid> = {
            let open = locked(&self.inner.open);
            job_ids
                .into_iter()
                .filter(|id| open.contains_key(id))
                .collect()
        };
        if wanted.is_empty() {
            return;
        }
        locked(&self.inner.pending).extend(wanted);
        // Stores a permit if the reader is busy: it reads again after.
        self.inner.wake.notify_one();
    }

    /// Reads final states until `shutdown`, then closes every stream. Jobs
    /// named while a read runs wait for the next one, together.
    pub async fn run(self, pool: MySqlPool, reads: Arc<Reads>, shutdown: CancellationToken) {
        let mut laneless = tokio::time::interval(LANELESS_AGAIN_EVERY);
        laneless.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner.wake.notified() => {}
                _ = laneless.tick() => self.check(self.laneless()),
            }
            let ids: Vec<Uuid> = {
                let open = locked(&self.inner.open);
                locked(&self.inner.pending)
                    .drain()
                    .filter(|id| open.contains_key(id))
                    .collect()
            };
            for chunk in ids.chunks(READ_AT_MOST) {
                reads.final_states.fetch_add(1, Ordering::Relaxed);
                match queue::documents(chunk).fetch(&pool).await {
                    Ok(jobs) => self.deliver(chunk, jobs),
                    Err(e) => {
                        tracing::warn!(error = %e, jobs = chunk.len(), "final states not read; trying again");
                        locked(&self.inner.pending).extend(chunk.iter().copied());
                        self.inner.wake.notify_one();
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(RETRY_AFTER) => {}
                        }
                    }
                }
            }
        }
        self.inner.closing.cancel();
    }

    fn laneless(&self) -> Vec<Uuid> {
        locked(&self.inner.open)
            .iter()
            .filter(|(_, open)| open.laneless)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Hands each decided job to its streams; a job asked for and not
    /// found is gone. One still queued (an event ahead of what this
    /// connection sees) waits for the next event or snapshot.
    fn deliver(&self, asked: &[Uuid], jobs: Vec<Job>) {
        let open = locked(&self.inner.open);
        let mut found = HashSet::with_capacity(jobs.len());
        for job in jobs {
            found.insert(job.job_id);
            if job.status == JobStatus::Queued {
                continue;
            }
            if let Some(entry) = open.get(&job.job_id) {
                entry
                    .outcome
                    .send_replace(Some(Outcome::Decided(Arc::new(job))));
            }
        }
        for id in asked.iter().filter(|id| !found.contains(id)) {
            if let Some(entry) = open.get(id) {
                entry.outcome.send_replace(Some(Outcome::Gone));
            }
        }
    }
}

/// One stream's registration; dropping it unregisters.
pub struct Subscription {
    streams: Streams,
    job_id: Uuid,
    outcome: watch::Receiver<Option<Outcome>>,
}

impl Subscription {
    /// The job has no lane: only events and the slow re-read can end it.
    pub fn without_lane(&self) {
        if let Some(entry) = locked(&self.streams.inner.open).get_mut(&self.job_id) {
            entry.laneless = true;
        }
    }

    /// Waits for the job's outcome.
    pub async fn outcome(&mut self) -> Outcome {
        loop {
            if let Some(outcome) = self.outcome.borrow_and_update().clone() {
                return outcome;
            }
            if self.outcome.changed().await.is_err() {
                // The sender lives while this registration does.
                return Outcome::Gone;
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut open = locked(&self.streams.inner.open);
        if let Some(entry) = open.get_mut(&self.job_id) {
            entry.streams -= 1;
            if entry.streams == 0 {
                open.remove(&self.job_id);
            }
        }
    }
}
