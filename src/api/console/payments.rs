//! Payments needing attention (unmatched, needs_refund, conflict), each
//! with "mark resolved" and a note, and the ones already resolved.

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    form::{ActionForm, Blank, Kind, Operator},
    layout::{Banner, csrf_field, empty, page, time},
    notice::{Done, Notice},
    view::Fields,
};
use crate::{
    api::{
        error::ApiError,
        input,
        payments::{list_events, resolve_event},
        requests::ResolvePayment,
        state::AppState,
    },
    domain::payment::MAX_NOTE_CHARS,
};

/// `GET /console/payments`.
pub async fn show(
    Operator(session): Operator,
    State(state): State<AppState>,
    Query(notice): Query<Notice>,
) -> Response {
    render(&state, &session.csrf(), notice.banner()).await
}

async fn render(state: &AppState, csrf: &str, mut banner: Banner) -> Response {
    let open = list_events(state, None).await;
    let resolved = list_events(state, Some("resolved")).await;
    let (open, resolved) = match (open, resolved) {
        (Ok(open), Ok(resolved)) => (open, resolved),
        (Err(e), _) | (_, Err(e)) => {
            banner.problem.get_or_insert(e.into_problem().0);
            (Vec::new(), Vec::new())
        }
    };
    let as_json = |events: Vec<_>| -> Vec<Value> {
        events
            .into_iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect()
    };
    let body = html! {
        h2 { "Needing attention " span.badge #attention-count { (open.len()) } }
        (attention(csrf, &as_json(open)))
        h2 { "Resolved" }
        (resolved_table(&as_json(resolved)))
    };
    (
        banner.status(),
        page("Payments", "/console/payments", csrf, &banner, body),
    )
        .into_response()
}

fn attention(csrf: &str, events: &[Value]) -> Markup {
    if events.is_empty() {
        return empty(
            "Nothing needs you.",
            html! {
                "A payment for an order that does not exist ("  code { "unmatched" } "), that succeeded after the order was canceled or expired ("
                code { "needs_refund" } "), or that contradicts an earlier one (" code { "conflict" } ") shows here until you mark it resolved."
            },
        );
    }
    html! {
        div.table-wrap { table #attention {
            thead { tr { th { "Received" } th { "State" } th { "Order" } th { "Status" } th { "Why" } th { "Resolve" } } }
            tbody { @for event in events {
                @let fields = Fields(event);
                tr data-job-id=(fields.text("job_id")) {
                    td { (time(event["created_at"].as_str())) }
                    td { span.badge.warn { (fields.text("state")) } }
                    td { code { (fields.text("order_id")) } br; span.muted { "key " (fields.text("idempotency_key")) } }
                    td { (fields.text("status")) }
                    td.wrap { (fields.text("reason")) }
                    td {
                        form.resolve.inline method="post" action={ "/console/payments/" (fields.text("job_id")) "/resolve" } {
                            (csrf_field(csrf))
                            textarea name="note" required maxlength=(MAX_NOTE_CHARS) placeholder="What you did (refund id, ticket…)" {}
                            button type="submit" { "Mark resolved" }
                        }
                    }
                }
            } }
        } }
    }
}

fn resolved_table(events: &[Value]) -> Markup {
    if events.is_empty() {
        return html! { p.muted { "None resolved yet." } };
    }
    html! {
        div.table-wrap { table #resolved {
            thead { tr { th { "Resolved" } th { "State" } th { "Order" } th { "Note" } } }
            tbody { @for event in events {
                @let fields = Fields(event);
                tr data-job-id=(fields.text("job_id")) {
                    td { (time(event["resolved_at"].as_str())) }
                    td { (fields.text("state")) }
                    td { code { (fields.text("order_id")) } }
                    td.wrap { (fields.text("resolution_note")) }
                }
            } }
        } }
    }
}

/// `POST /console/payments/{job_id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    form: ActionForm,
) -> Response {
    let csrf = form.session.csrf();
    let outcome = async {
        let id = uuid::Uuid::try_parse(&job_id)
            .map_err(|_| ApiError::not_found(format_args!("payment event {job_id:?}")))?;
        let body = form.as_json(&[("note", Kind::Text, Blank::Absent)]);
        let ResolvePayment { note } = input::read(&body, &state.settings)?;
        resolve_event(&state, id, &note).await.map(|_| id)
    };
    match outcome.await {
        Ok(job_id) => {
            Redirect::to(&Done::Resolved { job_id }.location("/console/payments")).into_response()
        }
        Err(e) => render(&state, &csrf, Banner::problem(e.into_problem().0)).await,
    }
}
