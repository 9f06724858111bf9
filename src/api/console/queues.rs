//! Queues and workers: partition depths, which worker holds which
//! partitions, the scheduler leader, and the dead letters with their
//! re-drive and drop buttons.

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    form::{ActionForm, Operator},
    layout::{Banner, csrf_field, empty, page, time},
    notice::{Done, Notice},
    sale::partitions_table,
    view::{Fields, overview_json},
};
use crate::api::{dead_letters, extract::Admin, responses::DeadLetterEntry, state::AppState};

/// `GET /console/queues`.
pub async fn show(
    Operator(session): Operator,
    State(state): State<AppState>,
    Query(notice): Query<Notice>,
) -> Response {
    render(&state, &session.csrf(), notice.banner()).await
}

async fn render(state: &AppState, csrf: &str, mut banner: Banner) -> Response {
    let overview = match overview_json(state).await {
        Ok(overview) => Some(overview),
        Err(problem) => {
            banner.problem.get_or_insert(problem);
            None
        }
    };
    let letters = match dead_letters::list(Admin, axum::extract::State(state.clone())).await {
        Ok(axum::Json(list)) => Some(list.data),
        Err(e) => {
            banner.problem.get_or_insert(e.into_problem().0);
            None
        }
    };
    let body = html! {
        @if let Some(overview) = &overview { (workers_section(overview)) }
        (dead_letters_section(csrf, letters.as_deref()))
    };
    (
        banner.status(),
        page("Queues & workers", "/console/queues", csrf, &banner, body),
    )
        .into_response()
}

fn workers_section(overview: &Value) -> Markup {
    let partitions = overview["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let workers = overview["workers"].as_array().cloned().unwrap_or_default();
    let leader = overview["scheduler_leader"].as_bool() == Some(true);
    html! {
        div data-live="/console/live" {
            p {
                "Scheduler leader: "
                @if leader { span.badge.ok #leader { "held" } } @else { span.badge.bad #leader { "none: expired holds are not released" } }
                " · " span #live-status .live { "connecting…" }
            }
            h2 { "Workers" }
            @if workers.is_empty() {
                (empty("No worker is running.", html! {
                    "Commands wait in their partitions until one starts: " code { "flash-sale worker" } "."
                }))
            } @else {
                div.table-wrap { table #workers {
                    thead { tr { th { "Worker" } th { "Partitions" } th { "Last seen" } } }
                    tbody { @for worker in &workers {
                        tr {
                            td { (Fields(worker).text("worker")) }
                            td.wrap { (partition_list(&worker["partitions"])) }
                            td { (time(worker["seen_at"].as_str())) }
                        }
                    } }
                } }
            }
            h2 { "Partitions" }
            (partitions_table(&partitions))
        }
    }
}

fn partition_list(partitions: &Value) -> String {
    let numbers: Vec<String> = partitions
        .as_array()
        .map(|list| list.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    if numbers.is_empty() {
        "none (standing by)".to_owned()
    } else {
        numbers.join(", ")
    }
}

fn dead_letters_section(csrf: &str, letters: Option<&[DeadLetterEntry]>) -> Markup {
    html! {
        h2 { "Dead letters " span.badge #dead-letter-count { (letters.map_or(0, <[_]>::len)) } }
        @match letters {
            None => p.muted { "The dead-letter queue cannot be read now." },
            Some([]) => (empty("No dead letters.", html! {
                "A command a worker cannot apply after its delivery limit lands here, with the reason. Re-drive sends it back to its partition; each job is applied once."
            })),
            Some(letters) => {
                div.actions {
                    form #redrive .inline method="post" action="/console/dead-letters/redrive" {
                        (csrf_field(csrf))
                        button type="submit" { "Re-drive decodable letters" }
                    }
                    form #drop-undecodable .inline method="post" action="/console/dead-letters/drop-undecodable"
                        data-confirm="Remove every undecodable dead letter for good?" {
                        (csrf_field(csrf))
                        button.danger type="submit" { "Drop undecodable…" }
                    }
                }
                div.table-wrap { table #dead-letters {
                    thead { tr { th { "Id" } th { "Reason" } th { "Command" } } }
                    tbody { @for letter in letters {
                        tr.dead-letter data-decodable=(letter.command.is_some()) {
                            td { code title=(letter.id) { (letter.id.get(..12).unwrap_or(&letter.id)) } }
                            td.wrap { (letter.reason) }
                            td { @match &letter.command {
                                Some(command) => pre { (serde_json::to_string_pretty(command).unwrap_or_default()) },
                                None => span.badge.bad { "undecodable" },
                            } }
                        }
                    } }
                } }
            }
        }
    }
}

/// `POST /console/dead-letters/redrive`.
pub async fn redrive(State(state): State<AppState>, form: ActionForm) -> Response {
    match dead_letters::redrive(Admin, State(state.clone())).await {
        Ok(axum::Json(answer)) => Redirect::to(
            &Done::Redriven {
                redriven: answer.redriven,
                left: answer.left,
            }
            .location("/console/queues"),
        )
        .into_response(),
        Err(e) => failed(&state, &form, e).await,
    }
}

/// `POST /console/dead-letters/drop-undecodable`.
pub async fn drop_undecodable(State(state): State<AppState>, form: ActionForm) -> Response {
    match dead_letters::drop_undecodable(Admin, State(state.clone())).await {
        Ok(axum::Json(answer)) => Redirect::to(
            &Done::Dropped {
                dropped: answer.dropped,
            }
            .location("/console/queues"),
        )
        .into_response(),
        Err(e) => failed(&state, &form, e).await,
    }
}

async fn failed(state: &AppState, form: &ActionForm, e: crate::api::error::ApiError) -> Response {
    let problem = e.into_problem().0;
    render(state, &form.session.csrf(), Banner::problem(problem)).await
}
