//! The pipeline, full buyer: hold, order, then pay through the signed webhook.
//!
//! One file for now (the flow, its polling and its report): the loadgen
//! restructuring of issue 20 splits it.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::Utc;
use futures_util::{StreamExt, stream};
use reqwest::{StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    BUYER_POLL_INTERVAL, INSUFFICIENT_STOCK, POLL_CONCURRENCY, POLL_TIMEOUT, PREFER_WAIT,
    api::{Api, Poll, sign, transport_key},
    args::{Args, Flow, Mode},
    burst::{Answer, answer_of, bump, error_key, post_once, problem_code},
    holds::{job_error_code, job_id_of, poll_jobs, resource_id_of},
    progress::Progress,
    report::RunReport,
    stats::{LatencySummary, PhaseStat, Span, ms, per_second},
    stock_check::stock_check,
    target::Target,
};

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
    pub(crate) decided: Instant,
    /// 202 after the wait: the outcome was polled.
    polled: bool,
    outcome: Outcome,
}

impl Step {
    pub(crate) fn latency_ms(&self) -> f64 {
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
    pub(crate) post: Option<(Instant, Instant)>,
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
    pub(crate) product_id: i64,
    pub(crate) qty: i64,
    secret: String,
    /// Makes the webhook idempotency keys unique per run.
    run_tag: String,
    pub(crate) fail_share: f64,
    pub(crate) abandon_share: f64,
    orders_made: AtomicUsize,
    /// HTTP requests sent by buyers, for the progress line.
    pub(crate) requests: Arc<AtomicUsize>,
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
pub(crate) struct FullReport {
    pub(crate) fail_share: f64,
    pub(crate) abandon_share: f64,
    /// Holds still queued after `Prefer: wait=10`, whose outcome was polled.
    pub(crate) holds_polled_after_wait: usize,
    pub(crate) orders: OrdersReport,
    pub(crate) payments: PaymentsReport,
    pub(crate) order_states: OrderStatesReport,
    /// Granted holds that did not become an order, by status read back.
    pub(crate) holds_without_order: BTreeMap<String, usize>,
}

#[derive(Serialize, Debug)]
pub(crate) struct OrdersReport {
    pub(crate) attempted: usize,
    pub(crate) created: usize,
    /// 409 by problem code.
    pub(crate) refused: BTreeMap<String, usize>,
    pub(crate) errors: BTreeMap<String, usize>,
    /// Still queued after `Prefer: wait=10`, whose outcome was polled.
    pub(crate) polled_after_wait: usize,
    pub(crate) unfinished: usize,
    pub(crate) requests_per_s: f64,
    /// From the POST to the order's outcome.
    pub(crate) latency_ms: LatencySummary,
}

#[derive(Serialize, Debug)]
pub(crate) struct PaymentsReport {
    pub(crate) to_pay_success: usize,
    pub(crate) to_pay_failed: usize,
    pub(crate) abandoned: usize,
    /// Webhooks answered 202.
    pub(crate) accepted: usize,
    pub(crate) errors: BTreeMap<String, usize>,
    pub(crate) requests_per_s: f64,
    pub(crate) webhook_latency_ms: LatencySummary,
    /// Final payment jobs by `result.outcome` (or `failed: code`).
    pub(crate) job_outcomes: BTreeMap<String, usize>,
    pub(crate) unfinished_jobs: usize,
    pub(crate) poll_errors: BTreeMap<String, usize>,
    /// From the end of the buyers until the last payment job was final.
    pub(crate) settle_s: f64,
}

#[derive(Serialize, Debug)]
pub(crate) struct OrderStatesReport {
    pub(crate) read: usize,
    /// Order status read back → count (read failures as `read error: …`).
    pub(crate) states: BTreeMap<String, usize>,
    /// What the buyers' intents call for (a refused webhook is a mismatch).
    pub(crate) expected: BTreeMap<String, usize>,
    /// `expected X, got Y` → count.
    pub(crate) mismatches: BTreeMap<String, usize>,
    pub(crate) pass: bool,
}

pub(crate) async fn run_pipeline_full(
    api: &Api,
    args: &Args,
    target: Target,
) -> anyhow::Result<RunReport> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
