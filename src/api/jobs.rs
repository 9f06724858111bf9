//! `GET /api/v1/jobs/{id}`.

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

pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Job>> {
    let id = parse_uuid(&id, "job")?;
    let job = jobs::get(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format_args!("job {id}")))?;
    Ok(Json(job))
}
