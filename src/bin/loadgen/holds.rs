//! The pipeline, holds only: POST the holds, then poll their jobs.

use std::{
    collections::{BTreeMap, VecDeque},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream};
use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    INSUFFICIENT_STOCK, POLL_CONCURRENCY, POLL_INTERVAL, POLL_TIMEOUT,
    api::{Api, JobDoc, Poll},
    args::{Args, Flow, Mode},
    burst::{Answer, bump, error_key, hold_burst, problem_code},
    progress::Progress,
    report::RunReport,
    stats::{LatencySummary, PhaseStat, per_second},
    stock_check::stock_check,
    target::Target,
};

pub(crate) async fn run_pipeline_holds(
    api: &Api,
    args: &Args,
    target: Target,
) -> anyhow::Result<RunReport> {
    let start_wall = Utc::now();
    let (burst, start) = hold_burst(api, args, &target, "pipeline", "/api/v1/holds").await?;

    let mut report = RunReport::new(Mode::Pipeline, Flow::Holds, args, target);
    report.rejected_at_once = Some(0);
    let mut rejected_at_once = 0usize;
    let mut latencies = Vec::with_capacity(burst.samples.len());
    let mut jobs = Vec::new();
    let mut answered = 0usize;
    for sample in burst.samples {
        latencies.push(sample.latency_ms);
        report.samples.push((sample.at_s, sample.latency_ms));
        match sample.answer {
            Answer::Http {
                status,
                body,
                location,
            } if status == StatusCode::ACCEPTED => match job_id_of(body.as_ref(), location) {
                Some(job_id) => {
                    answered += 1;
                    jobs.push(job_id);
                }
                None => bump(&mut report.errors, "202 without job_id".into()),
            },
            Answer::Http { status, body, .. }
                if status == StatusCode::CONFLICT
                    && problem_code(body.as_ref()) == Some(INSUFFICIENT_STOCK) =>
            {
                answered += 1;
                report.rejected += 1;
                rejected_at_once += 1;
            }
            Answer::Http { status, body, .. } => {
                bump(&mut report.errors, error_key(status, body.as_ref()));
            }
            Answer::Transport(key) => bump(&mut report.errors, key),
        }
    }
    report.rejected_at_once = Some(rejected_at_once);
    report.accept_elapsed_s = burst.elapsed.as_secs_f64();
    report.accept_requests_per_s = per_second(args.requests, burst.elapsed);
    report.accept_latency_ms = LatencySummary::of(latencies);
    report.answered_202_or_409 = Some(answered);
    report
        .phases
        .push(PhaseStat::new("holds", args.requests, burst.elapsed));

    eprintln!("pipeline: polling {} jobs for their outcome", jobs.len());
    let poll_start = Instant::now();
    let progress = Progress::start(
        "[pipeline hold jobs]".into(),
        jobs.len(),
        "jobs/s",
        args.quiet,
    );
    let outcome = poll_jobs(api, jobs, start, &progress).await;
    progress.finish().await;
    report.phases.push(PhaseStat::new(
        "hold job polls",
        outcome.polls,
        outcome.gave_up_at - poll_start,
    ));
    let mut to_outcome = Vec::with_capacity(outcome.finals.len());
    let mut last_completed: Option<DateTime<Utc>> = None;
    let mut bad_timestamps = 0usize;
    for doc in &outcome.finals {
        match job_times(doc) {
            Some((created, completed)) => {
                to_outcome.push(ms_between(created, completed));
                last_completed = Some(last_completed.map_or(completed, |t| t.max(completed)));
            }
            None => bad_timestamps += 1,
        }
        if doc.status == "succeeded" {
            report.granted += 1;
        } else {
            match job_error_code(doc) {
                Some(INSUFFICIENT_STOCK) => report.rejected += 1,
                Some(code) => bump(&mut report.errors, format!("job failed: {code}")),
                None => bump(&mut report.errors, "job failed: no code".into()),
            }
        }
    }
    if outcome.missing > 0 {
        report
            .errors
            .insert("job 404 (never issued)".to_owned(), outcome.missing);
    }
    report.poll_errors = outcome.poll_errors;
    report.unfinished_jobs = outcome.unfinished;
    if bad_timestamps > 0 {
        eprintln!(
            "warning: {bad_timestamps} final jobs lacked readable created_at/completed_at; \
             left out of time-to-outcome"
        );
    }

    // The moment the last job became final. The server stamps completed_at on
    // the same host clock (loopback only), which is sharper than the polling
    // rounds; trust it only when it is consistent with what polling saw.
    let observed = outcome.last_final.map_or(burst.elapsed, |t| t - start);
    let observed = observed.max(burst.elapsed);
    let server_side = last_completed
        .and_then(|t| (t - start_wall).to_std().ok())
        .filter(|d| *d <= observed + Duration::from_millis(50));
    let (end_to_end, source) = match server_side {
        Some(d) if outcome.unfinished == 0 => (d.max(burst.elapsed), "completed_at"),
        _ if outcome.unfinished > 0 => (observed.max(outcome.gave_up_at - start), "timeout"),
        _ => (observed, "polling"),
    };
    report.end_to_end_elapsed_s = end_to_end.as_secs_f64();
    report.end_to_end_source = Some(source);
    report.end_to_end_decided_per_s = per_second(report.decided(), end_to_end);
    report.time_to_outcome_ms = Some(LatencySummary::of(to_outcome));
    report.stock_check = Some(stock_check(api, target, report.granted, args.qty, None).await?);
    Ok(report)
}

/// The job id of a 202: its body's `job_id`, else the last segment of its
/// `Location`.
pub(crate) fn job_id_of(body: Option<&Value>, location: Option<String>) -> Option<String> {
    if let Some(id) = body
        .and_then(|body| body.get("job_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        return Some(id.to_owned());
    }
    let location = location?;
    let id = location.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// The id of a resource answered with 201: its body's `id`, else the last
/// segment of its `Location`.
pub(crate) fn resource_id_of(body: Option<&Value>, location: Option<&str>) -> Option<String> {
    if let Some(id) = body
        .and_then(|body| body.get("id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        return Some(id.to_owned());
    }
    let id = location?.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

pub(crate) fn job_error_code(doc: &JobDoc) -> Option<&str> {
    doc.error
        .as_ref()
        .and_then(|error| error.get("code"))
        .and_then(Value::as_str)
}

fn job_times(doc: &JobDoc) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let parse = |raw: &Option<String>| {
        DateTime::parse_from_rfc3339(raw.as_deref()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    Some((parse(&doc.created_at)?, parse(&doc.completed_at)?))
}

fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let delta = to - from;
    delta
        .num_microseconds()
        .map_or(delta.num_milliseconds() as f64, |us| us as f64 / 1000.0)
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

/// Polls every job until all are final or POLL_TIMEOUT passes.
pub(crate) async fn poll_jobs(
    api: &Api,
    mut pending: Vec<String>,
    start: Instant,
    progress: &Progress,
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
    while !pending.is_empty() && Instant::now() < deadline {
        let window: Vec<String> = (0..POLL_CONCURRENCY.min(pending.len()))
            .filter_map(|_| pending.pop_front())
            .collect();
        outcome.polls += window.len();
        let mut results: Vec<(String, Poll, Instant)> = stream::iter(window)
            .map(|job_id| async move {
                let poll = api.poll_job(&job_id).await;
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
                    progress.tick();
                }
                Poll::Pending => still_pending.push(job_id),
                Poll::Missing => {
                    outcome.missing += 1;
                    progress.tick();
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_id_falls_back_to_location() {
        let body = json!({ "job_id": "abc" });
        assert_eq!(job_id_of(Some(&body), None).as_deref(), Some("abc"));
        assert_eq!(
            job_id_of(None, Some("/api/v1/jobs/xyz".into())).as_deref(),
            Some("xyz")
        );
        assert_eq!(job_id_of(None, None), None);
    }

    #[test]
    fn resource_id_falls_back_to_location() {
        let body = json!({ "id": "h1" });
        assert_eq!(resource_id_of(Some(&body), None).as_deref(), Some("h1"));
        assert_eq!(
            resource_id_of(None, Some("/api/v1/orders/o2")).as_deref(),
            Some("o2")
        );
        assert_eq!(resource_id_of(Some(&json!({})), None), None);
    }

    #[test]
    fn time_to_outcome_uses_milliseconds() {
        let doc = JobDoc {
            status: "succeeded".into(),
            result: None,
            error: None,
            created_at: Some("2025-01-01T00:00:00.100Z".into()),
            completed_at: Some("2025-01-01T00:00:01.350Z".into()),
        };
        let Some((created, completed)) = job_times(&doc) else {
            panic!("timestamps should parse");
        };
        assert_eq!(ms_between(created, completed), 1250.0);
    }
}
