//! `POST /api/v1/orders` and `GET /api/v1/orders/{id}`.

use super::docs::{Accepted, CreateOrder};
use crate::problem::Problem;
use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use uuid::Uuid;

use super::{
    AppState,
    commands::{Idempotent, NewJob, accept, idempotency_key, prefer_wait},
    error::{ApiError, ApiResult},
    holds::parse_uuid,
    input::{Fields, JsonObject},
};
use crate::{
    commands::Command,
    idempotency,
    jobs::JobKind,
    orders::{self, Order},
};

const ROUTE: &str = "orders";

/// Every decision (hold missing, expired, used) is the worker's, under the
/// hold's row lock: a hold whose own job is still queued cannot be judged
/// here.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders",
    request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header), ("Prefer" = Option<String>, Header)),
    responses((status = 202, body = Accepted), (status = 201, body = Order, description = "Created (Prefer: wait)"),
      (status = 409, description = "hold_not_found, hold_expired or hold_already_used", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Validation failed", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: JsonObject,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let mut fields = Fields::new(&body.fields);
    let hold_id = fields.uuid("hold_id");
    fields.finish()?;
    let Some(hold_id) = hold_id else {
        return Err(ApiError::field("hold_id", "is required"));
    };
    let id = Uuid::now_v7();
    let job = NewJob {
        id,
        kind: JobKind::Order,
        command: Command::Order {
            job_id: id,
            hold_id,
        },
    };
    let idempotent = key.map(|key| Idempotent {
        route: ROUTE,
        key,
        request: idempotency::fingerprint(&[&hold_id.to_string()]),
    });
    accept(&state, job, idempotent, prefer_wait(&headers)).await
}

#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Order), (status = 404, description = "Unknown order", body = Problem, content_type = "application/problem+json")))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Order>> {
    let id = parse_uuid(&id, "order")?;
    let order = orders::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("order {id}")))?;
    Ok(Json(order))
}
