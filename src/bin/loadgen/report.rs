//! The per-run report, as text or JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    args::{Args, Flow, Mode},
    full::FullReport,
    sold_out::SoldOutReport,
    stats::{LatencySummary, PhaseStat, Timeline},
    stock_check::StockCheck,
    target::Target,
};

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
    pub(crate) errors: BTreeMap<String, usize>,
    /// Pipeline only: failed job reads, retried.
    pub(crate) poll_errors: BTreeMap<String, usize>,
    pub(crate) unfinished_jobs: usize,
    pub(crate) stock_check: Option<StockCheck>,
    /// Requests per second of each phase.
    pub(crate) phases: Vec<PhaseStat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) full: Option<FullReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sold_out: Option<SoldOutReport>,
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
            requests: args.requests,
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
            errors: BTreeMap::new(),
            poll_errors: BTreeMap::new(),
            unfinished_jobs: 0,
            stock_check: None,
            phases: Vec::new(),
            full: None,
            sold_out: None,
            accept_latency_timeline: None,
            samples: Vec::new(),
        }
    }

    pub(crate) fn decided(&self) -> usize {
        self.granted + self.rejected
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
        self.unfinished_jobs == 0
            && self.stock_check.as_ref().is_some_and(|c| c.pass)
            && full_ok
            && sold_out_ok
    }

    pub(crate) fn print_text(&self) {
        let s = |d: f64| format!("{d:.3} s");
        let full = self.flow == Flow::Full.as_str();
        if full {
            println!(
                "== {}, full flow (product {}) ==",
                self.mode, self.product_id
            );
            println!(
                "  buyers               {} purchases by {} concurrent buyers",
                self.requests, self.clients
            );
        } else {
            println!("== {} (product {}) ==", self.mode, self.product_id);
            println!("  requests             {}", self.requests);
        }
        println!(
            "  accept               {} ({:.1} req/s){}",
            s(self.accept_elapsed_s),
            self.accept_requests_per_s,
            if full {
                ", hold POSTs with Prefer: wait=10"
            } else {
                ""
            }
        );
        let source = self
            .end_to_end_source
            .map_or_else(String::new, |src| format!(", end from {src}"));
        println!(
            "  end to end           {} ({:.1} decided/s{source})",
            s(self.end_to_end_elapsed_s),
            self.end_to_end_decided_per_s
        );
        println!("  accept latency ms    {}", self.accept_latency_ms.text());
        if let Some(to_outcome) = &self.time_to_outcome_ms {
            println!("  time to outcome ms   {}", to_outcome.text());
        }
        match (self.rejected_at_once, &self.full) {
            (_, Some(full)) => println!(
                "  granted / rejected   {} / {} ({} learnt by polling after the wait)",
                self.granted, self.rejected, full.holds_polled_after_wait
            ),
            (Some(at_once), None) if self.mode == Mode::Pipeline.as_str() => println!(
                "  granted / rejected   {} / {} ({at_once} of them at once, from the cache)",
                self.granted, self.rejected
            ),
            _ => println!(
                "  granted / rejected   {} / {}",
                self.granted, self.rejected
            ),
        }
        println!("  errors               {}", counts_text(&self.errors));
        if !self.poll_errors.is_empty() {
            println!("  poll errors (retried) {}", counts_text(&self.poll_errors));
        }
        if self.mode == Mode::Pipeline.as_str() {
            println!("  unfinished jobs      {}", self.unfinished_jobs);
        }
        if let Some(full) = &self.full {
            let o = &full.orders;
            println!(
                "  orders               {} created of {} ({:.1} req/s); refused: {}; errors: {}{}",
                o.created,
                o.attempted,
                o.requests_per_s,
                counts_text(&o.refused),
                counts_text(&o.errors),
                if o.unfinished > 0 || o.polled_after_wait > 0 {
                    format!(
                        "; {} polled after the wait, {} unfinished",
                        o.polled_after_wait, o.unfinished
                    )
                } else {
                    String::new()
                }
            );
            println!("  order latency ms     {}", o.latency_ms.text());
            let p = &full.payments;
            println!(
                "  payments             {} webhooks accepted ({:.1} req/s): success {} / failed {} \
                 / abandoned {}; errors: {}",
                p.accepted,
                p.requests_per_s,
                p.to_pay_success,
                p.to_pay_failed,
                p.abandoned,
                counts_text(&p.errors)
            );
            println!("  webhook latency ms   {}", p.webhook_latency_ms.text());
            println!(
                "  payment jobs         {} (all final {:.3} s after the buyers); unfinished {}{}",
                counts_text(&p.job_outcomes),
                p.settle_s,
                p.unfinished_jobs,
                if p.poll_errors.is_empty() {
                    String::new()
                } else {
                    format!("; poll errors (retried) {}", counts_text(&p.poll_errors))
                }
            );
            let st = &full.order_states;
            println!(
                "  order states         {}: {} read: {} (expected {}){}",
                if st.pass { "PASS" } else { "FAIL" },
                st.read,
                counts_text(&st.states),
                counts_text(&st.expected),
                if st.mismatches.is_empty() {
                    String::new()
                } else {
                    format!("; mismatches: {}", counts_text(&st.mismatches))
                }
            );
            if !full.holds_without_order.is_empty() {
                println!(
                    "  holds without order  {}",
                    counts_text(&full.holds_without_order)
                );
            }
        }
        if let Some(check) = &self.stock_check {
            let returned = match (check.canceled_units, check.released_hold_units) {
                (Some(canceled), Some(0)) => format!(" + canceled {canceled} units"),
                (Some(canceled), Some(released)) => {
                    format!(" + canceled {canceled} units + expired holds {released} units")
                }
                _ => String::new(),
            };
            println!(
                "  stock check          {}: stock {} (expected {} = initial {} - granted {} units{returned})",
                if check.pass { "PASS" } else { "FAIL" },
                check.actual_stock,
                check.expected_stock,
                check.initial_stock,
                check.granted_units
            );
        }
        if !self.phases.is_empty() {
            println!("  requests/s by phase");
            for phase in &self.phases {
                println!(
                    "    {:<22} {:>7} requests in {:>8.3} s  {:>9.1} req/s",
                    phase.name, phase.requests, phase.elapsed_s, phase.requests_per_s
                );
            }
        }
        if let Some(sold_out) = &self.sold_out {
            let verdict = match sold_out.pass {
                Some(true) => "PASS: ",
                Some(false) => "FAIL: ",
                None => "",
            };
            println!(
                "  sold-out             {verdict}{} holds in {} ({:.1} req/s) on stock {}{}",
                sold_out.requests,
                s(sold_out.elapsed_s),
                sold_out.requests_per_s,
                sold_out.stock_before,
                if sold_out.drained_units > 0 {
                    format!(
                        " (after draining {} returned units)",
                        sold_out.drained_units
                    )
                } else {
                    String::new()
                }
            );
            println!(
                "    immediate 409 (no job) {}, queued {}, granted {}; errors: {}",
                sold_out.rejected_at_once,
                sold_out.queued,
                sold_out.granted,
                counts_text(&sold_out.errors)
            );
            println!("    latency ms         {}", sold_out.latency_ms.text());
        }
    }
}

pub(crate) fn counts_text(counts: &BTreeMap<String, usize>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(key, n)| format!("{key}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Serialize, Debug)]
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) mode: &'static str,
    pub(crate) runs: Vec<RunReport>,
    /// pipeline end_to_end_decided_per_s / baseline end_to_end_decided_per_s
    /// (holds flow only).
    pub(crate) pipeline_to_baseline_ratio: Option<f64>,
    pub(crate) pass: bool,
}
