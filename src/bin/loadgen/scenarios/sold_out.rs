//! The sold-out phase: extra holds at the sold-out product.

use std::{collections::BTreeMap, time::Instant};

use anyhow::Context;
use hyper::StatusCode;
use serde_json::json;

use crate::{
    client::{Answer, Api, each_concurrent, error_key, job_id_of, poll_jobs, problem_code},
    config::{Args, CACHE_SETTLE, DRAIN_ROUNDS, INSUFFICIENT_STOCK, Mode, PREFER_WAIT},
    measure::{LatencySummary, bump, per_second},
    scenarios::{
        burst::{Load, burst},
        crowd::{Buyers, sign_crowd},
        progress::Progress,
        records::SoldOutReport,
        target::Target,
    },
};

/// Takes whatever stock is left (with holds of `qty`) until the product
/// cannot cover another: the units taken.
async fn drain(api: &mut Api, mode: Mode, args: &Args, product_id: i64) -> anyhow::Result<i64> {
    let body = json!({ "product_id": product_id, "qty": args.qty });
    let hold = api
        .prepare_post(hold_path(mode), &body, Some(PREFER_WAIT))
        .context("preparing the drain's request")?;
    let mut drained = 0i64;
    for _ in 0..DRAIN_ROUNDS {
        let stock = api.get_product(product_id).await?.stock;
        if stock < args.qty {
            break;
        }
        let holds = usize::try_from(stock / args.qty).unwrap_or(0);
        eprintln!(
            "{}: draining {stock} units left (canceled orders return stock) with {holds} holds",
            mode.as_str()
        );
        // New buyers: the run's may be at their per-customer limit.
        let crowd = sign_crowd(args, mode, holds)?;
        let answers = each_concurrent(api, 0..holds, args.clients, async |buyer: &mut Api, n| {
            let answer = buyer.post_as(&hold, crowd.auth(n)).await;
            matches!(answer, Answer::Http { status, .. } if status == StatusCode::CREATED)
        })
        .await;
        let granted = answers.into_iter().filter(|granted| *granted).count();
        drained += (granted as i64).saturating_mul(args.qty);
        // The cache is refreshed when the worker publishes the change, and
        // is at most 1 s stale anyway.
        tokio::time::sleep(CACHE_SETTLE).await;
    }
    Ok(drained)
}

fn hold_path(mode: Mode) -> &'static str {
    if mode == Mode::Baseline {
        "/api/v1/baseline/holds"
    } else {
        "/api/v1/holds"
    }
}

pub(crate) async fn sold_out_phase(
    api: &mut Api,
    args: &Args,
    mode: Mode,
    target: Target,
    buyers: &Buyers,
) -> anyhow::Result<SoldOutReport> {
    let drained_units = drain(api, mode, args, target.product_id).await?;
    let stock_before = api.get_product(target.product_id).await?.stock;
    let requests = args.sold_out_requests;
    eprintln!(
        "{}: sold-out phase, {requests} holds on product {} (stock {stock_before})",
        mode.as_str(),
        target.product_id
    );
    let body = json!({ "product_id": target.product_id, "qty": args.qty });
    let progress = Progress::start(
        format!("[{} sold-out]", mode.as_str()),
        requests,
        "req/s",
        args.quiet,
    );
    let start = Instant::now();
    // The run's buyers come back, one hold each, the sale open.
    let returning = Buyers {
        holds_per_buyer: 1,
        opening: None,
        ..buyers.clone()
    };
    let load = Load {
        clients: args.clients,
        buyers: requests,
        holds_per_buyer: 1,
        rate: None,
    };
    let burst = burst(
        api,
        hold_path(mode),
        &body,
        load,
        &returning,
        start,
        &progress,
    )
    .await?;
    progress.finish().await;

    let mut latencies = Vec::with_capacity(burst.samples.len());
    let mut rejected_at_once = 0usize;
    let mut granted = 0usize;
    let mut errors = BTreeMap::new();
    let mut jobs = Vec::new();
    for sample in burst.samples {
        latencies.push(sample.latency_ms);
        match sample.answer {
            Answer::Http { status, body, .. }
                if status == StatusCode::CONFLICT
                    && problem_code(body.as_ref()) == Some(INSUFFICIENT_STOCK) =>
            {
                rejected_at_once += 1;
            }
            Answer::Http { status, .. } if status == StatusCode::CREATED => granted += 1,
            Answer::Http {
                status,
                body,
                location,
                ..
            } if status == StatusCode::ACCEPTED => match job_id_of(body.as_ref(), location) {
                Some(job_id) => jobs.push(job_id),
                None => bump(&mut errors, "202 without job_id".into()),
            },
            Answer::Http { status, body, .. } => {
                bump(&mut errors, error_key(status, body.as_ref()))
            }
            Answer::Transport(key) => bump(&mut errors, key),
        }
    }
    let queued = jobs.len();
    if queued > 0 {
        eprintln!(
            "warning: {queued} sold-out holds were queued instead of refused from the cache; \
             polling them"
        );
        let progress = Progress::start(
            format!("[{} sold-out jobs]", mode.as_str()),
            queued,
            "jobs/s",
            args.quiet,
        );
        let outcome = poll_jobs(api, jobs, start, &progress.counter()).await;
        progress.finish().await;
        granted += outcome
            .finals
            .iter()
            .filter(|doc| doc.status == "succeeded")
            .count();
        if outcome.unfinished > 0 {
            errors.insert("queued job unfinished".into(), outcome.unfinished);
        }
    }
    Ok(SoldOutReport {
        requests,
        stock_before,
        drained_units,
        elapsed_s: burst.elapsed.as_secs_f64(),
        requests_per_s: per_second(requests, burst.elapsed),
        latency_ms: LatencySummary::of(latencies),
        rejected_at_once,
        queued,
        granted,
        errors,
        pass: (mode == Mode::Pipeline).then_some(queued == 0),
    })
}
