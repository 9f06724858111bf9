//! The full flow's part of a run's record.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::measure::LatencySummary;

#[derive(Serialize, Debug)]
pub(crate) struct FullReport {
    pub(crate) fail_share: f64,
    pub(crate) abandon_share: f64,
    /// Holds still queued after `Prefer: wait=10`, whose outcome was polled.
    pub(crate) holds_polled_after_wait: usize,
    pub(crate) orders: OrdersReport,
    pub(crate) payments: PaymentsReport,
    pub(crate) order_states: OrderStatesReport,
    /// Granted holds that did not become an order, by status read back.
    pub(crate) holds_without_order: BTreeMap<String, usize>,
}

#[derive(Serialize, Debug)]
pub(crate) struct OrdersReport {
    pub(crate) attempted: usize,
    pub(crate) created: usize,
    /// 409 by problem code.
    pub(crate) refused: BTreeMap<String, usize>,
    pub(crate) errors: BTreeMap<String, usize>,
    /// Still queued after `Prefer: wait=10`, whose outcome was polled.
    pub(crate) polled_after_wait: usize,
    pub(crate) unfinished: usize,
    pub(crate) requests_per_s: f64,
    /// From the POST to the order's outcome.
    pub(crate) latency_ms: LatencySummary,
}

#[derive(Serialize, Debug)]
pub(crate) struct PaymentsReport {
    pub(crate) to_pay_success: usize,
    pub(crate) to_pay_failed: usize,
    pub(crate) abandoned: usize,
    /// Webhooks answered 202.
    pub(crate) accepted: usize,
    pub(crate) errors: BTreeMap<String, usize>,
    pub(crate) requests_per_s: f64,
    pub(crate) webhook_latency_ms: LatencySummary,
    /// Final payment jobs by `result.outcome` (or `failed: code`).
    pub(crate) job_outcomes: BTreeMap<String, usize>,
    pub(crate) unfinished_jobs: usize,
    pub(crate) poll_errors: BTreeMap<String, usize>,
    /// From the end of the buyers until the last payment job was final.
    pub(crate) settle_s: f64,
}

#[derive(Serialize, Debug)]
pub(crate) struct OrderStatesReport {
    pub(crate) read: usize,
    /// Order status read back → count (read failures as `read error: …`).
    pub(crate) states: BTreeMap<String, usize>,
    /// What the buyers' intents call for (a refused webhook is a mismatch).
    pub(crate) expected: BTreeMap<String, usize>,
    /// `expected X, got Y` → count.
    pub(crate) mismatches: BTreeMap<String, usize>,
    pub(crate) pass: bool,
}
