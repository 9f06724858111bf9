//! `GET /api/v1/admin/overview`: the operators' one-look summary, from the
//! replica's shared [`OverviewFeed`](crate::overview::OverviewFeed).

use axum::{Json, extract::State};

use super::{
    docs::{Unauthorized, Unavailable},
    error::{ApiError, ApiResult},
    extract::Admin,
    state::AppState,
};
use crate::overview::{Overview, OverviewError};

#[utoipa::path(get, path = "/api/v1/admin/overview", operation_id = "getOverview", summary = "Products, queues, workers and leader at a glance (admin)",
    description = "Every product's stock and units (held, pending, paid, canceled) with its hold decisions over the last 60 s as this replica heard of them (`null` when none), each partition's queue and worker, the workers seen in the last 10 s, the dead letters and whether a scheduler leads. Computed at most once a second per replica and shared by every caller in that second.", tag = "admin",
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "The overview, at most 1 s old", body = Overview),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable)))]
pub async fn get(_admin: Admin, State(state): State<AppState>) -> ApiResult<Json<Overview>> {
    let overview = state.overview.latest().await.map_err(failed)?;
    Ok(Json(Overview::clone(&overview)))
}

pub(super) fn failed(err: OverviewError) -> ApiError {
    if err.is_unavailable() {
        ApiError::Unavailable(err.into())
    } else {
        ApiError::Internal(err.into())
    }
}
