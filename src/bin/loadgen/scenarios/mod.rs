//! Layer 2: the runs. Per mode: prepare the product (`target`), load it
//! (`baseline`, `holds`, `full`, built on `burst`), check the stock
//! (`stock_check`), then the optional `sold_out` phase; each fills a
//! `records::RunReport`. Imports `config`, `measure` and `client`, never
//! `report`.

mod baseline;
mod burst;
mod cost;
mod crowd;
mod fates;
mod full;
mod gate;
mod holds;
mod progress;
pub(crate) mod records;
mod sold_out;
mod stock_check;
mod target;

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::{
    client::Api,
    config::{Args, DEFAULT_HOLD_TTL, Flow, Mode},
    measure::{PhaseStat, counts_text},
    scenarios::{
        baseline::run_baseline, crowd::Buyers, full::run_pipeline_full, holds::run_pipeline_holds,
        records::RunReport, sold_out::sold_out_phase, target::prepare_target,
    },
};

/// Runs the requested modes one after the other, each on its own product
/// unless `--product` is given.
pub(crate) async fn run_modes(api: &mut Api, args: &Args) -> anyhow::Result<Vec<RunReport>> {
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

    if args.mode == Mode::Both && args.buyers.jwt_secret.is_some() {
        eprintln!("note: the baseline has no buyers; only the pipeline's send tokens");
    }

    let mut runs = Vec::with_capacity(modes.len());
    for &mode in modes {
        let target = prepare_target(api, args, mode).await?;
        let buyers = Buyers::prepare(args, mode, &target)?;
        let run_start = Instant::now();
        let flow = args.flow_for(mode);
        let mut report = match (mode, flow) {
            (Mode::Baseline, _) => run_baseline(api, args, target, &buyers).await,
            (_, Flow::Holds) => run_pipeline_holds(api, args, target, &buyers).await,
            (_, Flow::Full) => run_pipeline_full(api, args, target, &buyers).await,
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
            let sold_out = sold_out_phase(api, args, mode, target, &buyers)
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
    Ok(runs)
}
