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
use uuid::Uuid;

use super::{
    AppState,
    error::{ApiError, ApiResult},
    input::{Fields, JsonObject},
};
use crate::{
    db,
    domain::LedgerReason,
    holds::{Hold, HoldStatus},
    problem::Code,
    time,
};

#[utoipa::path(post, path = "/api/v1/baseline/holds", operation_id = "createBaselineHold", summary = "Reserve stock in one locked transaction (benchmark only)", tag = "benchmark",
    description = "The per-request locking design, for benchmarks only (ENABLE_BASELINE=true): decided in the request, no job.",
    request_body = super::docs::CreateHold,
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
pub async fn create(State(state): State<AppState>, body: JsonObject) -> ApiResult<Response> {
    let mut fields = Fields::new(&body.fields);
    let product_id = fields.int("product_id", 1..=i64::MAX);
    let qty = fields.int("qty", 1..=i64::from(state.settings.max_hold_qty));
    fields.finish()?;
    let (Some(product_id), Some(qty)) = (product_id, qty) else {
        return Err(ApiError::field("body", "incomplete"));
    };
    // A typical per-request service retries deadlocks a few times too.
    let hold = (|| hold_once(&state, product_id, qty))
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
        Err(problem) => Err(problem),
    }
}

async fn hold_once(
    state: &AppState,
    product_id: i64,
    qty: i64,
) -> sqlx::Result<Result<Hold, ApiError>> {
    let mut tx = state.pool.begin().await?;
    let product: Option<(i64, i64)> =
        sqlx::query_as("SELECT price, stock FROM products WHERE id = ? FOR UPDATE")
            .bind(product_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((price, stock)) = product else {
        return Ok(Err(ApiError::not_found(format_args!(
            "product {product_id}"
        ))));
    };
    if stock < qty {
        return Ok(Err(ApiError::new(
            Code::InsufficientStock,
            format!("product {product_id} has {stock} left, {qty} requested"),
        )));
    }
    let now = time::now();
    let hold = Hold {
        id: Uuid::now_v7(),
        product_id,
        qty,
        unit_price: price,
        amount: price * qty,
        status: HoldStatus::Active,
        expires_at: now + chrono::Duration::from_std(state.settings.hold_ttl).unwrap_or_default(),
        created_at: now,
    };
    sqlx::query("UPDATE products SET stock = stock - ?, updated_at = ? WHERE id = ?")
        .bind(qty)
        .bind(now)
        .bind(product_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO holds (id, product_id, qty, unit_price, amount, status, expires_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?)",
    )
    .bind(hold.id)
    .bind(product_id)
    .bind(qty)
    .bind(hold.unit_price)
    .bind(hold.amount)
    .bind(hold.expires_at)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO stock_ledger (product_id, delta, reason, ref_id, created_at) VALUES (?, ?, ?, ?, ?)")
        .bind(product_id)
        .bind(-qty)
        .bind(LedgerReason::Hold.as_str())
        .bind(hold.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(hold))
}
