//! Products and why their stock changes.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Upper bounds keep arithmetic far from BIGINT overflow and catch typos
/// (a price of 10^15 cents is a mistake, not a product).
pub const MAX_PRICE: i64 = 1_000_000_000_000;
pub const MAX_STOCK: i64 = 1_000_000_000;
pub const MAX_NAME_CHARS: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub id: i64,
    pub name: String,
    /// Minor units (cents).
    pub price: i64,
    /// Units available now.
    pub stock: i64,
    /// Units one buyer may hold and buy in all (active holds plus pending
    /// or paid orders); `null`: no limit, anonymous buyers welcome.
    #[schema(minimum = 1)]
    pub max_per_customer: Option<i64>,
    /// Holds recorded before this are refused; `null`: open from creation.
    #[serde(serialize_with = "crate::time::millis_opt")]
    pub sale_starts_at: Option<DateTime<Utc>>,
    /// Holds recorded at or after this are refused; `null`: never closes.
    #[serde(serialize_with = "crate::time::millis_opt")]
    pub sale_ends_at: Option<DateTime<Utc>>,
}

/// Where a product's sale stands at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaleWindow {
    NotStarted(DateTime<Utc>),
    Open,
    Ended,
}

impl SaleWindow {
    /// The window `[starts, ends)` seen at `at`.
    pub fn at(
        starts: Option<DateTime<Utc>>,
        ends: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Self {
        match (starts, ends) {
            (Some(starts), _) if at < starts => SaleWindow::NotStarted(starts),
            (_, Some(ends)) if at >= ends => SaleWindow::Ended,
            _ => SaleWindow::Open,
        }
    }
}

impl Product {
    pub fn window_at(&self, at: DateTime<Utc>) -> SaleWindow {
        SaleWindow::at(self.sale_starts_at, self.sale_ends_at, at)
    }
}

/// A validated admin request to create a product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProduct {
    pub name: String,
    pub price: i64,
    pub stock: i64,
    pub max_per_customer: Option<i64>,
    pub sale_starts_at: Option<DateTime<Utc>>,
    pub sale_ends_at: Option<DateTime<Utc>>,
}

/// A validated admin change to a product: `None` leaves a field as it is;
/// `Some(None)` clears a nullable one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProductChange {
    pub name: Option<String>,
    pub price: Option<i64>,
    pub max_per_customer: Option<Option<i64>>,
    pub sale_starts_at: Option<Option<DateTime<Utc>>>,
    pub sale_ends_at: Option<Option<DateTime<Utc>>>,
}

impl ProductChange {
    /// `product` with this change applied.
    pub fn applied_to(&self, mut product: Product) -> Product {
        if let Some(name) = &self.name {
            product.name.clone_from(name);
        }
        if let Some(price) = self.price {
            product.price = price;
        }
        if let Some(limit) = self.max_per_customer {
            product.max_per_customer = limit;
        }
        if let Some(starts) = self.sale_starts_at {
            product.sale_starts_at = starts;
        }
        if let Some(ends) = self.sale_ends_at {
            product.sale_ends_at = ends;
        }
        product
    }
}

/// A sale window must end after it starts.
pub fn window_is_ordered(starts: Option<DateTime<Utc>>, ends: Option<DateTime<Utc>>) -> bool {
    match (starts, ends) {
        (Some(starts), Some(ends)) => ends > starts,
        _ => true,
    }
}

/// Why a stock ledger row exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerReason {
    /// Stock a product was created with.
    Initial,
    /// Admin restock.
    Restock,
    /// A hold took stock.
    Hold,
    /// An expired hold gave its stock back.
    HoldExpired,
    /// A failed payment canceled the order and gave its stock back.
    PaymentFailed,
}

impl LedgerReason {
    /// Reasons that add stock from outside (what "total stocked" sums).
    pub const STOCKED: [LedgerReason; 2] = [LedgerReason::Initial, LedgerReason::Restock];
}
