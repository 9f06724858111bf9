//! What the buyers' purchases add up to, before anything is read back.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    measure::{EtaSample, LatencySummary, PhaseStat, Span, bump, ms, per_second},
    scenarios::{
        crowd::{HoldFate, Verdict},
        full::{
            buyer::{Outcome, Purchase},
            intent::Intent,
        },
        gate::Opening,
        records::{OrdersReport, RunReport},
    },
};

/// The webhooks sent, still to be settled by polling their jobs.
pub(super) struct PaymentTally {
    /// (success, failed, abandoned)
    pub(super) to_pay: (usize, usize, usize),
    pub(super) errors: BTreeMap<String, usize>,
    pub(super) webhooks: Span,
    pub(super) latencies: Vec<f64>,
    /// Payment job ids of accepted webhooks.
    pub(super) jobs: Vec<String>,
}

pub(super) struct Tally {
    pub(super) holds_polled: usize,
    pub(super) orders: OrdersReport,
    pub(super) payments: PaymentTally,
    /// (order id, expected status)
    pub(super) order_checks: Vec<(String, &'static str)>,
    /// Granted holds whose order was not created.
    pub(super) orphan_holds: Vec<String>,
    /// Each hold's fate, for the buyers section.
    pub(super) fates: Vec<HoldFate>,
    /// Waiting-room etas seen while polling holds and orders.
    pub(super) etas: Vec<EtaSample>,
}

/// Folds the holds into `report` (counts, latencies, rates, phases) and
/// returns what the orders and payments add up to.
pub(super) fn tally(
    report: &mut RunReport,
    purchases: &[Purchase],
    (start, buyers_done): (Instant, Instant),
    buyer_requests: usize,
    (qty, opening): (i64, Option<Opening>),
) -> Tally {
    let mut holds = Span::default();
    let mut orders = Span::default();
    let mut last_decided = start;
    let mut hold_latencies = Vec::with_capacity(purchases.len());
    let mut to_outcome = Vec::with_capacity(purchases.len());
    let mut order_latencies = Vec::new();
    let mut tally = Tally {
        holds_polled: 0,
        orders: OrdersReport {
            attempted: 0,
            created: 0,
            refused: BTreeMap::new(),
            errors: BTreeMap::new(),
            polled_after_wait: 0,
            unfinished: 0,
            requests_per_s: 0.0,
            latency_ms: LatencySummary::of(Vec::new()),
        },
        payments: PaymentTally {
            to_pay: (0, 0, 0),
            errors: BTreeMap::new(),
            webhooks: Span::default(),
            latencies: Vec::new(),
            jobs: Vec::new(),
        },
        order_checks: Vec::new(),
        orphan_holds: Vec::new(),
        fates: Vec::with_capacity(purchases.len()),
        etas: Vec::new(),
    };

    for purchase in purchases {
        let hold = &purchase.hold;
        holds.add(hold.sent, hold.answered);
        hold_latencies.push(hold.latency_ms());
        report.samples.push((
            hold.sent.saturating_duration_since(start).as_secs_f64(),
            hold.latency_ms(),
        ));
        tally.holds_polled += usize::from(hold.polled);
        report.rate_limited += hold.waits.rate_limited;
        tally.etas.extend(hold.eta);
        let verdict = match &hold.outcome {
            Outcome::Done(made) => {
                report.granted += 1;
                if made.id.is_none() {
                    bump(&mut report.errors, "granted hold without id".into());
                }
                Verdict::Granted {
                    customer: made.customer.clone(),
                    units: made.units.unwrap_or(qty),
                }
            }
            Outcome::Refused(code) => {
                report.refuse(code);
                Verdict::Refused(code.clone())
            }
            Outcome::Error(key) => {
                bump(&mut report.errors, key.clone());
                Verdict::Undecided
            }
            Outcome::Unfinished => {
                report.unfinished_jobs += 1;
                Verdict::Undecided
            }
        };
        let decided = !matches!(verdict, Verdict::Undecided);
        tally.fates.push(HoldFate {
            buyer: purchase.buyer,
            verdict,
            decided_ms: opening
                .filter(|_| decided)
                .map(|opening| opening.ms_to(hold.decided)),
            waits: hold.waits,
        });
        if !matches!(hold.outcome, Outcome::Unfinished) {
            to_outcome.push(hold.to_outcome_ms());
            last_decided = last_decided.max(hold.decided);
        }

        if let Some(order) = &purchase.order {
            report.rate_limited += order.waits.rate_limited;
            tally.etas.extend(order.eta);
            let report = &mut tally.orders;
            report.attempted += 1;
            orders.add(order.sent, order.answered);
            order_latencies.push(order.to_outcome_ms());
            report.polled_after_wait += usize::from(order.polled);
            match &order.outcome {
                Outcome::Done(made) if made.id.is_some() => report.created += 1,
                Outcome::Done(_) => {
                    bump(&mut report.errors, "created order without id".into());
                }
                Outcome::Refused(code) => bump(&mut report.refused, code.clone()),
                Outcome::Error(key) => bump(&mut report.errors, key.clone()),
                Outcome::Unfinished => report.unfinished += 1,
            }
            if order.outcome.made_id().is_none()
                && let Some(hold_id) = hold.outcome.made_id()
            {
                tally.orphan_holds.push(hold_id.to_owned());
            }
        }

        if let Some(payment) = &purchase.payment {
            let pay = &mut tally.payments;
            match payment.intent {
                Intent::Success => pay.to_pay.0 += 1,
                Intent::Failed => pay.to_pay.1 += 1,
                Intent::Abandon => pay.to_pay.2 += 1,
            }
            if let Some((sent, answered)) = payment.post {
                pay.webhooks.add(sent, answered);
                pay.latencies.push(ms(answered - sent));
            }
            match &payment.job {
                Some(Ok(job_id)) => pay.jobs.push(job_id.clone()),
                // A refused webhook leaves the order pending: a mismatch.
                Some(Err(key)) => bump(&mut pay.errors, key.clone()),
                None => {}
            }
            tally
                .order_checks
                .push((payment.order_id.clone(), payment.intent.expected_status()));
        }
    }

    let accept = holds.last.map_or(Duration::ZERO, |t| t - start);
    report.accept_elapsed_s = accept.as_secs_f64();
    report.accept_requests_per_s = per_second(holds.count, accept);
    report.accept_latency_ms = LatencySummary::of(hold_latencies);
    report.time_to_outcome_ms = Some(LatencySummary::of(to_outcome));
    let end_to_end = (last_decided - start).max(accept);
    report.end_to_end_elapsed_s = end_to_end.as_secs_f64();
    report.end_to_end_source = Some("client");
    report.end_to_end_decided_per_s = per_second(report.decided(), end_to_end);
    report.phases.push(PhaseStat::new(
        "buyers (all requests)",
        buyer_requests,
        buyers_done - start,
    ));
    report.phases.push(holds.phase("holds"));
    report.phases.push(orders.phase("orders"));
    report
        .phases
        .push(tally.payments.webhooks.phase("webhooks"));
    tally.orders.requests_per_s = per_second(orders.count, orders.elapsed());
    tally.orders.latency_ms = LatencySummary::of(order_latencies);
    tally
}
