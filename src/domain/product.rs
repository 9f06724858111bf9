//! Products and why their stock changes.

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
}

/// A validated admin request to create a product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProduct {
    pub name: String,
    pub price: i64,
    pub stock: i64,
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
