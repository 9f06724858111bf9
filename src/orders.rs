//! Order rows as clients see them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Paid,
    Canceled,
}

crate::text_column!(OrderStatus);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub hold_id: Uuid,
    pub product_id: i64,
    pub qty: i64,
    pub amount: i64,
    pub status: OrderStatus,
    #[serde(serialize_with = "crate::time::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::millis")]
    pub updated_at: DateTime<Utc>,
}

pub async fn get(pool: &MySqlPool, id: Uuid) -> sqlx::Result<Option<Order>> {
    sqlx::query_as(
        "SELECT id, hold_id, product_id, qty, amount, status, created_at, updated_at FROM orders WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}
