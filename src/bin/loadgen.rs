//! `loadgen`: a flash sale against a live stack, over HTTP only.
//!
//! C concurrent buyers share R hold requests for one product, through the
//! asynchronous pipeline (`POST /api/v1/holds`, then polling the jobs), the
//! synchronous baseline (`POST /api/v1/baseline/holds`), or both, and the run
//! ends with the no-oversell check (guarantee 1) read back through the API.
//!
//! ```text
//! # both modes, each on a fresh product with requests*qty/2 units of stock
//! ADMIN_TOKEN=dev-admin-token cargo run --release --bin loadgen -- \
//!     --clients 64 --requests 10000
//!
//! # pipeline only, on an existing product, machine-readable report
//! cargo run --release --bin loadgen -- --mode pipeline --product 1 \
//!     --clients 32 --requests 500 --json
//!
//! # fresh product with explicit stock, two units per hold
//! loadgen --url http://127.0.0.1:8080 --admin-token dev-admin-token \
//!     --stock 1000 --qty 2 --requests 2000 --clients 100 --mode baseline
//! ```
//!
//! Only loopback URLs are accepted. The exit code is 1 when a stock check
//! fails or a job was still unfinished at the end of polling.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use futures_util::{StreamExt, stream};
use reqwest::{Client, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Concurrent job reads while polling for outcomes.
const POLL_CONCURRENCY: usize = 64;
/// Pause between two polling rounds.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Give up polling (and report the rest as unfinished) after this long.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);
/// The api's product cache may be up to 1 s stale (DESIGN.md §3).
const CACHE_SETTLE: Duration = Duration::from_millis(1500);
/// Per-request timeout; generous because a saturated stack is the point.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Holds expire after HOLD_TTL_SECS (120 s by default) and give their stock
/// back, which would skew the stock check of a longer run.
const DEFAULT_HOLD_TTL: Duration = Duration::from_secs(120);
const INSUFFICIENT_STOCK: &str = "insufficient_stock";

// ---------------------------------------------------------------- arguments

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Flash-sale load generator: C buyers race for one product over HTTP"
)]
struct Args {
    /// Base URL of the api (loopback addresses only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Product to hold; when omitted a fresh product is created per mode
    /// (needs the admin token).
    #[arg(long)]
    product: Option<i64>,
    /// Concurrent buyers.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Total hold requests, shared by all buyers.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Units per hold.
    #[arg(long, default_value_t = 1)]
    qty: i64,
    /// Which path to load.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Admin bearer token, used to create fresh products.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Stock of a freshly created product [default: requests * qty / 2,
    /// so about half the holds are granted].
    #[arg(long)]
    stock: Option<i64>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Asynchronous holds: 202 + job, then poll the jobs.
    Pipeline,
    /// Synchronous holds: 201 or 409 at once.
    Baseline,
    /// Baseline, then pipeline, then their throughput ratio.
    Both,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Pipeline => "pipeline",
            Mode::Baseline => "baseline",
            Mode::Both => "both",
        }
    }
}

impl Args {
    fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.clients >= 1, "--clients must be at least 1");
        ensure!(self.requests >= 1, "--requests must be at least 1");
        ensure!(self.qty >= 1, "--qty must be at least 1");
        if let Some(stock) = self.stock {
            ensure!(stock >= 0, "--stock must not be negative");
        }
        if let Some(product) = self.product {
            ensure!(product >= 1, "--product must be a positive id");
            if self.stock.is_some() {
                eprintln!("warning: --stock is ignored because --product is given");
            }
        }
        Ok(())
    }

    /// Stock of a freshly created product.
    fn fresh_stock(&self) -> i64 {
        self.stock.unwrap_or_else(|| {
            let units = (self.requests as i64).saturating_mul(self.qty);
            units / 2
        })
    }
}

/// The base URL without a trailing slash, refused unless it is plain HTTP to
/// a loopback host.
fn loopback_base_url(raw: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(raw).with_context(|| format!("invalid --url {raw:?}"))?;
    ensure!(
        url.scheme() == "http",
        "--url must use http:// (this build has no TLS), got {raw:?}"
    );
    let host = url.host_str().context("--url has no host")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    ensure!(
        loopback,
        "--url must point at a loopback address (127.0.0.0/8, ::1, localhost), got {host:?}"
    );
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

// ---------------------------------------------------------------- HTTP client

/// The shared HTTP client and where the api lives.
#[derive(Clone)]
struct Api {
    client: Client,
    base: Arc<str>,
    admin_token: Option<Arc<str>>,
}

#[derive(Deserialize, Debug)]
struct Product {
    id: i64,
    stock: i64,
}

#[derive(Deserialize, Debug)]
struct JobDoc {
    status: String,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
}

/// What one poll of a job found.
enum Poll {
    Final(JobDoc),
    Pending,
    /// 404: the job id was never issued.
    Missing,
    /// Transport error or unexpected status: try again next round.
    Retry(String),
}

impl Api {
    fn new(base: String, admin_token: Option<String>, clients: usize) -> anyhow::Result<Self> {
        let client = Client::builder()
            .pool_max_idle_per_host(clients.max(POLL_CONCURRENCY) + 16)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .context("failed to build the HTTP client")?;
        Ok(Self {
            client,
            base: base.into(),
            admin_token: admin_token.map(Into::into),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get_product(&self, id: i64) -> anyhow::Result<Product> {
        let url = self.url(&format!("/api/v1/products/{id}"));
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url} failed (is the stack running?)"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("GET {url}: reading the body failed"))?;
        ensure!(
            status == StatusCode::OK,
            "GET {url} answered {status}: {body}"
        );
        serde_json::from_str(&body).with_context(|| format!("GET {url}: not a Product: {body}"))
    }

    async fn create_product(&self, name: &str, stock: i64) -> anyhow::Result<Product> {
        let token = self.admin_token.as_deref().context(
            "creating a product needs the admin token: pass --admin-token or set ADMIN_TOKEN \
             (or use --product N)",
        )?;
        let url = self.url("/api/v1/admin/products");
        let response = self
            .client
            .post(&url)
            .bearer_auth(token)
            .json(&json!({ "name": name, "price": 1000, "stock": stock }))
            .send()
            .await
            .with_context(|| format!("POST {url} failed (is the stack running?)"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("POST {url}: reading the body failed"))?;
        ensure!(
            status == StatusCode::CREATED,
            "POST {url} answered {status}: {body}"
        );
        serde_json::from_str(&body).with_context(|| format!("POST {url}: not a Product: {body}"))
    }

    async fn poll_job(&self, job_id: &str) -> Poll {
        let url = self.url(&format!("/api/v1/jobs/{job_id}"));
        let response = match self.client.get(&url).send().await {
            Ok(response) => response,
            Err(error) => return Poll::Retry(transport_key(&error)),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(error) => return Poll::Retry(transport_key(&error)),
        };
        if status == StatusCode::NOT_FOUND {
            return Poll::Missing;
        }
        if status != StatusCode::OK {
            return Poll::Retry(status.as_u16().to_string());
        }
        match serde_json::from_slice::<JobDoc>(&body) {
            Ok(doc) if doc.status == "succeeded" || doc.status == "failed" => Poll::Final(doc),
            Ok(_) => Poll::Pending,
            Err(_) => Poll::Retry("200 with an unreadable job".into()),
        }
    }
}

/// A short bucket name for a transport-level failure.
fn transport_key(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else if error.is_body() || error.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("transport ({kind})")
}

// ---------------------------------------------------------------- product setup

/// The product a run loads, and its stock just before the run.
#[derive(Clone, Copy, Debug)]
struct Target {
    product_id: i64,
    initial_stock: i64,
    created: bool,
}

async fn prepare_target(api: &Api, args: &Args, mode: Mode) -> anyhow::Result<Target> {
    match args.product {
        Some(id) => {
            let product = api
                .get_product(id)
                .await
                .with_context(|| format!("cannot read product {id}"))?;
            Ok(Target {
                product_id: product.id,
                initial_stock: product.stock,
                created: false,
            })
        }
        None => {
            let stock = args.fresh_stock();
            let name = format!(
                "loadgen {} {}",
                mode.as_str(),
                Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
            );
            let product = api.create_product(&name, stock).await?;
            Ok(Target {
                product_id: product.id,
                initial_stock: stock,
                created: true,
            })
        }
    }
}

// ---------------------------------------------------------------- the burst

/// One answered (or failed) POST.
struct Sample {
    latency_ms: f64,
    answer: Answer,
}

enum Answer {
    Http {
        status: StatusCode,
        body: Option<Value>,
        location: Option<String>,
    },
    Transport(String),
}

struct Burst {
    samples: Vec<Sample>,
    /// From the start until the last POST was answered.
    elapsed: Duration,
}

/// C buyers share R POSTs of the same hold body to `path`.
async fn burst(
    api: &Api,
    path: &str,
    body: &Value,
    clients: usize,
    requests: usize,
    start: Instant,
) -> anyhow::Result<Burst> {
    let next = Arc::new(AtomicUsize::new(0));
    let url: Arc<str> = api.url(path).into();
    let body = Arc::new(body.clone());
    let mut buyers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = api.client.clone();
        let next = Arc::clone(&next);
        let url = Arc::clone(&url);
        let body = Arc::clone(&body);
        buyers.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(requests / clients + 1);
            let mut last_answer = start;
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let sent = Instant::now();
                let answer = post_once(&client, &url, &body).await;
                let answered = Instant::now();
                samples.push(Sample {
                    latency_ms: ms(answered - sent),
                    answer,
                });
                last_answer = last_answer.max(answered);
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

async fn post_once(client: &Client, url: &str, body: &Value) -> Answer {
    let response = match client.post(url).json(body).send().await {
        Ok(response) => response,
        Err(error) => return Answer::Transport(transport_key(&error)),
    };
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    match response.bytes().await {
        Ok(bytes) => Answer::Http {
            status,
            body: serde_json::from_slice(&bytes).ok(),
            location,
        },
        Err(error) => Answer::Transport(transport_key(&error)),
    }
}

/// The machine-readable `code` of a problem document.
fn problem_code(body: Option<&Value>) -> Option<&str> {
    body?.get("code")?.as_str()
}

/// The error bucket for an unexpected answer: status, plus the problem code
/// when there is one.
fn error_key(status: StatusCode, body: Option<&Value>) -> String {
    match problem_code(body) {
        Some(code) => format!("{} {code}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn bump(map: &mut BTreeMap<String, usize>, key: String) {
    *map.entry(key).or_default() += 1;
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

// ---------------------------------------------------------------- baseline

async fn run_baseline(api: &Api, args: &Args, target: Target) -> anyhow::Result<RunReport> {
    let body = json!({ "product_id": target.product_id, "qty": args.qty });
    eprintln!(
        "baseline: {} requests from {} buyers on product {} (stock {})",
        args.requests, args.clients, target.product_id, target.initial_stock
    );
    let start = Instant::now();
    let burst = burst(
        api,
        "/api/v1/baseline/holds",
        &body,
        args.clients,
        args.requests,
        start,
    )
    .await?;

    let mut report = RunReport::new(Mode::Baseline, args, target);
    let mut latencies = Vec::with_capacity(burst.samples.len());
    for sample in &burst.samples {
        latencies.push(sample.latency_ms);
        match &sample.answer {
            Answer::Http { status, .. } if *status == StatusCode::CREATED => report.granted += 1,
            Answer::Http { status, body, .. }
                if *status == StatusCode::CONFLICT
                    && problem_code(body.as_ref()) == Some(INSUFFICIENT_STOCK) =>
            {
                report.rejected += 1;
            }
            Answer::Http { status, body, .. } => {
                bump(&mut report.errors, error_key(*status, body.as_ref()));
            }
            Answer::Transport(key) => bump(&mut report.errors, key.clone()),
        }
    }
    report.accept_elapsed_s = burst.elapsed.as_secs_f64();
    report.accept_requests_per_s = per_second(args.requests, burst.elapsed);
    report.end_to_end_elapsed_s = report.accept_elapsed_s;
    report.end_to_end_decided_per_s = per_second(report.decided(), burst.elapsed);
    report.accept_latency_ms = LatencySummary::of(latencies);
    report.time_to_outcome_ms = None;
    report.stock_check = Some(stock_check(api, target, report.granted, args.qty).await?);
    Ok(report)
}

// ---------------------------------------------------------------- pipeline

async fn run_pipeline(api: &Api, args: &Args, target: Target) -> anyhow::Result<RunReport> {
    let body = json!({ "product_id": target.product_id, "qty": args.qty });
    eprintln!(
        "pipeline: {} requests from {} buyers on product {} (stock {})",
        args.requests, args.clients, target.product_id, target.initial_stock
    );
    let start_wall = Utc::now();
    let start = Instant::now();
    let burst = burst(
        api,
        "/api/v1/holds",
        &body,
        args.clients,
        args.requests,
        start,
    )
    .await?;

    let mut report = RunReport::new(Mode::Pipeline, args, target);
    let mut latencies = Vec::with_capacity(burst.samples.len());
    let mut jobs = Vec::new();
    let mut answered = 0usize;
    for sample in burst.samples {
        latencies.push(sample.latency_ms);
        match sample.answer {
            Answer::Http {
                status,
                body,
                location,
            } if status == StatusCode::ACCEPTED => match job_id_of(body.as_ref(), location) {
                Some(job_id) => {
                    answered += 1;
                    jobs.push(job_id);
                }
                None => bump(&mut report.errors, "202 without job_id".into()),
            },
            Answer::Http { status, body, .. }
                if status == StatusCode::CONFLICT
                    && problem_code(body.as_ref()) == Some(INSUFFICIENT_STOCK) =>
            {
                answered += 1;
                report.rejected += 1;
                report.rejected_at_once += 1;
            }
            Answer::Http { status, body, .. } => {
                bump(&mut report.errors, error_key(status, body.as_ref()));
            }
            Answer::Transport(key) => bump(&mut report.errors, key),
        }
    }
    report.accept_elapsed_s = burst.elapsed.as_secs_f64();
    report.accept_requests_per_s = per_second(args.requests, burst.elapsed);
    report.accept_latency_ms = LatencySummary::of(latencies);
    report.answered_202_or_409 = Some(answered);

    eprintln!("pipeline: polling {} jobs for their outcome", jobs.len());
    let outcome = poll_jobs(api, jobs, start).await;
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
        if doc.status == "succeeded" {
            report.granted += 1;
        } else {
            let code = doc
                .error
                .as_ref()
                .and_then(|error| error.get("code"))
                .and_then(Value::as_str);
            match code {
                Some(INSUFFICIENT_STOCK) => report.rejected += 1,
                Some(code) => bump(&mut report.errors, format!("job failed: {code}")),
                None => bump(&mut report.errors, "job failed: no code".into()),
            }
        }
    }
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
    report.stock_check = Some(stock_check(api, target, report.granted, args.qty).await?);
    Ok(report)
}

/// The job id of a 202: its body's `job_id`, else the last segment of its
/// `Location`.
fn job_id_of(body: Option<&Value>, location: Option<String>) -> Option<String> {
    if let Some(id) = body
        .and_then(|body| body.get("job_id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        return Some(id.to_owned());
    }
    let location = location?;
    let id = location.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
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

struct PollOutcome {
    finals: Vec<JobDoc>,
    /// When polling first saw the last final job.
    last_final: Option<Instant>,
    missing: usize,
    unfinished: usize,
    poll_errors: BTreeMap<String, usize>,
    gave_up_at: Instant,
}

/// Polls every job until all are final or POLL_TIMEOUT passes.
async fn poll_jobs(api: &Api, mut pending: Vec<String>, start: Instant) -> PollOutcome {
    let deadline = Instant::now() + POLL_TIMEOUT;
    let mut outcome = PollOutcome {
        finals: Vec::with_capacity(pending.len()),
        last_final: None,
        missing: 0,
        unfinished: 0,
        poll_errors: BTreeMap::new(),
        gave_up_at: start,
    };
    // Job ids are UUIDv7, so sorting them orders the jobs by creation, and
    // jobs finish roughly in that order. Each round polls the oldest
    // unfinished ones a window at a time and stops at the first window with
    // a job still queued: the poller then costs the stack a trickle of reads
    // instead of competing with the worker it is measuring.
    pending.sort();
    pending.dedup();
    let mut pending: std::collections::VecDeque<String> = pending.into();
    while !pending.is_empty() && Instant::now() < deadline {
        let window: Vec<String> = (0..POLL_CONCURRENCY.min(pending.len()))
            .filter_map(|_| pending.pop_front())
            .collect();
        let mut results: Vec<(String, Poll, Instant)> = stream::iter(window)
            .map(|job_id| async move {
                let poll = api.poll_job(&job_id).await;
                (job_id, poll, Instant::now())
            })
            .buffer_unordered(POLL_CONCURRENCY)
            .collect()
            .await;
        results.sort_by(|a, b| a.0.cmp(&b.0));
        let mut still_pending = Vec::new();
        for (job_id, poll, seen) in results {
            match poll {
                Poll::Final(doc) => {
                    outcome.finals.push(doc);
                    outcome.last_final = Some(outcome.last_final.map_or(seen, |t| t.max(seen)));
                }
                Poll::Pending => still_pending.push(job_id),
                Poll::Missing => outcome.missing += 1,
                Poll::Retry(key) => {
                    bump(&mut outcome.poll_errors, key);
                    still_pending.push(job_id);
                }
            }
        }
        let stalled = !still_pending.is_empty();
        for job_id in still_pending.into_iter().rev() {
            pending.push_front(job_id);
        }
        if stalled {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    outcome.unfinished = pending.len();
    outcome.gave_up_at = Instant::now();
    if outcome.unfinished > 0 {
        eprintln!(
            "warning: {} jobs still not final after {} s of polling",
            outcome.unfinished,
            POLL_TIMEOUT.as_secs()
        );
    }
    outcome
}

// ---------------------------------------------------------------- guarantee 1

#[derive(Serialize, Debug)]
struct StockCheck {
    product_id: i64,
    initial_stock: i64,
    granted_units: i64,
    expected_stock: i64,
    actual_stock: i64,
    pass: bool,
}

/// Guarantee 1 through the API: stock = initial − granted × qty, and ≥ 0.
async fn stock_check(
    api: &Api,
    target: Target,
    granted: usize,
    qty: i64,
) -> anyhow::Result<StockCheck> {
    tokio::time::sleep(CACHE_SETTLE).await;
    let product = api
        .get_product(target.product_id)
        .await
        .context("stock check: cannot read the product")?;
    let granted_units = (granted as i64).saturating_mul(qty);
    let expected_stock = target.initial_stock - granted_units;
    Ok(StockCheck {
        product_id: target.product_id,
        initial_stock: target.initial_stock,
        granted_units,
        expected_stock,
        actual_stock: product.stock,
        pass: product.stock == expected_stock && product.stock >= 0,
    })
}

// ---------------------------------------------------------------- stats

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.saturating_sub(1).min(sorted.len() - 1);
    sorted.get(index).copied()
}

#[derive(Serialize, Debug, Clone, PartialEq)]
struct LatencySummary {
    count: usize,
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

impl LatencySummary {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let round = |v: Option<f64>| v.map(|v| (v * 1000.0).round() / 1000.0);
        Self {
            count: values.len(),
            p50: round(percentile(&values, 50.0)),
            p90: round(percentile(&values, 90.0)),
            p99: round(percentile(&values, 99.0)),
            max: round(values.last().copied()),
        }
    }

    fn text(&self) -> String {
        let show = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        format!(
            "p50 {}  p90 {}  p99 {}  max {}  (n={})",
            show(self.p50),
            show(self.p90),
            show(self.p99),
            show(self.max),
            self.count
        )
    }
}

// ---------------------------------------------------------------- report

#[derive(Serialize, Debug)]
struct RunReport {
    mode: &'static str,
    product_id: i64,
    product_created: bool,
    clients: usize,
    requests: usize,
    qty: i64,
    /// From the start until the last POST was answered.
    accept_elapsed_s: f64,
    accept_requests_per_s: f64,
    /// From the start until the last outcome was known.
    end_to_end_elapsed_s: f64,
    /// How the pipeline's end was measured: `completed_at` (server clock,
    /// same host), `polling`, or `timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    end_to_end_source: Option<&'static str>,
    /// (granted + rejected) per second of end-to-end time.
    end_to_end_decided_per_s: f64,
    accept_latency_ms: LatencySummary,
    time_to_outcome_ms: Option<LatencySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_202_or_409: Option<usize>,
    granted: usize,
    rejected: usize,
    /// Pipeline only: 409s answered at once from the api's cache (no job).
    rejected_at_once: usize,
    errors: BTreeMap<String, usize>,
    /// Pipeline only: failed job reads, retried.
    poll_errors: BTreeMap<String, usize>,
    unfinished_jobs: usize,
    stock_check: Option<StockCheck>,
}

impl RunReport {
    fn new(mode: Mode, args: &Args, target: Target) -> Self {
        Self {
            mode: mode.as_str(),
            product_id: target.product_id,
            product_created: target.created,
            clients: args.clients,
            requests: args.requests,
            qty: args.qty,
            accept_elapsed_s: 0.0,
            accept_requests_per_s: 0.0,
            end_to_end_elapsed_s: 0.0,
            end_to_end_source: None,
            end_to_end_decided_per_s: 0.0,
            accept_latency_ms: LatencySummary::of(Vec::new()),
            time_to_outcome_ms: None,
            answered_202_or_409: None,
            granted: 0,
            rejected: 0,
            rejected_at_once: 0,
            errors: BTreeMap::new(),
            poll_errors: BTreeMap::new(),
            unfinished_jobs: 0,
            stock_check: None,
        }
    }

    fn decided(&self) -> usize {
        self.granted + self.rejected
    }

    fn passed(&self) -> bool {
        self.unfinished_jobs == 0 && self.stock_check.as_ref().is_some_and(|c| c.pass)
    }

    fn print_text(&self) {
        let s = |d: f64| format!("{d:.3} s");
        println!("== {} (product {}) ==", self.mode, self.product_id);
        println!("  requests             {}", self.requests);
        println!(
            "  accept               {} ({:.1} req/s)",
            s(self.accept_elapsed_s),
            self.accept_requests_per_s
        );
        let source = self
            .end_to_end_source
            .map_or_else(String::new, |src| format!(", end from {src}"));
        println!(
            "  end to end           {} ({:.1} decided/s{source})",
            s(self.end_to_end_elapsed_s),
            self.end_to_end_decided_per_s
        );
        println!("  accept latency ms    {}", self.accept_latency_ms.text());
        if let Some(to_outcome) = &self.time_to_outcome_ms {
            println!("  time to outcome ms   {}", to_outcome.text());
        }
        if self.mode == Mode::Pipeline.as_str() {
            println!(
                "  granted / rejected   {} / {} ({} of them at once, from the cache)",
                self.granted, self.rejected, self.rejected_at_once
            );
        } else {
            println!(
                "  granted / rejected   {} / {}",
                self.granted, self.rejected
            );
        }
        println!("  errors               {}", counts_text(&self.errors));
        if !self.poll_errors.is_empty() {
            println!("  poll errors (retried) {}", counts_text(&self.poll_errors));
        }
        if self.mode == Mode::Pipeline.as_str() {
            println!("  unfinished jobs      {}", self.unfinished_jobs);
        }
        if let Some(check) = &self.stock_check {
            println!(
                "  stock check          {}: stock {} (expected {} = initial {} - granted {} units)",
                if check.pass { "PASS" } else { "FAIL" },
                check.actual_stock,
                check.expected_stock,
                check.initial_stock,
                check.granted_units
            );
        }
    }
}

fn counts_text(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(key, n)| format!("{key}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Serialize, Debug)]
struct Report {
    url: String,
    mode: &'static str,
    runs: Vec<RunReport>,
    /// pipeline end_to_end_decided_per_s / baseline end_to_end_decided_per_s.
    pipeline_to_baseline_ratio: Option<f64>,
    pass: bool,
}

// ---------------------------------------------------------------- main

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

    let mut runs = Vec::with_capacity(modes.len());
    for &mode in modes {
        let target = prepare_target(&api, &args, mode).await?;
        let run_start = Instant::now();
        let report = match mode {
            Mode::Baseline => run_baseline(&api, &args, target).await,
            _ => run_pipeline(&api, &args, target).await,
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
        runs.push(report);
    }

    let rate = |mode: Mode| {
        runs.iter()
            .find(|run| run.mode == mode.as_str())
            .map(|run| run.end_to_end_decided_per_s)
    };
    let ratio = match (rate(Mode::Pipeline), rate(Mode::Baseline)) {
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

    if args.json {
        let text = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
        println!("{text}");
    } else {
        println!(
            "loadgen {}  clients={} requests={} qty={} mode={}",
            report.url,
            args.clients,
            args.requests,
            args.qty,
            args.mode.as_str()
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

// ---------------------------------------------------------------- tests

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_empty_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_of_one_value_is_that_value() {
        for p in [0.0, 1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&[7.5], p), Some(7.5));
        }
    }

    #[test]
    fn percentile_uses_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 90.0), Some(90.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        let small = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&small, 50.0), Some(2.0));
        assert_eq!(percentile(&small, 51.0), Some(3.0));
        assert_eq!(percentile(&small, 99.0), Some(4.0));
    }

    #[test]
    fn percentile_rejects_out_of_range() {
        assert_eq!(percentile(&[1.0, 2.0], -1.0), None);
        assert_eq!(percentile(&[1.0, 2.0], 100.5), None);
        assert_eq!(percentile(&[1.0, 2.0], f64::NAN), None);
    }

    #[test]
    fn summary_sorts_its_input() {
        let summary = LatencySummary::of(vec![5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(summary.count, 5);
        assert_eq!(summary.p50, Some(3.0));
        assert_eq!(summary.p99, Some(5.0));
        assert_eq!(summary.max, Some(5.0));
        let empty = LatencySummary::of(Vec::new());
        assert_eq!(empty.count, 0);
        assert_eq!(empty.max, None);
    }

    #[test]
    fn only_loopback_urls_are_accepted() {
        assert!(loopback_base_url("http://127.0.0.1:8080").is_ok());
        assert!(loopback_base_url("http://localhost:8080/").is_ok());
        assert!(loopback_base_url("http://[::1]:8080").is_ok());
        assert!(loopback_base_url("http://127.0.0.2:9000").is_ok());
        assert!(loopback_base_url("http://10.0.0.1:8080").is_err());
        assert!(loopback_base_url("http://example.com").is_err());
        assert!(loopback_base_url("https://127.0.0.1").is_err());
        assert_eq!(
            loopback_base_url("http://127.0.0.1:8080/").ok().as_deref(),
            Some("http://127.0.0.1:8080")
        );
    }

    #[test]
    fn job_id_falls_back_to_location() {
        let body = json!({ "job_id": "abc" });
        assert_eq!(job_id_of(Some(&body), None).as_deref(), Some("abc"));
        assert_eq!(
            job_id_of(None, Some("/api/v1/jobs/xyz".into())).as_deref(),
            Some("xyz")
        );
        assert_eq!(job_id_of(None, None), None);
    }

    #[test]
    fn time_to_outcome_uses_milliseconds() {
        let doc = JobDoc {
            status: "succeeded".into(),
            error: None,
            created_at: Some("2025-01-01T00:00:00.100Z".into()),
            completed_at: Some("2025-01-01T00:00:01.350Z".into()),
        };
        let Some((created, completed)) = job_times(&doc) else {
            panic!("timestamps should parse");
        };
        assert_eq!(ms_between(created, completed), 1250.0);
    }
}
