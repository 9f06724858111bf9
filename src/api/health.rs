//! Liveness and readiness.

use std::time::Duration;

use axum::{Json, extract::State};

use super::{
    docs::Unavailable,
    error::ApiError,
    responses::{Health, Ready},
    state::AppState,
};
use crate::{db, problem::Code};

/// How long readyz waits for the database before calling it down.
const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(get, path = "/healthz", operation_id = "healthz", summary = "Liveness", tag = "operations",
    responses((status = 200, description = "The process runs", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 only when both the database and the broker answer.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", summary = "Readiness: 200 only when the database and the broker answer", tag = "operations",
    responses(
        (status = 200, description = "The database and the broker answer", body = Ready),
        (status = 503, response = Unavailable)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let db_ok = matches!(
        tokio::time::timeout(DB_CHECK_TIMEOUT, db::ping(&state.pool)).await,
        Ok(true)
    );
    let broker_ok = state.broker.is_connected();
    if db_ok && broker_ok {
        return Ok(Json(Ready {
            status: "ready",
            database: "up",
            broker: "up",
        }));
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
