//! What a run measured: the records the scenarios fill in and the report
//! layer prints (text) or serializes (`--json`: the field order here is
//! the JSON's).

mod buyers;
mod full;

use std::collections::BTreeMap;

use serde::Serialize;

pub(crate) use buyers::{BuyersReport, LimitCheck, OpeningReport, RefusedByReason};
pub(crate) use full::{FullReport, OrderStatesReport, OrdersReport, PaymentsReport};

use crate::{
    config::{Args, Flow, Mode},
    measure::{CpuReport, EtaAccuracy, LatencySummary, PhaseStat, Timeline},
    scenarios::target::Target,
};

/// One mode's run.
#[derive(Serialize, Debug)]
pub(crate) struct RunReport {
    pub(crate) mode: &'static str,
    /// `holds` or `full`.
    pub(crate) flow: &'static str,
    pub(crate) product_id: i64,
    product_created: bool,
    pub(crate) clients: usize,
    pub(crate) requests: usize,
    /// Offered requests/s of the hold phase (`--rate`); `None`: closed loop.
    pub(crate) rate: Option<f64>,
    pub(crate) qty: i64,
    /// From the start until the last hold POST was answered.
    pub(crate) accept_elapsed_s: f64,
    pub(crate) accept_requests_per_s: f64,
    /// From the start until the last hold outcome was known.
    pub(crate) end_to_end_elapsed_s: f64,
    /// How the pipeline's end was measured: `completed_at` (server clock,
    /// same host), `polling`, `timeout`, or `client` (full flow: when the
    /// buyer learnt it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) end_to_end_source: Option<&'static str>,
    /// (granted + rejected) per second of end-to-end time.
    pub(crate) end_to_end_decided_per_s: f64,
    /// The hold POST (full flow: with `Prefer: wait=10`, so mostly the
    /// outcome).
    pub(crate) accept_latency_ms: LatencySummary,
    pub(crate) time_to_outcome_ms: Option<LatencySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) answered_202_or_409: Option<usize>,
    pub(crate) granted: usize,
    pub(crate) rejected: usize,
    /// 409s answered at once from the api's cache (no job); not known in
    /// the full flow, where a 409 after `Prefer: wait` looks the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rejected_at_once: Option<usize>,
    /// Holds refused (409), by problem code: `rejected` in all.
    pub(crate) refused: BTreeMap<String, usize>,
    /// 429 answers, each honored (`Retry-After`) and sent again.
    pub(crate) rate_limited: usize,
    pub(crate) errors: BTreeMap<String, usize>,
    /// Pipeline only: failed job reads, retried.
    pub(crate) poll_errors: BTreeMap<String, usize>,
    pub(crate) unfinished_jobs: usize,
    /// Pipeline hold run: jobs the scheduler relayed over it (the
    /// `flash_jobs_relayed_total` scraped before and after); absent when a
    /// scrape failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) jobs_relayed: Option<u64>,
    /// Pipeline hold run: CPU of the `--cpu-pid` processes over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu: Option<CpuReport>,
    pub(crate) stock_check: Option<StockCheck>,
    /// Requests per second of each phase.
    pub(crate) phases: Vec<PhaseStat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) full: Option<FullReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sold_out: Option<SoldOutReport>,
    /// Tokens, holds per buyer, the limit check, the opening.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) buyers: Option<BuyersReport>,
    /// Waiting-room etas against the time hold jobs then took; only when
    /// the api showed any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) queue_eta: Option<EtaAccuracy>,
    /// Accept latency per time bucket (also the `--svg` chart).
    pub(crate) accept_latency_timeline: Option<Timeline>,
    /// (sent at s since the phase start, accept latency ms) per hold POST.
    #[serde(skip)]
    pub(crate) samples: Vec<(f64, f64)>,
}

impl RunReport {
    pub(crate) fn new(mode: Mode, flow: Flow, args: &Args, target: Target) -> Self {
        Self {
            mode: mode.as_str(),
            flow: flow.as_str(),
            product_id: target.product_id,
            product_created: target.created,
            clients: args.clients,
            // Holds flow: hold requests; full flow: buyers' purchases.
            requests: match flow {
                Flow::Holds => args.hold_requests(),
                Flow::Full => args.requests,
            },
            rate: args.rate,
            qty: args.qty,
            accept_elapsed_s: 0.0,
            accept_requests_per_s: 0.0,
            end_to_end_elapsed_s: 0.0,
            end_to_end_source: None,
            end_to_end_decided_per_s: 0.0,
            accept_latency_ms: LatencySummary::of(Vec::new()),
            time_to_outcome_ms: None,
            answered_202_or_409: None,
            granted: 0,
            rejected: 0,
            rejected_at_once: None,
            refused: BTreeMap::new(),
            rate_limited: 0,
            errors: BTreeMap::new(),
            poll_errors: BTreeMap::new(),
            unfinished_jobs: 0,
            jobs_relayed: None,
            cpu: None,
            stock_check: None,
            phases: Vec::new(),
            full: None,
            sold_out: None,
            buyers: None,
            queue_eta: None,
            accept_latency_timeline: None,
            samples: Vec::new(),
        }
    }

    pub(crate) fn decided(&self) -> usize {
        self.granted + self.rejected
    }

    /// A hold refused with `code`: decided, counted by its code.
    pub(crate) fn refuse(&mut self, code: &str) {
        self.rejected += 1;
        *self.refused.entry(code.to_owned()).or_default() += 1;
    }

    pub(crate) fn passed(&self) -> bool {
        let full_ok = self.full.as_ref().is_none_or(|full| {
            full.order_states.pass
                && full.payments.unfinished_jobs == 0
                && full.orders.unfinished == 0
        });
        let sold_out_ok = self
            .sold_out
            .as_ref()
            .is_none_or(|sold_out| sold_out.pass != Some(false));
        let limit_ok = self
            .buyers
            .as_ref()
            .and_then(|buyers| buyers.limit_check.as_ref())
            .is_none_or(|check| check.pass);
        self.unfinished_jobs == 0
            && self.stock_check.as_ref().is_some_and(|c| c.pass)
            && full_ok
            && sold_out_ok
            && limit_ok
    }
}

/// Guarantee 1 (no oversell), read back through the api.
#[derive(Serialize, Debug)]
pub(crate) struct StockCheck {
    pub(crate) product_id: i64,
    pub(crate) initial_stock: i64,
    pub(crate) granted_units: i64,
    /// Full flow: units of canceled orders (given back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) canceled_units: Option<i64>,
    /// Full flow: units of granted holds that expired without an order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) released_hold_units: Option<i64>,
    pub(crate) expected_stock: i64,
    pub(crate) actual_stock: i64,
    pub(crate) pass: bool,
}

/// Extra holds at the sold-out product (`--sold-out-requests`).
#[derive(Serialize, Debug)]
pub(crate) struct SoldOutReport {
    pub(crate) requests: usize,
    /// Stock read just before (after draining).
    pub(crate) stock_before: i64,
    /// Units taken by holds first, so the product was really sold out
    /// (canceled orders give stock back).
    pub(crate) drained_units: i64,
    pub(crate) elapsed_s: f64,
    pub(crate) requests_per_s: f64,
    pub(crate) latency_ms: LatencySummary,
    /// 409 `insufficient_stock` at once, no job: answered from the cache.
    pub(crate) rejected_at_once: usize,
    /// 202s: a job reached the queue (pipeline; must be 0).
    pub(crate) queued: usize,
    /// 201s (baseline) or queued jobs that got stock.
    pub(crate) granted: usize,
    pub(crate) errors: BTreeMap<String, usize>,
    /// Pipeline only: no request reached the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pass: Option<bool>,
}
