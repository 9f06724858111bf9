//! `GET /api/v1/jobs/{id}`.

use super::docs::Unavailable;
use crate::problem::Problem;
use axum::{Json, extract::State};

use super::{
    AppState,
    error::{ApiError, ApiResult},
    holds::parse_uuid,
    path::PathId,
};
use crate::jobs::{self, Job};

#[utoipa::path(get, path = "/api/v1/jobs/{id}", operation_id = "getJob", summary = "Read a job", tag = "jobs",
    params(("id" = Uuid, Path, description = "A job id; anything else in its place is 404")),
    responses(
        (status = 200, description = "The job: `queued` until a worker decides it, then `succeeded` with its `result` or `failed` with its `error`", body = Job),
        (status = 404, description = "`not_found`: no job was ever issued with this id", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn get(State(state): State<AppState>, PathId(id): PathId) -> ApiResult<Json<Job>> {
    let id = parse_uuid(&id, "job")?;
    let job = jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("job {id}")))?;
    Ok(Json(job))
}
