//! `GET /api/v1/jobs/{id}`: the job, polled or streamed (server-sent
//! events). A queued hold or order shows its place in line
//! ([`crate::waiting_room`]).

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::StreamExt;

use super::{
    docs::Unavailable,
    error::{ApiError, ApiResult},
    extract::PathId,
    state::AppState,
};
use crate::{domain::Job, problem::Problem};

/// A comment this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

#[utoipa::path(get, path = "/api/v1/jobs/{id}", operation_id = "getJob", summary = "Read a job", tag = "jobs",
    description = "Polled (JSON), or streamed with `Accept: text/event-stream`: an `event: job` with the job at once, again whenever its `queue` place changes (at most every 250 ms), and a last one with its final state, after which the stream ends. A comment line (`: keep-alive`) every 15 s keeps proxies from closing a quiet stream. An unknown id is a 404 problem either way.",
    params(("id" = Uuid, Path, description = "A job id; anything else in its place is 404")),
    responses(
        (status = 200, description = "The job: `queued` until a worker decides it (a hold or order shows its place in `queue`), then `succeeded` with its `result` or `failed` with its `error`",
            content(
                (Job = "application/json"),
                (String = "text/event-stream",
                    example = "event: job\ndata: {\"job_id\":\"019b76da-a87b-7c3e-8a41-2f5b9c0d1e23\",\"kind\":\"hold\",\"status\":\"queued\",\"result\":null,\"error\":null,\"created_at\":\"2026-01-01T00:00:00.123Z\",\"completed_at\":null,\"queue\":{\"position\":42,\"eta_ms\":2100}}\n\n")
            )),
        (status = 404, description = "`not_found`: no job was ever issued with this id", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn get(
    State(state): State<AppState>,
    path: PathId,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = path.uuid("job")?;
    let not_found = || ApiError::not_found(format_args!("job {id}"));
    if wants_event_stream(&headers) {
        let feed = state.room.stream(id).await?.ok_or_else(not_found)?;
        let events = feed
            .into_stream()
            .map(|job| Ok::<_, Infallible>(job_event(&job)));
        let sse = Sse::new(events).keep_alive(
            KeepAlive::new()
                .interval(KEEP_ALIVE_EVERY)
                .text("keep-alive"),
        );
        // nginx buffers responses unless told not to.
        let no_buffering = (
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        return Ok(([no_buffering], sse).into_response());
    }
    let job = state.room.read_job(id).await?.ok_or_else(not_found)?;
    let job = state.room.with_place(job).await?;
    Ok(Json(job).into_response())
}

fn job_event(job: &Job) -> Event {
    // serde_json writes no newline, which a data line cannot hold.
    Event::default()
        .event("job")
        .data(serde_json::to_string(job).unwrap_or_default())
}

/// `Accept` names `text/event-stream` (with a quality above zero).
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/event-stream") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::ACCEPT, value);
        }
        headers
    }

    #[test]
    fn only_an_accepted_event_stream_is_streamed() {
        assert!(wants_event_stream(&accept("text/event-stream")));
        assert!(wants_event_stream(&accept(
            "application/json;q=0.5, Text/Event-Stream ; q=1"
        )));
        assert!(!wants_event_stream(&accept("application/json")));
        assert!(!wants_event_stream(&accept("*/*")));
        assert!(!wants_event_stream(&accept("text/event-stream;q=0")));
        assert!(!wants_event_stream(&HeaderMap::new()));
    }
}
