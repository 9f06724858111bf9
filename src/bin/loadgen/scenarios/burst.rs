//! The burst: C clients share R buyers, each buyer sending K holds of the
//! same body at once.

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
    client::{Answer, Api, Crowd},
    config::Args,
    measure::ms,
    scenarios::{
        crowd::Buyers,
        gate::{Opening, Sent, Waits, connect_ahead, send_patiently, wait_turn},
        progress::Progress,
        target::Target,
    },
};

/// One answered (or failed) POST.
pub(crate) struct Sample {
    /// When its answering attempt was sent, in seconds since the phase start.
    pub(crate) at_s: f64,
    pub(crate) latency_ms: f64,
    pub(crate) answer: Answer,
    /// Which buyer sent it.
    pub(crate) buyer: usize,
    pub(crate) answered: Instant,
    pub(crate) waits: Waits,
}

pub(crate) struct Burst {
    pub(crate) samples: Vec<Sample>,
    /// From the start until the last POST was answered.
    pub(crate) elapsed: Duration,
}

/// The hold phase both designs share: announce it, then C clients send the
/// same hold body to `path` (no `Prefer`) for R buyers, K holds each.
/// Returns the burst and its start (the opening, when there is one).
pub(crate) async fn hold_burst(
    api: &Api,
    args: &Args,
    target: &Target,
    buyers: &Buyers,
    name: &str,
    path: &str,
) -> anyhow::Result<(Burst, Instant)> {
    let body = serde_json::json!({ "product_id": target.product_id, "qty": args.qty });
    let per_buyer = if buyers.holds_per_buyer > 1 {
        format!(
            " ({} buyers x {} holds)",
            buyers.count, buyers.holds_per_buyer
        )
    } else {
        String::new()
    };
    eprintln!(
        "{name}: {} requests{per_buyer} from {} buyers on product {} (stock {})",
        args.hold_requests(),
        args.clients,
        target.product_id,
        target.initial_stock
    );
    if let Some(opening) = buyers.opening {
        eprintln!(
            "{name}: the sale opens in {:.1} s; buyers connect and wait",
            opening.ms_to(Instant::now()) / -1000.0
        );
    }
    let progress = Progress::start(
        format!("[{name} holds]"),
        args.hold_requests(),
        "req/s",
        args.quiet,
    );
    let start = buyers
        .opening
        .map_or_else(Instant::now, |opening| opening.at);
    let load = Load {
        clients: args.clients,
        buyers: buyers.count,
        holds_per_buyer: buyers.holds_per_buyer,
        rate: args.rate,
    };
    let burst = burst(api, path, &body, load, buyers, start, &progress).await?;
    progress.finish().await;
    Ok((burst, start))
}

/// How a burst is sent: C clients share R buyers of K requests each, as
/// fast as answered or paced at `rate` requests/s.
#[derive(Clone, Copy)]
pub(crate) struct Load {
    pub(crate) clients: usize,
    pub(crate) buyers: usize,
    pub(crate) holds_per_buyer: usize,
    pub(crate) rate: Option<f64>,
}

impl Load {
    /// When buyer `n`'s requests are due, if paced.
    fn due(&self, start: Instant, n: usize) -> Option<Instant> {
        let first_request = (n * self.holds_per_buyer) as f64;
        self.rate
            .map(|rate| start + Duration::from_secs_f64(first_request / rate))
    }
}

/// C clients share R buyers, each client with K connections of its own,
/// so a buyer's K POSTs of `body` to `path` go at once. The request is
/// built once: per request the work is the send and the read.
pub(crate) async fn burst(
    api: &Api,
    path: &str,
    body: &Value,
    load: Load,
    buyers: &Buyers,
    start: Instant,
    progress: &Progress,
) -> anyhow::Result<Burst> {
    let next = Arc::new(AtomicUsize::new(0));
    let post = api
        .prepare_post(path, body, None)
        .context("preparing the burst's request")?;
    let per_client = load.buyers / load.clients.max(1) + 1;
    let mut clients = Vec::with_capacity(load.clients);
    for _ in 0..load.clients {
        let mut conns: Vec<Api> = (0..load.holds_per_buyer.max(1))
            .map(|_| api.fork())
            .collect();
        let next = Arc::clone(&next);
        let post = post.clone();
        let done = progress.counter();
        let (crowd, opening): (Crowd, Option<Opening>) = (buyers.crowd.clone(), buyers.opening);
        clients.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_client * conns.len());
            let mut last_answer = start;
            connect_ahead(opening, &mut conns).await;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= load.buyers {
                    break;
                }
                wait_turn(opening, n).await;
                let first = match load.due(start, n) {
                    Some(due) => {
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let auth = crowd.auth(n);
                let sent: Vec<Sent> = match conns.as_mut_slice() {
                    // One hold per buyer: no join machinery per request.
                    [conn] => vec![send_patiently(conn, &post, auth, first).await],
                    conns => {
                        let sends = conns
                            .iter_mut()
                            .map(|conn| send_patiently(conn, &post, auth, first));
                        futures_util::future::join_all(sends).await
                    }
                };
                for one in sent {
                    samples.push(Sample {
                        at_s: one.sent.saturating_duration_since(start).as_secs_f64(),
                        latency_ms: ms(one.answered - one.sent),
                        answer: one.answer,
                        buyer: n,
                        answered: one.answered,
                        waits: one.waits,
                    });
                    last_answer = last_answer.max(one.answered);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            (samples, last_answer)
        }));
    }
    let mut samples = Vec::with_capacity(load.buyers * load.holds_per_buyer);
    let mut last_answer = start;
    for client in clients {
        let (mine, last) = client.await.context("a buyer task panicked")?;
        samples.extend(mine);
        last_answer = last_answer.max(last);
    }
    Ok(Burst {
        samples,
        elapsed: last_answer.saturating_duration_since(start),
    })
}
