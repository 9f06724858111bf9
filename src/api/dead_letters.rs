//! The dead-letter queue, for operators over HTTP: what is in it, re-driving
//! the decodable letters, dropping the undecodable ones. The same library
//! calls as the `admin dead-letters` CLI.

use axum::{Json, extract::State};
use serde_json::json;

use super::{
    docs::{Unauthorized, Unavailable},
    error::{ApiError, ApiResult},
    extract::Admin,
    responses::{DeadLetterEntry, DeadLetterList, DropAnswer, RedriveAnswer},
    state::AppState,
};
use crate::dead_letters::{self, DeadLetter};

/// Most letters one call lists, re-drives or drops.
const LIMIT: usize = 1000;

/// Every failure here is the broker's (a channel, a queue declare, a get):
/// the request can be retried once it is back.
fn unavailable(err: anyhow::Error) -> ApiError {
    ApiError::Unavailable(err)
}

#[utoipa::path(get, path = "/api/v1/admin/dead-letters", operation_id = "listDeadLetters", summary = "Messages in the dead-letter queue (admin)",
    description = "Peeks at the queue: each message is fetched unacknowledged and put back, so listing removes and reorders nothing for good (the broker returns them within moments).", tag = "admin",
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "The dead letters, oldest first, at most 1000", body = DeadLetterList),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable)))]
pub async fn list(_admin: Admin, State(state): State<AppState>) -> ApiResult<Json<DeadLetterList>> {
    let letters = dead_letters::list(&state.broker, LIMIT)
        .await
        .map_err(unavailable)?;
    Ok(Json(DeadLetterList {
        data: letters.into_iter().map(entry).collect(),
    }))
}

fn entry(letter: DeadLetter) -> DeadLetterEntry {
    let (reason, command) = match letter.commands {
        Err(why) => (format!("undecodable: {why}"), None),
        Ok(commands) => {
            let reason = match (letter.reason, letter.queue) {
                (Some(reason), Some(queue)) => format!("{reason} (from {queue})"),
                (Some(reason), None) => reason,
                (None, _) => "unknown".to_owned(),
            };
            let command = match commands.as_slice() {
                [one] => json!(one),
                many => json!({"type": "batch", "commands": many}),
            };
            (reason, Some(command))
        }
    };
    DeadLetterEntry {
        id: letter.id,
        reason,
        command,
    }
}

#[utoipa::path(post, path = "/api/v1/admin/dead-letters/redrive", operation_id = "redriveDeadLetters", summary = "Send decodable dead letters back to their partition (admin)",
    description = "Each decodable letter is republished to its partition (confirmed) before it is removed; re-driving is safe, the worker applies each job once. Undecodable letters stay. No body is read.", tag = "admin",
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "What was re-driven and what is left", body = RedriveAnswer),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable)))]
pub async fn redrive(
    _admin: Admin,
    State(state): State<AppState>,
) -> ApiResult<Json<RedriveAnswer>> {
    let depth = dead_letters::count(&state.broker)
        .await
        .map_err(unavailable)?;
    let report = dead_letters::redrive(&state.broker, LIMIT, false)
        .await
        .map_err(unavailable)?;
    // Those kept, and those past this call's limit.
    let seen = report.redriven + report.kept + report.dropped;
    let left = report.kept + (depth as usize).saturating_sub(seen);
    Ok(Json(RedriveAnswer {
        redriven: report.redriven as u64,
        left: left as u64,
    }))
}

#[utoipa::path(post, path = "/api/v1/admin/dead-letters/drop-undecodable", operation_id = "dropUndecodableDeadLetters", summary = "Remove the dead letters no worker can decode (admin)",
    description = "Removes for good the letters that are not a command; decodable ones stay for a re-drive. No body is read.", tag = "admin",
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "How many were removed", body = DropAnswer),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable)))]
pub async fn drop_undecodable(
    _admin: Admin,
    State(state): State<AppState>,
) -> ApiResult<Json<DropAnswer>> {
    let report = dead_letters::drop_undecodable(&state.broker, LIMIT)
        .await
        .map_err(unavailable)?;
    Ok(Json(DropAnswer {
        dropped: report.dropped as u64,
    }))
}
