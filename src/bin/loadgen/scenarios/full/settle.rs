//! After the buyers: wait for every payment job, then read every order (and
//! every granted hold left without one) back.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    client::{Api, each_concurrent, job_error_code, poll_jobs},
    config::POLL_CONCURRENCY,
    measure::{LatencySummary, PhaseStat, bump, per_second},
    scenarios::{
        full::tally::PaymentTally,
        progress::Progress,
        records::{OrderStatesReport, PaymentsReport, RunReport},
    },
};

/// Polls the payment jobs until final: every accepted payment must be
/// settled before the orders are read back.
pub(super) async fn settle_payments(
    api: &Api,
    pay: PaymentTally,
    start: Instant,
    buyers_done: Instant,
    quiet: bool,
    report: &mut RunReport,
) -> PaymentsReport {
    eprintln!(
        "pipeline: polling {} payment jobs until final",
        pay.jobs.len()
    );
    let poll_start = Instant::now();
    let progress = Progress::start(
        "[pipeline payment jobs]".into(),
        pay.jobs.len(),
        "jobs/s",
        quiet,
    );
    let accepted = pay.jobs.len();
    let paid = poll_jobs(api, pay.jobs, start, &progress.counter()).await;
    progress.finish().await;
    report.phases.push(PhaseStat::new(
        "payment job polls",
        paid.polls,
        paid.gave_up_at - poll_start,
    ));
    let mut job_outcomes = BTreeMap::new();
    for doc in &paid.finals {
        if doc.status == "succeeded" {
            let outcome = doc
                .result
                .as_ref()
                .and_then(|result| result.get("outcome"))
                .and_then(Value::as_str)
                .unwrap_or("no outcome");
            bump(&mut job_outcomes, outcome.to_owned());
        } else {
            let code = job_error_code(doc).unwrap_or("no code");
            bump(&mut job_outcomes, format!("failed: {code}"));
        }
    }
    if paid.missing > 0 {
        job_outcomes.insert("job 404 (never issued)".into(), paid.missing);
    }
    let settled = paid
        .last_final
        .map_or(Duration::ZERO, |t| t.saturating_duration_since(buyers_done));
    PaymentsReport {
        to_pay_success: pay.to_pay.0,
        to_pay_failed: pay.to_pay.1,
        abandoned: pay.to_pay.2,
        accepted,
        errors: pay.errors,
        requests_per_s: per_second(pay.webhooks.count, pay.webhooks.elapsed()),
        webhook_latency_ms: LatencySummary::of(pay.latencies),
        job_outcomes,
        unfinished_jobs: paid.unfinished,
        poll_errors: paid.poll_errors,
        settle_s: settled.as_secs_f64(),
    }
}

/// What reading back found.
pub(super) struct ReadBack {
    pub(super) order_states: OrderStatesReport,
    /// Granted holds that did not become an order, by status read back.
    pub(super) holds_without_order: BTreeMap<String, usize>,
    /// Units given back by canceled orders.
    pub(super) canceled_units: i64,
    /// Units given back by holds that expired without an order.
    pub(super) released_units: i64,
}

/// Reads every order back against what its buyer's intent calls for, then
/// the granted holds left without an order (which keep their stock unless
/// they expired).
pub(super) async fn read_back(
    api: &mut Api,
    order_checks: Vec<(String, &'static str)>,
    orphan_holds: &[String],
    qty: i64,
    quiet: bool,
    report: &mut RunReport,
) -> ReadBack {
    eprintln!("pipeline: reading back {} orders", order_checks.len());
    let verify_start = Instant::now();
    let progress = Progress::start(
        "[pipeline order check]".into(),
        order_checks.len(),
        "req/s",
        quiet,
    );
    let reads = order_checks.len();
    let results = each_concurrent(
        api,
        order_checks,
        POLL_CONCURRENCY,
        async |reader: &mut Api, (order_id, expected): (String, &'static str)| {
            let read = reader.get_json(&format!("/api/v1/orders/{order_id}")).await;
            progress.tick();
            (expected, read)
        },
    )
    .await;
    progress.finish().await;
    let mut states = BTreeMap::new();
    let mut expected_counts = BTreeMap::new();
    let mut mismatches = BTreeMap::new();
    let mut canceled_units = 0i64;
    for (expected, read) in results {
        bump(&mut expected_counts, expected.to_owned());
        let status = status_of(&read);
        if status == "canceled" {
            canceled_units += qty_of(&read).unwrap_or(qty);
        }
        if status != expected {
            bump(
                &mut mismatches,
                format!("expected {expected}, got {status}"),
            );
        }
        bump(&mut states, status);
    }

    let mut holds_without_order = BTreeMap::new();
    let mut released_units = 0i64;
    for hold_id in orphan_holds {
        let read = api.get_json(&format!("/api/v1/holds/{hold_id}")).await;
        let status = status_of(&read);
        if status == "expired" {
            released_units += qty_of(&read).unwrap_or(qty);
        }
        bump(&mut holds_without_order, status);
    }
    report.phases.push(PhaseStat::new(
        "order check",
        reads + orphan_holds.len(),
        verify_start.elapsed(),
    ));
    ReadBack {
        order_states: OrderStatesReport {
            read: reads,
            pass: mismatches.is_empty(),
            states,
            expected: expected_counts,
            mismatches,
        },
        holds_without_order,
        canceled_units,
        released_units,
    }
}

/// The `status` of a resource read back, or what went wrong reading it.
fn status_of(read: &Result<Value, String>) -> String {
    match read {
        Ok(doc) => doc
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("no status")
            .to_owned(),
        Err(key) => format!("read error: {key}"),
    }
}

fn qty_of(read: &Result<Value, String>) -> Option<i64> {
    read.as_ref().ok()?.get("qty")?.as_i64()
}
