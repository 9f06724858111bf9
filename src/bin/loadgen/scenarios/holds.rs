//! The pipeline, holds only: POST the holds, then poll their jobs.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hyper::StatusCode;

use crate::{
    client::{
        Answer, Api, JobDoc, error_key, job_error_code, job_error_status, job_id_of, poll_jobs,
        problem_code,
    },
    config::{Args, Flow, Mode},
    measure::{EtaAccuracy, LatencySummary, PhaseStat, bump, per_second},
    scenarios::{
        burst::hold_burst,
        cost::CostWatch,
        crowd::{Buyers, Verdict},
        fates::Fates,
        progress::Progress,
        records::RunReport,
        stock_check::stock_check,
        target::Target,
    },
};

pub(crate) async fn run_pipeline_holds(
    api: &mut Api,
    args: &Args,
    target: Target,
    buyers: &Buyers,
) -> anyhow::Result<RunReport> {
    // Before the burst (and before buyers connect for an opening).
    let cost = CostWatch::start(api, args).await?;
    let start_wall = Utc::now();
    let (burst, start) =
        hold_burst(api, args, &target, buyers, "pipeline", "/api/v1/holds").await?;
    // With an opening the run is timed from it.
    let start_wall = buyers.opening.map_or(start_wall, |opening| opening.wall);
    let requests = burst.samples.len();

    let mut report = RunReport::new(Mode::Pipeline, Flow::Holds, args, target);
    report.rejected_at_once = Some(0);
    let mut rejected_at_once = 0usize;
    let mut latencies = Vec::with_capacity(requests);
    let mut jobs = Vec::new();
    let mut answered = 0usize;
    // Only when the report has a buyers section: the common path stays lean.
    let mut fates = Fates::new(buyers);
    for sample in burst.samples {
        latencies.push(sample.latency_ms);
        report.samples.push((sample.at_s, sample.latency_ms));
        report.rate_limited += sample.waits.rate_limited;
        let (buyer, waits) = (sample.buyer, sample.waits);
        // A 409 is a refusal decided at once, whatever its code.
        let refusal = match &sample.answer {
            Answer::Http { status, body, .. } if *status == StatusCode::CONFLICT => {
                problem_code(body.as_ref()).map(str::to_owned)
            }
            _ => None,
        };
        if let Some(code) = refusal {
            answered += 1;
            report.refuse(&code);
            rejected_at_once += 1;
            let decided = fates.ms_at(sample.answered);
            fates.push(buyer, Verdict::Refused(code), decided, waits);
            continue;
        }
        match sample.answer {
            Answer::Http {
                status,
                body,
                location,
                ..
            } if status == StatusCode::ACCEPTED => match job_id_of(body.as_ref(), location) {
                Some(job_id) => {
                    answered += 1;
                    fates.queued(&job_id, buyer, waits);
                    jobs.push(job_id);
                }
                None => {
                    bump(&mut report.errors, "202 without job_id".into());
                    fates.push(buyer, Verdict::Undecided, None, waits);
                }
            },
            Answer::Http { status, body, .. } => {
                bump(&mut report.errors, error_key(status, body.as_ref()));
                fates.push(buyer, Verdict::Undecided, None, waits);
            }
            Answer::Transport(key) => {
                bump(&mut report.errors, key);
                fates.push(buyer, Verdict::Undecided, None, waits);
            }
        }
    }
    report.rejected_at_once = Some(rejected_at_once);
    report.accept_elapsed_s = burst.elapsed.as_secs_f64();
    report.accept_requests_per_s = per_second(requests, burst.elapsed);
    report.accept_latency_ms = LatencySummary::of(latencies);
    report.answered_202_or_409 = Some(answered);
    report
        .phases
        .push(PhaseStat::new("holds", requests, burst.elapsed));

    eprintln!("pipeline: polling {} jobs for their outcome", jobs.len());
    let poll_start = Instant::now();
    let progress = Progress::start(
        "[pipeline hold jobs]".into(),
        jobs.len(),
        "jobs/s",
        args.quiet,
    );
    let outcome = poll_jobs(api, jobs, start, &progress.counter()).await;
    progress.finish().await;
    // Every outcome is known (or polling gave up): the end of the span.
    let spent = cost.finish().await;
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
        let verdict = if doc.status == "succeeded" {
            report.granted += 1;
            Verdict::granted(doc.result.as_ref(), args.qty)
        } else {
            match (job_error_status(doc), job_error_code(doc)) {
                (Some(409), Some(code)) => {
                    report.refuse(code);
                    Verdict::Refused(code.to_owned())
                }
                (_, Some(code)) => {
                    bump(&mut report.errors, format!("job failed: {code}"));
                    Verdict::Undecided
                }
                (_, None) => {
                    bump(&mut report.errors, "job failed: no code".into());
                    Verdict::Undecided
                }
            }
        };
        fates.decided(doc, verdict);
    }
    report.queue_eta = EtaAccuracy::of(&outcome.etas);
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
    report.cpu = spent.cpu(start, start + end_to_end, report.decided());
    report.jobs_relayed = spent.jobs_relayed;
    report.buyers = fates.report(target.max_per_customer);
    report.stock_check = Some(stock_check(api, target, report.granted, args.qty, None).await?);
    Ok(report)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_outcome_uses_milliseconds() {
        let doc: JobDoc = serde_json::from_value(serde_json::json!({
            "status": "succeeded",
            "created_at": "2025-01-01T00:00:00.100Z",
            "completed_at": "2025-01-01T00:00:01.350Z",
        }))
        .expect("a job");
        let Some((created, completed)) = job_times(&doc) else {
            panic!("timestamps should parse");
        };
        assert_eq!(ms_between(created, completed), 1250.0);
    }
}
