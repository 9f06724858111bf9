//! The worker: consumes its share of the partition queues and applies the
//! commands in locked MySQL transactions (README.md, "Architecture").
//!
//! - [`supervisor`]: following the share of partitions as workers come and
//!   go ([`membership`]), one consumer per partition, and reporting it
//!   ([`heartbeat`], for the admin overview);
//! - [`consumer`]: deliveries taken in batches, unpacked, settled, or
//!   dead-lettered;
//! - [`planner`]: a batch cut into transactions (pure);
//! - [`dispatch`]: each transaction run and its messages settled, what it
//!   decided announced; [`retry`] says how a transaction is retried and
//!   [`deferral`] how an order waits for its hold's job;
//! - one file per command: [`holds`], [`orders`], [`payments`], [`sweeps`].
//!
//! A few partitions decide a batch at a time (`supervisor::BATCHES_AT_ONCE`).
//! Correctness rests on the row locks and the job rows, never on routing:
//! any number of workers may consume any partition, as they briefly do
//! while the share changes.

mod consumer;
mod decided;
mod deferral;
mod dispatch;
mod heartbeat;
mod holds;
pub mod membership;
mod orders;
mod payments;
pub mod planner;
mod retry;
mod supervisor;
mod sweeps;

pub use crate::commands::{HoldRequest, OrderRequest, PaymentRequest};
pub use consumer::{MAX_BATCH, PREFETCH};
pub use decided::{BatchApplied, Decided};
pub use holds::apply_holds;
pub use orders::{OrderApplied, apply_order, apply_orders};
pub use payments::apply_payments;
pub use supervisor::Worker;
pub use sweeps::{SWEEP_BATCH, expire_holds};
