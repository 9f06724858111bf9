//! flash-sale: a flash-sale checkout that stays correct under extreme
//! concurrency.
//!
//! A request travels: [`api`] (validate, record a job, publish) →
//! [`broker`] (partitioned quorum queues) → [`worker`] (locked, batched
//! MySQL transactions) → [`db`] (all SQL). The [`scheduler`] does what
//! must happen when nobody asks. [`startup`] wires each role from
//! [`config`]; the binaries in `src/bin` are thin `main`s over it.
//!
//! The rest: [`domain`] the types every layer shares · [`commands`] what
//! the api publishes and the worker applies · [`cache`] the api's product
//! cache, with [`claims`] on units queued holds will take · [`events`] the
//! api's listener for stock and job events · [`waiters`] requests waiting
//! on a job (`Prefer: wait`) · [`waiting_room`] a queued job's place in
//! line, polled or streamed · [`dead_letters`] the parking queue's
//! operator view · [`overview`] the operators' one-look summary ·
//! [`audit`] the guarantee checks · [`problem`] RFC 9457
//! error bodies · [`reach`] which connection failures are fatal ·
//! [`signature`] the webhook HMAC · [`shutdown`] signals · [`telemetry`]
//! logs and metrics · [`time`] the clock and wire timestamps.

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
pub mod overview;
pub mod problem;
pub mod reach;
pub mod scheduler;
pub mod shutdown;
pub mod signature;
pub mod startup;
pub mod telemetry;
pub mod time;
pub mod waiters;
pub mod waiting_room;
pub mod worker;

/// jemalloc, not the system allocator, in every binary: the hot paths
/// allocate per request and per job, and glibc's malloc took about a
/// sixth of the server's CPU in the every-hold-granted profile
/// (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
