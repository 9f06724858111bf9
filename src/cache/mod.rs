//! The api's in-process product cache.
//!
//! Reads never touch the database: a refresher reloads every product at
//! least every [`FULL_REFRESH`] (so an entry is never more than about a
//! second stale), and a stock-change event marks its product dirty so the
//! refresher reloads it at once. Reloading from the database, rather than
//! applying the event's numbers, keeps the cache right whatever order events
//! arrive in.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use sqlx::MySqlPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{claims::Claims, domain::Product};

mod snapshot;

/// Full reload period. Half the 1 s staleness bound leaves room for a slow
/// query.
pub const FULL_REFRESH: Duration = Duration::from_millis(500);

/// Older than this, the cache is not trusted to refuse a request.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// Stock per product, as this replica last saw it.
fn observe(product: &Product) {
    metrics::gauge!("flash_product_stock", "product_id" => product.id.to_string())
        .set(product.stock as f64);
}

#[derive(Clone, Default)]
pub struct ProductCache {
    inner: Arc<Inner>,
    claims: Claims,
}

#[derive(Default)]
struct Inner {
    state: RwLock<State>,
    dirty: std::sync::Mutex<HashSet<i64>>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    products: HashMap<i64, Product>,
    /// When the last full reload finished; `None` until the first one.
    loaded_at: Option<Instant>,
    /// When each product's entry was last read (the start of the read):
    /// the hot product is reloaded on every event, so it stays fresh while
    /// a slow full reload under load would age the whole cache.
    read_at: HashMap<i64, Instant>,
    /// Per product, the last hold row (ledger id) a reload has seen.
    hold_cursors: HashMap<i64, i64>,
}

impl State {
    /// Stores `product` as read at `read_at`, unless the entry holds a
    /// newer one: a write this process made (`put`) while the read was in
    /// flight must not be overwritten by the older row.
    fn store_read(&mut self, product: Product, read_at: Instant) {
        if self
            .read_at
            .get(&product.id)
            .is_some_and(|at| *at > read_at)
        {
            return;
        }
        self.read_at.insert(product.id, read_at);
        self.products.insert(product.id, product);
    }
}

impl ProductCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The units this replica's queued holds claim, kept consistent with the
    /// stock by every reload.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    pub fn get(&self, id: i64) -> Option<Product> {
        self.read().products.get(&id).cloned()
    }

    pub fn list(&self) -> Vec<Product> {
        let mut all: Vec<Product> = self.read().products.values().cloned().collect();
        all.sort_by_key(|p| p.id);
        all
    }

    /// Whether the last full reload is recent enough to answer from.
    pub fn is_fresh(&self) -> bool {
        self.read()
            .loaded_at
            .is_some_and(|at| at.elapsed() <= FRESH_FOR)
    }

    /// Whether `id`'s entry is recent enough to refuse a request from.
    pub fn is_fresh_for(&self, id: i64) -> bool {
        self.read()
            .read_at
            .get(&id)
            .is_some_and(|at| at.elapsed() <= FRESH_FOR)
    }

    /// Stores a product this process just wrote (admin create/restock).
    pub fn put(&self, product: Product) {
        observe(&product);
        let mut state = self.write();
        state.read_at.insert(product.id, Instant::now());
        state.products.insert(product.id, product);
    }

    /// A stock-change event: reload this product as soon as possible.
    pub fn mark_dirty(&self, product_id: i64) {
        self.lock_dirty().insert(product_id);
        self.inner.wake.notify_one();
    }

    /// Jobs a worker decided: their claims end, and the units of the
    /// granted holds among them leave the cached stock in the same step, so
    /// they are counted once (in a claim, then in the stock) until the
    /// stock event's reload reads the stock that holds them.
    pub fn jobs_finished(&self, job_ids: &[Uuid], granted_holds: &[Uuid]) {
        let mut state = self.write();
        for (job_id, product_id, qty) in self.claims.end(job_ids) {
            if granted_holds.contains(&job_id)
                && let Some(product) = state.products.get_mut(&product_id)
            {
                product.stock = (product.stock - qty).max(0);
            }
        }
    }

    /// Reloads every product.
    pub async fn reload_all(&self, pool: &MySqlPool) -> sqlx::Result<()> {
        // Dirty marks taken before the query are covered by its result.
        self.lock_dirty().clear();
        let started = Instant::now();
        let cursors = self.read().hold_cursors.clone();
        let read = snapshot::read(pool, None, &cursors, &self.claims).await?;
        let mut state = self.write();
        self.store(&mut state, read, started);
        state.loaded_at = Some(Instant::now());
        drop(state);
        self.claims.tidy();
        Ok(())
    }

    async fn reload_dirty(&self, pool: &MySqlPool) -> sqlx::Result<()> {
        let ids: Vec<i64> = self.lock_dirty().drain().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let cursors = self.read().hold_cursors.clone();
        let read = match snapshot::read(pool, Some(&ids), &cursors, &self.claims).await {
            Ok(read) => read,
            Err(e) => {
                // Keep them dirty for the next attempt.
                self.lock_dirty().extend(ids);
                return Err(e);
            }
        };
        self.store(&mut self.write(), read, started);
        Ok(())
    }

    /// Takes in what a reload read: the stock, and the end of the claims
    /// it holds, in one step under the state's lock.
    fn store(&self, state: &mut State, read: snapshot::Snapshot, started: Instant) {
        for product in read.products {
            observe(&product);
            state.store_read(product, started);
        }
        for (product_id, cursor) in read.cursors {
            let seen = state.hold_cursors.entry(product_id).or_default();
            *seen = (*seen).max(cursor);
        }
        self.claims.end(&read.granted);
        self.claims.settle(&read.checked, &read.still_queued);
    }

    /// Runs until `shutdown` resolves: full reloads on a timer, dirty
    /// products as soon as they are marked.
    pub async fn run_refresher(&self, pool: MySqlPool, shutdown: impl Future<Output = ()>) {
        let mut full = tokio::time::interval(FULL_REFRESH);
        full.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            let kind = tokio::select! {
                _ = &mut shutdown => return,
                _ = full.tick() => "full",
                _ = self.inner.wake.notified() => "changed",
            };
            let started = Instant::now();
            let result = if kind == "full" {
                self.reload_all(&pool).await
            } else {
                self.reload_dirty(&pool).await
            };
            metrics::histogram!("flash_api_cache_reload_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            if let Err(e) = result {
                tracing::warn!(error = %e, "product cache refresh failed");
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // map itself is always whole, so keep serving it.
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_dirty(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.inner
            .dirty
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Product {
        Product {
            id: 1,
            name: name.to_owned(),
            price: 500,
            stock: 7,
            max_per_customer: None,
            sale_starts_at: None,
            sale_ends_at: None,
        }
    }

    #[test]
    fn a_read_started_before_a_put_does_not_overwrite_it() {
        let cache = ProductCache::new();
        let read_started = Instant::now();
        cache.put(named("Renamed"));
        cache.write().store_read(named("Drop"), read_started);
        assert_eq!(cache.get(1).map(|p| p.name).as_deref(), Some("Renamed"));
        // A read that started after the put replaces it.
        cache.write().store_read(named("Later"), Instant::now());
        assert_eq!(cache.get(1).map(|p| p.name).as_deref(), Some("Later"));
    }
}
