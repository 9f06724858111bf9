//! The synchronous baseline: holds only.

use hyper::StatusCode;

use crate::{
    client::{Answer, Api, error_key, problem_code},
    config::{Args, Flow, INSUFFICIENT_STOCK, Mode},
    measure::{LatencySummary, PhaseStat, bump, per_second},
    scenarios::{
        burst::hold_burst, crowd::Buyers, records::RunReport, stock_check::stock_check,
        target::Target,
    },
};

pub(crate) async fn run_baseline(
    api: &mut Api,
    args: &Args,
    target: Target,
    buyers: &Buyers,
) -> anyhow::Result<RunReport> {
    let path = "/api/v1/baseline/holds";
    let (burst, _) = hold_burst(api, args, &target, buyers, "baseline", path).await?;
    let requests = burst.samples.len();

    let mut report = RunReport::new(Mode::Baseline, Flow::Holds, args, target);
    report.rejected_at_once = Some(0);
    let mut latencies = Vec::with_capacity(burst.samples.len());
    for sample in &burst.samples {
        latencies.push(sample.latency_ms);
        report.samples.push((sample.at_s, sample.latency_ms));
        match &sample.answer {
            Answer::Http { status, .. } if *status == StatusCode::CREATED => report.granted += 1,
            Answer::Http { status, body, .. }
                if *status == StatusCode::CONFLICT
                    && problem_code(body.as_ref()) == Some(INSUFFICIENT_STOCK) =>
            {
                report.refuse(INSUFFICIENT_STOCK);
            }
            Answer::Http { status, body, .. } => {
                bump(&mut report.errors, error_key(*status, body.as_ref()));
            }
            Answer::Transport(key) => bump(&mut report.errors, key.clone()),
        }
    }
    report.accept_elapsed_s = burst.elapsed.as_secs_f64();
    report.accept_requests_per_s = per_second(requests, burst.elapsed);
    report.end_to_end_elapsed_s = report.accept_elapsed_s;
    report.end_to_end_decided_per_s = per_second(report.decided(), burst.elapsed);
    report.accept_latency_ms = LatencySummary::of(latencies);
    report.time_to_outcome_ms = None;
    report
        .phases
        .push(PhaseStat::new("holds", requests, burst.elapsed));
    report.stock_check = Some(stock_check(api, target, report.granted, args.qty, None).await?);
    Ok(report)
}
