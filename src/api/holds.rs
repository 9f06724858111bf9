//! `POST /api/v1/holds` and `GET /api/v1/holds/{id}`.

use super::docs::{
    CommandHeaders, CreateHold, HoldAccepted, LocationPath, MalformedJson, PayloadTooLarge,
    RequestTimeout, RetryAfterSecs, Unavailable, UnsupportedMediaType,
};
use crate::problem::Problem;
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use uuid::Uuid;

use super::{
    AppState,
    commands::{Idempotent, NewJob, accept, idempotency_key, prefer_wait},
    error::{ApiError, ApiResult},
    input::{Fields, JsonObject},
    path::PathId,
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

#[utoipa::path(post, path = "/api/v1/holds", operation_id = "createHold", summary = "Reserve stock (asynchronous)",
    description = "Records a hold job and answers 202 at once; a worker grants or refuses it. A product the cache knows to be sold out is refused at once with 409.", tag = "holds",
    request_body = CreateHold,
    params(CommandHeaders),
    responses(
        (status = 202, description = "Accepted: the job is recorded and queued; follow `Location` (the job) until it is decided", body = inline(HoldAccepted),
            headers(
                ("Location" = inline(LocationPath), description = "`/api/v1/jobs/{job_id}`"),
                ("Retry-After" = inline(RetryAfterSecs), description = "Seconds before polling the job")
            ),
            links(("getJob" = (operation_id = "getJob", parameters(("id" = "$response.body#/job_id")))))),
        (status = 201, description = "Granted (under `Prefer: wait`)", body = Hold,
            headers(("Location" = inline(LocationPath), description = "`/api/v1/holds/{id}`")),
            links(
                ("getHold" = (operation_id = "getHold", parameters(("id" = "$response.body#/id")))),
                ("createOrder" = (operation_id = "createOrder", request_body = json!({"hold_id": "$response.body#/id"})))
            )),
        (status = 400, response = MalformedJson),
        (status = 404, description = "`not_found`: no such product", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = RequestTimeout),
        (status = 409, description = "`insufficient_stock`: fewer units left than asked for (at once, or as the job's outcome under `Prefer: wait`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`validation_failed` (`errors` names each bad field or header) or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
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

#[utoipa::path(get, path = "/api/v1/holds/{id}", operation_id = "getHold", summary = "Read a hold", tag = "holds",
    params(("id" = Uuid, Path, description = "A hold id (its job's id); anything else in its place is 404")),
    responses(
        (status = 200, description = "The hold; an active hold past `expires_at` shows as `expired`", body = Hold,
            links(("getProduct" = (operation_id = "getProduct", parameters(("id" = "$response.body#/product_id")))))),
        (status = 404, description = "`not_found`: no such hold, or its job is not decided yet (follow the job)", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn get(State(state): State<AppState>, PathId(id): PathId) -> ApiResult<Json<Hold>> {
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
