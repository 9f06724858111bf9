//! One full buyer: hold, order, then pay through the signed webhook, each
//! command with `Prefer: wait=10` and polled when still queued after it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use hyper::StatusCode;
use serde_json::{Value, json};

use crate::{
    client::{
        Answer, Api, Poll, PreparedPost, error_key, job_error_code, job_id_of, problem_code,
        resource_id_of,
    },
    config::{BUYER_POLL_INTERVAL, POLL_TIMEOUT, PREFER_WAIT},
    measure::ms,
};

/// How a buyer settles its order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Intent {
    Success,
    Failed,
    Abandon,
}

impl Intent {
    /// The order status this intent must end in.
    pub(super) fn expected_status(self) -> &'static str {
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
pub(super) enum Outcome {
    /// 201, or a 202 whose job later succeeded: the resource.
    Done(Option<String>),
    /// 409 with this problem code (at once, after the wait, or from the job).
    Refused(String),
    Error(String),
    /// Still queued when polling gave up.
    Unfinished,
}

/// One command of a buyer.
pub(super) struct Step {
    pub(super) sent: Instant,
    /// When the POST was answered.
    pub(super) answered: Instant,
    /// When the outcome was known (the answer, or the poll that saw it).
    pub(super) decided: Instant,
    /// 202 after the wait: the outcome was polled.
    pub(super) polled: bool,
    pub(super) outcome: Outcome,
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

pub(super) struct Purchase {
    pub(super) hold: Step,
    pub(super) order: Option<Step>,
    pub(super) payment: Option<Payment>,
}

/// What every buyer shares; each brings its own connection.
pub(super) struct Shop {
    /// The hold command, the same for every buyer.
    pub(super) hold: PreparedPost,
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
    pub(super) async fn buy(&self, api: &mut Api) -> Purchase {
        let hold = self.command(api, Command::Hold).await;
        let mut purchase = Purchase {
            hold,
            order: None,
            payment: None,
        };
        let Outcome::Done(Some(hold_id)) = &purchase.hold.outcome else {
            return purchase;
        };
        let order = self.command(api, Command::Order(hold_id)).await;
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
            let job = self.pay(api, &payment.order_id, status).await;
            payment.post = Some((sent, Instant::now()));
            payment.job = Some(job);
        }
        purchase.payment = Some(payment);
        purchase
    }

    /// POSTs a command with `Prefer: wait=10`; a 202 (still queued after
    /// the wait) is followed by polling its job.
    async fn command(&self, api: &mut Api, command: Command<'_>) -> Step {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let answer = match command {
            Command::Hold => api.post(&self.hold).await,
            Command::Order(hold_id) => {
                let body = json!({ "hold_id": hold_id });
                api.post_json("/api/v1/orders", &body, Some(PREFER_WAIT))
                    .await
            }
        };
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
                        self.await_job(api, &job_id).await
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
    async fn await_job(&self, api: &mut Api, job_id: &str) -> Outcome {
        let deadline = Instant::now() + POLL_TIMEOUT;
        loop {
            self.requests.fetch_add(1, Ordering::Relaxed);
            match api.poll_job(job_id).await {
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
            } if status == StatusCode::ACCEPTED => {
                job_id_of(body.as_ref(), location).ok_or_else(|| "202 without job_id".to_owned())
            }
            Answer::Http { status, body, .. } => Err(error_key(status, body.as_ref())),
            Answer::Transport(key) => Err(key),
        }
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
