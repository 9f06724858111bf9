//! The payment provider's webhook and the operators' list of events that
//! need attention.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Query, State},
};

use super::{
    accept::{Answer, Recording, accept},
    docs::{
        LocationPath, MalformedJson, PayloadTooLarge, PaymentEventFilter, RequestTimeout,
        RetryAfterSecs, Unauthorized, Unavailable, UnsupportedMediaType,
    },
    error::{ApiError, ApiResult},
    extract::Admin,
    input::Signed,
    requests::PaymentWebhook,
    responses::{PaymentAccepted, PaymentEventList},
    state::AppState,
};
use crate::{
    commands::{Command, PaymentRequest},
    db::payment_events,
    domain::{EventState, JobKind},
    problem::Problem,
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
    Signed(body): Signed<PaymentWebhook>,
) -> ApiResult<Answer> {
    let delivery = body.into_delivery();
    let job_id = delivery.job_id();
    let (order_id, status) = (delivery.order_id, delivery.status);
    let command = Command::Payment(PaymentRequest::from(&delivery));
    let recording = Recording::Payment(delivery);
    let answer = accept(&state, job_id, JobKind::Payment, command, recording, None).await?;
    if answer.queued {
        tracing::info!(%job_id, %order_id, ?status, "payment event accepted");
    }
    Ok(answer)
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
) -> ApiResult<Json<PaymentEventList>> {
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
    let data = payment_events::list(&state.pool, &states, LIST_LIMIT).await?;
    Ok(Json(PaymentEventList { data }))
}
