//! Payment events (webhook deliveries), what they do to an order, and what
//! a payment job reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{OrderStatus, idempotency};

/// Namespace of payment job ids: job id = UUIDv5(namespace, idempotency_key),
/// so a key always maps to the same job.
pub const JOB_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a8e_5b7d_4c3a_9e21_0d4b_8a6f_3c59);

pub fn job_id(idempotency_key: &str) -> Uuid {
    Uuid::new_v5(&JOB_NAMESPACE, idempotency_key.as_bytes())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Success,
    Failed,
}

/// What became of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Recorded; the worker has not decided it yet.
    Received,
    Applied,
    /// The order was already in the state this event asks for.
    Duplicate,
    /// The order's own job has not run yet; applied when it does.
    AwaitingOrder,
    /// Money was taken for an order that is canceled: refund it.
    NeedsRefund,
    /// The order does not exist and never will.
    Unmatched,
    /// The event contradicts a final state (e.g. `failed` after `paid`).
    Conflict,
}

impl EventState {
    /// States an operator must act on.
    pub const NEEDS_OPERATOR: [EventState; 3] = [
        EventState::Unmatched,
        EventState::NeedsRefund,
        EventState::Conflict,
    ];
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PaymentEvent {
    pub job_id: Uuid,
    pub idempotency_key: String,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub state: EventState,
    pub reason: Option<String>,
    #[serde(serialize_with = "crate::time::millis")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::millis_opt")]
    pub processed_at: Option<DateTime<Utc>>,
    /// When an operator resolved it; `null` until then. `state` keeps what
    /// became of the event.
    #[serde(serialize_with = "crate::time::millis_opt")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// What the operator did (1 to 1000 characters); `null` until resolved.
    #[schema(min_length = 1, max_length = 1000)]
    pub resolution_note: Option<String>,
}

/// Most characters of a resolution note.
pub const MAX_NOTE_CHARS: usize = 1000;

/// A webhook delivery, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub idempotency_key: String,
    pub order_id: Uuid,
    pub status: PaymentStatus,
}

impl Delivery {
    pub fn job_id(&self) -> Uuid {
        job_id(&self.idempotency_key)
    }

    /// What makes a repeat of the key "the same delivery".
    pub fn fingerprint(&self) -> [u8; 32] {
        let status = match self.status {
            PaymentStatus::Success => "success",
            PaymentStatus::Failed => "failed",
        };
        idempotency::fingerprint(&[&self.order_id.to_string(), status])
    }
}

/// The `outcome` of a payment job's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    Duplicate,
    /// The order's own job has not run yet.
    AwaitingOrder,
    NeedsRefund,
    Ignored,
}

/// A payment job's result: what happened, and the order's status after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentOutcome {
    pub outcome: Outcome,
    pub order_status: Option<OrderStatus>,
}

/// What an event does to an order in a given state: the one decision table
/// of payments, shared by the batched path and by an order's own job
/// settling the events that came before it. Never reverses a final state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The order's new status, if it changes.
    pub order_becomes: Option<OrderStatus>,
    pub state: EventState,
    pub reason: Option<&'static str>,
    pub outcome: Outcome,
}

impl Verdict {
    pub fn of(order: OrderStatus, event: PaymentStatus) -> Self {
        use OrderStatus::{Canceled, Paid, Pending};
        use PaymentStatus::{Failed, Success};
        let (order_becomes, state, reason, outcome) = match (order, event) {
            (Pending, Success) => (Some(Paid), EventState::Applied, None, Outcome::Applied),
            (Pending, Failed) => (Some(Canceled), EventState::Applied, None, Outcome::Applied),
            (Paid, Success) | (Canceled, Failed) => {
                (None, EventState::Duplicate, None, Outcome::Duplicate)
            }
            (Canceled, Success) => (
                None,
                EventState::NeedsRefund,
                Some("payment succeeded for a canceled order"),
                Outcome::NeedsRefund,
            ),
            (Paid, Failed) => (
                None,
                EventState::Conflict,
                Some("payment failed after the order was paid; the order stays paid"),
                Outcome::Ignored,
            ),
        };
        Self {
            order_becomes,
            state,
            reason,
            outcome,
        }
    }

    /// The job result for an order now in `order_status`.
    pub fn result(&self, order_status: OrderStatus) -> PaymentOutcome {
        PaymentOutcome {
            outcome: self.outcome,
            order_status: Some(order_status),
        }
    }
}

/// Why an event matched no order.
pub const ORDER_REFUSED: &str = "the order was refused";
pub const NO_SUCH_ORDER: &str = "no such order";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states_are_never_reversed() {
        for event in [PaymentStatus::Success, PaymentStatus::Failed] {
            for order in [OrderStatus::Paid, OrderStatus::Canceled] {
                assert_eq!(Verdict::of(order, event).order_becomes, None);
            }
        }
        let cancel = Verdict::of(OrderStatus::Pending, PaymentStatus::Failed);
        assert_eq!(cancel.order_becomes, Some(OrderStatus::Canceled));
        let refund = Verdict::of(OrderStatus::Canceled, PaymentStatus::Success);
        assert_eq!(refund.state, EventState::NeedsRefund);
    }

    #[test]
    fn a_result_names_the_outcome_and_the_order_status() {
        let result =
            Verdict::of(OrderStatus::Pending, PaymentStatus::Success).result(OrderStatus::Paid);
        assert_eq!(
            serde_json::to_value(result).expect("json"),
            serde_json::json!({"outcome": "applied", "order_status": "paid"})
        );
        let waiting = PaymentOutcome {
            outcome: Outcome::AwaitingOrder,
            order_status: None,
        };
        assert_eq!(
            serde_json::to_value(waiting).expect("json"),
            serde_json::json!({"outcome": "awaiting_order", "order_status": null})
        );
    }
}
