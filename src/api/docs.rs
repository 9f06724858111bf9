//! The OpenAPI document (`GET /api/v1/openapi.json`). Paths come from the
//! `#[utoipa::path]` on each handler, collected as the router is built, so
//! a route cannot be mounted without being documented.

#![allow(dead_code)] // Schema-only types: read by the OpenAPI derive, never built.

use axum::{Json, extract::State};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use crate::{domain::Product, payments::PaymentEvent};

#[derive(ToSchema)]
pub struct CreateProduct {
    /// 1 to 255 characters.
    name: String,
    /// Minor units (cents), ≥ 0.
    price: i64,
    /// ≥ 0.
    stock: i64,
}

#[derive(ToSchema)]
pub struct Restock {
    /// ≥ 1.
    qty: i64,
}

#[derive(ToSchema)]
pub struct CreateHold {
    product_id: i64,
    /// 1 to MAX_HOLD_QTY (default 10).
    qty: i64,
}

#[derive(ToSchema)]
pub struct CreateOrder {
    hold_id: Uuid,
}

#[derive(ToSchema)]
pub struct PaymentWebhook {
    /// 1 to 255 characters; the same key always maps to the same job.
    idempotency_key: String,
    order_id: Uuid,
    /// `success` or `failed`.
    status: String,
}

/// The 202 of an asynchronous command.
#[derive(ToSchema)]
pub struct Accepted {
    job_id: Uuid,
    /// `hold`, `order` or `payment`.
    kind: String,
    /// `queued` for a new job; a repeat shows the job's current status.
    status: String,
    /// Present for holds: the hold's id (= job id).
    hold_id: Option<Uuid>,
    /// Present for orders: the order's id (= job id).
    order_id: Option<Uuid>,
}

#[derive(ToSchema)]
pub struct ProductList {
    data: Vec<Product>,
}

#[derive(ToSchema)]
pub struct PaymentEventList {
    data: Vec<PaymentEvent>,
}

#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "This document"))
)]
pub async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.openapi.as_ref().clone())
}
