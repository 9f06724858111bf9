//! The sold-out phase: extra holds at the sold-out product.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use futures_util::{StreamExt, stream};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::json;

use crate::{
    CACHE_SETTLE, DRAIN_ROUNDS, INSUFFICIENT_STOCK, PREFER_WAIT,
    api::Api,
    args::{Args, Mode},
    burst::{Answer, Load, bump, burst, error_key, post_once, problem_code},
    holds::{job_id_of, poll_jobs},
    progress::Progress,
    stats::{LatencySummary, per_second},
    target::Target,
};

#[derive(Serialize, Debug)]
pub(crate) struct SoldOutReport {
    pub(crate) requests: usize,
    /// Stock read just before (after draining).
    pub(crate) stock_before: i64,
    /// Units taken by holds first, so the product was really sold out
    /// (canceled orders give stock back).
    pub(crate) drained_units: i64,
    pub(crate) elapsed_s: f64,
    pub(crate) requests_per_s: f64,
    pub(crate) latency_ms: LatencySummary,
    /// 409 `insufficient_stock` at once, no job: answered from the cache.
    pub(crate) rejected_at_once: usize,
    /// 202s: a job reached the queue (pipeline; must be 0).
    pub(crate) queued: usize,
    /// 201s (baseline) or queued jobs that got stock.
    pub(crate) granted: usize,
    pub(crate) errors: BTreeMap<String, usize>,
    /// Pipeline only: no request reached the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pass: Option<bool>,
}

/// Takes whatever stock is left (with holds of `qty`) until the product
/// cannot cover another: the units taken.
async fn drain(api: &Api, mode: Mode, args: &Args, product_id: i64) -> anyhow::Result<i64> {
    let path = hold_path(mode);
    let url: Arc<str> = api.url(path).into();
    let body = json!({ "product_id": product_id, "qty": args.qty });
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
        let granted = stream::iter(0..holds)
            .map(|_| {
                let url = Arc::clone(&url);
                let body = &body;
                async move {
                    let answer = post_once(&api.client, &url, body, Some(PREFER_WAIT)).await;
                    matches!(answer, Answer::Http { status, .. } if status == StatusCode::CREATED)
                }
            })
            .buffer_unordered(args.clients)
            .filter(|granted| std::future::ready(*granted))
            .count()
            .await;
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
    api: &Api,
    args: &Args,
    mode: Mode,
    target: Target,
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
    let burst = burst(
        api,
        hold_path(mode),
        &body,
        Load {
            clients: args.clients,
            requests,
            rate: None,
        },
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
        let outcome = poll_jobs(api, jobs, start, &progress).await;
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
