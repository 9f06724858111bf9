//! `GET /api/v1/jobs/{id}`.

use axum::{Json, extract::State};

use super::{
    docs::Unavailable,
    error::{ApiError, ApiResult},
    extract::PathId,
    state::AppState,
};
use crate::{db::jobs, domain::Job, problem::Problem};

#[utoipa::path(get, path = "/api/v1/jobs/{id}", operation_id = "getJob", summary = "Read a job", tag = "jobs",
    params(("id" = Uuid, Path, description = "A job id; anything else in its place is 404")),
    responses(
        (status = 200, description = "The job: `queued` until a worker decides it, then `succeeded` with its `result` or `failed` with its `error`", body = Job),
        (status = 404, description = "`not_found`: no job was ever issued with this id", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn get(State(state): State<AppState>, path: PathId) -> ApiResult<Json<Job>> {
    let id = path.uuid("job")?;
    let job = jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("job {id}")))?;
    Ok(Json(job))
}
