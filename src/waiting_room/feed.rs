//! One stream's sequence of job documents: the job as first read, then
//! again each time its place changes, then its final state, then the end.
//! It waits on shared things only (its lane's snapshot, its job's outcome),
//! so an open stream costs no query.

use futures_util::Stream;
use tokio_util::sync::CancellationToken;

use super::{lanes::Following, streams::Outcome, streams::Subscription};
use crate::domain::{Job, JobStatus, job::QueuePlace};

pub struct Feed {
    job: Job,
    subscription: Subscription,
    /// None for a job without a lane, or decided when first read.
    lane: Option<Following>,
    closing: CancellationToken,
    phase: Phase,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    First,
    Waiting,
    Done,
}

impl Feed {
    /// `job` as first read (with its place, when queued in a lane).
    pub(super) fn new(
        job: Job,
        subscription: Subscription,
        lane: Option<Following>,
        closing: CancellationToken,
    ) -> Self {
        Self {
            job,
            subscription,
            lane,
            closing,
            phase: Phase::First,
        }
    }

    pub fn into_stream(self) -> impl Stream<Item = Job> + Send + 'static {
        futures_util::stream::unfold(self, |mut feed| async move {
            let job = feed.next().await?;
            Some((job, feed))
        })
    }

    async fn next(&mut self) -> Option<Job> {
        match self.phase {
            Phase::Done => return None,
            Phase::First => {
                self.phase = if self.job.status == JobStatus::Queued {
                    Phase::Waiting
                } else {
                    Phase::Done
                };
                return Some(self.job.clone());
            }
            Phase::Waiting => {}
        }
        let Self {
            job,
            subscription,
            lane,
            closing,
            phase,
        } = self;
        tokio::select! {
            biased;
            _ = closing.cancelled() => None,
            outcome = subscription.outcome() => {
                *phase = Phase::Done;
                match outcome {
                    Outcome::Decided(decided) => Some(Job::clone(&decided)),
                    Outcome::Gone => None,
                }
            }
            place = changed_place(lane, job.queue) => {
                job.queue = Some(place);
                Some(job.clone())
            }
        }
    }
}

/// The next place worth telling: the position is clamped so that it never
/// grows on one stream; a change of the estimate alone is told when it
/// moves by more than a second and a quarter.
async fn changed_place(lane: &mut Option<Following>, told: Option<QueuePlace>) -> QueuePlace {
    let Some(lane) = lane else {
        return std::future::pending().await;
    };
    loop {
        lane.changed().await;
        let place = lane.place(told.map(|t| t.position));
        let worth = match told {
            None => true,
            Some(told) => {
                place.position != told.position
                    || place.eta_ms.abs_diff(told.eta_ms) > (told.eta_ms / 4).max(1000)
            }
        };
        if worth {
            return place;
        }
    }
}
