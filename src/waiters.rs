//! Requests waiting for a job's outcome (`Prefer: wait`). The events
//! listener wakes them when a worker reports the job finished; a slow
//! database poll is the fallback for a lost event.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::Notify;
use uuid::Uuid;

/// How often a waiter re-reads the job when no event has come.
pub const POLL_FALLBACK: Duration = Duration::from_millis(250);

/// Per job: the wake-up shared by its waiters, and how many there are.
type Registry = HashMap<Uuid, (Arc<Notify>, usize)>;

#[derive(Clone, Default)]
pub struct JobWaiters {
    inner: Arc<Mutex<Registry>>,
}

/// A registration; dropping it unregisters.
pub struct Waiter {
    registry: JobWaiters,
    job_id: Uuid,
    notify: Arc<Notify>,
}

impl JobWaiters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register before reading the job, so a finish between the read and the
    /// wait is not missed.
    pub fn register(&self, job_id: Uuid) -> Waiter {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = map
            .entry(job_id)
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Waiter {
            registry: self.clone(),
            job_id,
            notify: entry.0.clone(),
        }
    }

    pub fn finished(&self, job_id: Uuid) {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((notify, _)) = map.get(&job_id) {
            // notify_one stores a permit when nobody is parked yet;
            // notify_waiters wakes everybody already parked.
            notify.notify_waiters();
            notify.notify_one();
        }
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Waiter {
    /// Waits for a wake-up or `at_most`, whichever comes first.
    pub async fn wait(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.notify.notified()).await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut map = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&self.job_id) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.job_id);
            }
        }
    }
}
