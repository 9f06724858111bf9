//! Jobs: reading one, and polling many until they are final.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use futures_util::{StreamExt, stream};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    client::api::Api,
    config::{POLL_CONCURRENCY, POLL_INTERVAL, POLL_TIMEOUT},
    measure::bump,
};

#[derive(Deserialize, Debug)]
pub(crate) struct JobDoc {
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) result: Option<Value>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default)]
    pub(crate) completed_at: Option<String>,
}

/// What one poll of a job found.
pub(crate) enum Poll {
    Final(JobDoc),
    Pending,
    /// 404: the job id was never issued.
    Missing,
    /// Transport error or unexpected status: try again next round.
    Retry(String),
}

pub(crate) fn job_error_code(doc: &JobDoc) -> Option<&str> {
    doc.error
        .as_ref()
        .and_then(|error| error.get("code"))
        .and_then(Value::as_str)
}

impl Api {
    pub(crate) async fn poll_job(&mut self, job_id: &str) -> Poll {
        let reply = match self.get(&format!("/api/v1/jobs/{job_id}")).await {
            Ok(reply) => reply,
            Err(key) => return Poll::Retry(key),
        };
        if reply.status == StatusCode::NOT_FOUND {
            return Poll::Missing;
        }
        if reply.status != StatusCode::OK {
            return Poll::Retry(reply.status.as_u16().to_string());
        }
        match serde_json::from_slice::<JobDoc>(&reply.body) {
            Ok(doc) if doc.status == "succeeded" || doc.status == "failed" => Poll::Final(doc),
            Ok(_) => Poll::Pending,
            Err(_) => Poll::Retry("200 with an unreadable job".into()),
        }
    }
}

pub(crate) struct PollOutcome {
    pub(crate) finals: Vec<JobDoc>,
    /// When polling first saw the last final job.
    pub(crate) last_final: Option<Instant>,
    pub(crate) missing: usize,
    pub(crate) unfinished: usize,
    pub(crate) poll_errors: BTreeMap<String, usize>,
    pub(crate) gave_up_at: Instant,
    /// Job reads made.
    pub(crate) polls: usize,
}

/// Polls every job until all are final or POLL_TIMEOUT passes, with up to
/// POLL_CONCURRENCY connections of its own; `done` counts the jobs settled.
pub(crate) async fn poll_jobs(
    api: &Api,
    mut pending: Vec<String>,
    start: Instant,
    done: &AtomicUsize,
) -> PollOutcome {
    let deadline = Instant::now() + POLL_TIMEOUT;
    let mut outcome = PollOutcome {
        finals: Vec::with_capacity(pending.len()),
        last_final: None,
        missing: 0,
        unfinished: 0,
        poll_errors: BTreeMap::new(),
        gave_up_at: start,
        polls: 0,
    };
    // Job ids are UUIDv7, so sorting them orders the jobs by creation, and
    // jobs finish roughly in that order. Each round polls the oldest
    // unfinished ones a window at a time and stops at the first window with
    // a job still queued: the poller then costs the stack a trickle of reads
    // instead of competing with the worker it is measuring.
    pending.sort();
    pending.dedup();
    let mut pending: VecDeque<String> = pending.into();
    let mut pollers: Vec<Api> = (0..POLL_CONCURRENCY.min(pending.len()))
        .map(|_| api.fork())
        .collect();
    while !pending.is_empty() && Instant::now() < deadline {
        let window: Vec<String> = (0..POLL_CONCURRENCY.min(pending.len()))
            .filter_map(|_| pending.pop_front())
            .collect();
        outcome.polls += window.len();
        // One poller per job of the window, each on its own connection.
        let mut results: Vec<(String, Poll, Instant)> =
            stream::iter(window.into_iter().zip(pollers.iter_mut()))
                .map(|(job_id, poller)| async move {
                    let poll = poller.poll_job(&job_id).await;
                    (job_id, poll, Instant::now())
                })
                .buffer_unordered(POLL_CONCURRENCY)
                .collect()
                .await;
        results.sort_by(|a, b| a.0.cmp(&b.0));
        let mut still_pending = Vec::new();
        for (job_id, poll, seen) in results {
            match poll {
                Poll::Final(doc) => {
                    outcome.finals.push(doc);
                    outcome.last_final = Some(outcome.last_final.map_or(seen, |t| t.max(seen)));
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Pending => still_pending.push(job_id),
                Poll::Missing => {
                    outcome.missing += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Retry(key) => {
                    bump(&mut outcome.poll_errors, key);
                    still_pending.push(job_id);
                }
            }
        }
        let stalled = !still_pending.is_empty();
        for job_id in still_pending.into_iter().rev() {
            pending.push_front(job_id);
        }
        if stalled {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    outcome.unfinished = pending.len();
    outcome.gave_up_at = Instant::now();
    if outcome.unfinished > 0 {
        eprintln!(
            "warning: {} jobs still not final after {} s of polling",
            outcome.unfinished,
            POLL_TIMEOUT.as_secs()
        );
    }
    outcome
}
