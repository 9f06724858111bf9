//! The burst: C buyers share R POSTs of the same body.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::Value;

use crate::{
    client::{Answer, Api},
    config::Args,
    measure::ms,
    scenarios::{progress::Progress, target::Target},
};

/// One answered (or failed) POST.
pub(crate) struct Sample {
    /// When it was sent, in seconds since the phase start.
    pub(crate) at_s: f64,
    pub(crate) latency_ms: f64,
    pub(crate) answer: Answer,
}

pub(crate) struct Burst {
    pub(crate) samples: Vec<Sample>,
    /// From the start until the last POST was answered.
    pub(crate) elapsed: Duration,
}

/// The hold phase both designs share: announce it, then C buyers send the
/// same hold body to `path` (no `Prefer`) until R requests are answered.
/// Returns the burst and its start.
pub(crate) async fn hold_burst(
    api: &Api,
    args: &Args,
    target: &Target,
    name: &str,
    path: &str,
) -> anyhow::Result<(Burst, Instant)> {
    let body = serde_json::json!({ "product_id": target.product_id, "qty": args.qty });
    eprintln!(
        "{name}: {} requests from {} buyers on product {} (stock {})",
        args.requests, args.clients, target.product_id, target.initial_stock
    );
    let progress = Progress::start(
        format!("[{name} holds]"),
        args.requests,
        "req/s",
        args.quiet,
    );
    let start = Instant::now();
    let burst = burst(
        api,
        path,
        &body,
        Load {
            clients: args.clients,
            requests: args.requests,
            rate: args.rate,
        },
        start,
        &progress,
    )
    .await?;
    progress.finish().await;
    Ok((burst, start))
}

/// How a burst is sent: C buyers share R requests, as fast as answered or
/// paced at `rate` requests/s.
#[derive(Clone, Copy)]
pub(crate) struct Load {
    pub(crate) clients: usize,
    pub(crate) requests: usize,
    pub(crate) rate: Option<f64>,
}

impl Load {
    /// When request `i` is due, if paced.
    fn due(&self, start: Instant, i: usize) -> Option<Instant> {
        self.rate
            .map(|rate| start + Duration::from_secs_f64(i as f64 / rate))
    }
}

/// C buyers, each on a connection of its own, share R POSTs of `body` to
/// `path`. The request is built once: a buyer's per-request work is the
/// send and the read.
pub(crate) async fn burst(
    api: &Api,
    path: &str,
    body: &Value,
    load: Load,
    start: Instant,
    progress: &Progress,
) -> anyhow::Result<Burst> {
    let Load {
        clients, requests, ..
    } = load;
    let next = Arc::new(AtomicUsize::new(0));
    let post = api
        .prepare_post(path, body, None)
        .context("preparing the burst's request")?;
    let mut buyers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut conn = api.fork();
        let next = Arc::clone(&next);
        let post = post.clone();
        let done = progress.counter();
        buyers.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(requests / clients + 1);
            let mut last_answer = start;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let sent = match load.due(start, i) {
                    Some(due) => {
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let answer = conn.post(&post).await;
                let answered = Instant::now();
                samples.push(Sample {
                    at_s: (sent - start).as_secs_f64(),
                    latency_ms: ms(answered - sent),
                    answer,
                });
                last_answer = last_answer.max(answered);
                done.fetch_add(1, Ordering::Relaxed);
            }
            (samples, last_answer)
        }));
    }
    let mut samples = Vec::with_capacity(requests);
    let mut last_answer = start;
    for buyer in buyers {
        let (mine, last) = buyer.await.context("a buyer task panicked")?;
        samples.extend(mine);
        last_answer = last_answer.max(last);
    }
    Ok(Burst {
        samples,
        elapsed: last_answer - start,
    })
}
