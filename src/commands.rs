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

    #[test]
    fn messages_carry_one_command_or_a_list() {
        let hold = |product_id| Command::Hold {
            job_id: Uuid::now_v7(),
            product_id,
            qty: 1,
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
