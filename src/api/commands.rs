//! What every asynchronous command shares: idempotency, recording the job,
//! publishing with a confirm, and answering 202 (or the outcome, under
//! `Prefer: wait`).

use std::time::{Duration, Instant};

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;
use uuid::Uuid;

use super::{AppState, error::ApiError};
use backon::Retryable;

use crate::{
    commands::Command,
    db,
    idempotency::{self, Claim, IdempotencyKey},
    jobs::{self, JobKind, JobStatus},
    problem::Code,
    time,
    waiters::{POLL_FALLBACK, Waiter},
};

/// RFC 7240 `wait` is capped at 10 s by the contract.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// How a command's job and resource are named on the wire.
fn resource(kind: JobKind) -> Option<(&'static str, &'static str)> {
    match kind {
        JobKind::Hold => Some(("hold_id", "/api/v1/holds")),
        JobKind::Order => Some(("order_id", "/api/v1/orders")),
        JobKind::Payment => None,
    }
}

/// `Idempotency-Key`, validated; a bad one is a 422 on that header.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    IdempotencyKey::parse(raw)
        .map(Some)
        .map_err(|message| ApiError::field("Idempotency-Key", message))
}

/// `Prefer: wait=N`, capped at [`MAX_WAIT`]; `None` when absent or unusable.
pub fn prefer_wait(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pref| {
            let (name, value) = pref.trim().split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("wait") {
                return None;
            }
            value.trim().trim_matches('"').parse::<u64>().ok()
        })
        .next()
        .map(|secs| Duration::from_secs(secs).min(MAX_WAIT))
}

/// The client's idempotency key with the fingerprint of its request.
pub struct Idempotent {
    pub route: &'static str,
    pub key: IdempotencyKey,
    pub request: [u8; 32],
}

/// A command about to be accepted, with the job that will report on it.
pub struct NewJob {
    pub id: Uuid,
    pub kind: JobKind,
    pub command: Command,
}

/// Takes a place in the publisher's queue, records the job (claiming the
/// idempotency key in the same transaction), hands the command to the
/// publisher, then answers: the committed job row is what makes the 202
/// true (see `publisher`).
#[tracing::instrument(skip_all, fields(job_id = %job.id, kind = job.kind.as_str()))]
pub async fn accept(
    state: &AppState,
    job: NewJob,
    idempotent: Option<Idempotent>,
    wait: Option<Duration>,
) -> Result<Response, ApiError> {
    let place = state.publisher.place().await?;
    let recorded = match &idempotent {
        // The common case joins the next batched insert.
        None => {
            state.recorder.record(&job).await?;
            Claim::New
        }
        Some(idempotent) => {
            (|| record(state, &job, idempotent))
                .retry(db::conflict_backoff())
                .when(db::is_retryable)
                .await?
        }
    };
    match recorded {
        Claim::New => {}
        Claim::Repeat(existing) => return answer(state, job.kind, existing, wait, None).await,
        Claim::Reused => {
            return Err(ApiError::new(
                Code::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different request",
            ));
        }
    }
    // Registered before the publish, the waiter cannot miss the outcome,
    // and the job just recorded is known queued: the first read waits for
    // the wake-up instead of finding what this request already knows.
    let wait = wait.filter(|w| !w.is_zero());
    let waiter = wait.map(|_| state.waiters.register(job.id));
    place.publish(job.command);
    tracing::debug!(job_id = %job.id, kind = ?job.kind, "command accepted");
    match (wait, waiter) {
        (Some(wait), Some(waiter)) => {
            outcome(state, job.kind, job.id, wait, Some(waiter), true).await
        }
        _ => Ok(accepted(job.kind, job.id, JobStatus::Queued)),
    }
}

/// How long [`withdraw_later`] keeps trying.
const WITHDRAW_FOR: Duration = Duration::from_secs(120);

/// Withdraws jobs the client was told were not accepted (an insert whose
/// answer was lost), retrying while the database is unreachable. The relay
/// may publish one first if the outage outlasts `RELAY_AFTER_SECS`; that job
/// then applies despite its 503, which is logged.
pub fn withdraw_later(pool: sqlx::MySqlPool, ids: Vec<Uuid>) {
    tokio::spawn(async move {
        let withdrawn = (|| jobs::withdraw_queued(&pool, &ids))
            .retry(
                backon::ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(2))
                    .with_total_delay(Some(WITHDRAW_FOR))
                    .without_max_times(),
            )
            .await;
        match withdrawn {
            Ok(n) => tracing::info!(
                withdrawn = n,
                of = ids.len(),
                "jobs answered 503 withdrawn (the rest were never recorded, or a worker had applied them)"
            ),
            Err(e) => {
                tracing::error!(error = %e, count = ids.len(), "could not withdraw jobs answered 503")
            }
        }
    });
}

/// Claims the idempotency key and records the queued job, in one
/// transaction.
async fn record(state: &AppState, job: &NewJob, idempotent: &Idempotent) -> sqlx::Result<Claim> {
    let mut tx = state.pool.begin().await?;
    let i = idempotent;
    let claim = idempotency::claim(&mut tx, i.route, &i.key, i.request, job.id).await?;
    if !matches!(claim, Claim::New) {
        tx.rollback().await?;
        return Ok(claim);
    }
    jobs::insert(&mut tx, job.id, job.kind, &job.command, time::now()).await?;
    tx.commit().await?;
    Ok(Claim::New)
}

/// 202 with the job, or under `Prefer: wait` the outcome once committed.
/// `known` is the job's status when the caller knows it (a job it just
/// recorded); otherwise it is read.
pub async fn answer(
    state: &AppState,
    kind: JobKind,
    job_id: Uuid,
    wait: Option<Duration>,
    known: Option<JobStatus>,
) -> Result<Response, ApiError> {
    let wait = wait.filter(|w| !w.is_zero());
    if wait.is_none()
        && let Some(status) = known
    {
        return Ok(accepted(kind, job_id, status));
    }
    let waiter = wait.map(|_| state.waiters.register(job_id));
    outcome(state, kind, job_id, wait.unwrap_or_default(), waiter, false).await
}

/// Reads the job until it is decided or `wait` runs out, waking on its
/// waiter; without a waiter, answers after one read. `queued`: the caller
/// knows the job is queued, so the first read waits for a wake-up.
async fn outcome(
    state: &AppState,
    kind: JobKind,
    job_id: Uuid,
    wait: Duration,
    waiter: Option<Waiter>,
    queued: bool,
) -> Result<Response, ApiError> {
    let deadline = Instant::now() + wait;
    let mut read = !queued;
    loop {
        if read {
            let job = jobs::get(&state.pool, job_id)
                .await?
                .ok_or_else(|| ApiError::not_found(format_args!("job {job_id}")))?;
            match &waiter {
                None => return Ok(accepted(kind, job_id, job.status)),
                Some(_) if job.status != JobStatus::Queued => return Ok(finished(kind, job)),
                Some(_) => {}
            }
        }
        read = true;
        let left = deadline.saturating_duration_since(Instant::now());
        match &waiter {
            Some(waiter) if !left.is_zero() => waiter.wait(left.min(POLL_FALLBACK)).await,
            _ => return Ok(accepted(kind, job_id, JobStatus::Queued)),
        }
    }
}

fn accepted(kind: JobKind, job_id: Uuid, status: JobStatus) -> Response {
    let mut body = json!({ "job_id": job_id, "kind": kind, "status": status });
    if let Some((field, _)) = resource(kind) {
        body[field] = json!(job_id);
    }
    let location = format!("/api/v1/jobs/{job_id}");
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// What a synchronous API would have answered.
fn finished(kind: JobKind, job: jobs::Job) -> Response {
    if let Some(problem) = job.error {
        return problem.into_response();
    }
    let result = job.result.unwrap_or_default();
    match resource(kind) {
        Some((_, base)) => {
            let location = format!("{base}/{}", job.job_id);
            let mut response = (StatusCode::CREATED, Json(result)).into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        None => (
            StatusCode::OK,
            Json(json!({"job_id": job.job_id, "status": job.status, "result": result})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn prefer_wait_is_parsed_and_capped() {
        assert_eq!(prefer_wait(&headers(&[])), None);
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "wait=3")])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            prefer_wait(&headers(&[("prefer", "respond-async, wait=60")])),
            Some(MAX_WAIT)
        );
        assert_eq!(prefer_wait(&headers(&[("prefer", "wait=soon")])), None);
        assert_eq!(prefer_wait(&headers(&[("prefer", "return=minimal")])), None);
    }

    #[test]
    fn idempotency_key_over_255_is_refused() {
        let long: &'static str = Box::leak("k".repeat(256).into_boxed_str());
        assert!(idempotency_key(&headers(&[("idempotency-key", long)])).is_err());
        assert!(idempotency_key(&headers(&[("idempotency-key", "abc")])).is_ok());
    }
}
