//! Hold decisions per product over the last minute, counted in memory from
//! the `JobsFinished` events this api replica receives (no database read):
//! a ring of 60 one-second buckets per product, each with its grants,
//! refusals and a latency histogram (job id time to the event's receipt).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::latency::Histogram;

/// Seconds in the window: rates are counts over it divided by this.
pub const WINDOW_SECS: i64 = 60;

/// One second of one product's decisions.
#[derive(Clone, Debug, Default)]
struct Bucket {
    /// The unix second it counts; a bucket of an older second is stale.
    second: i64,
    granted: u64,
    refused: u64,
    latency: Histogram,
}

/// A product's last [`WINDOW_SECS`] seconds, indexed by second modulo the
/// window.
#[derive(Debug)]
struct Ring {
    buckets: Vec<Bucket>,
    /// The latest second anything was recorded: a ring idle for a whole
    /// window is dropped.
    last: i64,
}

impl Ring {
    fn new() -> Self {
        Self {
            buckets: vec![Bucket::default(); WINDOW_SECS as usize],
            last: i64::MIN,
        }
    }

    fn bucket(&mut self, second: i64) -> &mut Bucket {
        let bucket = &mut self.buckets[second.rem_euclid(WINDOW_SECS) as usize];
        if bucket.second != second {
            *bucket = Bucket {
                second,
                ..Bucket::default()
            };
        }
        bucket
    }

    /// The buckets of the window ending with second `now`.
    fn window(&self, now: i64) -> impl Iterator<Item = &Bucket> {
        self.buckets
            .iter()
            .filter(move |b| b.second > now - WINDOW_SECS && b.second <= now)
    }
}

/// One product's hold decisions in the window ending now.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductRates {
    /// Grants per second: grants in the window / 60.
    pub granted_per_sec: f64,
    /// Refusals per second: refusals in the window / 60.
    pub refused_per_sec: f64,
    /// Job creation to this replica's receipt of its outcome, whole ms.
    pub outcome_p50_ms: u64,
    pub outcome_p99_ms: u64,
}

/// The replica's counters, shared by the event listener (writes) and the
/// overview (reads). Cheap to clone.
#[derive(Clone, Default)]
pub struct DecisionRates {
    products: Arc<Mutex<HashMap<i64, Ring>>>,
}

impl DecisionRates {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one product's hold batch, received at `at`: every job of
    /// `jobs` is a hold of `product_id`, granted when in `granted`. Its
    /// latency is `at` less the creation time in its UUIDv7 id.
    pub fn record(&self, product_id: i64, jobs: &[Uuid], granted: &[Uuid], at: DateTime<Utc>) {
        if jobs.is_empty() {
            return;
        }
        let granted: HashSet<&Uuid> = granted.iter().collect();
        let second = at.timestamp();
        let mut products = self.products.lock().unwrap_or_else(PoisonError::into_inner);
        let ring = products.entry(product_id).or_insert_with(Ring::new);
        ring.last = ring.last.max(second);
        let bucket = ring.bucket(second);
        for id in jobs {
            if granted.contains(id) {
                bucket.granted += 1;
            } else {
                bucket.refused += 1;
            }
            if let Some(ms) = latency_ms(id, at) {
                bucket.latency.record(ms);
            }
        }
    }

    /// Each product with a decided hold in the window ending at `now`;
    /// forgets products idle for a whole window.
    pub fn snapshot(&self, now: DateTime<Utc>) -> HashMap<i64, ProductRates> {
        let now = now.timestamp();
        let mut products = self.products.lock().unwrap_or_else(PoisonError::into_inner);
        products.retain(|_, ring| ring.last > now - WINDOW_SECS);
        products
            .iter()
            .filter_map(|(product_id, ring)| Some((*product_id, rates_of(ring, now)?)))
            .collect()
    }
}

fn rates_of(ring: &Ring, now: i64) -> Option<ProductRates> {
    let (mut granted, mut refused) = (0, 0);
    let mut latency = Histogram::default();
    for bucket in ring.window(now) {
        granted += bucket.granted;
        refused += bucket.refused;
        latency.merge(&bucket.latency);
    }
    if granted + refused == 0 {
        return None;
    }
    Some(ProductRates {
        granted_per_sec: granted as f64 / WINDOW_SECS as f64,
        refused_per_sec: refused as f64 / WINDOW_SECS as f64,
        outcome_p50_ms: latency.quantile_ms(0.5)?,
        outcome_p99_ms: latency.quantile_ms(0.99)?,
    })
}

/// Milliseconds from the creation time in a UUIDv7 `id` to `at`; `None`
/// for an id without a time (not v7).
fn latency_ms(id: &Uuid, at: DateTime<Utc>) -> Option<f64> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    let created = DateTime::from_timestamp(secs as i64, nanos)?;
    let micros = (at - created).num_microseconds().unwrap_or(i64::MAX);
    Some(micros as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_at(ms: i64) -> Uuid {
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            (ms / 1000) as u64,
            ((ms % 1000) * 1_000_000) as u32,
        );
        Uuid::new_v7(ts)
    }

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("time")
    }

    #[test]
    fn counts_the_last_minute_and_forgets_older_seconds() {
        let rates = DecisionRates::new();
        let t0 = 1_700_000_000_000;
        let jobs: Vec<Uuid> = (0..8).map(|i| job_at(t0 - 100 + i)).collect();
        rates.record(3, &jobs, &jobs[..5], at(t0));
        let now = rates.snapshot(at(t0 + 500));
        let three = &now[&3];
        assert_eq!(three.granted_per_sec, 5.0 / 60.0);
        assert_eq!(three.refused_per_sec, 3.0 / 60.0);
        assert!((93..=105).contains(&three.outcome_p50_ms), "{three:?}");
        assert!(three.outcome_p99_ms >= three.outcome_p50_ms);
        assert!(!now.contains_key(&4));
        // 59 s later the batch is still in the window; at 60 s it is not.
        assert!(rates.snapshot(at(t0 + 59_999)).contains_key(&3));
        assert!(rates.snapshot(at(t0 + 60_000)).is_empty());
        assert!(
            rates.products.lock().expect("lock").is_empty(),
            "idle product kept"
        );
    }

    #[test]
    fn a_reused_bucket_starts_empty() {
        let rates = DecisionRates::new();
        let t0 = 1_700_000_000_000;
        let first = [job_at(t0)];
        rates.record(1, &first, &first, at(t0));
        // The same slot of the ring, a window later: only the new batch.
        let later = [job_at(t0 + 60_000), job_at(t0 + 60_000)];
        rates.record(1, &later, &[], at(t0 + 60_000));
        let one = &rates.snapshot(at(t0 + 60_000))[&1];
        assert_eq!(one.granted_per_sec, 0.0);
        assert_eq!(one.refused_per_sec, 2.0 / 60.0);
        assert_eq!((one.outcome_p50_ms, one.outcome_p99_ms), (1, 1));
    }
}
