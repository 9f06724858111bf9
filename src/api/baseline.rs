//! The classic design, for benchmarks only: one request, one transaction
//! that locks the product row (`SELECT … FOR UPDATE`), checks, updates,
//! inserts the hold and its ledger row, and commits. Same schema, same
//! database, same process as the real pipeline, so `loadgen --mode both`
//! compares designs and nothing else. Mounted only with
//! `ENABLE_BASELINE=true`.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use backon::Retryable;

use super::{
    error::{ApiError, ApiResult},
    input::Valid,
    requests::CreateHold,
    state::AppState,
};
use crate::{
    db::{self, baseline::Refused},
    domain::Hold,
    problem::Code,
    time,
};

#[utoipa::path(post, path = "/api/v1/baseline/holds", operation_id = "createBaselineHold", summary = "Reserve stock in one locked transaction (benchmark only)", tag = "benchmark",
    description = "The per-request locking design, for benchmarks only (ENABLE_BASELINE=true): decided in the request, no job.",
    request_body = CreateHold,
    responses(
        (status = 201, description = "Granted", body = Hold,
            headers(("Location" = inline(super::docs::LocationPath), description = "`/api/v1/holds/{id}`")),
            links(("getHold" = (operation_id = "getHold", parameters(("id" = "$response.body#/id")))))),
        (status = 400, response = super::docs::MalformedJson),
        (status = 404, description = "`not_found`: no such product", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 408, response = super::docs::RequestTimeout),
        (status = 409, description = "`insufficient_stock`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 413, response = super::docs::PayloadTooLarge),
        (status = 415, response = super::docs::UnsupportedMediaType),
        (status = 422, description = "`validation_failed`: `errors` names each bad field", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, response = super::docs::Unavailable)))]
pub async fn create(
    State(state): State<AppState>,
    Valid(CreateHold { product_id, qty }): Valid<CreateHold>,
) -> ApiResult<Response> {
    // A typical per-request service retries deadlocks a few times too.
    let ttl = state.settings.hold_ttl;
    let hold = (|| db::baseline::hold(&state.pool, product_id, qty, time::now(), ttl))
        .retry(db::conflict_backoff())
        .when(db::is_retryable)
        .await?;
    match hold {
        Ok(hold) => {
            let location = format!("/api/v1/holds/{}", hold.id);
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(hold),
            )
                .into_response())
        }
        Err(Refused::NoSuchProduct) => {
            Err(ApiError::not_found(format_args!("product {product_id}")))
        }
        Err(Refused::Insufficient { stock }) => Err(ApiError::new(
            Code::InsufficientStock,
            format!("product {product_id} has {stock} left, {qty} requested"),
        )),
    }
}
