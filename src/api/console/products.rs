//! Product admin: create, restock, and edit name, price, limit and sale
//! window. Each form is read by the admin API's own rules.

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
use crate::api::{
    error::ApiError,
    input,
    products::{self, change_product, create_product, restock_product},
    requests::{CreateProduct, Restock, UpdateProduct},
    state::AppState,
};

/// `GET /console/products`.
pub async fn show(
    Operator(session): Operator,
    State(state): State<AppState>,
    Query(notice): Query<Notice>,
) -> Response {
    render(&state, &session.csrf(), notice.banner()).await
}

async fn render(state: &AppState, csrf: &str, mut banner: Banner) -> Response {
    let listed = products::list(State(state.clone())).await;
    let products: Vec<Value> = match listed {
        Ok(axum::Json(list)) => list
            .data
            .into_iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect(),
        Err(e) => {
            banner.problem.get_or_insert(e.into_problem().0);
            Vec::new()
        }
    };
    let body = html! {
        section.card {
            h2 { "New product" }
            form #create-product .inline method="post" action="/console/products" {
                (csrf_field(csrf))
                label { "Name" input name="name" required maxlength="255"; }
                label { "Price (cents)" input type="number" name="price" min="0" required; }
                label { "Stock" input type="number" name="stock" min="0" required; }
                (limit_and_window(None))
                button type="submit" { "Create" }
            }
        }
        h2 { "Products" }
        @if products.is_empty() {
            (empty("No products yet.", html! { "Create the first one above; buyers can hold it at once (or from its sale window's start)." }))
        }
        @for product in &products { (product_card(csrf, product)) }
    };
    (
        banner.status(),
        page("Products", "/console/products", csrf, &banner, body),
    )
        .into_response()
}

/// The limit and window inputs; a window is typed in local time and sent
/// in UTC by the page's script (into the hidden field of the same name).
fn limit_and_window(product: Option<&Value>) -> Markup {
    let at = |field: &str| {
        product
            .and_then(|p| p[field].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let limit = product
        .and_then(|p| p["max_per_customer"].as_i64())
        .map(|l| l.to_string())
        .unwrap_or_default();
    html! {
        label { "Limit per buyer" input type="number" name="max_per_customer" min="1" value=(limit) placeholder="none"; }
        @for (field, label) in [("sale_starts_at", "Sale opens"), ("sale_ends_at", "Sale closes")] {
            label {
                (label)
                input type="datetime-local" data-for=(field) data-utc=(at(field));
                input type="hidden" name=(field) value=(at(field));
            }
        }
    }
}

fn product_card(csrf: &str, product: &Value) -> Markup {
    let fields = Fields(product);
    let id = fields.text("id");
    html! {
        section.card.product data-product-id=(id) {
            h2 { (fields.text("name")) " " span.muted { "#" (id) } }
            dl.facts {
                dt { "Stock" } dd.num data-field="stock" { (fields.ms("stock")) }
                dt { "Price (cents)" } dd.num { (fields.ms("price")) }
                dt { "Limit per buyer" } dd { (fields.text("max_per_customer")) }
                dt { "Sale window" } dd { (time(product["sale_starts_at"].as_str())) " → " (time(product["sale_ends_at"].as_str())) }
            }
            form.restock.inline method="post" action={ "/console/products/" (id) "/restock" } {
                (csrf_field(csrf))
                label { "Add units" input type="number" name="qty" min="1" required; }
                button type="submit" { "Restock" }
            }
            details {
                summary { "Edit name, price, limit, window" }
                form.edit.inline method="post" action={ "/console/products/" (id) "/edit" } {
                    (csrf_field(csrf))
                    label { "Name" input name="name" value=(fields.text("name")) maxlength="255"; }
                    label { "Price (cents)" input type="number" name="price" min="0" value=(fields.ms("price")); }
                    (limit_and_window(Some(product)))
                    button type="submit" { "Save" }
                }
                p.muted { "A blank limit or window time clears it." }
            }
        }
    }
}

/// `POST /console/products`.
pub async fn create(State(state): State<AppState>, form: ActionForm) -> Response {
    let body = form.as_json(&[
        ("name", Kind::Text, Blank::Absent),
        ("price", Kind::Integer, Blank::Absent),
        ("stock", Kind::Integer, Blank::Absent),
        ("max_per_customer", Kind::Integer, Blank::Absent),
        ("sale_starts_at", Kind::Text, Blank::Absent),
        ("sale_ends_at", Kind::Text, Blank::Absent),
    ]);
    let outcome = async {
        let body: CreateProduct = input::read(&body, &state.settings)?;
        create_product(&state, body).await
    };
    finish(
        &state,
        &form,
        outcome.await.map(|p| Done::Created { product_id: p.id }),
    )
    .await
}

/// `POST /console/products/{id}/restock`.
pub async fn restock(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ActionForm,
) -> Response {
    let body = form.as_json(&[("qty", Kind::Integer, Blank::Absent)]);
    let outcome = async {
        let id = product_id(&id)?;
        let Restock { qty } = input::read(&body, &state.settings)?;
        restock_product(&state, id, qty).await
    };
    finish(
        &state,
        &form,
        outcome.await.map(|p| Done::Restocked { product_id: p.id }),
    )
    .await
}

/// `POST /console/products/{id}/edit`.
pub async fn edit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: ActionForm,
) -> Response {
    let body = form.as_json(&[
        ("name", Kind::Text, Blank::Absent),
        ("price", Kind::Integer, Blank::Absent),
        ("max_per_customer", Kind::Integer, Blank::Null),
        ("sale_starts_at", Kind::Text, Blank::Null),
        ("sale_ends_at", Kind::Text, Blank::Null),
    ]);
    let outcome = async {
        let id = product_id(&id)?;
        let body: UpdateProduct = input::read(&body, &state.settings)?;
        change_product(&state, id, body).await
    };
    finish(
        &state,
        &form,
        outcome.await.map(|p| Done::Changed { product_id: p.id }),
    )
    .await
}

fn product_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(format_args!("product {id:?}")))
}

async fn finish(state: &AppState, form: &ActionForm, outcome: Result<Done, ApiError>) -> Response {
    match outcome {
        Ok(done) => Redirect::to(&done.location("/console/products")).into_response(),
        Err(e) => {
            render(
                state,
                &form.session.csrf(),
                Banner::problem(e.into_problem().0),
            )
            .await
        }
    }
}
