//! `POST /api/v1/holds` and `GET /api/v1/holds/{id}`.

use super::docs::{Accepted, CreateHold};
use crate::problem::Problem;
use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use uuid::Uuid;

use super::{
    AppState,
    commands::{Idempotent, NewJob, accept, idempotency_key, prefer_wait},
    error::{ApiError, ApiResult},
    input::{Fields, JsonObject},
    products::find,
};
use crate::{
    claims::Spoken,
    commands::Command,
    holds::{self, Hold},
    idempotency,
    jobs::JobKind,
    problem::Code,
};

const ROUTE: &str = "holds";

#[utoipa::path(post, path = "/api/v1/holds", tag = "holds",
    request_body = CreateHold,
    params(("Idempotency-Key" = Option<String>, Header, description = "1..255 characters"),
      ("Prefer" = Option<String>, Header, description = "wait=N (N ≤ 10): answer with the outcome if ready in time")),
    responses((status = 202, body = Accepted, description = "Queued; Location: /api/v1/jobs/{job_id}"),
      (status = 201, body = Hold, description = "Granted (Prefer: wait)"),
      (status = 409, description = "insufficient_stock", body = Problem, content_type = "application/problem+json"), (status = 404, description = "Unknown product", body = Problem, content_type = "application/problem+json"), (status = 422, description = "Validation failed or idempotency_key_reused", body = Problem, content_type = "application/problem+json"),
      (status = 503, description = "Database or broker down; nothing accepted", body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: JsonObject,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let mut fields = Fields::new(&body.fields);
    let product_id = fields.int("product_id", 1..=i64::MAX);
    let qty = fields.int("qty", 1..=i64::from(state.settings.max_hold_qty));
    fields.finish()?;
    let (Some(product_id), Some(qty)) = (product_id, qty) else {
        return Err(ApiError::field("body", "incomplete"));
    };

    let product = find(&state, product_id).await?;
    // A sold-out product must not load the queue. A repeat of an accepted
    // request still gets its job, so the key is checked first.
    let repeat = match &key {
        Some(key) => idempotency::exists(&state.pool, ROUTE, key).await?,
        None => false,
    };
    let id = Uuid::now_v7();
    let fresh = state.cache.is_fresh_for(product_id);
    if !fresh {
        metrics::counter!("flash_api_holds_unchecked_total").increment(1);
    }
    let claim = if repeat || !fresh {
        None
    } else {
        let claim = state
            .cache
            .claims()
            .claim(id, product_id, qty, product.stock);
        Some(claim.map_err(|spoken| sold_out(product_id, product.stock, spoken, qty))?)
    };

    let job = NewJob {
        id,
        kind: JobKind::Hold,
        command: Command::Hold {
            job_id: id,
            product_id,
            qty,
        },
    };
    let idempotent = key.map(|key| Idempotent {
        route: ROUTE,
        key,
        request: idempotency::fingerprint(&[&product_id.to_string(), &qty.to_string()]),
    });
    let answered = accept(&state, job, idempotent, prefer_wait(&headers)).await;
    // Queued: the claim stands until the job is decided. Decided already
    // (Prefer: wait), a repeat, or not accepted: it ends here.
    if let (Some(claim), Ok(response)) = (claim, &answered)
        && response.status() == StatusCode::ACCEPTED
    {
        claim.keep();
    }
    answered
}

/// The 409 a sold-out product (or one whose last units are claimed by the
/// requests ahead) gets at once, without a job.
fn sold_out(product_id: i64, stock: i64, spoken: Spoken, qty: i64) -> ApiError {
    let detail = if spoken.claimed == 0 {
        format!("product {product_id} has {stock} left, {qty} requested")
    } else {
        format!(
            "product {product_id} has {stock} left, {} of them claimed by requests queued ahead; {qty} requested",
            spoken.claimed.min(stock)
        )
    };
    ApiError::new(Code::InsufficientStock, detail)
}

#[utoipa::path(get, path = "/api/v1/holds/{id}", tag = "holds",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Hold), (status = 404, description = "Unknown hold (or its job still queued)", body = Problem, content_type = "application/problem+json")))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Hold>> {
    let id = parse_uuid(&id, "hold")?;
    let hold = holds::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("hold {id}")))?;
    Ok(Json(hold.as_seen_at(crate::time::now())))
}

/// Ids in paths are UUIDs; anything else is a 404 (the resource cannot exist).
pub fn parse_uuid(raw: &str, what: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(raw).map_err(|_| ApiError::not_found(format_args!("{what} {raw:?}")))
}
