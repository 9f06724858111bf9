//! The run's buyers (tokens, holds each, the opening) and what their
//! holds came to: per buyer for the limit check, around the opening for
//! its timings.

use std::collections::HashMap;

use chrono::SecondsFormat;
use serde_json::Value;

use crate::{
    client::Crowd,
    config::{Args, CUSTOMER_LIMIT_REACHED, INSUFFICIENT_STOCK, Mode},
    scenarios::{
        gate::{Opening, Waits},
        records::{BuyersReport, LimitCheck, OpeningReport, RefusedByReason},
        target::Target,
    },
};

/// Who buys in one mode's run.
#[derive(Clone)]
pub(crate) struct Buyers {
    pub(crate) crowd: Crowd,
    pub(crate) count: usize,
    pub(crate) holds_per_buyer: usize,
    pub(crate) opening: Option<Opening>,
    /// Whether the report gets a buyers section.
    pub(crate) reported: bool,
}

impl Buyers {
    /// Signs a token per buyer (pipeline only: the baseline has no buyers)
    /// before the run starts, so signing is not measured.
    pub(crate) fn prepare(args: &Args, mode: Mode, target: &Target) -> anyhow::Result<Self> {
        let count = args.requests;
        let crowd = sign_crowd(args, mode, count)?;
        let opening = args
            .buyers
            .sale_starts_in
            .and(target.sale_starts_at)
            .map(Opening::new);
        Ok(Self {
            crowd,
            count,
            holds_per_buyer: args.buyers.holds_per_buyer,
            opening,
            reported: args.buyers.any() && mode == Mode::Pipeline,
        })
    }
}

/// `count` new buyers with tokens of their own (none for the baseline, or
/// without --jwt-secret), under a run tag of their own.
pub(crate) fn sign_crowd(args: &Args, mode: Mode, count: usize) -> anyhow::Result<Crowd> {
    match (&args.buyers.jwt_secret, mode) {
        (Some(secret), Mode::Pipeline) => {
            let run = uuid::Uuid::new_v4().simple().to_string();
            // 12 hex digits tell runs apart and keep the sub short.
            let run = run.get(..12).unwrap_or(&run).to_owned();
            Crowd::signed(secret, args.buyers.jwt_audience.as_deref(), &run, count)
        }
        _ => Ok(Crowd::anonymous()),
    }
}

/// How one hold request ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Granted: the buyer the api recorded it for, and its units.
    Granted {
        customer: Option<String>,
        units: i64,
    },
    /// Refused (409) with this code.
    Refused(String),
    /// An error, or still queued at the end.
    Undecided,
}

impl Verdict {
    /// A granted hold as the api reported it (a job's `result` or a 201's
    /// body): its buyer and units; `qty` when it has none.
    pub(crate) fn granted(hold: Option<&Value>, qty: i64) -> Self {
        let field = |name| hold.and_then(|hold| hold.get(name));
        Verdict::Granted {
            customer: field("customer_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            units: field("qty").and_then(Value::as_i64).unwrap_or(qty),
        }
    }
}

/// One hold request of one buyer.
#[derive(Clone, Debug)]
pub(crate) struct HoldFate {
    pub(crate) buyer: usize,
    pub(crate) verdict: Verdict,
    /// When it was decided, in ms since the opening (with an opening).
    pub(crate) decided_ms: Option<f64>,
    pub(crate) waits: Waits,
}

/// The buyers section of a run's report.
pub(crate) fn buyers_report(
    buyers: &Buyers,
    fates: &[HoldFate],
    max_per_customer: Option<i64>,
) -> BuyersReport {
    let mut refused = RefusedByReason::default();
    let (mut granted_holds, mut granted_units) = (0usize, 0i64);
    let mut grants = Vec::new();
    for fate in fates {
        match &fate.verdict {
            Verdict::Granted { customer, units } => {
                granted_holds += 1;
                granted_units += units;
                grants.push((buyers.crowd.sub(fate.buyer), customer.as_deref(), *units));
            }
            Verdict::Refused(code) if code == CUSTOMER_LIMIT_REACHED => {
                refused.customer_limit_reached += 1;
            }
            Verdict::Refused(code) if code == INSUFFICIENT_STOCK => refused.insufficient_stock += 1,
            Verdict::Refused(_) => refused.other += 1,
            Verdict::Undecided => {}
        }
    }
    BuyersReport {
        buyers: buyers.count,
        holds_per_buyer: buyers.holds_per_buyer,
        hold_requests: fates.len(),
        tokens: buyers.crowd.has_tokens(),
        granted_holds,
        granted_units,
        refused,
        limit_check: max_per_customer.map(|max| limit_check(max, &grants)),
        opening: buyers.opening.map(|opening| opening_report(opening, fates)),
    }
}

/// "No buyer over the limit": units per buyer as the api recorded them.
/// Each grant is (the sub of the buyer who asked, the `customer_id` the api
/// recorded, units); one recorded for nobody or someone else fails too.
pub(crate) fn limit_check(max: i64, grants: &[(Option<String>, Option<&str>, i64)]) -> LimitCheck {
    let mut units: HashMap<&str, i64> = HashMap::new();
    let mut misattributed = 0usize;
    for (asked, recorded, n) in grants {
        match recorded {
            Some(customer) => {
                *units.entry(customer).or_default() += n;
                if asked.as_deref() != Some(*customer) {
                    misattributed += 1;
                }
            }
            None => misattributed += 1,
        }
    }
    let over = units.values().filter(|&&n| n > max).count();
    LimitCheck {
        max_per_customer: max,
        buyers_granted: units.len(),
        most_units: units.values().copied().max().unwrap_or(0),
        buyers_over_limit: over,
        misattributed_holds: misattributed,
        pass: over == 0 && misattributed == 0,
    }
}

fn opening_report(opening: Opening, fates: &[HoldFate]) -> OpeningReport {
    let refused_not_started = fates.iter().map(|f| f.waits.not_started).sum();
    let requests_refused_not_started = fates.iter().filter(|f| f.waits.not_started > 0).count();
    let decided = |granted_only: bool| {
        fates.iter().filter_map(move |fate| match fate.verdict {
            Verdict::Granted { .. } => fate.decided_ms,
            Verdict::Refused(_) if !granted_only => fate.decided_ms,
            _ => None,
        })
    };
    let round = |v: f64| (v * 10.0).round() / 10.0;
    OpeningReport {
        sale_starts_at: opening.wall.to_rfc3339_opts(SecondsFormat::Millis, true),
        refused_not_started,
        requests_refused_not_started,
        first_grant_ms: decided(true).reduce(f64::min).map(round),
        last_decision_ms: decided(false).reduce(f64::max).map(round),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn sub(n: usize) -> Option<String> {
        Some(format!("loadgen-r-{n}"))
    }

    #[test]
    fn no_buyer_over_the_limit_passes() {
        let (b0, b1) = (sub(0), sub(1));
        let grants = [
            (b0.clone(), b0.as_deref(), 1),
            (b0.clone(), b0.as_deref(), 1),
            (b1.clone(), b1.as_deref(), 2),
        ];
        let check = limit_check(2, &grants);
        assert!(check.pass, "{check:?}");
        assert_eq!(check.buyers_granted, 2);
        assert_eq!(check.most_units, 2);
        assert_eq!(check.buyers_over_limit, 0);
        assert_eq!(limit_check(2, &[]).most_units, 0);
    }

    #[test]
    fn a_buyer_over_the_limit_fails() {
        let b0 = sub(0);
        let grants = [
            (b0.clone(), b0.as_deref(), 1),
            (b0.clone(), b0.as_deref(), 1),
            (b0.clone(), b0.as_deref(), 1),
        ];
        let check = limit_check(2, &grants);
        assert!(!check.pass);
        assert_eq!(check.buyers_over_limit, 1);
        assert_eq!(check.most_units, 3);
    }

    #[test]
    fn a_hold_recorded_for_someone_else_fails() {
        let (b0, b1) = (sub(0), sub(1));
        let anonymous = [(b0.clone(), None, 1)];
        assert_eq!(limit_check(2, &anonymous).misattributed_holds, 1);
        assert!(!limit_check(2, &anonymous).pass);
        let swapped = [(b0, b1.as_deref(), 1)];
        assert!(!limit_check(2, &swapped).pass);
    }

    #[test]
    fn refusals_are_tallied_by_reason_and_the_opening_timed() {
        let crowd = Crowd::signed("k", None, "r", 2).expect("tokens");
        let opening = Opening::new(Utc::now());
        let buyers = Buyers {
            crowd,
            count: 2,
            holds_per_buyer: 3,
            opening: Some(opening),
            reported: true,
        };
        let fate = |buyer, verdict, decided_ms: f64, not_started| HoldFate {
            buyer,
            verdict,
            decided_ms: Some(decided_ms),
            waits: Waits {
                rate_limited: 0,
                not_started,
            },
        };
        let granted = |buyer: usize| Verdict::Granted {
            customer: sub(buyer),
            units: 1,
        };
        let refused = |code: &str| Verdict::Refused(code.to_owned());
        let fates = [
            fate(0, granted(0), 12.5, 1),
            fate(0, granted(0), 30.0, 1),
            fate(0, refused(CUSTOMER_LIMIT_REACHED), 31.0, 0),
            fate(1, granted(1), 8.25, 0),
            fate(1, refused(INSUFFICIENT_STOCK), 400.0, 2),
            fate(1, refused("sale_ended"), 20.0, 0),
            fate(1, Verdict::Undecided, 9000.0, 0),
        ];
        let report = buyers_report(&buyers, &fates, Some(2));
        assert_eq!(report.hold_requests, 7);
        assert_eq!((report.granted_holds, report.granted_units), (3, 3));
        assert_eq!(
            report.refused,
            RefusedByReason {
                customer_limit_reached: 1,
                insufficient_stock: 1,
                other: 1,
            }
        );
        assert!(report.limit_check.as_ref().is_some_and(|c| c.pass));
        let Some(opening) = report.opening else {
            panic!("an opening was set");
        };
        assert_eq!(opening.refused_not_started, 4);
        assert_eq!(opening.requests_refused_not_started, 3);
        assert_eq!(opening.first_grant_ms, Some(8.3));
        // The undecided request is no decision.
        assert_eq!(opening.last_decision_ms, Some(400.0));
    }
}
