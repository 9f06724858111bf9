//! Accepting an asynchronous command, one way for holds, orders and
//! webhooks: take a place in the publisher's queue, record the job (with
//! its idempotency key or payment event, in the same transaction), hand the
//! command to the publisher, then answer: 202, or under `Prefer: wait` the
//! outcome once it is committed. The committed job row is what makes the
//! 202 true (see `publisher`). Recording and handing over run on a task of
//! their own, so a client that hangs up mid-request cannot leave a recorded
//! job unpublished.

use std::time::{Duration, Instant};

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use backon::Retryable;
use tracing::Instrument;
use uuid::Uuid;

use super::{error::ApiError, publisher::Place, responses::Accepted, state::AppState};
use crate::{
    commands::Command,
    db::{self, idempotency_keys, jobs::NewJob, payment_events},
    domain::{
        Job, JobKind, JobStatus,
        idempotency::{Claim, IdempotencyKey},
        payment::Delivery,
    },
    problem::Code,
    time,
    waiters::{POLL_FALLBACK, Waiter},
};

/// How a command's job is recorded.
pub enum Recording {
    /// Alone: it joins the next batched insert of the api's recorder.
    Plain,
    /// With the client's `Idempotency-Key` on `route`; `request` is the
    /// request's fingerprint.
    Keyed {
        route: &'static str,
        key: IdempotencyKey,
        request: [u8; 32],
    },
    /// With the payment event it applies (its idempotency key is the
    /// provider's).
    Payment(Delivery),
}

impl Recording {
    /// A key with the request's fingerprint, or no key.
    pub fn keyed(route: &'static str, key: Option<IdempotencyKey>, request: [u8; 32]) -> Self {
        match key {
            Some(key) => Self::Keyed {
                route,
                key,
                request,
            },
            None => Self::Plain,
        }
    }

    fn reused(&self) -> ApiError {
        let detail = match self {
            Recording::Payment(_) => "this idempotency_key was used with a different body",
            _ => "this Idempotency-Key was used with a different request",
        };
        ApiError::new(Code::IdempotencyKeyReused, detail)
    }
}

/// What [`accept`] answered.
pub struct Answer {
    pub response: Response,
    /// This request recorded a new job that was still queued when answered.
    pub queued: bool,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.response
    }
}

/// Accepts `command` as the job `id` of `kind`, recorded as `recording`
/// says; waits up to `wait` for its outcome.
#[tracing::instrument(skip_all, fields(job_id = %id, kind = kind.as_str()))]
pub async fn accept(
    state: &AppState,
    id: Uuid,
    kind: JobKind,
    command: Command,
    recording: Recording,
    wait: Option<Duration>,
) -> Result<Answer, ApiError> {
    let place = state.publisher.place().await?;
    let job = NewJob {
        id,
        kind,
        lane: command.lane(state.broker.partitions()),
        command,
        created_at: time::now(),
    };
    // Registered before the publish, the waiter cannot miss the outcome,
    // and the job just recorded is known queued: the first read waits for
    // the wake-up instead of finding what this request already knows.
    let waiter = wait.map(|_| state.waiters.register(id));
    // Recording and publishing run on a task of their own: a client that
    // hangs up drops this future, and a job recorded by then must still be
    // published now, not by the relay `RELAY_AFTER_SECS` later.
    let recording = record_and_publish(state.clone(), place, job, recording);
    let claim = tokio::spawn(recording.in_current_span())
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("recording the job failed: {e}")))??;
    if let Claim::Repeat(existing) = claim {
        let response = answer(state, kind, existing, wait, None).await?;
        return Ok(Answer {
            response,
            queued: false,
        });
    }
    tracing::debug!("command accepted");
    let (response, status) = match (wait, waiter) {
        (Some(wait), Some(waiter)) => outcome(state, kind, id, wait, Some(waiter), true).await?,
        _ => (accepted(kind, id, JobStatus::Queued), JobStatus::Queued),
    };
    Ok(Answer {
        response,
        queued: status == JobStatus::Queued,
    })
}

/// Records `job` as `recording` says and, when it is new, hands its
/// command to the publisher. `Claim::Reused` comes back as its error.
async fn record_and_publish(
    state: AppState,
    place: Place,
    job: NewJob,
    recording: Recording,
) -> Result<Claim, ApiError> {
    let claim = match &recording {
        // The common case joins the next batched insert.
        Recording::Plain => {
            state.recorder.record(job.clone()).await?;
            Claim::New
        }
        Recording::Keyed {
            route,
            key,
            request,
        } => {
            // Boxed, as below: the task's future is moved into place on
            // every request, so the rarer paths' large states stay out of it.
            let record = (|| idempotency_keys::record(&state.pool, route, key, *request, &job))
                .retry(db::conflict_backoff())
                .when(db::is_retryable);
            Box::pin(record).await?
        }
        Recording::Payment(delivery) => {
            let record = (|| payment_events::record(&state.pool, delivery, &job))
                .retry(db::conflict_backoff())
                .when(db::is_retryable);
            Box::pin(record).await?
        }
    };
    match claim {
        Claim::New => place.publish(job.command),
        Claim::Repeat(_) => {}
        Claim::Reused => return Err(recording.reused()),
    }
    Ok(claim)
}

/// 202 with the job, or under `Prefer: wait` the outcome once committed.
/// `known` is the job's status when the caller knows it; otherwise it is
/// read.
async fn answer(
    state: &AppState,
    kind: JobKind,
    job_id: Uuid,
    wait: Option<Duration>,
    known: Option<JobStatus>,
) -> Result<Response, ApiError> {
    if wait.is_none()
        && let Some(status) = known
    {
        return Ok(accepted(kind, job_id, status));
    }
    let waiter = wait.map(|_| state.waiters.register(job_id));
    let (response, _) =
        outcome(state, kind, job_id, wait.unwrap_or_default(), waiter, false).await?;
    Ok(response)
}

/// Reads the job until it is decided or `wait` runs out, waking on its
/// waiter; without a waiter, answers after one read. `queued`: the caller
/// knows the job is queued, so the first read waits for a wake-up. Returns
/// the answer and the job's status in it.
async fn outcome(
    state: &AppState,
    kind: JobKind,
    job_id: Uuid,
    wait: Duration,
    waiter: Option<Waiter>,
    queued: bool,
) -> Result<(Response, JobStatus), ApiError> {
    let deadline = Instant::now() + wait;
    let mut read = !queued;
    loop {
        if read {
            let job = state
                .room
                .read_job(job_id)
                .await?
                .ok_or_else(|| ApiError::not_found(format_args!("job {job_id}")))?;
            let status = job.status;
            match &waiter {
                None => return Ok((accepted(kind, job_id, status), status)),
                Some(_) if status != JobStatus::Queued => return Ok((finished(job), status)),
                Some(_) => {}
            }
        }
        read = true;
        let left = deadline.saturating_duration_since(Instant::now());
        match &waiter {
            Some(waiter) if !left.is_zero() => waiter.wait(left.min(POLL_FALLBACK)).await,
            _ => return Ok((accepted(kind, job_id, JobStatus::Queued), JobStatus::Queued)),
        }
    }
}

fn accepted(kind: JobKind, job_id: Uuid, status: JobStatus) -> Response {
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted::new(kind, job_id, status)),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("/api/v1/jobs/{job_id}")) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// What a synchronous API would have answered: the created resource (201)
/// or the problem.
fn finished(job: Job) -> Response {
    if let Some(problem) = job.error {
        return problem.into_response();
    }
    let base = match job.kind {
        JobKind::Hold => "/api/v1/holds",
        JobKind::Order => "/api/v1/orders",
        // Webhooks do not wait: a payment's outcome is its job's.
        JobKind::Payment => "/api/v1/jobs",
    };
    let location = format!("{base}/{}", job.job_id);
    let mut response = (StatusCode::CREATED, Json(job.result)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
