//! Hold rows as clients see them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Used,
    Expired,
}

crate::text_column!(HoldStatus);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Hold {
    pub id: Uuid,
    pub product_id: i64,
    pub qty: i64,
    pub unit_price: i64,
    pub amount: i64,
    pub status: HoldStatus,
    #[serde(serialize_with = "crate::time::millis")]
    pub expires_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::millis")]
    pub created_at: DateTime<Utc>,
}

impl Hold {
    /// An active hold past its expiry is expired for every purpose, even
    /// before the sweep has given its stock back.
    pub fn as_seen_at(mut self, now: DateTime<Utc>) -> Self {
        if self.status == HoldStatus::Active && self.expires_at <= now {
            self.status = HoldStatus::Expired;
        }
        self
    }
}

pub async fn get(pool: &MySqlPool, id: Uuid) -> sqlx::Result<Option<Hold>> {
    sqlx::query_as(
        "SELECT id, product_id, qty, unit_price, amount, status, expires_at, created_at \
         FROM holds WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}
