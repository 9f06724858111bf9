//! The buyers' part of a run's record: who got what, the per-customer
//! limit checked, and the sale's opening.

use serde::Serialize;

#[derive(Serialize, Debug)]
pub(crate) struct BuyersReport {
    pub(crate) buyers: usize,
    pub(crate) holds_per_buyer: usize,
    /// Hold requests (429s and `sale_not_started` honored and sent again
    /// count once).
    pub(crate) hold_requests: usize,
    /// Whether each buyer sent a token of its own.
    pub(crate) tokens: bool,
    pub(crate) granted_holds: usize,
    pub(crate) granted_units: i64,
    pub(crate) refused: RefusedByReason,
    /// Present when the product has a per-customer limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) limit_check: Option<LimitCheck>,
    /// Present with `--sale-starts-in`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) opening: Option<OpeningReport>,
}

/// Holds refused, as decided (a `sale_not_started` honored and sent again
/// is not a decision; one still refused after the retries is `other`).
#[derive(Serialize, Debug, Default, PartialEq, Eq)]
pub(crate) struct RefusedByReason {
    pub(crate) customer_limit_reached: usize,
    pub(crate) insufficient_stock: usize,
    pub(crate) other: usize,
}

/// "No buyer over the limit", from the holds the api granted: each one's
/// `customer_id` and `qty` as the api reported them (the job's result, or
/// the 201's body).
#[derive(Serialize, Debug, PartialEq, Eq)]
pub(crate) struct LimitCheck {
    pub(crate) max_per_customer: i64,
    /// Buyers granted at least one hold.
    pub(crate) buyers_granted: usize,
    /// The most units one buyer was granted.
    pub(crate) most_units: i64,
    /// Buyers granted more than the limit.
    pub(crate) buyers_over_limit: usize,
    /// Granted holds the api recorded for no buyer, or for another buyer
    /// than the one whose token asked.
    pub(crate) misattributed_holds: usize,
    pub(crate) pass: bool,
}

#[derive(Serialize, Debug, PartialEq)]
pub(crate) struct OpeningReport {
    pub(crate) sale_starts_at: String,
    /// `sale_not_started` answers honored (the buyer waited for the start
    /// and sent the hold again).
    pub(crate) refused_not_started: usize,
    /// Hold requests that met at least one of them.
    pub(crate) requests_refused_not_started: usize,
    /// From the opening to the first granted hold.
    pub(crate) first_grant_ms: Option<f64>,
    /// From the opening to the last hold decided (granted or refused).
    pub(crate) last_decision_ms: Option<f64>,
}
