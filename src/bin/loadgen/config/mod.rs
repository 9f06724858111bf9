//! Layer 0: what a run is asked to do (the command line, checked) and the
//! fixed knobs every other layer reads. Imports nothing else of loadgen.

mod args;
mod buyers;
mod cost;
mod url;

use std::time::Duration;

pub(crate) use args::{Args, Flow, Mode};
pub(crate) use url::{BaseUrl, loopback_base_url};

/// Concurrent job reads while polling for outcomes.
pub(crate) const POLL_CONCURRENCY: usize = 64;
/// Jobs read once, spread over a run's backlog, when polling starts: the
/// waiting room's long etas against the wait that followed.
pub(crate) const ETA_SAMPLE: usize = 512;
/// Pause between two polling rounds.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// A buyer whose `Prefer: wait` ran out polls its job this often.
pub(crate) const BUYER_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Give up polling (and report the rest as unfinished) after this long.
pub(crate) const POLL_TIMEOUT: Duration = Duration::from_secs(120);
/// The api's product cache may be up to 1 s stale (docs/API.md, "Products").
pub(crate) const CACHE_SETTLE: Duration = Duration::from_millis(1500);
/// Per-request timeout; generous because a saturated stack is the point.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A kept-alive connection idle this long is replaced rather than reused:
/// under the api's idle keep-alive limit (HTTP_HEADER_TIMEOUT_SECS, 10 s by
/// default), so a request is never sent just as the server closes it.
pub(crate) const IDLE_REUSE_LIMIT: Duration = Duration::from_secs(5);
/// Holds expire after HOLD_TTL_SECS (120 s by default) and give their stock
/// back, which would skew the stock check of a longer run.
pub(crate) const DEFAULT_HOLD_TTL: Duration = Duration::from_secs(120);
pub(crate) const INSUFFICIENT_STOCK: &str = "insufficient_stock";
pub(crate) const CUSTOMER_LIMIT_REACHED: &str = "customer_limit_reached";
pub(crate) const SALE_NOT_STARTED: &str = "sale_not_started";
/// Buyers' tokens expire this long after they are signed.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// A 429 (or a `sale_not_started`) is honored and the request sent again
/// at most this many times; then its answer stands.
pub(crate) const MAX_RATE_LIMITED_RETRIES: usize = 30;
pub(crate) const MAX_NOT_STARTED_RETRIES: usize = 5;
/// A sale opening (`--sale-starts-in`): buyers open their connections this
/// long before it (under the api's 10 s idle keep-alive limit), and fire
/// spread from DROP_EARLY before it to DROP_LATE after it, as a crowd
/// refreshing the page does.
pub(crate) const DROP_CONNECT_AHEAD: Duration = Duration::from_secs(2);
pub(crate) const DROP_EARLY: Duration = Duration::from_millis(400);
pub(crate) const DROP_LATE: Duration = Duration::from_millis(100);
/// The full flow's buyers wait for outcomes (RFC 7240, capped at 10 s).
pub(crate) const PREFER_WAIT: &str = "wait=10";
/// Rounds of draining returned stock before the sold-out phase.
pub(crate) const DRAIN_ROUNDS: usize = 5;
/// `--cpu-pid` processes are read this often during the pipeline's hold
/// run, so the end-to-end span's CPU is known to within it.
pub(crate) const CPU_READ_EVERY: Duration = Duration::from_millis(50);
/// Latency chart buckets: 100 ms for phases up to this long, else 1 s.
pub(crate) const FINE_BUCKETS_UP_TO: Duration = Duration::from_secs(30);
