//! Commands: what the api publishes and the worker applies. The same JSON is
//! stored in the job row, so the scheduler can publish a lost one again.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{broker, domain::payment::Delivery};

/// One command. The JSON is `{"type": "hold", "job_id": …, …}`: the
/// request's fields beside its type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    Hold(HoldRequest),
    Order(OrderRequest),
    Payment(PaymentRequest),
    /// Published by the scheduler; it has no job row.
    Sweep(SweepRequest),
}

/// Take `qty` units of a product for a buyer (`customer_id`, absent when
/// anonymous); the hold's id is `job_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub job_id: Uuid,
    pub product_id: i64,
    pub qty: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// Turn a hold into an order, asked by `customer_id` (absent when
/// anonymous); the order's id is `job_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub job_id: Uuid,
    pub hold_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// Apply the recorded payment event `job_id` (its id is the job's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub job_id: Uuid,
    pub order_id: Uuid,
}

impl From<&Delivery> for PaymentRequest {
    fn from(delivery: &Delivery) -> Self {
        Self {
            job_id: delivery.job_id(),
            order_id: delivery.order_id,
        }
    }
}

/// Release a product's expired holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    pub product_id: i64,
}

impl Command {
    /// The job this command decides; sweeps have none.
    pub fn job_id(&self) -> Option<Uuid> {
        match self {
            Command::Hold(HoldRequest { job_id, .. })
            | Command::Order(OrderRequest { job_id, .. })
            | Command::Payment(PaymentRequest { job_id, .. }) => Some(*job_id),
            Command::Sweep(_) => None,
        }
    }

    /// Holds and sweeps are routed by product, so one consumer usually sees
    /// all of a hot product's commands and can batch them; orders by hold,
    /// payments by order.
    pub fn partition(&self, partitions: u16) -> u16 {
        match self {
            Command::Hold(HoldRequest { product_id, .. })
            | Command::Sweep(SweepRequest { product_id }) => {
                broker::partition_for_product(*product_id, partitions)
            }
            Command::Order(r) => broker::partition_for_uuid(r.hold_id, partitions),
            Command::Payment(r) => broker::partition_for_uuid(r.order_id, partitions),
        }
    }

    /// The waiting-room lane its job queues in (the `jobs.lane` column): a
    /// hold's product, an order's partition; none for payments and sweeps.
    /// Orders share a partition's queue, so that is whom they wait behind.
    pub fn lane(&self, partitions: u16) -> Option<i64> {
        match self {
            Command::Hold(HoldRequest { product_id, .. }) => Some(*product_id),
            Command::Order(_) => Some(i64::from(self.partition(partitions))),
            Command::Payment(_) | Command::Sweep(_) => None,
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

/// A message body on a partition queue: one command, or a JSON array of
/// commands of that partition. The api packs the commands of concurrent
/// requests into one message per partition, so the broker moves (and the
/// worker acks) one message for a crowd instead of one each; the scheduler
/// and operator tools publish single commands.
#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    One(Command),
    Many(Vec<Command>),
}

/// Encodes commands as one message body.
/// Most commands in one message (a hold command is ~100 bytes).
pub const MAX_PER_MESSAGE: usize = 256;

pub fn encode_message(commands: &[&Command]) -> Vec<u8> {
    match commands {
        [one] => one.encode(),
        many => serde_json::to_vec(many).unwrap_or_default(),
    }
}

/// The commands of a message body, in order; an empty list is refused like
/// any other body the worker cannot use.
pub fn decode_message(bytes: &[u8]) -> Result<Vec<Command>, String> {
    match serde_json::from_slice::<Body>(bytes) {
        Ok(Body::One(command)) => Ok(vec![command]),
        Ok(Body::Many(commands)) if !commands.is_empty() => Ok(commands),
        Ok(Body::Many(_)) => Err("an empty list of commands".into()),
        Err(_) => Err(match Command::decode(bytes) {
            // The single-command error names the bad field.
            Err(e) if !bytes.trim_ascii_start().starts_with(b"[") => e.to_string(),
            _ => "not a command nor a list of commands".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let cmd = Command::Hold(HoldRequest {
            job_id: Uuid::now_v7(),
            product_id: 7,
            qty: 2,
            customer_id: None,
        });
        assert_eq!(Command::decode(&cmd.encode()).expect("decode"), cmd);
        let wire: serde_json::Value = serde_json::from_slice(&cmd.encode()).expect("json");
        assert_eq!(wire["type"], "hold");
        assert_eq!(wire["qty"], 2);
        assert_eq!(wire.as_object().map(|o| o.len()), Some(4));
        assert!(
            Command::decode(br#"{"type":"sweep","product_id":1,"extra":true}"#).is_err(),
            "unknown fields are refused"
        );
        assert_eq!(
            Command::decode(br#"{"type":"sweep","product_id":1}"#).expect("sweep"),
            Command::Sweep(SweepRequest { product_id: 1 })
        );
        assert!(Command::decode(b"garbage").is_err());
        assert!(
            Command::decode(br#"{"type":"hold","job_id":"x","product_id":1,"qty":1}"#).is_err()
        );
        assert!(Command::decode(br#"{"type":"nuke"}"#).is_err());
    }

    #[test]
    fn messages_carry_one_command_or_a_list() {
        let hold = |product_id| {
            Command::Hold(HoldRequest {
                job_id: Uuid::now_v7(),
                product_id,
                qty: 1,
                customer_id: None,
            })
        };
        let one = vec![hold(1)];
        assert_eq!(decode_message(&encode_message(&[&one[0]])), Ok(one.clone()));
        assert_eq!(encode_message(&[&one[0]]), one[0].encode());
        let many = vec![hold(1), hold(17), hold(1)];
        let refs: Vec<&Command> = many.iter().collect();
        assert_eq!(decode_message(&encode_message(&refs)), Ok(many));
        assert!(decode_message(b"[]").is_err());
        assert!(decode_message(b"garbage").is_err());
        assert!(decode_message(br#"[{"type":"hold"}]"#).is_err());
        assert!(
            decode_message(br#"{"type":"hold","job_id":"x","product_id":1,"qty":1}"#)
                .is_err_and(|e| e.contains("UUID"))
        );
    }
}
