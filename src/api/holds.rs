//! `POST /api/v1/holds` and `GET /api/v1/holds/{id}`.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
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
    products::find,
    requests::CreateHold,
    responses::HoldAccepted,
    state::AppState,
};
use crate::{
    claims::Spoken,
    commands::{Command, HoldRequest},
    db::{holds, idempotency_keys},
    domain::{
        Hold, JobKind, Product, SaleWindow,
        refusals::{customer_limit_reached, sale_ended, sale_not_started},
    },
    problem::{Code, Problem},
    time,
};

const ROUTE: &str = "holds";

#[utoipa::path(post, path = "/api/v1/holds", operation_id = "createHold", summary = "Reserve stock (asynchronous)",
    description = "Records a hold job and answers 202 at once; a worker grants or refuses it. A product the cache knows to be sold out, or outside its sale window, is refused at once with 409. A buyer sends `Authorization: Bearer <JWT>` (HS256, `sub` = customer id); a product with `max_per_customer` needs one.", tag = "holds",
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
        (status = 401, description = "`unauthorized`: a buyer token that is malformed, expired, wrongly signed, of another algorithm or audience, or sent while this api takes none; or no token for a product with `max_per_customer`. Nothing was recorded", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such product", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = RequestTimeout),
        (status = 409, description = "`insufficient_stock`: fewer units left than asked for; `customer_limit_reached`: the buyer's units of this product would pass `max_per_customer`; `sale_not_started` (with `Retry-After` in seconds and `starts_at`) or `sale_ended`: outside the product's sale window. At once, or as the job's outcome under `Prefer: wait`. A `sale_not_started` refused at once carries `Retry-After`: the seconds until the start, rounded up", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`validation_failed` (`errors` names each bad field or header) or `idempotency_key_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 429, response = RateLimited),
        (status = 503, response = Unavailable)))]
pub async fn create(
    State(state): State<AppState>,
    Buyer(customer): Buyer,
    PreferWait(wait): PreferWait,
    Keyed { key, body }: Keyed<CreateHold>,
) -> ApiResult<Answer> {
    let CreateHold { product_id, qty } = body;
    let product = find(&state, product_id).await?;
    if let Some(max) = product.max_per_customer {
        if customer.is_none() {
            return Err(ApiError::new(
                Code::Unauthorized,
                format!("product {product_id} is limited per customer: a buyer token is required"),
            ));
        }
        // Never wrong: no allowance covers more than the limit.
        if qty > max {
            return Err(customer_limit_reached(product_id, max, 0, qty).into());
        }
    }
    // A sold-out product must not load the queue. A repeat of an accepted
    // request still gets its job, so the key is checked first.
    let repeat = match &key {
        Some(key) => idempotency_keys::exists(&state.pool, ROUTE, key).await?,
        None => false,
    };
    if !repeat {
        outside_window(&product, time::now())?;
    }
    let id = Uuid::now_v7();
    let fresh = state.cache.is_fresh_for(product_id);
    if !fresh {
        metrics::counter!("flash_api_holds_unchecked_total").increment(1);
    }
    let claim = if repeat || !fresh {
        None
    } else {
        let limited = customer.as_deref().zip(product.max_per_customer);
        state
            .cache
            .claims()
            .claim(id, product_id, qty, product.stock, limited)
            .map_err(|spoken| sold_out(product_id, product.stock, spoken, qty))?
    };
    let recording = Recording::keyed(ROUTE, key, body.fingerprint(customer.as_deref()));
    let command = Command::Hold(HoldRequest {
        job_id: id,
        product_id,
        qty,
        customer_id: customer,
    });
    let answer = accept(&state, id, JobKind::Hold, command, recording, wait).await?;
    // Queued: the claim stands until the job is decided. Decided already
    // (Prefer: wait), a repeat, or not accepted: it ends here.
    if let Some(claim) = claim
        && answer.queued
    {
        claim.keep();
    }
    Ok(answer)
}

/// Refuses at once, with no job, a hold outside the product's sale window
/// by this api's clock; the worker judges again by the job's record time.
/// `now` is taken before the job's, so a request let through here is
/// recorded inside the window's start.
fn outside_window(product: &Product, now: DateTime<Utc>) -> ApiResult<()> {
    match product.window_at(now) {
        SaleWindow::Open => Ok(()),
        SaleWindow::Ended => Err(sale_ended(product.id).into()),
        SaleWindow::NotStarted(starts_at) => {
            let millis = u64::try_from((starts_at - now).num_milliseconds()).unwrap_or(0);
            let secs = millis.div_ceil(1000).max(1);
            Err(ApiError::RetryAfter(
                Box::new(sale_not_started(product.id, starts_at)),
                secs,
            ))
        }
    }
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
pub async fn get(State(state): State<AppState>, path: PathId) -> ApiResult<Json<Hold>> {
    let id = path.uuid("hold")?;
    let hold = holds::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("hold {id}")))?;
    Ok(Json(hold.as_seen_at(crate::time::now())))
}
