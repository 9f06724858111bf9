//! `GET /api/v1/jobs/{id}`.

use crate::problem::Problem;
use axum::{
    Json,
    extract::{Path, State},
};

use super::{
    AppState,
    error::{ApiError, ApiResult},
    holds::parse_uuid,
};
use crate::jobs::{self, Job};

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Job), (status = 404, description = "Never issued", body = Problem, content_type = "application/problem+json")))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Job>> {
    let id = parse_uuid(&id, "job")?;
    let job = jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("job {id}")))?;
    Ok(Json(job))
}
