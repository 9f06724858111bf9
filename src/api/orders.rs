//! `POST /api/v1/orders` and `GET /api/v1/orders/{id}`.

use axum::{Json, extract::State};
use uuid::Uuid;

use super::{
    accept::{Answer, Recording, accept},
    docs::{
        CommandHeaders, LocationPath, MalformedJson, PayloadTooLarge, RateLimited, RequestTimeout,
        RetryAfterSecs, Unavailable, UnsupportedMediaType,
    },
    error::{ApiError, ApiResult},
    extract::{Buyer, PathId, PreferWait},
    input::Keyed,
    requests::CreateOrder,
    responses::OrderAccepted,
    state::AppState,
};
use crate::{
    commands::{Command, OrderRequest},
    db::orders,
    domain::{JobKind, Order},
    problem::Problem,
};

const ROUTE: &str = "orders";

/// Every decision (hold missing, expired, used) is the worker's, under the
/// hold's row lock: a hold whose own job is still queued cannot be judged
/// here.
#[utoipa::path(post, path = "/api/v1/orders", operation_id = "createOrder", summary = "Turn a hold into an order (asynchronous)",
    description = "Every decision (hold missing, expired, already used) is the worker's: the 202 says only that the job is recorded. An order for a hold whose own job is still queued waits for it. An order for a buyer's hold needs that buyer's token (`Authorization: Bearer <JWT>`); anyone else's fails `hold_not_found`.", tag = "orders",
    request_body = CreateOrder,
    params(CommandHeaders),
    responses(
        (status = 202, description = "Accepted: the job is recorded and queued; follow `Location` (the job) until it is decided", body = inline(OrderAccepted),
            headers(
                ("Location" = inline(LocationPath), description = "`/api/v1/jobs/{job_id}`"),
                ("Retry-After" = inline(RetryAfterSecs), description = "Seconds before polling the job")
            ),
            links(("getJob" = (operation_id = "getJob", parameters(("id" = "$response.body#/job_id")))))),
        (status = 201, description = "Created (under `Prefer: wait`)", body = Order,
            headers(("Location" = inline(LocationPath), description = "`/api/v1/orders/{id}`")),
            links(
                ("getOrder" = (operation_id = "getOrder", parameters(("id" = "$response.body#/id")))),
                ("getHold" = (operation_id = "getHold", parameters(("id" = "$response.body#/hold_id"))))
            )),
        (status = 400, response = MalformedJson),
        (status = 401, description = "`unauthorized`: a buyer token that is malformed, expired, wrongly signed, of another algorithm or audience, or sent while this api takes none. Nothing was recorded", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = RequestTimeout),
        (status = 409, description = "`hold_not_found` (also for a hold that belongs to another buyer), `hold_expired` or `hold_already_used`: the job's outcome under `Prefer: wait`", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`validation_failed` (`errors` names each bad field or header) or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable)))]
pub async fn create(
    State(state): State<AppState>,
    Buyer(customer): Buyer,
    PreferWait(wait): PreferWait,
    Keyed { key, body }: Keyed<CreateOrder>,
) -> ApiResult<Answer> {
    let id = Uuid::now_v7();
    let recording = Recording::keyed(ROUTE, key, body.fingerprint(customer.as_deref()));
    let command = Command::Order(OrderRequest {
        job_id: id,
        hold_id: body.hold_id,
        customer_id: customer,
    });
    accept(&state, id, JobKind::Order, command, recording, wait).await
}

#[utoipa::path(get, path = "/api/v1/orders/{id}", operation_id = "getOrder", summary = "Read an order", tag = "orders",
    params(("id" = Uuid, Path, description = "An order id (its job's id); anything else in its place is 404")),
    responses(
        (status = 200, description = "The order", body = Order,
            links(("getHold" = (operation_id = "getHold", parameters(("id" = "$response.body#/hold_id")))))),
        (status = 404, description = "`not_found`: no such order, or its job is not decided yet (follow the job)", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn get(State(state): State<AppState>, path: PathId) -> ApiResult<Json<Order>> {
    let id = path.uuid("order")?;
    let order = orders::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("order {id}")))?;
    Ok(Json(order))
}
