//! The sale page: every product's books and pace, and the partitions'
//! depth, kept live by `/console/live` (one shared overview a second per
//! replica, whoever watches).

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    http::{HeaderName, HeaderValue},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use maud::{Markup, html};
use serde_json::Value;

use super::{
    form::{Operator, problem_page},
    layout::{Banner, empty, page, time},
    view::{Fields, int_cell, overview_json},
};
use crate::api::state::AppState;

/// How often a live page gets the overview.
const EVERY: Duration = Duration::from_secs(1);

/// `GET /console`.
pub async fn show(Operator(session): Operator, State(state): State<AppState>) -> Response {
    let overview = match overview_json(&state).await {
        Ok(overview) => overview,
        Err(problem) => return problem_page(problem),
    };
    page(
        "Sale",
        "/console",
        &session.csrf(),
        &Banner::default(),
        body(&overview),
    )
    .into_response()
}

fn body(overview: &Value) -> Markup {
    let products = overview["products"].as_array().cloned().unwrap_or_default();
    let partitions = overview["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let workers = overview["workers"].as_array().map_or(0, Vec::len);
    let queued: i64 = partitions
        .iter()
        .filter_map(|p| p["messages"].as_i64())
        .sum();
    html! {
        div data-live="/console/live" {
            p { span #live-status .live { "connecting…" } }
            div.tiles {
                a.tile href="/console/queues" {
                    div.label { "Commands waiting" }
                    div.value data-overview="queued" { (queued) }
                }
                a.tile href="/console/queues" {
                    div.label { "Dead letters" }
                    div.value data-overview="dead_letters" { (overview["dead_letters"].as_i64().unwrap_or(0)) }
                }
                a.tile href="/console/queues" {
                    div.label { "Workers" }
                    div.value { (workers) }
                }
                a.tile href="/console/queues" {
                    div.label { "Scheduler leader" }
                    div.value data-overview="scheduler_leader" data-kind="bool" {
                        (if overview["scheduler_leader"].as_bool() == Some(true) { "yes" } else { "no" })
                    }
                }
            }
            h2 { "Products" }
            p #live-new .notice hidden { "A product was added: " a href="/console" { "reload" } " to see it." }
            @if products.is_empty() {
                (empty("No products yet.", html! {
                    "Create one under " a href="/console/products" { "Products" }
                    " (or with " code { "flash-sale admin products create" } "); its stock and pace show here, live."
                }))
            } @else {
                (products_table(&products))
            }
            h2 { "Partitions" }
            (partitions_table(&partitions))
        }
    }
}

fn products_table(products: &[Value]) -> Markup {
    html! {
        div.table-wrap {
            table #products {
                thead { tr {
                    th { "Product" }
                    th.num { "Stock" } th.num { "Held" } th.num { "Pending" } th.num { "Paid" } th.num { "Canceled" }
                    th.num { "Granted/s" } th.num { "Refused/s" } th.num { "p50 ms" } th.num { "p99 ms" }
                    th.num { "Limit" } th { "Sale window" }
                } }
                tbody {
                    @for product in products {
                        @let fields = Fields(product);
                        tr data-product-id=(product["id"]) {
                            td { (fields.text("name")) " " span.muted { "#" (product["id"]) } }
                            (int_cell(product, "stock")) (int_cell(product, "held")) (int_cell(product, "pending"))
                            (int_cell(product, "paid")) (int_cell(product, "canceled"))
                            td.num data-field="granted_per_sec" data-kind="rate" { (fields.rate("granted_per_sec")) }
                            td.num data-field="refused_per_sec" data-kind="rate" { (fields.rate("refused_per_sec")) }
                            td.num data-field="outcome_p50_ms" data-kind="ms" { (fields.ms("outcome_p50_ms")) }
                            td.num data-field="outcome_p99_ms" data-kind="ms" { (fields.ms("outcome_p99_ms")) }
                            td.num { (fields.ms("max_per_customer")) }
                            td.window { (window(product)) }
                        }
                    }
                }
            }
        }
    }
}

/// A product's sale window in a few words: open, from, until, or both.
fn window(product: &Value) -> Markup {
    let (starts, ends) = (
        product["sale_starts_at"].as_str(),
        product["sale_ends_at"].as_str(),
    );
    html! {
        @match (starts, ends) {
            (None, None) => span.muted { "always open" },
            (Some(_), None) => { "from " (time(starts)) },
            (None, Some(_)) => { "until " (time(ends)) },
            (Some(_), Some(_)) => { (time(starts)) " → " (time(ends)) },
        }
    }
}

/// The partitions' depth, consumers and owner (also on the queues page).
pub fn partitions_table(partitions: &[Value]) -> Markup {
    html! {
        div.table-wrap {
            table #partitions {
                thead { tr { th.num { "Partition" } th.num { "Messages" } th.num { "Consumers" } th { "Worker" } } }
                tbody {
                    @for partition in partitions {
                        tr data-partition=(partition["partition"]) {
                            td.num { (partition["partition"]) }
                            (int_cell(partition, "messages"))
                            (int_cell(partition, "consumers"))
                            td data-field="worker" { (Fields(partition).text("worker")) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/live`: the overview as `event: overview` once a second.
pub async fn live(Operator(_): Operator, State(state): State<AppState>) -> Response {
    let stream = futures_util::stream::unfold(
        (state, tokio::time::interval(EVERY)),
        |(state, mut tick)| async move {
            tick.tick().await;
            let event = match overview_json(&state).await {
                Ok(overview) => Event::default()
                    .event("overview")
                    .data(overview.to_string()),
                // A failed read skips a beat; the page keeps its numbers.
                Err(problem) => Event::default().comment(problem.detail),
            };
            Some((Ok::<_, Infallible>(event), (state, tick)))
        },
    );
    let no_buffering = (
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    (
        [no_buffering],
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response()
}
