//! Job lookup: a hold, order or payment job by id, as `GET /jobs/{id}`
//! answers it.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::{
    form::Operator,
    layout::{Banner, page, problem_box, time},
    view::Fields,
};
use crate::{
    api::{error::ApiError, state::AppState},
    domain::Job,
};

#[derive(Deserialize)]
pub struct Lookup {
    #[serde(default)]
    id: String,
}

/// `GET /console/jobs?id=…`.
pub async fn show(
    Operator(session): Operator,
    State(state): State<AppState>,
    Query(Lookup { id }): Query<Lookup>,
) -> Response {
    let id = id.trim();
    let (status, banner, job) = if id.is_empty() {
        (StatusCode::OK, Banner::default(), None)
    } else {
        match find(&state, id).await {
            Ok(job) => (StatusCode::OK, Banner::default(), Some(job)),
            Err(e) => {
                let problem = e.into_problem().0;
                (problem.status_code(), Banner::problem(problem), None)
            }
        }
    };
    let body = html! {
        form #lookup .inline method="get" action="/console/jobs" {
            label for="job-id" { "Job id" input #job-id type="search" name="id" value=(id) size="40" placeholder="0193a2c4-…" required; }
            button type="submit" { "Look up" }
        }
        @if let Some(job) = &job { (job_card(job)) }
        @else if id.is_empty() {
            p.muted { "Paste the id a client got with its 202 (" code { "job_id" } "), or a hold or order id: a hold's and an order's id are its job's." }
        }
    };
    (
        status,
        page(
            "Job lookup",
            "/console/jobs",
            &session.csrf(),
            &banner,
            body,
        ),
    )
        .into_response()
}

async fn find(state: &AppState, id: &str) -> Result<Job, ApiError> {
    let not_found = || ApiError::not_found(format_args!("job {id:?}"));
    let id = uuid::Uuid::try_parse(id).map_err(|_| not_found())?;
    let job = state.room.read_job(id).await?.ok_or_else(not_found)?;
    Ok(state.room.with_place(job).await?)
}

fn job_card(job: &Job) -> Markup {
    let value = serde_json::to_value(job).unwrap_or(Value::Null);
    let fields = Fields(&value);
    let status = fields.text("status");
    let badge = match status.as_str() {
        "succeeded" => "badge ok",
        "failed" => "badge bad",
        _ => "badge warn",
    };
    html! {
        section.card #job {
            dl.facts {
                dt { "Job" } dd { code { (fields.text("job_id")) } }
                dt { "Kind" } dd { (fields.text("kind")) }
                dt { "Status" } dd { span #job-status class=(badge) { (status) } }
                dt { "Recorded" } dd { (time(value["created_at"].as_str())) }
                dt { "Decided" } dd { (time(value["completed_at"].as_str())) }
                @if let Some(queue) = value["queue"].as_object() {
                    dt { "Place in line" } dd.num { (queue.get("position").map(Value::to_string).unwrap_or_default()) }
                }
            }
            @if !value["result"].is_null() {
                h2 { "Result" }
                pre { (serde_json::to_string_pretty(&value["result"]).unwrap_or_default()) }
            }
            @if let Some(error) = &job.error { (problem_box(error)) }
        }
    }
}
