//! The holds flow's bookkeeping of each hold request, for the buyers
//! section: answered at once, or queued and decided by its job.

use std::{collections::HashMap, time::Instant};

use crate::{
    client::JobDoc,
    scenarios::{
        crowd::{Buyers, HoldFate, Verdict, buyers_report},
        gate::Waits,
        records::BuyersReport,
    },
};

/// Every hold request's fate, kept only when the report has a buyers
/// section.
pub(crate) struct Fates<'a> {
    buyers: &'a Buyers,
    list: Vec<HoldFate>,
    /// Job id → (buyer, waits) of the requests answered 202.
    queued: HashMap<String, (usize, Waits)>,
}

impl<'a> Fates<'a> {
    pub(crate) fn new(buyers: &'a Buyers) -> Self {
        Self {
            buyers,
            list: Vec::new(),
            queued: HashMap::new(),
        }
    }

    fn on(&self) -> bool {
        self.buyers.reported
    }

    pub(crate) fn push(
        &mut self,
        buyer: usize,
        verdict: Verdict,
        decided_ms: Option<f64>,
        waits: Waits,
    ) {
        if self.on() {
            self.list.push(HoldFate {
                buyer,
                verdict,
                decided_ms,
                waits,
            });
        }
    }

    pub(crate) fn queued(&mut self, job_id: &str, buyer: usize, waits: Waits) {
        if self.on() {
            self.queued.insert(job_id.to_owned(), (buyer, waits));
        }
    }

    /// `t` in ms since the opening, when there is one.
    pub(crate) fn ms_at(&self, t: Instant) -> Option<f64> {
        self.buyers.opening.map(|opening| opening.ms_to(t))
    }

    /// A queued request's job is final: decided at its `completed_at`.
    pub(crate) fn decided(&mut self, doc: &JobDoc, verdict: Verdict) {
        let Some(job_id) = doc.job_id.as_deref() else {
            return;
        };
        let Some((buyer, waits)) = self.queued.remove(job_id) else {
            return;
        };
        let decided_ms = match (self.buyers.opening, doc.completed()) {
            (Some(opening), Some(at)) => Some(opening.ms_to_wall(at)),
            _ => None,
        };
        self.push(buyer, verdict, decided_ms, waits);
    }

    /// The buyers section; jobs never seen final count as undecided.
    pub(crate) fn report(mut self, max_per_customer: Option<i64>) -> Option<BuyersReport> {
        if !self.on() {
            return None;
        }
        let left: Vec<(usize, Waits)> = self.queued.drain().map(|(_, owner)| owner).collect();
        for (buyer, waits) in left {
            self.push(buyer, Verdict::Undecided, None, waits);
        }
        Some(buyers_report(self.buyers, &self.list, max_per_customer))
    }
}
