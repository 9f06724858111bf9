//! Liveness and readiness.

use super::docs::{Health, Ready, Unavailable};
use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use super::{AppState, error::ApiError};
use crate::problem::Code;

/// How long readyz waits for the database before calling it down.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(get, path = "/healthz", operation_id = "healthz", summary = "Liveness", tag = "operations",
    responses((status = 200, description = "The process runs", body = Health)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// 200 only when both the database and the broker answer.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", summary = "Readiness: 200 only when the database and the broker answer", tag = "operations",
    responses(
        (status = 200, description = "The database and the broker answer", body = Ready),
        (status = 503, response = Unavailable)))]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let db = tokio::time::timeout(
        DB_CHECK_TIMEOUT,
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool),
    )
    .await;
    let db_ok = matches!(db, Ok(Ok(1)));
    let broker_ok = state.broker.is_connected();
    if db_ok && broker_ok {
        return Ok((
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "up", "broker": "up" })),
        ));
    }
    let down: Vec<&str> = [("database", db_ok), ("broker", broker_ok)]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
    Err(ApiError::new(
        Code::Unavailable,
        format!("not ready: {} down", down.join(" and ")),
    ))
}
