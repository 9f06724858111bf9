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
//! Buyers (pipeline only; `config/buyers.rs`): `--jwt-secret` (or
//! BUYER_JWT_SECRET) gives each buyer a token of its own on its holds and
//! orders; `--holds-per-buyer K` makes each buyer fire K holds at once;
//! `--max-per-customer N` sets the product's limit and checks from the
//! granted holds that no buyer got more than N units (guarantee 9);
//! `--sale-starts-in SECS` opens the sale SECS from now with every buyer
//! connected and waiting, honoring `sale_not_started` and timing the drop.
//! 429s are honored (`Retry-After`) and counted; refusals are counted by
//! their problem code; a waiting room's `queue.eta_ms` (the first one a
//! job shows, from the polls and from a spread sample of the backlog read
//! when polling starts) is compared with how long the job then took.
//!
//! ```text
//! # 2000 buyers, 3 holds each, at most 2 units per buyer, the sale opening in 3 s
//! ADMIN_TOKEN=dev-admin-token BUYER_JWT_SECRET=dev-buyer-secret loadgen --mode pipeline \
//!     --flow holds --clients 64 --requests 2000 --holds-per-buyer 3 --max-per-customer 2 \
//!     --sale-starts-in 3
//! ```
//!
//! What the stack spent (pipeline, `--flow holds`; `config/cost.rs`):
//! `--cpu-pid NAME=PID` reads each process's CPU time from /proc during the
//! run and reports it over the end-to-end span, in all and per decided job;
//! the jobs the scheduler relayed meanwhile come from
//! `flash_jobs_relayed_total` on `--metrics-url` (default `<--url>/metrics`).
//!
//! ```text
//! loadgen --mode pipeline --flow holds --clients 64 --requests 20000 \
//!     --cpu-pid flash-sale=$(pgrep -xo flash-sale) --cpu-pid mariadbd=$(pgrep -xo mariadbd)
//! ```
//!
//! Only loopback URLs are accepted. The exit code is 1 when a check fails
//! (stock, order states, a sold-out hold that reached the queue, a buyer
//! over the per-customer limit) or a job
//! was still unfinished at the end of polling, 2 when the run could not be
//! made at all.
//!
//! Layers, each importing only those before it: `config` (the command line
//! and fixed knobs) and `measure` (rates, counts, percentiles), then
//! `client` (the one HTTP client and typed api calls), then `scenarios`
//! (the runs), then `report` (text, JSON, SVG). This file only wires them.

mod client;
mod config;
mod measure;
mod report;
mod scenarios;

use std::process::ExitCode;

use clap::Parser;

use crate::{
    client::Api,
    config::{Args, loopback_base_url},
    report::Report,
    scenarios::run_modes,
};

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
    let mut api = Api::new(&base, args.admin_token.clone())?;
    let runs = run_modes(&mut api, &args).await?;
    let report = Report::new(base.text, args.mode, runs);
    report::output(&report, &args)?;
    Ok(report.pass)
}
