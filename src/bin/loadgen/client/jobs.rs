//! Jobs: reading one, and polling many until they are final.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::{
    client::api::Api,
    config::{ETA_SAMPLE, POLL_CONCURRENCY, POLL_INTERVAL, POLL_TIMEOUT},
    measure::{EtaSample, bump},
};

#[derive(Deserialize, Debug)]
pub(crate) struct JobDoc {
    #[serde(default)]
    pub(crate) job_id: Option<String>,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) result: Option<Value>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
    #[serde(default)]
    pub(crate) created_at: Option<String>,
    #[serde(default)]
    pub(crate) completed_at: Option<String>,
    /// The waiting room of a queued job; absent from apis without one.
    #[serde(default)]
    pub(crate) queue: Option<QueueDoc>,
}

#[derive(Deserialize, Debug, Default)]
pub(crate) struct QueueDoc {
    #[serde(default)]
    pub(crate) eta_ms: Option<f64>,
}

impl JobDoc {
    fn eta_ms(&self) -> Option<f64> {
        self.queue
            .as_ref()?
            .eta_ms
            .filter(|eta| eta.is_finite() && *eta >= 0.0)
    }

    pub(crate) fn completed(&self) -> Option<DateTime<Utc>> {
        let raw = self.completed_at.as_deref()?;
        DateTime::parse_from_rfc3339(raw)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// The first eta a queued job's poll showed, and when that poll was sent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FirstEta {
    eta_ms: f64,
    polled_at: DateTime<Utc>,
}

impl FirstEta {
    /// Keeps the first eta seen: `first` unless it is still unset.
    pub(crate) fn note(first: &mut Option<Self>, eta_ms: Option<f64>, polled_at: DateTime<Utc>) {
        if first.is_none() {
            *first = eta_ms.map(|eta_ms| Self { eta_ms, polled_at });
        }
    }

    /// Against the final job: how long it took from the poll that showed
    /// the eta (server `completed_at`; same host, same clock), or until
    /// `seen` when the job has no readable `completed_at`.
    pub(crate) fn sample(self, doc: &JobDoc, seen: DateTime<Utc>) -> EtaSample {
        let done = doc.completed().unwrap_or(seen);
        let actual = (done - self.polled_at)
            .num_microseconds()
            .map_or(0.0, |us| us as f64 / 1000.0);
        EtaSample {
            eta_ms: self.eta_ms,
            actual_ms: actual.max(0.0),
        }
    }
}
/// What one poll of a job found.
pub(crate) enum Poll {
    Final(JobDoc),
    /// Still queued, with the waiting room's eta when the api gives one.
    Pending(Option<f64>),
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

/// The HTTP status of a failed job's problem (409 for a refusal).
pub(crate) fn job_error_status(doc: &JobDoc) -> Option<u64> {
    doc.error
        .as_ref()
        .and_then(|error| error.get("status"))
        .and_then(Value::as_u64)
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
            Ok(doc) => Poll::Pending(doc.eta_ms()),
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
    /// Jobs whose poll showed an eta while queued.
    pub(crate) etas: Vec<EtaSample>,
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
        etas: Vec::new(),
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
    let mut first_etas = sample_etas(&mut pollers, &pending, &mut outcome).await;
    while !pending.is_empty() && Instant::now() < deadline {
        let window: Vec<String> = (0..POLL_CONCURRENCY.min(pending.len()))
            .filter_map(|_| pending.pop_front())
            .collect();
        outcome.polls += window.len();
        // One poller per job of the window, each on its own connection.
        let mut results: Vec<(String, Poll, Instant, DateTime<Utc>)> =
            stream::iter(window.into_iter().zip(pollers.iter_mut()))
                .map(|(job_id, poller)| async move {
                    let polled_at = Utc::now();
                    let poll = poller.poll_job(&job_id).await;
                    (job_id, poll, Instant::now(), polled_at)
                })
                .buffer_unordered(POLL_CONCURRENCY)
                .collect()
                .await;
        results.sort_by(|a, b| a.0.cmp(&b.0));
        let mut still_pending = Vec::new();
        for (job_id, poll, seen, polled_at) in results {
            match poll {
                Poll::Final(doc) => {
                    if let Some(first) = first_etas.remove(&job_id) {
                        outcome.etas.push(first.sample(&doc, Utc::now()));
                    }
                    outcome.finals.push(doc);
                    outcome.last_final = Some(outcome.last_final.map_or(seen, |t| t.max(seen)));
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Pending(eta) => {
                    let mut first = first_etas.get(&job_id).copied();
                    FirstEta::note(&mut first, eta, polled_at);
                    if let Some(first) = first {
                        first_etas.insert(job_id.clone(), first);
                    }
                    still_pending.push(job_id);
                }
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

/// One read each of up to ETA_SAMPLE jobs spread evenly over `pending`
/// (oldest first), noting the eta of those still queued. The oldest-first
/// rounds reach a job only when the ones before it are final, so its first
/// eta is a short one; the spread adds the long waits of a backlog, which
/// is what a waiting room's estimate is for.
async fn sample_etas(
    pollers: &mut [Api],
    pending: &VecDeque<String>,
    outcome: &mut PollOutcome,
) -> HashMap<String, FirstEta> {
    let mut first_etas = HashMap::new();
    let step = (pending.len() / ETA_SAMPLE).max(1);
    let sample: Vec<&String> = pending.iter().step_by(step).take(ETA_SAMPLE).collect();
    for chunk in sample.chunks(pollers.len().max(1)) {
        outcome.polls += chunk.len();
        let polled: Vec<(String, Poll, DateTime<Utc>)> =
            stream::iter(chunk.iter().zip(pollers.iter_mut()))
                .map(|(job_id, poller)| async move {
                    let polled_at = Utc::now();
                    ((*job_id).clone(), poller.poll_job(job_id).await, polled_at)
                })
                .buffer_unordered(POLL_CONCURRENCY)
                .collect()
                .await;
        for (job_id, poll, polled_at) in polled {
            if let Poll::Pending(Some(eta_ms)) = poll {
                first_etas.insert(job_id, FirstEta { eta_ms, polled_at });
            }
        }
    }
    first_etas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> JobDoc {
        serde_json::from_str(json).expect("a job")
    }

    #[test]
    fn the_eta_is_read_when_the_api_gives_one() {
        let queued = doc(r#"{"status":"queued","queue":{"position":3,"eta_ms":120}}"#);
        assert_eq!(queued.eta_ms(), Some(120.0));
        assert_eq!(doc(r#"{"status":"queued"}"#).eta_ms(), None);
        assert_eq!(
            doc(r#"{"status":"queued","queue":{"position":1}}"#).eta_ms(),
            None
        );
    }

    #[test]
    fn the_first_eta_is_measured_against_completed_at() {
        let t = |raw: &str| {
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .expect("time")
        };
        let mut first = None;
        FirstEta::note(&mut first, None, t("2026-01-01T00:00:00.000Z"));
        FirstEta::note(&mut first, Some(200.0), t("2026-01-01T00:00:00.100Z"));
        // A later poll's eta does not replace the first.
        FirstEta::note(&mut first, Some(50.0), t("2026-01-01T00:00:00.200Z"));
        let Some(first) = first else {
            panic!("an eta was seen");
        };
        let done = doc(r#"{"status":"succeeded","completed_at":"2026-01-01T00:00:00.350Z"}"#);
        let sample = first.sample(&done, t("2026-01-01T00:00:09Z"));
        assert_eq!(sample.eta_ms, 200.0);
        assert_eq!(sample.actual_ms, 250.0);
    }
}
