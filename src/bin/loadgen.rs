//! `loadgen`: a flash sale against a live stack, over HTTP only.
//!
//! C concurrent buyers share R purchases of one product, through the
//! asynchronous pipeline (`POST /api/v1/holds` …), the synchronous baseline
//! (`POST /api/v1/baseline/holds`), or both, and the run ends with the
//! no-oversell check (guarantee 1) read back through the API.
//!
//! Two flows (DESIGN.md §7):
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

use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Write as _,
    io::{IsTerminal, Write as _},
    net::IpAddr,
    path::PathBuf,
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
use hmac::{Hmac, KeyInit, Mac};
use reqwest::{Client, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

/// Concurrent job reads while polling for outcomes.
const POLL_CONCURRENCY: usize = 64;
/// Pause between two polling rounds.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A buyer whose `Prefer: wait` ran out polls its job this often.
const BUYER_POLL_INTERVAL: Duration = Duration::from_millis(100);
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
/// The full flow's buyers wait for outcomes (RFC 7240, capped at 10 s).
const PREFER_WAIT: &str = "wait=10";
/// Rounds of draining returned stock before the sold-out phase.
const DRAIN_ROUNDS: usize = 5;
/// Latency chart buckets: 100 ms for phases up to this long, else 1 s.
const FINE_BUCKETS_UP_TO: Duration = Duration::from_secs(30);

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
    /// Total hold requests (buyers' purchases), shared by all buyers.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Units per hold.
    #[arg(long, default_value_t = 1)]
    qty: i64,
    /// Which path to load.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// What each buyer does: hold only, or hold + order + pay [default:
    /// full for --mode pipeline, holds otherwise; the baseline has only
    /// holds].
    #[arg(long, value_enum)]
    flow: Option<Flow>,
    /// Admin bearer token, used to create fresh products.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Secret that signs the payment webhooks (full flow).
    #[arg(
        long,
        env = "WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = "dev-webhook-secret"
    )]
    webhook_secret: String,
    /// Share of orders paid with status `failed` (full flow).
    #[arg(long, default_value_t = 0.1)]
    fail_share: f64,
    /// Share of orders never paid (full flow); the rest pay `success`.
    #[arg(long, default_value_t = 0.1)]
    abandon_share: f64,
    /// Stock of a freshly created product [default: requests * qty / 2,
    /// so about half the holds are granted].
    #[arg(long)]
    stock: Option<i64>,
    /// After the sale, fire this many extra holds at the sold-out product
    /// with the same clients (0 = off).
    #[arg(long, default_value_t = 0)]
    sold_out_requests: usize,
    /// Write an SVG chart of accept latency (p50/p99) over time to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Flow {
    /// Hold requests only (accept latency without `Prefer: wait`, outcomes
    /// polled): comparable with earlier benchmark numbers.
    Holds,
    /// Hold, order, then pay through the signed webhook (DESIGN.md §7).
    Full,
}

impl Flow {
    fn as_str(self) -> &'static str {
        match self {
            Flow::Holds => "holds",
            Flow::Full => "full",
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
        ensure!(
            !(self.mode == Mode::Baseline && self.flow == Some(Flow::Full)),
            "--flow full needs --mode pipeline or both: the baseline has only holds"
        );
        for (name, share) in [
            ("--fail-share", self.fail_share),
            ("--abandon-share", self.abandon_share),
        ] {
            ensure!(
                share.is_finite() && (0.0..=1.0).contains(&share),
                "{name} must be between 0 and 1, got {share}"
            );
        }
        ensure!(
            self.fail_share + self.abandon_share <= 1.0,
            "--fail-share + --abandon-share must not exceed 1"
        );
        ensure!(
            sign(&self.webhook_secret, 0, b"").is_some(),
            "--webhook-secret cannot key an HMAC"
        );
        Ok(())
    }

    /// The flow a mode's run uses.
    fn flow_for(&self, mode: Mode) -> Flow {
        match (mode, self.flow) {
            (Mode::Baseline, _) => Flow::Holds,
            (_, Some(flow)) => flow,
            _ if self.mode == Mode::Pipeline => Flow::Full,
            _ => Flow::Holds,
        }
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

/// `X-Signature` for a webhook body signed at unix time `t`:
/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
fn sign(secret: &str, t: i64, body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "t={t},v1={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

// ---------------------------------------------------------------- progress

/// A once-a-second progress line on stderr while a phase runs:
/// `[pipeline holds] 12000/40000 (30%) 11874 req/s`, rewritten in place
/// (`\r`) on a terminal, one line per second otherwise.
struct Progress {
    done: Arc<AtomicUsize>,
    /// HTTP requests, when the unit is something else (buyers).
    http: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(label: String, total: usize, unit: &'static str, quiet: bool) -> Self {
        let done = Arc::new(AtomicUsize::new(0));
        let http = Arc::new(AtomicUsize::new(0));
        if quiet || total == 0 {
            return Self {
                done,
                http,
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let counter = Arc::clone(&done);
        let requests = Arc::clone(&http);
        let task = tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
            let started = Instant::now();
            let mut last = (started, 0usize, 0usize);
            let mut printed = false;
            let period = Duration::from_secs(1);
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {
                        let now = Instant::now();
                        let n = counter.load(Ordering::Relaxed);
                        let sent = requests.load(Ordering::Relaxed);
                        let rate = per_second(n.saturating_sub(last.1), now - last.0);
                        let http_rate = per_second(sent.saturating_sub(last.2), now - last.0);
                        last = (now, n, sent);
                        let http = if sent > 0 {
                            format!(", {http_rate:.0} req/s")
                        } else {
                            String::new()
                        };
                        emit_progress(tty, &format!(
                            "{label} {n}/{total} ({}%) {rate:.0} {unit}{http}",
                            percent(n, total)
                        ));
                        printed = true;
                    }
                }
            }
            if printed {
                let n = counter.load(Ordering::Relaxed);
                let elapsed = started.elapsed();
                emit_progress(
                    tty,
                    &format!(
                        "{label} {n}/{total} ({}%) in {:.1} s, {:.0} {unit} on average",
                        percent(n, total),
                        elapsed.as_secs_f64(),
                        per_second(n, elapsed)
                    ),
                );
                if tty {
                    eprintln!();
                }
            }
        });
        Self {
            done,
            http,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.done)
    }

    /// Counts HTTP requests for a second rate on the line.
    fn http_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.http)
    }

    fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops the ticker and waits for its last line.
    async fn finish(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn percent(n: usize, total: usize) -> usize {
    (n * 100).checked_div(total).unwrap_or(100)
}

fn emit_progress(tty: bool, line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = if tty {
        write!(err, "\r{line}\x1b[K")
    } else {
        writeln!(err, "{line}")
    };
    let _ = err.flush();
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
    result: Option<Value>,
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

    /// A resource read back: its JSON on 200, else an error bucket.
    async fn get_json(&self, path: &str) -> Result<Value, String> {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .map_err(|error| transport_key(&error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| transport_key(&error))?;
        let doc: Option<Value> = serde_json::from_slice(&body).ok();
        match doc {
            Some(doc) if status == StatusCode::OK => Ok(doc),
            doc => Err(error_key(status, doc.as_ref())),
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
    /// When it was sent, in seconds since the phase start.
    at_s: f64,
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

/// C buyers share R POSTs of the same hold body to `path` (no `Prefer`).
async fn burst(
    api: &Api,
    path: &str,
    body: &Value,
    clients: usize,
    requests: usize,
    start: Instant,
    progress: &Progress,
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
        let done = progress.counter();
        buyers.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(requests / clients + 1);
            let mut last_answer = start;
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let sent = Instant::now();
                let answer = post_once(&client, &url, &body, None).await;
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

async fn post_once(client: &Client, url: &str, body: &Value, prefer: Option<&str>) -> Answer {
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

async fn answer_of(response: reqwest::Response) -> Answer {
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

/// Requests of one kind: from the first sent to the last answered.
#[derive(Serialize, Debug, Clone)]
struct PhaseStat {
    name: String,
    requests: usize,
    elapsed_s: f64,
    requests_per_s: f64,
}

impl PhaseStat {
    fn new(name: &str, requests: usize, elapsed: Duration) -> Self {
        Self {
            name: name.to_owned(),
            requests,
            elapsed_s: elapsed.as_secs_f64(),
            requests_per_s: per_second(requests, elapsed),
        }
    }
}

/// First send and last answer of one kind of request.
#[derive(Default, Clone, Copy)]
struct Span {
    count: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Span {
    fn add(&mut self, sent: Instant, answered: Instant) {
        self.count += 1;
        self.first = Some(self.first.map_or(sent, |t| t.min(sent)));
        self.last = Some(self.last.map_or(answered, |t| t.max(answered)));
    }

    fn elapsed(&self) -> Duration {
        match (self.first, self.last) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        }
    }

    fn phase(&self, name: &str) -> PhaseStat {
        PhaseStat::new(name, self.count, self.elapsed())
    }
}

// ---------------------------------------------------------------- baseline

async fn run_baseline(api: &Api, args: &Args, target: Target) -> anyhow::Result<RunReport> {
    let body = json!({ "product_id": target.product_id, "qty": args.qty });
    eprintln!(
        "baseline: {} requests from {} buyers on product {} (stock {})",
        args.requests, args.clients, target.product_id, target.initial_stock
    );
    let progress = Progress::start(
        "[baseline holds]".into(),
        args.requests,
        "req/s",
        args.quiet,
    );
    let start = Instant::now();
    let burst = burst(
        api,
        "/api/v1/baseline/holds",
        &body,
        args.clients,
        args.requests,
        start,
        &progress,
    )
    .await?;
    progress.finish().await;

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
    report
        .phases
        .push(PhaseStat::new("holds", args.requests, burst.elapsed));
    report.stock_check = Some(stock_check(api, target, report.granted, args.qty, None).await?);
    Ok(report)
}

// ---------------------------------------------------------------- pipeline, holds only

async fn run_pipeline_holds(api: &Api, args: &Args, target: Target) -> anyhow::Result<RunReport> {
    let body = json!({ "product_id": target.product_id, "qty": args.qty });
    eprintln!(
        "pipeline: {} requests from {} buyers on product {} (stock {})",
        args.requests, args.clients, target.product_id, target.initial_stock
    );
    let progress = Progress::start(
        "[pipeline holds]".into(),
        args.requests,
        "req/s",
        args.quiet,
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
        &progress,
    )
    .await?;
    progress.finish().await;

    let mut report = RunReport::new(Mode::Pipeline, Flow::Holds, args, target);
    report.rejected_at_once = Some(0);
    let mut rejected_at_once = 0usize;
    let mut latencies = Vec::with_capacity(burst.samples.len());
    let mut jobs = Vec::new();
    let mut answered = 0usize;
    for sample in burst.samples {
        latencies.push(sample.latency_ms);
        report.samples.push((sample.at_s, sample.latency_ms));
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
                rejected_at_once += 1;
            }
            Answer::Http { status, body, .. } => {
                bump(&mut report.errors, error_key(status, body.as_ref()));
            }
            Answer::Transport(key) => bump(&mut report.errors, key),
        }
    }
    report.rejected_at_once = Some(rejected_at_once);
    report.accept_elapsed_s = burst.elapsed.as_secs_f64();
    report.accept_requests_per_s = per_second(args.requests, burst.elapsed);
    report.accept_latency_ms = LatencySummary::of(latencies);
    report.answered_202_or_409 = Some(answered);
    report
        .phases
        .push(PhaseStat::new("holds", args.requests, burst.elapsed));

    eprintln!("pipeline: polling {} jobs for their outcome", jobs.len());
    let poll_start = Instant::now();
    let progress = Progress::start(
        "[pipeline hold jobs]".into(),
        jobs.len(),
        "jobs/s",
        args.quiet,
    );
    let outcome = poll_jobs(api, jobs, start, &progress).await;
    progress.finish().await;
    report.phases.push(PhaseStat::new(
        "hold job polls",
        outcome.polls,
        outcome.gave_up_at - poll_start,
    ));
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
            match job_error_code(doc) {
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
    report.stock_check = Some(stock_check(api, target, report.granted, args.qty, None).await?);
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

/// The id of a resource answered with 201: its body's `id`, else the last
/// segment of its `Location`.
fn resource_id_of(body: Option<&Value>, location: Option<&str>) -> Option<String> {
    if let Some(id) = body
        .and_then(|body| body.get("id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
    {
        return Some(id.to_owned());
    }
    let id = location?.rsplit('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

fn job_error_code(doc: &JobDoc) -> Option<&str> {
    doc.error
        .as_ref()
        .and_then(|error| error.get("code"))
        .and_then(Value::as_str)
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
    /// Job reads made.
    polls: usize,
}

/// Polls every job until all are final or POLL_TIMEOUT passes.
async fn poll_jobs(
    api: &Api,
    mut pending: Vec<String>,
    start: Instant,
    progress: &Progress,
) -> PollOutcome {
    let deadline = Instant::now() + POLL_TIMEOUT;
    let mut outcome = PollOutcome {
        finals: Vec::with_capacity(pending.len()),
        last_final: None,
        missing: 0,
        unfinished: 0,
        poll_errors: BTreeMap::new(),
        gave_up_at: start,
        polls: 0,
    };
    // Job ids are UUIDv7, so sorting them orders the jobs by creation, and
    // jobs finish roughly in that order. Each round polls the oldest
    // unfinished ones a window at a time and stops at the first window with
    // a job still queued: the poller then costs the stack a trickle of reads
    // instead of competing with the worker it is measuring.
    pending.sort();
    pending.dedup();
    let mut pending: VecDeque<String> = pending.into();
    while !pending.is_empty() && Instant::now() < deadline {
        let window: Vec<String> = (0..POLL_CONCURRENCY.min(pending.len()))
            .filter_map(|_| pending.pop_front())
            .collect();
        outcome.polls += window.len();
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
                    progress.tick();
                }
                Poll::Pending => still_pending.push(job_id),
                Poll::Missing => {
                    outcome.missing += 1;
                    progress.tick();
                }
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

// ---------------------------------------------------------------- pipeline, full buyer

/// How a buyer settles its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Intent {
    Success,
    Failed,
    Abandon,
}

impl Intent {
    /// The order status this intent must end in.
    fn expected_status(self) -> &'static str {
        match self {
            Intent::Success => "paid",
            Intent::Failed => "canceled",
            Intent::Abandon => "pending",
        }
    }

    fn webhook_status(self) -> Option<&'static str> {
        match self {
            Intent::Success => Some("success"),
            Intent::Failed => Some("failed"),
            Intent::Abandon => None,
        }
    }
}

/// The intent of the k-th order created (0-based): a golden-ratio sequence
/// spreads the shares evenly over the run and is deterministic, so any
/// prefix of the orders has about the requested shares.
fn pay_intent(k: usize, fail_share: f64, abandon_share: f64) -> Intent {
    let u = (k as f64 * 0.618_033_988_749_894_9).fract();
    if u < fail_share {
        Intent::Failed
    } else if u < fail_share + abandon_share {
        Intent::Abandon
    } else {
        Intent::Success
    }
}

/// The final outcome of a command (hold or order) posted with `Prefer: wait`.
#[derive(Debug)]
enum Outcome {
    /// 201, or a 202 whose job later succeeded: the resource.
    Done(Option<String>),
    /// 409 with this problem code (at once, after the wait, or from the job).
    Refused(String),
    Error(String),
    /// Still queued when polling gave up.
    Unfinished,
}

/// One command of a buyer.
struct Step {
    sent: Instant,
    /// When the POST was answered.
    answered: Instant,
    /// When the outcome was known (the answer, or the poll that saw it).
    decided: Instant,
    /// 202 after the wait: the outcome was polled.
    polled: bool,
    outcome: Outcome,
}

impl Step {
    fn latency_ms(&self) -> f64 {
        ms(self.answered - self.sent)
    }

    fn to_outcome_ms(&self) -> f64 {
        ms(self.decided - self.sent)
    }
}

struct Payment {
    intent: Intent,
    order_id: String,
    /// `(sent, answered)` of the webhook POST; none for abandoners.
    post: Option<(Instant, Instant)>,
    /// The payment job id of an accepted (202) webhook, or the error.
    job: Option<Result<String, String>>,
}

struct Purchase {
    hold: Step,
    order: Option<Step>,
    payment: Option<Payment>,
}

/// What every buyer shares.
struct Shop {
    api: Api,
    product_id: i64,
    qty: i64,
    secret: String,
    /// Makes the webhook idempotency keys unique per run.
    run_tag: String,
    fail_share: f64,
    abandon_share: f64,
    orders_made: AtomicUsize,
    /// HTTP requests sent by buyers, for the progress line.
    requests: Arc<AtomicUsize>,
}

impl Shop {
    async fn buy(&self) -> Purchase {
        let hold = self
            .command(
                "/api/v1/holds",
                &json!({ "product_id": self.product_id, "qty": self.qty }),
            )
            .await;
        let mut purchase = Purchase {
            hold,
            order: None,
            payment: None,
        };
        let Outcome::Done(Some(hold_id)) = &purchase.hold.outcome else {
            return purchase;
        };
        let order = self
            .command("/api/v1/orders", &json!({ "hold_id": hold_id }))
            .await;
        let order_id = match &order.outcome {
            Outcome::Done(Some(order_id)) => Some(order_id.clone()),
            _ => None,
        };
        purchase.order = Some(order);
        let Some(order_id) = order_id else {
            return purchase;
        };
        let k = self.orders_made.fetch_add(1, Ordering::Relaxed);
        let intent = pay_intent(k, self.fail_share, self.abandon_share);
        let mut payment = Payment {
            intent,
            order_id,
            post: None,
            job: None,
        };
        if let Some(status) = intent.webhook_status() {
            let sent = Instant::now();
            let job = self.pay(&payment.order_id, status).await;
            payment.post = Some((sent, Instant::now()));
            payment.job = Some(job);
        }
        purchase.payment = Some(payment);
        purchase
    }

    /// POSTs a command with `Prefer: wait=10`; a 202 (still queued after
    /// the wait) is followed by polling its job.
    async fn command(&self, path: &str, body: &Value) -> Step {
        let url = self.api.url(path);
        self.requests.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let answer = post_once(&self.api.client, &url, body, Some(PREFER_WAIT)).await;
        let answered = Instant::now();
        let mut polled = false;
        let outcome = match answer {
            Answer::Http {
                status,
                body,
                location,
            } => match status {
                StatusCode::CREATED => {
                    Outcome::Done(resource_id_of(body.as_ref(), location.as_deref()))
                }
                StatusCode::ACCEPTED => match job_id_of(body.as_ref(), location) {
                    Some(job_id) => {
                        polled = true;
                        self.await_job(&job_id).await
                    }
                    None => Outcome::Error("202 without job_id".into()),
                },
                StatusCode::CONFLICT => match problem_code(body.as_ref()) {
                    Some(code) => Outcome::Refused(code.to_owned()),
                    None => Outcome::Error(error_key(status, body.as_ref())),
                },
                _ => Outcome::Error(error_key(status, body.as_ref())),
            },
            Answer::Transport(key) => Outcome::Error(key),
        };
        Step {
            sent,
            answered,
            decided: Instant::now(),
            polled,
            outcome,
        }
    }

    /// Polls one job until it is final (the resource id equals the job id).
    async fn await_job(&self, job_id: &str) -> Outcome {
        let deadline = Instant::now() + POLL_TIMEOUT;
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            match self.api.poll_job(job_id).await {
                Poll::Final(doc) if doc.status == "succeeded" => {
                    // The resource id equals its job id.
                    let id = resource_id_of(doc.result.as_ref(), None)
                        .unwrap_or_else(|| job_id.to_owned());
                    return Outcome::Done(Some(id));
                }
                Poll::Final(doc) => {
                    let status = doc
                        .error
                        .as_ref()
                        .and_then(|error| error.get("status"))
                        .and_then(Value::as_u64);
                    return match (status, job_error_code(&doc)) {
                        (Some(409), Some(code)) => Outcome::Refused(code.to_owned()),
                        (_, Some(code)) => Outcome::Error(format!("job failed: {code}")),
                        (_, None) => Outcome::Error("job failed: no code".into()),
                    };
                }
                Poll::Missing => return Outcome::Error("job 404 (never issued)".into()),
                Poll::Pending | Poll::Retry(_) => {}
            }
            if Instant::now() >= deadline {
                return Outcome::Unfinished;
            }
            tokio::time::sleep(BUYER_POLL_INTERVAL).await;
        }
    }

    /// Sends the signed webhook; the payment job id of its 202, or the
    /// error bucket.
    async fn pay(&self, order_id: &str, status: &str) -> Result<String, String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "idempotency_key": format!("loadgen-{}-{order_id}", self.run_tag),
            "order_id": order_id,
            "status": status,
        })
        .to_string();
        let t = Utc::now().timestamp();
        let signature = sign(&self.secret, t, body.as_bytes()).ok_or("cannot sign")?;
        let response = self
            .api
            .client
            .post(self.api.url("/api/v1/payments/webhook"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|error| transport_key(&error))?;
        match answer_of(response).await {
            Answer::Http {
                status,
                body,
                location,
            } if status == StatusCode::ACCEPTED => {
                job_id_of(body.as_ref(), location).ok_or_else(|| "202 without job_id".to_owned())
            }
            Answer::Http { status, body, .. } => Err(error_key(status, body.as_ref())),
            Answer::Transport(key) => Err(key),
        }
    }
}

#[derive(Serialize, Debug)]
struct FullReport {
    fail_share: f64,
    abandon_share: f64,
    /// Holds still queued after `Prefer: wait=10`, whose outcome was polled.
    holds_polled_after_wait: usize,
    orders: OrdersReport,
    payments: PaymentsReport,
    order_states: OrderStatesReport,
    /// Granted holds that did not become an order, by status read back.
    holds_without_order: BTreeMap<String, usize>,
}

#[derive(Serialize, Debug)]
struct OrdersReport {
    attempted: usize,
    created: usize,
    /// 409 by problem code.
    refused: BTreeMap<String, usize>,
    errors: BTreeMap<String, usize>,
    /// Still queued after `Prefer: wait=10`, whose outcome was polled.
    polled_after_wait: usize,
    unfinished: usize,
    requests_per_s: f64,
    /// From the POST to the order's outcome.
    latency_ms: LatencySummary,
}

#[derive(Serialize, Debug)]
struct PaymentsReport {
    to_pay_success: usize,
    to_pay_failed: usize,
    abandoned: usize,
    /// Webhooks answered 202.
    accepted: usize,
    errors: BTreeMap<String, usize>,
    requests_per_s: f64,
    webhook_latency_ms: LatencySummary,
    /// Final payment jobs by `result.outcome` (or `failed: code`).
    job_outcomes: BTreeMap<String, usize>,
    unfinished_jobs: usize,
    poll_errors: BTreeMap<String, usize>,
    /// From the end of the buyers until the last payment job was final.
    settle_s: f64,
}

#[derive(Serialize, Debug)]
struct OrderStatesReport {
    read: usize,
    /// Order status read back → count (read failures as `read error: …`).
    states: BTreeMap<String, usize>,
    /// What the buyers' intents call for (a refused webhook is a mismatch).
    expected: BTreeMap<String, usize>,
    /// `expected X, got Y` → count.
    mismatches: BTreeMap<String, usize>,
    pass: bool,
}

async fn run_pipeline_full(api: &Api, args: &Args, target: Target) -> anyhow::Result<RunReport> {
    eprintln!(
        "pipeline (full flow): {} buyers' purchases from {} buyers on product {} (stock {}), \
         fail {:.0}% / abandon {:.0}%",
        args.requests,
        args.clients,
        target.product_id,
        target.initial_stock,
        args.fail_share * 100.0,
        args.abandon_share * 100.0
    );
    let progress = Progress::start(
        "[pipeline full buyers]".into(),
        args.requests,
        "buyers/s",
        args.quiet,
    );
    let shop = Arc::new(Shop {
        api: api.clone(),
        product_id: target.product_id,
        qty: args.qty,
        secret: args.webhook_secret.clone(),
        run_tag: uuid::Uuid::new_v4().simple().to_string(),
        fail_share: args.fail_share,
        abandon_share: args.abandon_share,
        orders_made: AtomicUsize::new(0),
        requests: progress.http_counter(),
    });
    let start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut buyers = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let shop = Arc::clone(&shop);
        let next = Arc::clone(&next);
        let done = progress.counter();
        let requests = args.requests;
        let share = requests / args.clients + 1;
        buyers.push(tokio::spawn(async move {
            let mut purchases = Vec::with_capacity(share);
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                purchases.push(shop.buy().await);
                done.fetch_add(1, Ordering::Relaxed);
            }
            purchases
        }));
    }
    let mut purchases = Vec::with_capacity(args.requests);
    for buyer in buyers {
        purchases.extend(buyer.await.context("a buyer task panicked")?);
    }
    let buyers_done = Instant::now();
    progress.finish().await;
    let buyer_requests = shop.requests.load(Ordering::Relaxed);

    let mut report = RunReport::new(Mode::Pipeline, Flow::Full, args, target);
    let mut holds = Span::default();
    let mut orders = Span::default();
    let mut webhooks = Span::default();
    let mut last_decided = start;
    let mut hold_latencies = Vec::with_capacity(purchases.len());
    let mut to_outcome = Vec::with_capacity(purchases.len());
    let mut order_latencies = Vec::new();
    let mut webhook_latencies = Vec::new();
    let mut holds_polled = 0usize;
    let mut orders_report = OrdersReport {
        attempted: 0,
        created: 0,
        refused: BTreeMap::new(),
        errors: BTreeMap::new(),
        polled_after_wait: 0,
        unfinished: 0,
        requests_per_s: 0.0,
        latency_ms: LatencySummary::of(Vec::new()),
    };
    let mut to_pay = (0usize, 0usize, 0usize);
    let mut payment_errors = BTreeMap::new();
    let mut payment_jobs = Vec::new();
    // (order id, expected status)
    let mut order_checks: Vec<(String, &'static str)> = Vec::new();
    // Granted holds whose order was not created.
    let mut orphan_holds: Vec<String> = Vec::new();

    for purchase in &purchases {
        let hold = &purchase.hold;
        holds.add(hold.sent, hold.answered);
        hold_latencies.push(hold.latency_ms());
        report
            .samples
            .push(((hold.sent - start).as_secs_f64(), hold.latency_ms()));
        holds_polled += usize::from(hold.polled);
        match &hold.outcome {
            Outcome::Done(id) => {
                report.granted += 1;
                if id.is_none() {
                    bump(&mut report.errors, "granted hold without id".into());
                }
            }
            Outcome::Refused(code) if code == INSUFFICIENT_STOCK => report.rejected += 1,
            Outcome::Refused(code) => bump(&mut report.errors, format!("409 {code}")),
            Outcome::Error(key) => bump(&mut report.errors, key.clone()),
            Outcome::Unfinished => report.unfinished_jobs += 1,
        }
        if !matches!(hold.outcome, Outcome::Unfinished) {
            to_outcome.push(hold.to_outcome_ms());
            last_decided = last_decided.max(hold.decided);
        }

        if let Some(order) = &purchase.order {
            orders_report.attempted += 1;
            orders.add(order.sent, order.answered);
            order_latencies.push(order.to_outcome_ms());
            orders_report.polled_after_wait += usize::from(order.polled);
            match &order.outcome {
                Outcome::Done(Some(_)) => orders_report.created += 1,
                Outcome::Done(None) => {
                    bump(&mut orders_report.errors, "created order without id".into());
                }
                Outcome::Refused(code) => bump(&mut orders_report.refused, code.clone()),
                Outcome::Error(key) => bump(&mut orders_report.errors, key.clone()),
                Outcome::Unfinished => orders_report.unfinished += 1,
            }
            if !matches!(order.outcome, Outcome::Done(Some(_)))
                && let Outcome::Done(Some(hold_id)) = &hold.outcome
            {
                orphan_holds.push(hold_id.clone());
            }
        }

        if let Some(payment) = &purchase.payment {
            match payment.intent {
                Intent::Success => to_pay.0 += 1,
                Intent::Failed => to_pay.1 += 1,
                Intent::Abandon => to_pay.2 += 1,
            }
            if let Some((sent, answered)) = payment.post {
                webhooks.add(sent, answered);
                webhook_latencies.push(ms(answered - sent));
            }
            let expected = match &payment.job {
                Some(Ok(job_id)) => {
                    payment_jobs.push(job_id.clone());
                    payment.intent.expected_status()
                }
                // A refused webhook leaves the order pending: a mismatch.
                Some(Err(key)) => {
                    bump(&mut payment_errors, key.clone());
                    payment.intent.expected_status()
                }
                None => payment.intent.expected_status(),
            };
            order_checks.push((payment.order_id.clone(), expected));
        }
    }

    let accept = holds.last.map_or(Duration::ZERO, |t| t - start);
    report.accept_elapsed_s = accept.as_secs_f64();
    report.accept_requests_per_s = per_second(holds.count, accept);
    report.accept_latency_ms = LatencySummary::of(hold_latencies);
    report.time_to_outcome_ms = Some(LatencySummary::of(to_outcome));
    let end_to_end = (last_decided - start).max(accept);
    report.end_to_end_elapsed_s = end_to_end.as_secs_f64();
    report.end_to_end_source = Some("client");
    report.end_to_end_decided_per_s = per_second(report.decided(), end_to_end);
    report.phases.push(PhaseStat::new(
        "buyers (all requests)",
        buyer_requests,
        buyers_done - start,
    ));
    report.phases.push(holds.phase("holds"));
    report.phases.push(orders.phase("orders"));
    report.phases.push(webhooks.phase("webhooks"));
    orders_report.requests_per_s = per_second(orders.count, orders.elapsed());
    orders_report.latency_ms = LatencySummary::of(order_latencies);

    // Every accepted payment must reach a final job before the orders are
    // read back.
    eprintln!(
        "pipeline: polling {} payment jobs until final",
        payment_jobs.len()
    );
    let poll_start = Instant::now();
    let progress = Progress::start(
        "[pipeline payment jobs]".into(),
        payment_jobs.len(),
        "jobs/s",
        args.quiet,
    );
    let accepted = payment_jobs.len();
    let paid = poll_jobs(api, payment_jobs, start, &progress).await;
    progress.finish().await;
    report.phases.push(PhaseStat::new(
        "payment job polls",
        paid.polls,
        paid.gave_up_at - poll_start,
    ));
    let mut job_outcomes = BTreeMap::new();
    for doc in &paid.finals {
        if doc.status == "succeeded" {
            let outcome = doc
                .result
                .as_ref()
                .and_then(|result| result.get("outcome"))
                .and_then(Value::as_str)
                .unwrap_or("no outcome");
            bump(&mut job_outcomes, outcome.to_owned());
        } else {
            let code = job_error_code(doc).unwrap_or("no code");
            bump(&mut job_outcomes, format!("failed: {code}"));
        }
    }
    if paid.missing > 0 {
        job_outcomes.insert("job 404 (never issued)".into(), paid.missing);
    }
    let settled = paid
        .last_final
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(buyers_done));
    let payments_report = PaymentsReport {
        to_pay_success: to_pay.0,
        to_pay_failed: to_pay.1,
        abandoned: to_pay.2,
        accepted,
        errors: payment_errors,
        requests_per_s: per_second(webhooks.count, webhooks.elapsed()),
        webhook_latency_ms: LatencySummary::of(webhook_latencies),
        job_outcomes,
        unfinished_jobs: paid.unfinished,
        poll_errors: paid.poll_errors,
        settle_s: settled.as_secs_f64(),
    };

    // Every order read back.
    eprintln!("pipeline: reading back {} orders", order_checks.len());
    let verify_start = Instant::now();
    let progress = Progress::start(
        "[pipeline order check]".into(),
        order_checks.len(),
        "req/s",
        args.quiet,
    );
    let mut states = BTreeMap::new();
    let mut expected_counts = BTreeMap::new();
    let mut mismatches = BTreeMap::new();
    let mut canceled_units = 0i64;
    let reads = order_checks.len();
    let results: Vec<(&'static str, Result<Value, String>)> = stream::iter(order_checks)
        .map(|(order_id, expected)| {
            let progress = &progress;
            async move {
                let read = api.get_json(&format!("/api/v1/orders/{order_id}")).await;
                progress.tick();
                (expected, read)
            }
        })
        .buffer_unordered(POLL_CONCURRENCY)
        .collect()
        .await;
    progress.finish().await;
    for (expected, read) in results {
        bump(&mut expected_counts, expected.to_owned());
        let status = match &read {
            Ok(order) => order
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("no status")
                .to_owned(),
            Err(key) => format!("read error: {key}"),
        };
        if status == "canceled" {
            let qty = read
                .as_ref()
                .ok()
                .and_then(|order| order.get("qty"))
                .and_then(Value::as_i64)
                .unwrap_or(args.qty);
            canceled_units += qty;
        }
        if status != expected {
            bump(
                &mut mismatches,
                format!("expected {expected}, got {status}"),
            );
        }
        bump(&mut states, status);
    }

    // Granted holds that never became orders still hold their stock unless
    // they expired.
    let mut holds_without_order = BTreeMap::new();
    let mut released_units = 0i64;
    for hold_id in &orphan_holds {
        let read = api.get_json(&format!("/api/v1/holds/{hold_id}")).await;
        let status = match &read {
            Ok(hold) => hold
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("no status")
                .to_owned(),
            Err(key) => format!("read error: {key}"),
        };
        if status == "expired" {
            released_units += read
                .as_ref()
                .ok()
                .and_then(|hold| hold.get("qty"))
                .and_then(Value::as_i64)
                .unwrap_or(args.qty);
        }
        bump(&mut holds_without_order, status);
    }
    report.phases.push(PhaseStat::new(
        "order check",
        reads + orphan_holds.len(),
        verify_start.elapsed(),
    ));

    let order_states = OrderStatesReport {
        read: reads,
        pass: mismatches.is_empty(),
        states,
        expected: expected_counts,
        mismatches,
    };
    report.full = Some(FullReport {
        fail_share: args.fail_share,
        abandon_share: args.abandon_share,
        holds_polled_after_wait: holds_polled,
        orders: orders_report,
        payments: payments_report,
        order_states,
        holds_without_order,
    });
    report.stock_check = Some(
        stock_check(
            api,
            target,
            report.granted,
            args.qty,
            Some((canceled_units, released_units)),
        )
        .await?,
    );
    Ok(report)
}

// ---------------------------------------------------------------- sold-out phase

#[derive(Serialize, Debug)]
struct SoldOutReport {
    requests: usize,
    /// Stock read just before (after draining).
    stock_before: i64,
    /// Units taken by holds first, so the product was really sold out
    /// (canceled orders give stock back).
    drained_units: i64,
    elapsed_s: f64,
    requests_per_s: f64,
    latency_ms: LatencySummary,
    /// 409 `insufficient_stock` at once, no job: answered from the cache.
    rejected_at_once: usize,
    /// 202s: a job reached the queue (pipeline; must be 0).
    queued: usize,
    /// 201s (baseline) or queued jobs that got stock.
    granted: usize,
    errors: BTreeMap<String, usize>,
    /// Pipeline only: no request reached the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<bool>,
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

async fn sold_out_phase(
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
        args.clients,
        requests,
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

// ---------------------------------------------------------------- guarantee 1

#[derive(Serialize, Debug)]
struct StockCheck {
    product_id: i64,
    initial_stock: i64,
    granted_units: i64,
    /// Full flow: units of canceled orders (given back).
    #[serde(skip_serializing_if = "Option::is_none")]
    canceled_units: Option<i64>,
    /// Full flow: units of granted holds that expired without an order.
    #[serde(skip_serializing_if = "Option::is_none")]
    released_hold_units: Option<i64>,
    expected_stock: i64,
    actual_stock: i64,
    pass: bool,
}

/// Guarantee 1 through the API: stock = initial − granted × qty (+ what
/// canceled orders and expired holds gave back), and ≥ 0.
async fn stock_check(
    api: &Api,
    target: Target,
    granted: usize,
    qty: i64,
    returned: Option<(i64, i64)>,
) -> anyhow::Result<StockCheck> {
    tokio::time::sleep(CACHE_SETTLE).await;
    let product = api
        .get_product(target.product_id)
        .await
        .context("stock check: cannot read the product")?;
    let granted_units = (granted as i64).saturating_mul(qty);
    let (canceled, released) = returned.unwrap_or((0, 0));
    let expected_stock = target.initial_stock - granted_units + canceled + released;
    Ok(StockCheck {
        product_id: target.product_id,
        initial_stock: target.initial_stock,
        granted_units,
        canceled_units: returned.map(|r| r.0),
        released_hold_units: returned.map(|r| r.1),
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

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
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
        let round = |v: Option<f64>| v.map(round3);
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

/// Accept latency per time bucket of a phase.
#[derive(Serialize, Debug, Clone, PartialEq)]
struct TimelinePoint {
    /// Bucket start, seconds since the phase start.
    t_s: f64,
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
}

#[derive(Serialize, Debug, Clone)]
struct Timeline {
    bucket_ms: u64,
    points: Vec<TimelinePoint>,
}

/// Buckets `(sent at s, latency ms)` samples by send time; empty buckets
/// are left out.
fn timeline(samples: &[(f64, f64)], bucket: Duration) -> Timeline {
    let width = bucket.as_secs_f64().max(1e-3);
    let mut buckets: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for &(at, latency) in samples {
        let index = (at.max(0.0) / width).floor() as u64;
        buckets.entry(index).or_default().push(latency);
    }
    let points = buckets
        .into_iter()
        .map(|(index, mut values)| {
            values.sort_by(f64::total_cmp);
            let p = |q| round3(percentile(&values, q).unwrap_or(0.0));
            TimelinePoint {
                t_s: round3(index as f64 * width),
                n: values.len(),
                p50: p(50.0),
                p90: p(90.0),
                p99: p(99.0),
            }
        })
        .collect();
    Timeline {
        bucket_ms: bucket.as_millis() as u64,
        points,
    }
}

// ---------------------------------------------------------------- SVG chart

struct Series {
    label: String,
    colour: &'static str,
    dashed: bool,
    /// Runs of consecutive buckets: (x s, y ms).
    segments: Vec<Vec<(f64, f64)>>,
}

/// p50 and p99 series of each run's timeline, one colour per series.
fn chart_series(runs: &[RunReport]) -> Vec<Series> {
    const PALETTE: [(&str, &str); 3] = [
        ("#1f77b4", "#17becf"),
        ("#d62728", "#ff7f0e"),
        ("#2ca02c", "#9467bd"),
    ];
    let mut series = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let Some(timeline) = &run.accept_latency_timeline else {
            continue;
        };
        let (c50, c99) = PALETTE[i % PALETTE.len()];
        let width = timeline.bucket_ms as f64 / 1000.0;
        let name = if run.flow == Flow::Full.as_str() {
            format!("{} (full)", run.mode)
        } else {
            run.mode.to_owned()
        };
        for (label, colour, dashed, pick) in [
            (
                "p50",
                c50,
                false,
                (|p: &TimelinePoint| p.p50) as fn(&TimelinePoint) -> f64,
            ),
            ("p99", c99, true, |p: &TimelinePoint| p.p99),
        ] {
            let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
            let mut previous: Option<f64> = None;
            for point in &timeline.points {
                let contiguous =
                    previous.is_some_and(|t| (point.t_s - t - width).abs() < width / 2.0);
                if !contiguous {
                    segments.push(Vec::new());
                }
                if let Some(segment) = segments.last_mut() {
                    segment.push((point.t_s + width / 2.0, pick(point)));
                }
                previous = Some(point.t_s);
            }
            series.push(Series {
                label: format!("{name} {label}"),
                colour,
                dashed,
                segments,
            });
        }
    }
    series
}

/// A "nice" tick step (1, 2 or 5 × 10^k) giving about `target` ticks.
fn nice_step(range: f64, target: f64) -> f64 {
    if !(range.is_finite() && range > 0.0) {
        return 1.0;
    }
    let raw = range / target.max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A tick label: at most 3 decimals, no trailing zeros.
fn tick_label(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained SVG line chart: x = seconds, y = ms (log scale when the
/// values span more than 50×).
fn render_svg(
    title: &str,
    subtitle: &[String],
    series: &[Series],
) -> Result<String, std::fmt::Error> {
    const W: f64 = 1000.0;
    const H: f64 = 560.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 230.0;
    const TOP: f64 = 92.0;
    const BOTTOM: f64 = 62.0;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);

    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.segments.iter().flatten().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(0.0, f64::max).max(0.1);
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let y_min = points
        .iter()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::INFINITY, f64::min);
    let log = y_min.is_finite() && y_max / y_min > 50.0;

    let x_step = nice_step(x_max, 10.0);
    let x_ticks = (x_max / x_step).ceil().max(1.0) as usize;
    let x_hi = x_ticks as f64 * x_step;
    let map_x = |x: f64| LEFT + x / x_hi * pw;

    // (value, label?) ticks and the y mapping.
    let mut y_ticks: Vec<(f64, bool)> = Vec::new();
    let (y_lo, y_hi);
    if log {
        let lo = y_min.log10().floor() as i32;
        let mut hi = y_max.log10().ceil() as i32;
        if hi <= lo {
            hi = lo + 1;
        }
        let minor_labels = hi - lo <= 3;
        for e in lo..=hi {
            let decade = 10f64.powi(e);
            y_ticks.push((decade, true));
            if e < hi {
                y_ticks.push((2.0 * decade, minor_labels));
                y_ticks.push((5.0 * decade, minor_labels));
            }
        }
        (y_lo, y_hi) = (f64::from(lo), f64::from(hi));
    } else {
        let step = nice_step(y_max.max(0.001), 6.0);
        let n = (y_max / step).ceil().max(1.0) as usize;
        for i in 0..=n {
            y_ticks.push((i as f64 * step, true));
        }
        (y_lo, y_hi) = (0.0, n as f64 * step);
    }
    let map_y = |y: f64| {
        let fraction = if log {
            (y.max(10f64.powf(y_lo)).log10() - y_lo) / (y_hi - y_lo)
        } else {
            (y - y_lo) / (y_hi - y_lo)
        };
        TOP + ph - fraction * ph
    };

    let mut svg = String::new();
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    )?;
    writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#)?;
    writeln!(
        svg,
        r##"<text x="{LEFT}" y="30" font-size="18" font-weight="bold" fill="#222">{}</text>"##,
        xml_escape(title)
    )?;
    for (i, line) in subtitle.iter().enumerate() {
        writeln!(
            svg,
            r##"<text x="{LEFT}" y="{}" font-size="12" fill="#555">{}</text>"##,
            52 + 16 * i,
            xml_escape(line)
        )?;
    }

    // Grid and tick labels.
    writeln!(svg, r##"<g stroke="#e3e3e3" stroke-width="1">"##)?;
    for i in 0..=x_ticks {
        let x = map_x(i as f64 * x_step);
        writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/>"#,
            TOP + ph
        )?;
    }
    for &(v, _) in &y_ticks {
        let y = map_y(v);
        writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
            LEFT + pw
        )?;
    }
    writeln!(svg, "</g>")?;
    writeln!(
        svg,
        r##"<g fill="#333" font-size="11"><g text-anchor="middle">"##
    )?;
    for i in 0..=x_ticks {
        let v = i as f64 * x_step;
        writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            map_x(v),
            TOP + ph + 16.0,
            tick_label(v)
        )?;
    }
    writeln!(svg, r#"</g><g text-anchor="end">"#)?;
    for &(v, labelled) in &y_ticks {
        if labelled {
            writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT - 6.0,
                map_y(v) + 4.0,
                tick_label(v)
            )?;
        }
    }
    writeln!(svg, "</g></g>")?;
    // Axes and their titles.
    writeln!(
        svg,
        r##"<g stroke="#333" stroke-width="1.2"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b:.1}"/><line x1="{LEFT}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}"/></g>"##,
        b = TOP + ph,
        r = LEFT + pw
    )?;
    writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" fill="#222">seconds since the phase start</text>"##,
        LEFT + pw / 2.0,
        H - 18.0
    )?;
    writeln!(
        svg,
        r##"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle" font-size="13" fill="#222">latency (ms){}</text>"##,
        TOP + ph / 2.0,
        if log { ", log scale" } else { "" }
    )?;

    // The series.
    if points.is_empty() {
        writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="16" fill="#999">no data</text>"##,
            LEFT + pw / 2.0,
            TOP + ph / 2.0
        )?;
    }
    for s in series {
        let dash = if s.dashed {
            r#" stroke-dasharray="7 4""#
        } else {
            ""
        };
        writeln!(svg, r#"<g stroke="{}" fill="{}">"#, s.colour, s.colour)?;
        for segment in &s.segments {
            if segment.len() == 1 {
                let (x, y) = segment[0];
                writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5"/>"#,
                    map_x(x),
                    map_y(y)
                )?;
                continue;
            }
            let coords: Vec<String> = segment
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", map_x(x), map_y(y)))
                .collect();
            writeln!(
                svg,
                r#"<polyline fill="none" stroke-width="2" stroke-linejoin="round"{dash} points="{}"/>"#,
                coords.join(" ")
            )?;
        }
        writeln!(svg, "</g>")?;
    }

    // Legend.
    let lx = LEFT + pw + 20.0;
    writeln!(
        svg,
        r##"<text x="{lx:.1}" y="{:.1}" font-size="12" font-weight="bold" fill="#222">accept latency</text>"##,
        TOP + 4.0
    )?;
    for (i, s) in series.iter().enumerate() {
        let y = TOP + 26.0 + i as f64 * 22.0;
        let dash = if s.dashed {
            r#" stroke-dasharray="7 4""#
        } else {
            ""
        };
        writeln!(
            svg,
            r#"<line x1="{lx:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="2.5"{dash}/>"#,
            lx + 30.0,
            s.colour
        )?;
        writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" fill="#222">{}</text>"##,
            lx + 38.0,
            y + 4.0,
            xml_escape(&s.label)
        )?;
    }
    writeln!(svg, "</svg>")?;
    Ok(svg)
}

fn chart(report: &Report, args: &Args) -> Result<String, std::fmt::Error> {
    let series = chart_series(&report.runs);
    let bucket = report
        .runs
        .iter()
        .find_map(|run| run.accept_latency_timeline.as_ref())
        .map_or(100, |t| t.bucket_ms);
    let title = format!("loadgen: accept latency per {bucket} ms, p50 and p99");
    let mut subtitle = vec![format!(
        "{}  clients={} requests={} qty={} mode={}  {}",
        report.url,
        args.clients,
        args.requests,
        args.qty,
        args.mode.as_str(),
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    )];
    if report
        .runs
        .iter()
        .any(|run| run.flow == Flow::Full.as_str())
    {
        subtitle.push(
            "full flow: the hold POST carries Prefer: wait=10, so its latency runs to the outcome"
                .to_owned(),
        );
    }
    render_svg(&title, &subtitle, &series)
}

// ---------------------------------------------------------------- report

#[derive(Serialize, Debug)]
struct RunReport {
    mode: &'static str,
    /// `holds` or `full`.
    flow: &'static str,
    product_id: i64,
    product_created: bool,
    clients: usize,
    requests: usize,
    qty: i64,
    /// From the start until the last hold POST was answered.
    accept_elapsed_s: f64,
    accept_requests_per_s: f64,
    /// From the start until the last hold outcome was known.
    end_to_end_elapsed_s: f64,
    /// How the pipeline's end was measured: `completed_at` (server clock,
    /// same host), `polling`, `timeout`, or `client` (full flow: when the
    /// buyer learnt it).
    #[serde(skip_serializing_if = "Option::is_none")]
    end_to_end_source: Option<&'static str>,
    /// (granted + rejected) per second of end-to-end time.
    end_to_end_decided_per_s: f64,
    /// The hold POST (full flow: with `Prefer: wait=10`, so mostly the
    /// outcome).
    accept_latency_ms: LatencySummary,
    time_to_outcome_ms: Option<LatencySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_202_or_409: Option<usize>,
    granted: usize,
    rejected: usize,
    /// 409s answered at once from the api's cache (no job); not known in
    /// the full flow, where a 409 after `Prefer: wait` looks the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    rejected_at_once: Option<usize>,
    errors: BTreeMap<String, usize>,
    /// Pipeline only: failed job reads, retried.
    poll_errors: BTreeMap<String, usize>,
    unfinished_jobs: usize,
    stock_check: Option<StockCheck>,
    /// Requests per second of each phase.
    phases: Vec<PhaseStat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full: Option<FullReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sold_out: Option<SoldOutReport>,
    /// Accept latency per time bucket (also the `--svg` chart).
    accept_latency_timeline: Option<Timeline>,
    /// (sent at s since the phase start, accept latency ms) per hold POST.
    #[serde(skip)]
    samples: Vec<(f64, f64)>,
}

impl RunReport {
    fn new(mode: Mode, flow: Flow, args: &Args, target: Target) -> Self {
        Self {
            mode: mode.as_str(),
            flow: flow.as_str(),
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
            rejected_at_once: None,
            errors: BTreeMap::new(),
            poll_errors: BTreeMap::new(),
            unfinished_jobs: 0,
            stock_check: None,
            phases: Vec::new(),
            full: None,
            sold_out: None,
            accept_latency_timeline: None,
            samples: Vec::new(),
        }
    }

    fn decided(&self) -> usize {
        self.granted + self.rejected
    }

    fn passed(&self) -> bool {
        let full_ok = self.full.as_ref().is_none_or(|full| {
            full.order_states.pass
                && full.payments.unfinished_jobs == 0
                && full.orders.unfinished == 0
        });
        let sold_out_ok = self
            .sold_out
            .as_ref()
            .is_none_or(|sold_out| sold_out.pass != Some(false));
        self.unfinished_jobs == 0
            && self.stock_check.as_ref().is_some_and(|c| c.pass)
            && full_ok
            && sold_out_ok
    }

    fn print_text(&self) {
        let s = |d: f64| format!("{d:.3} s");
        let full = self.flow == Flow::Full.as_str();
        if full {
            println!(
                "== {}, full flow (product {}) ==",
                self.mode, self.product_id
            );
            println!(
                "  buyers               {} purchases by {} concurrent buyers",
                self.requests, self.clients
            );
        } else {
            println!("== {} (product {}) ==", self.mode, self.product_id);
            println!("  requests             {}", self.requests);
        }
        println!(
            "  accept               {} ({:.1} req/s){}",
            s(self.accept_elapsed_s),
            self.accept_requests_per_s,
            if full {
                ", hold POSTs with Prefer: wait=10"
            } else {
                ""
            }
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
        match (self.rejected_at_once, &self.full) {
            (_, Some(full)) => println!(
                "  granted / rejected   {} / {} ({} learnt by polling after the wait)",
                self.granted, self.rejected, full.holds_polled_after_wait
            ),
            (Some(at_once), None) if self.mode == Mode::Pipeline.as_str() => println!(
                "  granted / rejected   {} / {} ({at_once} of them at once, from the cache)",
                self.granted, self.rejected
            ),
            _ => println!(
                "  granted / rejected   {} / {}",
                self.granted, self.rejected
            ),
        }
        println!("  errors               {}", counts_text(&self.errors));
        if !self.poll_errors.is_empty() {
            println!("  poll errors (retried) {}", counts_text(&self.poll_errors));
        }
        if self.mode == Mode::Pipeline.as_str() {
            println!("  unfinished jobs      {}", self.unfinished_jobs);
        }
        if let Some(full) = &self.full {
            let o = &full.orders;
            println!(
                "  orders               {} created of {} ({:.1} req/s); refused: {}; errors: {}{}",
                o.created,
                o.attempted,
                o.requests_per_s,
                counts_text(&o.refused),
                counts_text(&o.errors),
                if o.unfinished > 0 || o.polled_after_wait > 0 {
                    format!(
                        "; {} polled after the wait, {} unfinished",
                        o.polled_after_wait, o.unfinished
                    )
                } else {
                    String::new()
                }
            );
            println!("  order latency ms     {}", o.latency_ms.text());
            let p = &full.payments;
            println!(
                "  payments             {} webhooks accepted ({:.1} req/s): success {} / failed {} \
                 / abandoned {}; errors: {}",
                p.accepted,
                p.requests_per_s,
                p.to_pay_success,
                p.to_pay_failed,
                p.abandoned,
                counts_text(&p.errors)
            );
            println!("  webhook latency ms   {}", p.webhook_latency_ms.text());
            println!(
                "  payment jobs         {} (all final {:.3} s after the buyers); unfinished {}{}",
                counts_text(&p.job_outcomes),
                p.settle_s,
                p.unfinished_jobs,
                if p.poll_errors.is_empty() {
                    String::new()
                } else {
                    format!("; poll errors (retried) {}", counts_text(&p.poll_errors))
                }
            );
            let st = &full.order_states;
            println!(
                "  order states         {}: {} read: {} (expected {}){}",
                if st.pass { "PASS" } else { "FAIL" },
                st.read,
                counts_text(&st.states),
                counts_text(&st.expected),
                if st.mismatches.is_empty() {
                    String::new()
                } else {
                    format!("; mismatches: {}", counts_text(&st.mismatches))
                }
            );
            if !full.holds_without_order.is_empty() {
                println!(
                    "  holds without order  {}",
                    counts_text(&full.holds_without_order)
                );
            }
        }
        if let Some(check) = &self.stock_check {
            let returned = match (check.canceled_units, check.released_hold_units) {
                (Some(canceled), Some(0)) => format!(" + canceled {canceled} units"),
                (Some(canceled), Some(released)) => {
                    format!(" + canceled {canceled} units + expired holds {released} units")
                }
                _ => String::new(),
            };
            println!(
                "  stock check          {}: stock {} (expected {} = initial {} - granted {} units{returned})",
                if check.pass { "PASS" } else { "FAIL" },
                check.actual_stock,
                check.expected_stock,
                check.initial_stock,
                check.granted_units
            );
        }
        if !self.phases.is_empty() {
            println!("  requests/s by phase");
            for phase in &self.phases {
                println!(
                    "    {:<22} {:>7} requests in {:>8.3} s  {:>9.1} req/s",
                    phase.name, phase.requests, phase.elapsed_s, phase.requests_per_s
                );
            }
        }
        if let Some(sold_out) = &self.sold_out {
            let verdict = match sold_out.pass {
                Some(true) => "PASS: ",
                Some(false) => "FAIL: ",
                None => "",
            };
            println!(
                "  sold-out             {verdict}{} holds in {} ({:.1} req/s) on stock {}{}",
                sold_out.requests,
                s(sold_out.elapsed_s),
                sold_out.requests_per_s,
                sold_out.stock_before,
                if sold_out.drained_units > 0 {
                    format!(
                        " (after draining {} returned units)",
                        sold_out.drained_units
                    )
                } else {
                    String::new()
                }
            );
            println!(
                "    immediate 409 (no job) {}, queued {}, granted {}; errors: {}",
                sold_out.rejected_at_once,
                sold_out.queued,
                sold_out.granted,
                counts_text(&sold_out.errors)
            );
            println!("    latency ms         {}", sold_out.latency_ms.text());
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
    /// pipeline end_to_end_decided_per_s / baseline end_to_end_decided_per_s
    /// (holds flow only).
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
            "loadgen {}  clients={} requests={} qty={} mode={} flow={}",
            report.url,
            args.clients,
            args.requests,
            args.qty,
            args.mode.as_str(),
            flows.join("+")
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
        assert_eq!(summary.p90, Some(5.0));
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
    fn resource_id_falls_back_to_location() {
        let body = json!({ "id": "h1" });
        assert_eq!(resource_id_of(Some(&body), None).as_deref(), Some("h1"));
        assert_eq!(
            resource_id_of(None, Some("/api/v1/orders/o2")).as_deref(),
            Some("o2")
        );
        assert_eq!(resource_id_of(Some(&json!({})), None), None);
    }

    #[test]
    fn time_to_outcome_uses_milliseconds() {
        let doc = JobDoc {
            status: "succeeded".into(),
            result: None,
            error: None,
            created_at: Some("2025-01-01T00:00:00.100Z".into()),
            completed_at: Some("2025-01-01T00:00:01.350Z".into()),
        };
        let Some((created, completed)) = job_times(&doc) else {
            panic!("timestamps should parse");
        };
        assert_eq!(ms_between(created, completed), 1250.0);
    }

    #[test]
    fn webhook_signature_matches_a_known_vector() {
        // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac dev-webhook-secret
        assert_eq!(
            sign("dev-webhook-secret", 1_700_000_000, br#"{"a":1}"#).as_deref(),
            Some(concat!(
                "t=1700000000,v1=",
                "85a8297cf9fae53850953fb4e8e09924ba64293bdfaac2ecfd7d0ad5067cb957"
            ))
        );
    }

    #[test]
    fn pay_intents_follow_the_shares() {
        let n = 10_000;
        let mut counts = (0, 0, 0);
        for k in 0..n {
            match pay_intent(k, 0.1, 0.2) {
                Intent::Failed => counts.0 += 1,
                Intent::Abandon => counts.1 += 1,
                Intent::Success => counts.2 += 1,
            }
        }
        assert!((990..=1010).contains(&counts.0), "{counts:?}");
        assert!((1990..=2010).contains(&counts.1), "{counts:?}");
        // Small prefixes are spread too.
        let first: Vec<Intent> = (0..20).map(|k| pay_intent(k, 0.1, 0.1)).collect();
        assert!(first.contains(&Intent::Failed) && first.contains(&Intent::Abandon));
        assert!((0..100).all(|k| pay_intent(k, 0.0, 0.0) == Intent::Success));
        assert!((0..100).all(|k| pay_intent(k, 1.0, 0.0) == Intent::Failed));
    }

    #[test]
    fn flow_defaults_to_full_for_the_pipeline_only() {
        let args = |extra: &[&str]| {
            let mut argv = vec!["loadgen"];
            argv.extend_from_slice(extra);
            Args::parse_from(argv)
        };
        let pipeline = args(&["--mode", "pipeline"]);
        assert_eq!(pipeline.flow_for(Mode::Pipeline), Flow::Full);
        let both = args(&["--mode", "both"]);
        assert_eq!(both.flow_for(Mode::Pipeline), Flow::Holds);
        assert_eq!(both.flow_for(Mode::Baseline), Flow::Holds);
        let holds = args(&["--mode", "pipeline", "--flow", "holds"]);
        assert_eq!(holds.flow_for(Mode::Pipeline), Flow::Holds);
        assert!(
            args(&["--mode", "baseline", "--flow", "full"])
                .validate()
                .is_err()
        );
        assert!(
            args(&["--fail-share", "0.7", "--abandon-share", "0.5"])
                .validate()
                .is_err()
        );
        assert!(args(&["--fail-share=-0.1"]).validate().is_err());
    }

    #[test]
    fn timeline_buckets_by_send_time() {
        let samples = [(0.01, 1.0), (0.05, 3.0), (0.09, 2.0), (0.25, 10.0)];
        let t = timeline(&samples, Duration::from_millis(100));
        assert_eq!(t.bucket_ms, 100);
        assert_eq!(t.points.len(), 2);
        assert_eq!(t.points[0].n, 3);
        assert_eq!(t.points[0].p50, 2.0);
        assert_eq!(t.points[0].p99, 3.0);
        assert_eq!(t.points[1].t_s, 0.2);
        assert_eq!(t.points[1].p50, 10.0);
    }

    #[test]
    fn nice_steps_and_labels() {
        assert_eq!(nice_step(10.0, 10.0), 1.0);
        assert_eq!(nice_step(17.0, 10.0), 2.0);
        assert_eq!(nice_step(0.7, 10.0), 0.1);
        assert_eq!(nice_step(430.0, 6.0), 100.0);
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(100.0), "100");
        assert_eq!(tick_label(0.1 + 0.2), "0.3");
    }

    #[test]
    fn svg_has_the_series_axes_and_legend() {
        let series = vec![
            Series {
                label: "pipeline p50".into(),
                colour: "#d62728",
                dashed: false,
                segments: vec![vec![(0.05, 2.0), (0.15, 3.0)], vec![(0.45, 4.0)]],
            },
            Series {
                label: "pipeline p99 <&>".into(),
                colour: "#ff7f0e",
                dashed: true,
                segments: vec![vec![(0.05, 200.0), (0.15, 300.0)]],
            },
        ];
        let Ok(svg) = render_svg("title", &["sub".to_owned()], &series) else {
            panic!("render failed");
        };
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("log scale"));
        assert!(svg.contains("pipeline p99 &lt;&amp;&gt;"));
        let Ok(empty) = render_svg("t", &[], &[]) else {
            panic!("render failed");
        };
        assert!(empty.contains("no data"));
    }
}
