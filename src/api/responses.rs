//! Answer bodies that are not a domain type of their own: the 202 of a
//! command, lists, health. Each is what the handler serializes and its
//! schema in the OpenAPI document.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{JobKind, JobStatus, PaymentEvent, Product};

/// The 202 of a command: its job, and the resource the job creates.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(untagged)]
pub enum Accepted {
    Hold(HoldAccepted),
    Order(OrderAccepted),
    Payment(PaymentAccepted),
}

impl Accepted {
    pub fn new(kind: JobKind, job_id: Uuid, status: JobStatus) -> Self {
        match kind {
            JobKind::Hold => Self::Hold(HoldAccepted {
                job_id,
                kind: HoldKind::Hold,
                status,
                hold_id: job_id,
            }),
            JobKind::Order => Self::Order(OrderAccepted {
                job_id,
                kind: OrderKind::Order,
                status,
                order_id: job_id,
            }),
            JobKind::Payment => Self::Payment(PaymentAccepted {
                job_id,
                kind: PaymentKind::Payment,
                status,
            }),
        }
    }
}

/// The 202 of `POST /api/v1/holds`: the hold's job, queued (or, for a
/// repeated `Idempotency-Key`, as it stands).
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct HoldAccepted {
    job_id: Uuid,
    #[schema(inline)]
    kind: HoldKind,
    status: JobStatus,
    /// The hold this job creates if it is granted (= `job_id`). It exists
    /// only once the job has succeeded: follow the job, not this id.
    hold_id: Uuid,
}

/// The 202 of `POST /api/v1/orders`: the order's job.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct OrderAccepted {
    job_id: Uuid,
    #[schema(inline)]
    kind: OrderKind,
    status: JobStatus,
    /// The order this job creates if it succeeds (= `job_id`). It exists
    /// only once the job has succeeded: follow the job, not this id.
    order_id: Uuid,
}

/// The 202 of `POST /api/v1/payments/webhook`: the event's job.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct PaymentAccepted {
    /// Derived from `idempotency_key`: a repeat gets the same job.
    job_id: Uuid,
    #[schema(inline)]
    kind: PaymentKind,
    status: JobStatus,
}

/// A job kind, each alone: the 202 of a route names one.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(rename_all = "snake_case")]
pub enum HoldKind {
    Hold,
}

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(rename_all = "snake_case")]
pub enum OrderKind {
    Order,
}

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(rename_all = "snake_case")]
pub enum PaymentKind {
    Payment,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    pub data: Vec<Product>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentEventList {
    /// Oldest first, at most 1000.
    #[schema(max_items = 1000)]
    pub data: Vec<PaymentEvent>,
}

/// `GET /api/v1/admin/dead-letters`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// Oldest first, at most 1000.
    #[schema(max_items = 1000)]
    pub data: Vec<DeadLetterEntry>,
}

/// A message in the dead-letter queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterEntry {
    /// SHA-256 of the message body, hex: the same message keeps it across
    /// listings and re-drives; identical bodies share it.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub id: String,
    /// Why it is here: `undecodable: …` when no worker can read it,
    /// otherwise the broker's reason (`rejected`, `delivery_limit`,
    /// `expired`, `maxlen`) and the queue it left, or `unknown` when the
    /// message carries no dead-lettering header.
    pub reason: String,
    /// The decoded command (`type` hold, order, payment, sweep); a message
    /// packing several is `{"type": "batch", "commands": [...]}`. `null`
    /// when undecodable.
    #[schema(value_type = Option<Object>)]
    pub command: Option<serde_json::Value>,
}

/// `POST /api/v1/admin/dead-letters/redrive`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveAnswer {
    /// Messages sent back to their partition.
    #[schema(minimum = 0)]
    pub redriven: u64,
    /// Messages still in the dead-letter queue: the undecodable ones, and
    /// any beyond this call's 1000.
    #[schema(minimum = 0)]
    pub left: u64,
}

/// `POST /api/v1/admin/dead-letters/drop-undecodable`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DropAnswer {
    /// Undecodable messages removed for good.
    #[schema(minimum = 0)]
    pub dropped: u64,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(pattern = "^ok$")]
    pub status: &'static str,
}

/// `GET /readyz` when both dependencies answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    #[schema(pattern = "^ready$")]
    pub status: &'static str,
    #[schema(pattern = "^up$")]
    pub database: &'static str,
    #[schema(pattern = "^up$")]
    pub broker: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_202_names_the_job_and_what_it_creates() {
        let id = Uuid::now_v7();
        let hold = serde_json::to_value(Accepted::new(JobKind::Hold, id, JobStatus::Queued))
            .expect("json");
        assert_eq!(
            hold,
            serde_json::json!({"job_id": id, "kind": "hold", "status": "queued", "hold_id": id})
        );
        let payment =
            serde_json::to_value(Accepted::new(JobKind::Payment, id, JobStatus::Succeeded))
                .expect("json");
        assert_eq!(
            payment,
            serde_json::json!({"job_id": id, "kind": "payment", "status": "succeeded"})
        );
    }
}
