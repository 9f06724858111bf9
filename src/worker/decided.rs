//! What a committed transaction decided: what the worker settles, announces
//! to the api replicas and counts.

use uuid::Uuid;

use crate::{db::jobs::Outcome, domain::JobKind};

/// What a committed transaction decided.
#[derive(Debug, Default)]
pub struct Decided {
    /// Jobs whose outcome this transaction wrote.
    pub jobs: Vec<Uuid>,
    /// Products whose stock it changed.
    pub changed_products: Vec<i64>,
    /// Each job it decided: kind and whether it succeeded (for metrics).
    pub outcomes: Vec<(Uuid, JobKind, bool)>,
    /// Set by a hold batch of one product (`apply_holds`): every job here
    /// is a hold of this product. Announced with the jobs, so the api
    /// replicas can count grants and refusals per product.
    pub hold_product: Option<i64>,
}

impl Decided {
    /// A transaction that wrote `outcomes` and changed the stock of
    /// `changed_products`.
    pub fn of(outcomes: &[Outcome], changed_products: Vec<i64>) -> Self {
        let mut decided = Self {
            changed_products,
            ..Self::default()
        };
        decided.add(outcomes);
        decided
    }

    /// Adds jobs decided in the same transaction.
    pub fn add(&mut self, outcomes: &[Outcome]) {
        // Whatever joins the transaction, it is no longer known to be one
        // product's holds alone.
        self.hold_product = None;
        for outcome in outcomes {
            self.jobs.push(outcome.job_id);
            self.outcomes
                .push((outcome.job_id, outcome.kind, outcome.succeeded()));
        }
    }

    /// The hold jobs among them that were granted.
    pub fn granted_holds(&self) -> Vec<Uuid> {
        self.outcomes
            .iter()
            .filter(|(_, kind, succeeded)| *kind == JobKind::Hold && *succeeded)
            .map(|(id, _, _)| *id)
            .collect()
    }

    /// Jobs by kind and outcome, and enqueue-to-commit latency (hold and
    /// order ids are UUIDv7: their creation time is in the id).
    pub fn record_metrics(&self) {
        let now = chrono::Utc::now();
        for (id, kind, succeeded) in &self.outcomes {
            let kind = kind.as_str();
            let outcome = if *succeeded { "succeeded" } else { "failed" };
            metrics::counter!("flash_jobs_total", "kind" => kind, "outcome" => outcome)
                .increment(1);
            if let Some((secs, nanos)) = id.get_timestamp().map(|t| t.to_unix())
                && let Some(created) = chrono::DateTime::from_timestamp(secs as i64, nanos)
            {
                let latency = (now - created).num_microseconds().unwrap_or(0) as f64 / 1e6;
                metrics::histogram!("flash_job_commit_latency_seconds", "kind" => kind)
                    .record(latency.max(0.0));
            }
        }
    }
}

/// What a transaction of orders or payments decided, and what it left.
#[derive(Debug, Default)]
pub struct BatchApplied {
    pub decided: Decided,
    /// Orders whose hold's own job is still queued: try again shortly.
    pub hold_pending: Vec<Uuid>,
    /// Left untouched, to be applied one transaction each: orders that
    /// payments came before.
    pub alone: Vec<Uuid>,
}
