//! One full buyer: K holds at once, then for each granted hold an order
//! and its payment through the signed webhook; each command with
//! `Prefer: wait=10` and polled when still queued after it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use chrono::Utc;
use hyper::{StatusCode, header::HeaderValue};
use serde_json::{Value, json};

use crate::{
    client::{
        Answer, Api, Crowd, FirstEta, Poll, PreparedPost, error_key, job_error_code,
        job_error_status, job_id_of, problem_code, resource_id_of,
    },
    config::{BUYER_POLL_INTERVAL, POLL_TIMEOUT, PREFER_WAIT},
    measure::{EtaSample, ms},
    scenarios::{
        full::intent::{Intent, pay_intent},
        gate::{Waits, send_patiently},
    },
};

/// What a command made, as the api reported it.
#[derive(Debug, Default)]
pub(super) struct Made {
    pub(super) id: Option<String>,
    /// A hold's buyer (`customer_id`) and units (`qty`).
    pub(super) customer: Option<String>,
    pub(super) units: Option<i64>,
}

impl Made {
    fn of(doc: Option<&Value>, id: Option<String>) -> Self {
        let field = |name| doc.and_then(|doc| doc.get(name));
        Self {
            id,
            customer: field("customer_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            units: field("qty").and_then(Value::as_i64),
        }
    }
}

/// The final outcome of a command (hold or order) posted with `Prefer: wait`.
#[derive(Debug)]
pub(super) enum Outcome {
    /// 201, or a 202 whose job later succeeded: the resource.
    Done(Made),
    /// 409 with this problem code (at once, after the wait, or from the job).
    Refused(String),
    Error(String),
    /// Still queued when polling gave up.
    Unfinished,
}

impl Outcome {
    /// The id of what was made, if anything was.
    pub(super) fn made_id(&self) -> Option<&str> {
        match self {
            Outcome::Done(made) => made.id.as_deref(),
            _ => None,
        }
    }
}

/// One command of a buyer.
pub(super) struct Step {
    /// When the attempt whose answer stands was sent.
    pub(super) sent: Instant,
    /// When the POST was answered.
    pub(super) answered: Instant,
    /// When the outcome was known (the answer, or the poll that saw it).
    pub(super) decided: Instant,
    /// 202 after the wait: the outcome was polled.
    pub(super) polled: bool,
    pub(super) outcome: Outcome,
    /// 429s and `sale_not_started` honored before the answer.
    pub(super) waits: Waits,
    /// The waiting room's first eta while polled, against the outcome.
    pub(super) eta: Option<EtaSample>,
}

impl Step {
    pub(super) fn latency_ms(&self) -> f64 {
        ms(self.answered - self.sent)
    }

    pub(super) fn to_outcome_ms(&self) -> f64 {
        ms(self.decided - self.sent)
    }
}

pub(super) struct Payment {
    pub(super) intent: Intent,
    pub(super) order_id: String,
    /// `(sent, answered)` of the webhook POST; none for abandoners.
    pub(super) post: Option<(Instant, Instant)>,
    /// The payment job id of an accepted (202) webhook, or the error.
    pub(super) job: Option<Result<String, String>>,
}

/// One hold of a buyer and what became of it.
pub(super) struct Purchase {
    pub(super) buyer: usize,
    pub(super) hold: Step,
    pub(super) order: Option<Step>,
    pub(super) payment: Option<Payment>,
}

/// What every buyer shares; each brings its own connections.
pub(super) struct Shop {
    /// The hold command, the same for every buyer.
    pub(super) hold: PreparedPost,
    pub(super) crowd: Crowd,
    pub(super) secret: String,
    /// Makes the webhook idempotency keys unique per run.
    pub(super) run_tag: String,
    pub(super) fail_share: f64,
    pub(super) abandon_share: f64,
    pub(super) orders_made: AtomicUsize,
    /// HTTP requests sent by buyers, for the progress line.
    pub(super) requests: Arc<AtomicUsize>,
}

impl Shop {
    /// Buyer `n`: one hold per connection, all at once; once every hold
    /// is decided (a cart, then the checkout), each granted hold is
    /// ordered and paid on its connection.
    pub(super) async fn buy(&self, conns: &mut [Api], n: usize) -> Vec<Purchase> {
        let auth = self.crowd.auth(n);
        let holds: Vec<Step> = match &mut *conns {
            [conn] => vec![self.command(conn, Command::Hold, auth).await],
            all => {
                let holds = all
                    .iter_mut()
                    .map(|conn| self.command(conn, Command::Hold, auth));
                futures_util::future::join_all(holds).await
            }
        };
        let checkouts = conns
            .iter_mut()
            .zip(holds)
            .map(|(conn, hold)| self.checkout(conn, hold, auth, n));
        futures_util::future::join_all(checkouts).await
    }

    async fn checkout(
        &self,
        api: &mut Api,
        hold: Step,
        auth: Option<&HeaderValue>,
        buyer: usize,
    ) -> Purchase {
        let mut purchase = Purchase {
            buyer,
            hold,
            order: None,
            payment: None,
        };
        let Some(hold_id) = purchase.hold.outcome.made_id() else {
            return purchase;
        };
        let order = self.command(api, Command::Order(hold_id), auth).await;
        let order_id = order.outcome.made_id().map(str::to_owned);
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
            let job = self.pay(api, &payment.order_id, status).await;
            payment.post = Some((sent, Instant::now()));
            payment.job = Some(job);
        }
        purchase.payment = Some(payment);
        purchase
    }

    /// POSTs a command with `Prefer: wait=10` as the buyer `auth` (429s
    /// and `sale_not_started` honored); a 202 (still queued after the
    /// wait) is followed by polling its job.
    async fn command(
        &self,
        api: &mut Api,
        command: Command<'_>,
        auth: Option<&HeaderValue>,
    ) -> Step {
        let order;
        let post = match command {
            Command::Hold => &self.hold,
            Command::Order(hold_id) => {
                let body = json!({ "hold_id": hold_id });
                order = api.prepare_post("/api/v1/orders", &body, Some(PREFER_WAIT));
                match &order {
                    Ok(post) => post,
                    Err(_) => return failed_step("transport (request)"),
                }
            }
        };
        let now = Instant::now();
        let sent = send_patiently(api, post, auth, now).await;
        let retries = sent.waits.rate_limited + sent.waits.not_started;
        self.requests.fetch_add(1 + retries, Ordering::Relaxed);
        let mut polled = false;
        let mut eta = None;
        let outcome = match sent.answer {
            Answer::Http {
                status,
                body,
                location,
                ..
            } => match status {
                StatusCode::CREATED => {
                    let id = resource_id_of(body.as_ref(), location.as_deref());
                    Outcome::Done(Made::of(body.as_ref(), id))
                }
                StatusCode::ACCEPTED => match job_id_of(body.as_ref(), location) {
                    Some(job_id) => {
                        polled = true;
                        let (outcome, sample) = self.await_job(api, &job_id).await;
                        eta = sample;
                        outcome
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
            sent: sent.sent,
            answered: sent.answered,
            decided: Instant::now(),
            polled,
            outcome,
            waits: sent.waits,
            eta,
        }
    }

    /// Polls one job until it is final (the resource id equals the job
    /// id), noting the first waiting-room eta it shows.
    async fn await_job(&self, api: &mut Api, job_id: &str) -> (Outcome, Option<EtaSample>) {
        let deadline = Instant::now() + POLL_TIMEOUT;
        let mut first_eta: Option<FirstEta> = None;
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            let polled_at = Utc::now();
            let outcome = match api.poll_job(job_id).await {
                Poll::Final(doc) => {
                    let eta = first_eta.map(|first| first.sample(&doc, Utc::now()));
                    let outcome = if doc.status == "succeeded" {
                        // The resource id equals its job id.
                        let id = resource_id_of(doc.result.as_ref(), None)
                            .unwrap_or_else(|| job_id.to_owned());
                        Outcome::Done(Made::of(doc.result.as_ref(), Some(id)))
                    } else {
                        match (job_error_status(&doc), job_error_code(&doc)) {
                            (Some(409), Some(code)) => Outcome::Refused(code.to_owned()),
                            (_, Some(code)) => Outcome::Error(format!("job failed: {code}")),
                            (_, None) => Outcome::Error("job failed: no code".into()),
                        }
                    };
                    return (outcome, eta);
                }
                Poll::Missing => Some(Outcome::Error("job 404 (never issued)".into())),
                Poll::Pending(eta) => {
                    FirstEta::note(&mut first_eta, eta, polled_at);
                    None
                }
                Poll::Retry(_) => None,
            };
            if let Some(outcome) = outcome {
                return (outcome, None);
            }
            if Instant::now() >= deadline {
                return (Outcome::Unfinished, None);
            }
            tokio::time::sleep(BUYER_POLL_INTERVAL).await;
        }
    }

    /// Sends the signed webhook; the payment job id of its 202, or the
    /// error bucket.
    async fn pay(&self, api: &mut Api, order_id: &str, status: &str) -> Result<String, String> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "idempotency_key": format!("loadgen-{}-{order_id}", self.run_tag),
            "order_id": order_id,
            "status": status,
        })
        .to_string();
        match api.pay(&self.secret, body).await {
            Answer::Http {
                status,
                body,
                location,
                ..
            } if status == StatusCode::ACCEPTED => {
                job_id_of(body.as_ref(), location).ok_or_else(|| "202 without job_id".to_owned())
            }
            Answer::Http { status, body, .. } => Err(error_key(status, body.as_ref())),
            Answer::Transport(key) => Err(key),
        }
    }
}

/// A command that could not even be sent.
fn failed_step(key: &str) -> Step {
    let now = Instant::now();
    Step {
        sent: now,
        answered: now,
        decided: now,
        polled: false,
        outcome: Outcome::Error(key.to_owned()),
        waits: Waits::default(),
        eta: None,
    }
}

/// The two commands a buyer posts.
enum Command<'a> {
    Hold,
    Order(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_hold_carries_its_buyer_and_units() {
        let hold = json!({ "id": "h1", "customer_id": "loadgen-r-3", "qty": 2 });
        let made = Made::of(Some(&hold), Some("h1".into()));
        assert_eq!(made.customer.as_deref(), Some("loadgen-r-3"));
        assert_eq!(made.units, Some(2));
        let outcome = Outcome::Done(made);
        assert_eq!(outcome.made_id(), Some("h1"));
        assert_eq!(Outcome::Refused("x".into()).made_id(), None);
        let anonymous = Made::of(Some(&json!({ "customer_id": null })), None);
        assert_eq!(anonymous.customer, None);
    }
}
