//! Jobs: the client's handle on an asynchronous command, and the worker's
//! exactly-once record of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Hold, Order, PaymentOutcome};
use crate::problem::Problem;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Hold,
    Order,
    Payment,
}

impl JobKind {
    /// As the wire and the metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Hold => "hold",
            JobKind::Order => "order",
            JobKind::Payment => "payment",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Succeeded,
    Failed,
}

/// What a succeeded job made or decided.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum JobResult {
    /// The hold it granted, as granted.
    Hold(Hold),
    /// The order it made, as made.
    Order(Order),
    Payment(PaymentOutcome),
}

/// The job document of `GET /api/v1/jobs/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Job {
    pub job_id: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
    /// The created hold or order, or the payment outcome.
    #[schema(value_type = Option<Object>)]
    pub result: Option<JobResult>,
    pub error: Option<Problem>,
    #[serde(serialize_with = "crate::time::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::millis_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    // Described by QueuePlace: a doc comment here would wrap the inlined
    // object in an `allOf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(inline, nullable = false)]
    pub queue: Option<QueuePlace>,
    /// The lane it waits in (`jobs.lane`): how its place is found. Not part
    /// of the document.
    #[serde(skip)]
    pub lane: Option<i64>,
}

/// A queued hold's or order's place in its queue (`queue`); absent once the
/// job is decided, and for payments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueuePlace {
    /// 1 + the jobs of the same queue recorded before this one and not yet
    /// decided. Never grows while the job waits.
    #[schema(minimum = 1)]
    pub position: u64,
    /// Milliseconds until it is decided, estimated from the rate the queue
    /// was decided at over the last seconds.
    #[schema(minimum = 0)]
    pub eta_ms: u64,
}
