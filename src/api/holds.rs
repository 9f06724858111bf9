//! `POST /api/v1/holds` and `GET /api/v1/holds/{id}`.

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
    input::{Fields, JsonObject},
    products::find,
};
use crate::{
    commands::Command,
    holds::{self, Hold},
    idempotency,
    jobs::JobKind,
    problem::Code,
};

const ROUTE: &str = "holds";

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
    if !repeat && state.cache.is_fresh() && product.stock < qty {
        return Err(ApiError::new(
            Code::InsufficientStock,
            format!(
                "product {product_id} has {} left, {qty} requested",
                product.stock
            ),
        ));
    }

    let id = Uuid::now_v7();
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
    accept(&state, job, idempotent, prefer_wait(&headers)).await
}

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
