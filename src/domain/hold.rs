//! Holds: stock taken for a while, until it becomes an order or expires.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Used,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Hold {
    pub id: Uuid,
    pub product_id: i64,
    pub qty: i64,
    pub unit_price: i64,
    pub amount: i64,
    pub status: HoldStatus,
    /// The buyer (`sub` of the token) it was granted to; `null`: anonymous.
    pub customer_id: Option<String>,
    #[serde(serialize_with = "crate::time::millis")]
    pub expires_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::millis")]
    pub created_at: DateTime<Utc>,
}

impl Hold {
    /// The hold a granted request makes: `qty` units at `unit_price`, from
    /// `now` until `now + ttl`. Its id is its job's.
    pub fn granted(
        id: Uuid,
        product_id: i64,
        qty: i64,
        unit_price: i64,
        customer_id: Option<String>,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Self {
        Self {
            id,
            product_id,
            qty,
            unit_price,
            amount: unit_price * qty,
            status: HoldStatus::Active,
            customer_id,
            expires_at: now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
            created_at: now,
        }
    }

    /// Whether `customer` may make an order of it: anyone for an anonymous
    /// hold, only its buyer for a buyer's.
    pub fn belongs_to(&self, customer: Option<&str>) -> bool {
        match &self.customer_id {
            None => true,
            Some(owner) => customer == Some(owner.as_str()),
        }
    }

    /// An active hold past its expiry is expired for every purpose, even
    /// before the sweep has given its stock back.
    pub fn as_seen_at(mut self, now: DateTime<Utc>) -> Self {
        if self.status == HoldStatus::Active && self.expires_at <= now {
            self.status = HoldStatus::Expired;
        }
        self
    }

    /// The hold as its job granted it (a job's `result`): everything but
    /// the status is fixed once made, and it was made active.
    pub fn as_granted(mut self) -> Self {
        self.status = HoldStatus::Active;
        self
    }
}
