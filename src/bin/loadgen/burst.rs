//! The burst: C buyers share R POSTs, and how their answers are read.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use hyper::body::Bytes;
use reqwest::{Client, StatusCode, header};
use serde_json::Value;

use crate::{
    api::{Api, transport_key},
    conn::BuyerConn,
    progress::Progress,
    stats::ms,
};

/// One answered (or failed) POST.
pub(crate) struct Sample {
    /// When it was sent, in seconds since the phase start.
    pub(crate) at_s: f64,
    pub(crate) latency_ms: f64,
    pub(crate) answer: Answer,
}

pub(crate) enum Answer {
    Http {
        status: StatusCode,
        body: Option<Value>,
        location: Option<String>,
    },
    Transport(String),
}

pub(crate) struct Burst {
    pub(crate) samples: Vec<Sample>,
    /// From the start until the last POST was answered.
    pub(crate) elapsed: Duration,
}

/// C buyers share R POSTs of the same hold body to `path` (no `Prefer`).
/// The hold phase both designs share: announce it, then C buyers send the
/// same hold body to `path` until R requests are answered. Returns the burst
/// and its start.
pub(crate) async fn hold_burst(
    api: &Api,
    args: &crate::args::Args,
    target: &crate::target::Target,
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
    let url = api.url(path);
    let body = Bytes::from(serde_json::to_vec(body).context("serializing the burst's body")?);
    let mut buyers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut conn = BuyerConn::to(&url)?;
        let next = Arc::clone(&next);
        let body = body.clone();
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
                let answer = conn.post(&body).await;
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

pub(crate) async fn post_once(
    client: &Client,
    url: &str,
    body: &Value,
    prefer: Option<&str>,
) -> Answer {
    let mut request = client.post(url).json(body);
    if let Some(prefer) = prefer {
        request = request.header("prefer", prefer);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return Answer::Transport(transport_key(&error)),
    };
    answer_of(response).await
}

pub(crate) async fn answer_of(response: reqwest::Response) -> Answer {
    let status = response.status();
    let location = response.headers().get(header::LOCATION).cloned();
    match response.bytes().await {
        Ok(bytes) => Answer::http(status, location.as_ref(), &bytes),
        Err(error) => Answer::Transport(transport_key(&error)),
    }
}

impl Answer {
    /// An answer read whole: its status, its `Location` and its JSON body
    /// (None when it is not JSON).
    pub(crate) fn http(
        status: StatusCode,
        location: Option<&header::HeaderValue>,
        body: &[u8],
    ) -> Self {
        Answer::Http {
            status,
            body: serde_json::from_slice(body).ok(),
            location: location
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// The machine-readable `code` of a problem document.
pub(crate) fn problem_code(body: Option<&Value>) -> Option<&str> {
    body?.get("code")?.as_str()
}

/// The error bucket for an unexpected answer: status, plus the problem code
/// when there is one.
pub(crate) fn error_key(status: StatusCode, body: Option<&Value>) -> String {
    match problem_code(body) {
        Some(code) => format!("{} {code}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

pub(crate) fn bump(map: &mut BTreeMap<String, usize>, key: String) {
    *map.entry(key).or_default() += 1;
}
