//! What the service is about, as every role and the wire see it: products
//! and their stock ledger, holds, orders, jobs and payment events. Plain
//! types with their rules; the SQL that stores them is in [`crate::db`].

pub mod hold;
pub mod idempotency;
pub mod job;
pub mod order;
pub mod payment;
pub mod product;
pub mod refusals;

pub use hold::{Hold, HoldStatus};
pub use job::{Job, JobKind, JobResult, JobStatus};
pub use order::{Order, OrderStatus};
pub use payment::{EventState, Outcome, PaymentEvent, PaymentOutcome, PaymentStatus};
pub use product::{
    LedgerReason, MAX_NAME_CHARS, MAX_PRICE, MAX_STOCK, NewProduct, Product, ProductChange,
    SaleWindow,
};
