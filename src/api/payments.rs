//! The payment provider's webhook and the operators' list of events that
//! need attention.

use super::docs::{
    LocationPath, MalformedJson, PayloadTooLarge, PaymentAccepted, PaymentEventFilter,
    PaymentEventList, PaymentWebhook, RequestTimeout, RetryAfterSecs, Unauthorized, Unavailable,
    UnsupportedMediaType,
};
use crate::problem::Problem;
use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use backon::Retryable;
use serde_json::json;

use super::{
    AppState,
    auth::Admin,
    commands::answer,
    error::{ApiError, ApiResult},
    input::{Fields, RawBody, json_object},
};
use crate::{
    db,
    idempotency::MAX_KEY_CHARS,
    jobs::{JobKind, JobStatus},
    payments::{self, Delivery, EventState, PaymentStatus, Recorded},
    problem::Code,
    signature, time,
};

/// Most events one admin listing returns.
const LIST_LIMIT: u32 = 1000;

/// Signature first (before the body is even parsed), then the event is made
/// durable (its row and its job's, the outbox the relay publishes from) and
/// acknowledged with 202.
#[utoipa::path(post, path = "/api/v1/payments/webhook", operation_id = "receivePaymentWebhook", summary = "Receive a payment result from the provider",
    description = "The signature is checked before the body is parsed; the event is then made durable with its job and acknowledged with 202. The same `idempotency_key` always maps to the same job and is applied once.", tag = "payments",
    security(("webhookSignature" = [])),
    request_body = PaymentWebhook,
    responses(
        (status = 202, description = "Durable: the event and its job are recorded (a repeat of the key gets the same job); follow `Location` (the job) until it is decided", body = inline(PaymentAccepted),
            headers(
                ("Location" = inline(LocationPath), description = "`/api/v1/jobs/{job_id}`"),
                ("Retry-After" = inline(RetryAfterSecs), description = "Seconds before polling the job")
            ),
            links(("getJob" = (operation_id = "getJob", parameters(("id" = "$response.body#/job_id")))))),
        (status = 400, response = MalformedJson),
        (status = 401, description = "`unauthorized`: `X-Signature` missing, malformed, wrong, or more than 300 s from now", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`validation_failed` (`errors` names each bad field) or `idempotency_key_reused` (the key came with another body)", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(raw): RawBody,
) -> ApiResult<Response> {
    let presented = headers.get("x-signature").and_then(|v| v.to_str().ok());
    signature::verify(
        state.webhook_secret.expose(),
        presented,
        &raw,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| ApiError::new(Code::Unauthorized, e.to_string()))?;

    let body = json_object(&headers, &raw)?;
    let mut fields = Fields::new(&body);
    let key = fields.string("idempotency_key", 1..=MAX_KEY_CHARS);
    let order_id = fields.uuid("order_id");
    let status = fields.one_of("status", &["success", "failed"]);
    fields.finish()?;
    let (Some(idempotency_key), Some(order_id), Some(status)) = (key, order_id, status) else {
        return Err(ApiError::field("body", "incomplete"));
    };
    let delivery = Delivery {
        idempotency_key,
        order_id,
        status: if status == "success" {
            PaymentStatus::Success
        } else {
            PaymentStatus::Failed
        },
    };
    let job_id = delivery.job_id();
    let place = state.publisher.place().await?;
    let recorded = (|| payments::record(&state.pool, &delivery, time::now()))
        .retry(db::conflict_backoff())
        .when(db::is_retryable)
        .await?;
    match recorded {
        Recorded::New => {
            place.publish(delivery.command());
            tracing::info!(%job_id, %order_id, status, "payment event accepted");
            answer(
                &state,
                JobKind::Payment,
                job_id,
                None,
                Some(JobStatus::Queued),
            )
            .await
        }
        Recorded::Repeat => answer(&state, JobKind::Payment, job_id, None, None).await,
        Recorded::Reused => Err(ApiError::new(
            Code::IdempotencyKeyReused,
            "this idempotency_key was used with a different body",
        )),
    }
}

/// `GET /api/v1/admin/payments?state=unmatched|needs_refund|conflict`; all
/// three when `state` is absent.
#[utoipa::path(get, path = "/api/v1/admin/payments", operation_id = "listPaymentEvents", summary = "Payment events an operator must act on (admin)",
    description = "Unmatched events (their order does not exist and never will), events that need a refund, and events that contradict a final state.", tag = "admin",
    security(("adminToken" = [])),
    params(("state" = Option<PaymentEventFilter>, Query, description = "Only events in this state; all three when absent")),
    responses(
        (status = 200, description = "Events that need an operator, oldest first", body = PaymentEventList),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`validation_failed`: `state` is not one of the three", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let states: Vec<EventState> = match query.get("state").map(String::as_str) {
        None => EventState::NEEDS_OPERATOR.to_vec(),
        Some("unmatched") => vec![EventState::Unmatched],
        Some("needs_refund") => vec![EventState::NeedsRefund],
        Some("conflict") => vec![EventState::Conflict],
        Some(_) => {
            return Err(ApiError::field(
                "state",
                "must be one of: unmatched, needs_refund, conflict",
            ));
        }
    };
    let data = payments::list(&state.pool, &states, LIST_LIMIT).await?;
    Ok(Json(json!({ "data": data })))
}
