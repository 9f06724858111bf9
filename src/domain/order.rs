//! Orders: a hold turned into a purchase, paid or canceled by the payment
//! provider's webhook.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Paid,
    Canceled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub hold_id: Uuid,
    pub product_id: i64,
    pub qty: i64,
    pub amount: i64,
    pub status: OrderStatus,
    /// The buyer of its hold; `null`: anonymous.
    pub customer_id: Option<String>,
    #[serde(serialize_with = "crate::time::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::millis")]
    pub updated_at: DateTime<Utc>,
}

impl Order {
    /// The order a hold becomes at `now`: pending, for the hold's units and
    /// amount. Its id is its job's.
    pub fn from_hold(id: Uuid, hold: &crate::domain::Hold, now: DateTime<Utc>) -> Self {
        Self {
            id,
            hold_id: hold.id,
            product_id: hold.product_id,
            qty: hold.qty,
            amount: hold.amount,
            status: OrderStatus::Pending,
            customer_id: hold.customer_id.clone(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The order as its job made it (a job's `result`): pending, updated
    /// when created.
    pub fn as_created(mut self) -> Self {
        self.status = OrderStatus::Pending;
        self.updated_at = self.created_at;
        self
    }
}
