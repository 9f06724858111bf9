//! Commands: what the api publishes and the worker applies. The same JSON is
//! stored in the job row, so the scheduler can publish a lost one again.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::broker;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Take `qty` units of a product; the hold's id is `job_id`.
    Hold {
        job_id: Uuid,
        product_id: i64,
        qty: i64,
    },
    /// Turn a hold into an order; the order's id is `job_id`.
    Order { job_id: Uuid, hold_id: Uuid },
    /// Apply the recorded payment event `job_id` (its id is the job's).
    Payment { job_id: Uuid, order_id: Uuid },
    /// Release a product's expired holds (published by the scheduler; it
    /// has no job row).
    Sweep { product_id: i64 },
}

impl Command {
    /// The job this command decides; sweeps have none.
    pub fn job_id(&self) -> Option<Uuid> {
        match self {
            Command::Hold { job_id, .. }
            | Command::Order { job_id, .. }
            | Command::Payment { job_id, .. } => Some(*job_id),
            Command::Sweep { .. } => None,
        }
    }

    /// Holds and sweeps are routed by product, so one consumer usually sees
    /// all of a hot product's commands and can batch them; orders by hold,
    /// payments by order.
    pub fn partition(&self, partitions: u16) -> u16 {
        match self {
            Command::Hold { product_id, .. } | Command::Sweep { product_id } => {
                broker::partition_for_product(*product_id, partitions)
            }
            Command::Order { hold_id, .. } => broker::partition_for_uuid(*hold_id, partitions),
            Command::Payment { order_id, .. } => broker::partition_for_uuid(*order_id, partitions),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // A derived Serialize of plain fields cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let cmd = Command::Hold {
            job_id: Uuid::now_v7(),
            product_id: 7,
            qty: 2,
        };
        assert_eq!(Command::decode(&cmd.encode()).expect("decode"), cmd);
        assert!(Command::decode(b"garbage").is_err());
        assert!(
            Command::decode(br#"{"type":"hold","job_id":"x","product_id":1,"qty":1}"#).is_err()
        );
        assert!(Command::decode(br#"{"type":"nuke"}"#).is_err());
    }
}
