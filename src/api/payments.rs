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
    extract::{Admin, PathId},
    input::{Signed, Valid},
    requests::{PaymentWebhook, ResolvePayment},
    responses::{PaymentAccepted, PaymentEventList},
    state::AppState,
};
use crate::{
    commands::{Command, PaymentRequest},
    db::{
        payment_events::{self, Resolution},
        text::SqlWord,
    },
    domain::{EventState, JobKind, PaymentEvent},
    problem::{Code, Problem},
    time,
};
use uuid::Uuid;

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

/// `GET /api/v1/admin/payments?state=unmatched|needs_refund|conflict|resolved`;
/// the first three (unresolved) when `state` is absent.
#[utoipa::path(get, path = "/api/v1/admin/payments", operation_id = "listPaymentEvents", summary = "Payment events an operator must act on (admin)",
    description = "Unmatched events (their order does not exist and never will), events that need a refund, and events that contradict a final state, until an operator resolves them; `state=resolved` lists the resolved ones (each keeps its `state`).", tag = "admin",
    security(("adminToken" = [])),
    params(("state" = Option<PaymentEventFilter>, Query, description = "Only unresolved events in this state, or only resolved events (`resolved`); all three unresolved states when absent")),
    responses(
        (status = 200, description = "Unresolved events that need an operator, oldest first; with `state=resolved`, resolved events in the order they were resolved", body = PaymentEventList),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`validation_failed`: `state` is not one of the four", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<PaymentEventList>> {
    let data = list_events(&state, query.get("state").map(String::as_str)).await?;
    Ok(Json(PaymentEventList { data }))
}

/// The events a `state=` filter names (`None`: all that need an operator).
pub(super) async fn list_events(
    state: &AppState,
    filter: Option<&str>,
) -> ApiResult<Vec<PaymentEvent>> {
    let states: Vec<EventState> = match filter {
        None => EventState::NEEDS_OPERATOR.to_vec(),
        Some("unmatched") => vec![EventState::Unmatched],
        Some("needs_refund") => vec![EventState::NeedsRefund],
        Some("conflict") => vec![EventState::Conflict],
        Some("resolved") => {
            return Ok(payment_events::list_resolved(&state.pool, LIST_LIMIT).await?);
        }
        Some(_) => {
            return Err(ApiError::field(
                "state",
                "must be one of: unmatched, needs_refund, conflict, resolved",
            ));
        }
    };
    Ok(payment_events::list(&state.pool, &states, LIST_LIMIT).await?)
}

/// Only an event in a state that needs an operator can be resolved, once:
/// an event still undecided might yet need one, and a settled one never
/// did (both are 409, as a second resolve is).
#[utoipa::path(post, path = "/api/v1/admin/payments/{job_id}/resolve", operation_id = "resolvePaymentEvent", summary = "Mark a payment event as handled (admin)",
    description = "Records when and how an operator handled an `unmatched`, `needs_refund` or `conflict` event (a refund, a manual order, a note on a contradiction). The event keeps its `state`, leaves that state's list and is listed by `state=resolved`. Nothing else changes: the order and stock are not touched.", tag = "admin",
    security(("adminToken" = [])),
    params(("job_id" = Uuid, Path, description = "The event's id (its payment job's); anything else in its place is 404")),
    request_body = ResolvePayment,
    responses(
        (status = 200, description = "Resolved: the event with `resolved_at` and `resolution_note`", body = PaymentEvent),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no payment event has this id", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = RequestTimeout),
        (status = 409, description = "`already_resolved`: the event was resolved before, or there is nothing to resolve (its state is `applied` or `duplicate`, or it is not decided yet); `detail` says which", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`validation_failed`: `note` is missing, not a string, blank, or over 1000 characters", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn resolve(
    _admin: Admin,
    State(state): State<AppState>,
    path: PathId,
    Valid(ResolvePayment { note }): Valid<ResolvePayment>,
) -> ApiResult<Json<PaymentEvent>> {
    let id = path.uuid("payment event")?;
    Ok(Json(resolve_event(&state, id, &note).await?))
}

/// Marks payment event `id` handled, with the operator's `note`.
pub(super) async fn resolve_event(
    state: &AppState,
    id: Uuid,
    note: &str,
) -> ApiResult<PaymentEvent> {
    match payment_events::resolve(&state.pool, id, note, &time::now()).await? {
        Resolution::Resolved(event) => {
            tracing::info!(job_id = %id, "payment event resolved");
            Ok(event)
        }
        Resolution::NotFound => Err(ApiError::not_found(format_args!("payment event {id}"))),
        Resolution::AlreadyResolved(event) => Err(ApiError::new(
            Code::AlreadyResolved,
            format!(
                "payment event {id} was resolved at {}",
                event
                    .resolved_at
                    .as_ref()
                    .map(time::format)
                    .unwrap_or_default()
            ),
        )),
        Resolution::NothingToResolve(event) => Err(ApiError::new(
            Code::AlreadyResolved,
            format!(
                "payment event {id} is {}: only unmatched, needs_refund and conflict events need an operator",
                event.state.sql_word()
            ),
        )),
    }
}
