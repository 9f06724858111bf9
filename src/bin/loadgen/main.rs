//! `loadgen`: a flash sale against a live stack, over HTTP only.
//!
//! C concurrent buyers share R purchases of one product, through the
//! asynchronous pipeline (`POST /api/v1/holds` …), the synchronous baseline
//! (`POST /api/v1/baseline/holds`), or both, and the run ends with the
//! no-oversell check (guarantee 1) read back through the API.
//!
//! Two flows (docs/API.md, "How a purchase works"):
//!
//! - `--flow holds` (the original benchmark, and the only flow of the
//!   baseline): each request is one hold POST; the pipeline's accept latency
//!   is the 202, its outcome is learnt by polling the jobs.
//! - `--flow full` (default for `--mode pipeline`): each buyer holds
//!   (`Prefer: wait=10`), orders the granted hold (`Prefer: wait=10`), then
//!   pays through the signed webhook: `--fail-share` pay `failed`,
//!   `--abandon-share` never pay, the rest pay `success`. Once every payment
//!   job is final, every order is read back and must be `paid`, `canceled`
//!   or `pending` accordingly, and the stock must equal
//!   initial − granted + canceled (+ holds that expired without an order).
//!
//! `--sold-out-requests N` then fires N extra holds at the sold-out product
//! (after taking whatever stock canceled orders returned), which the
//! pipeline must refuse at once from its cache, without a job.
//!
//! ```text
//! # both modes (holds only), each on a fresh product with requests*qty/2 units
//! ADMIN_TOKEN=dev-admin-token cargo run --release --bin loadgen -- \
//!     --clients 64 --requests 10000 --svg /tmp/latency.svg
//!
//! # the full buyer through the pipeline, then a sold-out burst
//! ADMIN_TOKEN=dev-admin-token WEBHOOK_SECRET=dev-webhook-secret \
//!     loadgen --mode pipeline --clients 64 --requests 2000 --sold-out-requests 20000
//!
//! # pipeline holds only, on an existing product, machine-readable report
//! cargo run --release --bin loadgen -- --mode pipeline --flow holds --product 1 \
//!     --clients 32 --requests 500 --json
//! ```
//!
//! Only loopback URLs are accepted. The exit code is 1 when a check fails
//! (stock, order states, a sold-out hold that reached the queue) or a job
//! was still unfinished at the end of polling, 2 when the run could not be
//! made at all.

mod api;
mod args;
mod baseline;
mod burst;
mod conn;
mod full;
mod holds;
mod progress;
mod report;
mod sold_out;
mod stats;
mod stock_check;
mod svg;
mod target;

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;

use crate::{
    api::Api,
    args::{Args, Flow, Mode, loopback_base_url},
    baseline::run_baseline,
    full::run_pipeline_full,
    holds::run_pipeline_holds,
    report::{Report, RunReport, counts_text},
    sold_out::sold_out_phase,
    stats::{PhaseStat, timeline},
    svg::chart,
    target::prepare_target,
};

/// Concurrent job reads while polling for outcomes.
const POLL_CONCURRENCY: usize = 64;
/// Pause between two polling rounds.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A buyer whose `Prefer: wait` ran out polls its job this often.
const BUYER_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Give up polling (and report the rest as unfinished) after this long.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);
/// The api's product cache may be up to 1 s stale (docs/API.md, "Products").
const CACHE_SETTLE: Duration = Duration::from_millis(1500);
/// Per-request timeout; generous because a saturated stack is the point.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Holds expire after HOLD_TTL_SECS (120 s by default) and give their stock
/// back, which would skew the stock check of a longer run.
const DEFAULT_HOLD_TTL: Duration = Duration::from_secs(120);
const INSUFFICIENT_STOCK: &str = "insufficient_stock";
/// The full flow's buyers wait for outcomes (RFC 7240, capped at 10 s).
const PREFER_WAIT: &str = "wait=10";
/// Rounds of draining returned stock before the sold-out phase.
const DRAIN_ROUNDS: usize = 5;
/// Latency chart buckets: 100 ms for phases up to this long, else 1 s.
const FINE_BUCKETS_UP_TO: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the requested modes and prints the report; `Ok(false)` when a check
/// failed or a job never finished.
async fn run(args: Args) -> anyhow::Result<bool> {
    args.validate()?;
    let base = loopback_base_url(&args.url)?;
    let api = Api::new(base.clone(), args.admin_token.clone(), args.clients)?;

    let modes: &[Mode] = match args.mode {
        Mode::Both => &[Mode::Baseline, Mode::Pipeline],
        Mode::Pipeline => &[Mode::Pipeline],
        Mode::Baseline => &[Mode::Baseline],
    };
    if args.mode == Mode::Both
        && let Some(id) = args.product
    {
        eprintln!(
            "warning: both modes share product {id}: the pipeline gets what the baseline \
             leaves, so the runs are not comparable (omit --product for fresh products)"
        );
    }
    if args.mode == Mode::Both && args.flow_for(Mode::Pipeline) == Flow::Full {
        eprintln!(
            "note: the baseline runs holds only and the pipeline the full flow; no throughput \
             ratio is computed"
        );
    }

    let mut runs = Vec::with_capacity(modes.len());
    for &mode in modes {
        let target = prepare_target(&api, &args, mode).await?;
        let run_start = Instant::now();
        let flow = args.flow_for(mode);
        let mut report = match (mode, flow) {
            (Mode::Baseline, _) => run_baseline(&api, &args, target).await,
            (_, Flow::Holds) => run_pipeline_holds(&api, &args, target).await,
            (_, Flow::Full) => run_pipeline_full(&api, &args, target).await,
        }
        .with_context(|| format!("{} run failed", mode.as_str()))?;
        if run_start.elapsed() > DEFAULT_HOLD_TTL && report.granted > 0 {
            eprintln!(
                "warning: the {} run took longer than the default hold TTL ({} s); expired \
                 holds give stock back, so its stock check may fail spuriously",
                mode.as_str(),
                DEFAULT_HOLD_TTL.as_secs()
            );
        }
        if report.decided() == 0 {
            eprintln!(
                "warning: the {} run decided nothing (errors: {}); its numbers are meaningless",
                mode.as_str(),
                counts_text(&report.errors)
            );
        }
        if args.sold_out_requests > 0 {
            let sold_out = sold_out_phase(&api, &args, mode, target)
                .await
                .with_context(|| format!("{} sold-out phase failed", mode.as_str()))?;
            report.phases.push(PhaseStat::new(
                "sold-out holds",
                sold_out.requests,
                Duration::from_secs_f64(sold_out.elapsed_s),
            ));
            report.sold_out = Some(sold_out);
        }
        runs.push(report);
    }

    // One bucket width for every run, so their charts line up.
    let longest = runs
        .iter()
        .map(|run| run.samples.iter().map(|s| s.0).fold(0.0, f64::max))
        .fold(0.0, f64::max);
    let bucket = if longest <= FINE_BUCKETS_UP_TO.as_secs_f64() {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    for run in &mut runs {
        run.accept_latency_timeline = Some(timeline(&run.samples, bucket));
    }

    let holds_rate = |mode: Mode| {
        runs.iter()
            .find(|run| run.mode == mode.as_str() && run.flow == Flow::Holds.as_str())
            .map(|run| run.end_to_end_decided_per_s)
    };
    let ratio = match (holds_rate(Mode::Pipeline), holds_rate(Mode::Baseline)) {
        (Some(pipeline), Some(baseline)) if baseline > 0.0 => Some(pipeline / baseline),
        _ => None,
    };
    let pass = runs.iter().all(RunReport::passed);
    let report = Report {
        url: base,
        mode: args.mode.as_str(),
        runs,
        pipeline_to_baseline_ratio: ratio,
        pass,
    };

    if let Some(path) = &args.svg {
        let svg = chart(&report, &args).context("cannot draw the chart")?;
        std::fs::write(path, svg)
            .with_context(|| format!("cannot write the chart to {}", path.display()))?;
        eprintln!("wrote the latency chart to {}", path.display());
    }

    if args.json {
        let text = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
        println!("{text}");
    } else {
        let flows: Vec<&str> = report.runs.iter().map(|run| run.flow).collect();
        println!(
            "loadgen {}  clients={} requests={} qty={} mode={} flow={}{}",
            report.url,
            args.clients,
            args.requests,
            args.qty,
            args.mode.as_str(),
            flows.join("+"),
            args.rate
                .map(|rate| format!(" rate={rate}/s (open loop)"))
                .unwrap_or_default()
        );
        for run in &report.runs {
            println!();
            run.print_text();
        }
        if let Some(ratio) = report.pipeline_to_baseline_ratio {
            println!();
            println!("pipeline / baseline (decided holds/s, end to end): {ratio:.2}x");
        }
        println!();
        println!("{}", if report.pass { "PASS" } else { "FAIL" });
    }
    Ok(report.pass)
}
