//! flash-sale: a flash-sale checkout that stays correct under extreme
//! concurrency.
//!
//! A request travels: [`api`] (validate, record a job, publish) →
//! [`broker`] (partitioned quorum queues) → [`worker`] (locked, batched
//! MySQL transactions) → [`db`]. The [`scheduler`] does what must happen
//! when nobody asks. [`startup`] wires each role from [`config::Settings`];
//! the binaries in `src/bin` are thin `main`s over it.

pub mod api;
pub mod audit;
pub mod broker;
pub mod cache;
pub mod claims;
pub mod commands;
pub mod config;
pub mod db;
pub mod dead_letters;
pub mod domain;
pub mod events;
pub mod problem;
pub mod reach;
pub mod scheduler;
pub mod shutdown;
pub mod signature;
pub mod startup;
pub mod telemetry;
pub mod time;
pub mod waiters;
pub mod worker;
