//! Units of stock this api replica has queued hold requests for and not yet
//! heard the outcome of: the requests ahead of a new one.
//!
//! The sold-out fast path refuses a hold at once when the cached stock,
//! less these claims, cannot cover it: the requests ahead will be decided
//! first (a partition keeps arrival order) and take that stock. Without
//! them the api keeps queueing requests for a product whose last units are
//! already spoken for, until the worker catches up and the cache sees zero;
//! under a crowd that is most of the sale.
//!
//! A claim ends when the worker's "jobs finished" event names its job (a
//! granted hold's units then leave the cached stock in the same step: ended
//! alone, they would be counted nowhere until the stock event's reload, and
//! every request in that moment would be queued for the worker to refuse;
//! under a crowd, thousands per sale), when a cache reload finds its hold
//! granted (the reload reads the stock and the grants since its last look
//! in one snapshot, so a unit is never counted both in the stock and in a
//! claim: `cache::snapshot`), when its request was not accepted after all,
//! or, should the database be unreachable for reloads, after [`CLAIM_TTL`].
//! Ending early only lets the worker refuse a request the api could have;
//! counting a unit twice would refuse one that could have been granted.
//! Claims are per replica: another replica's requests are not counted, so
//! with several replicas fewer requests are refused early; none is refused
//! wrongly for it.
//!
//! On a product with a per-customer limit, a buyer's requests claim units
//! only up to the limit: the worker refuses the rest for the limit (unless
//! one of the buyer's claimed ones fails), so claiming them would count
//! units no one will take and refuse other buyers while stock is left.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use uuid::Uuid;

/// How long a claim counts without news of its job.
pub const CLAIM_TTL: Duration = Duration::from_secs(5);

#[derive(Clone, Default)]
pub struct Claims {
    inner: Arc<Mutex<State>>,
}

/// One request's claim.
struct Held {
    product_id: i64,
    qty: i64,
    /// The buyer, on a product with a per-customer limit.
    buyer: Option<String>,
    /// Its job is recorded (the request was queued). Until then a reload
    /// must not check it: a snapshot taken while the job's INSERT is in
    /// flight finds no row, which would end the claim of a job that is
    /// about to be queued.
    queued: bool,
}

#[derive(Default)]
struct State {
    by_job: HashMap<Uuid, Held>,
    per_product: HashMap<i64, i64>,
    /// Units claimed per (product, buyer) on limited products.
    per_buyer: HashMap<(i64, String), i64>,
    /// Claims in the order they were made, for expiry.
    made: VecDeque<(Instant, Uuid)>,
}

impl State {
    fn end(&mut self, job_id: &Uuid) -> Option<Held> {
        let held = self.by_job.remove(job_id)?;
        if let Some(claimed) = self.per_product.get_mut(&held.product_id) {
            *claimed -= held.qty;
            if *claimed <= 0 {
                self.per_product.remove(&held.product_id);
            }
        }
        if let Some(buyer) = &held.buyer {
            let key = (held.product_id, buyer.clone());
            if let Some(claimed) = self.per_buyer.get_mut(&key) {
                *claimed -= held.qty;
                if *claimed <= 0 {
                    self.per_buyer.remove(&key);
                }
            }
        }
        Some(held)
    }

    fn expire(&mut self, now: Instant) {
        while let Some((made, job_id)) = self.made.front().copied() {
            if now.duration_since(made) < CLAIM_TTL {
                break;
            }
            self.made.pop_front();
            self.end(&job_id);
        }
        // A crowd's claims grow these to a backlog's size (100k entries, ~20
        // MB); ended claims free nothing until the capacity goes too.
        // Shrinking only when three quarters are empty keeps it rare.
        if self.made.capacity() > SHRINK_ABOVE && self.made.len() < self.made.capacity() / 4 {
            self.made.shrink_to_fit();
        }
        if self.by_job.capacity() > SHRINK_ABOVE && self.by_job.len() < self.by_job.capacity() / 4 {
            self.by_job.shrink_to_fit();
        }
    }
}

/// Below this capacity the claims' maps are never shrunk.
const SHRINK_ABOVE: usize = 4096;

/// Why a hold was refused at once.
#[derive(Debug, PartialEq, Eq)]
pub struct Spoken {
    /// Units claimed by this replica's requests still queued.
    pub claimed: i64,
}

impl Claims {
    pub fn new() -> Self {
        Self::default()
    }

    /// Claims `qty` of `product_id` for `job_id` if `stock` less what is
    /// already claimed covers it. The claim lasts until [`Claim::keep`] is
    /// called (the request was queued) and then until its job is heard of;
    /// dropping the [`Claim`] without keeping it ends it at once.
    ///
    /// `limited`: the buyer and the product's per-customer limit. A request
    /// of a buyer whose claims here already reach it claims nothing
    /// (`Ok(None)`): it goes to the worker uncounted.
    pub fn claim(
        &self,
        job_id: Uuid,
        product_id: i64,
        qty: i64,
        stock: i64,
        limited: Option<(&str, i64)>,
    ) -> Result<Option<Claim>, Spoken> {
        let mut state = self.lock();
        let now = Instant::now();
        state.expire(now);
        let claimed = state.per_product.get(&product_id).copied().unwrap_or(0);
        if stock - claimed < qty {
            return Err(Spoken { claimed });
        }
        let buyer = match limited {
            None => None,
            Some((buyer, max)) => {
                let key = (product_id, buyer.to_owned());
                let has = state.per_buyer.get(&key).copied().unwrap_or(0);
                if has + qty > max {
                    return Ok(None);
                }
                *state.per_buyer.entry(key).or_default() += qty;
                Some(buyer.to_owned())
            }
        };
        state.by_job.insert(
            job_id,
            Held {
                product_id,
                qty,
                buyer,
                queued: false,
            },
        );
        *state.per_product.entry(product_id).or_default() += qty;
        state.made.push_back((now, job_id));
        Ok(Some(Claim {
            claims: self.clone(),
            job_id,
            kept: false,
        }))
    }

    /// Ends the claims of `job_ids` (jobs decided, or requests not queued)
    /// and returns those that were held: job, product and units.
    pub fn end(&self, job_ids: &[Uuid]) -> Vec<(Uuid, i64, i64)> {
        let mut state = self.lock();
        job_ids
            .iter()
            .filter_map(|job_id| {
                state
                    .end(job_id)
                    .map(|held| (*job_id, held.product_id, held.qty))
            })
            .collect()
    }

    /// The jobs of the queued claims on `products` (every product when
    /// `None`), for a reload to check against the database.
    pub fn jobs(&self, products: Option<&[i64]>) -> Vec<Uuid> {
        let mut state = self.lock();
        state.expire(Instant::now());
        state
            .by_job
            .iter()
            .filter(|(_, held)| {
                held.queued && products.is_none_or(|p| p.contains(&held.product_id))
            })
            .map(|(job_id, _)| *job_id)
            .collect()
    }

    /// After a reload whose stock was read in the same snapshot as the job
    /// rows: of the `checked` claims, those whose job was no longer queued
    /// (decided, so in that stock, or never recorded) end now. Without this
    /// a reload that sees a batch's commit before its event arrives would
    /// count the batch's units twice, in the stock and in the claims, and
    /// refuse requests the stock could still cover.
    pub fn settle(&self, checked: &[Uuid], still_queued: &HashSet<Uuid>) {
        let mut state = self.lock();
        for job_id in checked {
            if !still_queued.contains(job_id) {
                state.end(job_id);
            }
        }
    }

    /// Ends the claims past [`CLAIM_TTL`] and gives back the room of ended
    /// ones: the cache's refresher calls it on every full reload, so it
    /// happens with no request coming in (after a crowd has left).
    pub fn tidy(&self) {
        self.lock().expire(Instant::now());
    }

    /// Units claimed for `product_id` right now.
    pub fn claimed(&self, product_id: i64) -> i64 {
        let mut state = self.lock();
        state.expire(Instant::now());
        state.per_product.get(&product_id).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The maps stay whole whatever panicked while the lock was held.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A claim being made: ended on drop unless kept.
pub struct Claim {
    claims: Claims,
    job_id: Uuid,
    kept: bool,
}

impl Claim {
    /// The request was queued (its job is recorded): the claim stands
    /// until its job is decided (the worker's event, or a reload that sees
    /// it), and from now on a reload may check it.
    pub fn keep(mut self) {
        self.kept = true;
        if let Some(held) = self.claims.lock().by_job.get_mut(&self.job_id) {
            held.queued = true;
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.kept {
            self.claims.end(&[self.job_id]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim that must be made, without a limit.
    fn take(claims: &Claims, job: Uuid, product: i64, qty: i64, stock: i64) -> Claim {
        claims
            .claim(job, product, qty, stock, None)
            .expect("stock covers it")
            .expect("claimed")
    }

    #[test]
    fn claims_count_until_their_job_is_decided_or_dropped() {
        let claims = Claims::new();
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        take(&claims, a, 1, 2, 3).keep();
        assert_eq!(
            claims.claim(b, 1, 2, 3, None).err(),
            Some(Spoken { claimed: 2 })
        );
        // Another product is not affected.
        take(&claims, c, 2, 3, 3).keep();
        {
            let _dropped = take(&claims, b, 1, 1, 3);
            assert_eq!(claims.claimed(1), 3);
        }
        assert_eq!(claims.claimed(1), 2);
        // The job finished (a job of another replica ends nothing here).
        assert_eq!(claims.end(&[a, Uuid::now_v7()]), vec![(a, 1, 2)]);
        assert_eq!(claims.claimed(1), 0);
        assert_eq!(claims.claimed(2), 3);
    }

    #[test]
    fn a_reload_ends_the_claims_whose_jobs_it_saw_decided() {
        let claims = Claims::new();
        let (queued, decided, later) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        take(&claims, queued, 1, 1, 10).keep();
        take(&claims, decided, 1, 2, 10).keep();
        let checked = claims.jobs(Some(&[1]));
        assert_eq!(checked.len(), 2);
        assert!(claims.jobs(Some(&[2])).is_empty());
        // A request whose job is still being recorded is not checked: a
        // snapshot taken now would not find its row.
        let recording = take(&claims, Uuid::now_v7(), 1, 1, 10);
        assert_eq!(claims.jobs(Some(&[1])).len(), 2);
        drop(recording);
        // Made after the reload read its snapshot: not checked, kept.
        take(&claims, later, 1, 4, 10).keep();
        claims.settle(&checked, &HashSet::from([queued]));
        assert_eq!(claims.claimed(1), 5);
    }

    #[test]
    fn tidying_gives_back_the_room_of_a_crowds_ended_claims() {
        let claims = Claims::new();
        let jobs: Vec<Uuid> = (0..10_000).map(|_| Uuid::now_v7()).collect();
        for job in &jobs {
            take(&claims, *job, 1, 1, 1_000_000).keep();
        }
        assert!(claims.lock().by_job.capacity() >= 10_000);
        assert_eq!(claims.end(&jobs).len(), 10_000);
        claims.tidy();
        assert_eq!(claims.lock().by_job.capacity(), 0);
        assert_eq!(claims.claimed(1), 0);
    }

    #[test]
    fn a_buyer_claims_no_more_than_the_limit() {
        let claims = Claims::new();
        let limited = Some(("b-1", 2));
        let first = claims.claim(Uuid::now_v7(), 1, 1, 10, limited).expect("ok");
        let second = claims.claim(Uuid::now_v7(), 1, 1, 10, limited).expect("ok");
        let third = claims.claim(Uuid::now_v7(), 1, 1, 10, limited).expect("ok");
        assert!(first.is_some() && second.is_some());
        assert!(third.is_none(), "past the limit: uncounted");
        assert_eq!(claims.claimed(1), 2);
        // Another buyer claims as usual.
        let other = claims
            .claim(Uuid::now_v7(), 1, 2, 10, Some(("b-2", 2)))
            .expect("ok");
        assert!(other.is_some());
        assert_eq!(claims.claimed(1), 4);
        drop(first);
        let again = claims.claim(Uuid::now_v7(), 1, 1, 10, limited).expect("ok");
        assert!(again.is_some(), "a claim ended gives the buyer room again");
        drop((second, again, other));
        assert_eq!(claims.claimed(1), 0);
    }
}
