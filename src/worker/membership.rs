//! Which partitions this worker consumes. Workers share the partitions out
//! instead of each consuming all of them: two consumers on one queue halve
//! its batches and wait on each other for the same product rows, so a second
//! worker used to make the service slower, not faster.
//!
//! Each worker holds one numbered slot: a MySQL named lock on a connection
//! of its own, so a worker that dies frees its slot as soon as the server
//! sees its connection close. Every [`CHECK_EVERY`] each worker reads which
//! slots are held and consumes every n-th partition by its rank among them.
//! This only steers load; correctness never depends on it (README.md, "Why it is correct").
//! While workers notice a change, a partition may have two consumers (still
//! correct) or none (its commands wait a moment in the queue).

use std::time::Duration;

use sqlx::MySqlPool;

use crate::db::named_lock::{self, Holder, NamedLock};

/// How often a worker reads the slots: the longest a partition of a worker
/// that died or stopped waits for another worker to take it.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// A worker's place among the workers of one database.
pub struct Membership {
    pool: MySqlPool,
    /// One slot per partition: a worker beyond that would own nothing.
    slots: Vec<String>,
    held: Option<(usize, NamedLock)>,
}

impl Membership {
    pub async fn new(pool: MySqlPool, partitions: u16) -> sqlx::Result<Self> {
        let database = named_lock::database_name(&pool).await?;
        let slots = (0..partitions)
            .map(|slot| named_lock::lock_name(&format!("worker.{slot}"), &database))
            .collect();
        Ok(Self {
            pool,
            slots,
            held: None,
        })
    }

    /// The partitions this worker should consume now, taking a free slot
    /// first if it holds none. Empty when every slot is taken (a standby);
    /// `None` when the database cannot tell: keep consuming what you have.
    pub async fn share(&mut self) -> Option<Vec<u16>> {
        if self.held.is_none() {
            match self.take_slot().await {
                Ok(Some(held)) => self.held = Some(held),
                Ok(None) => return Some(Vec::new()),
                Err(e) => {
                    tracing::warn!(error = %e, "worker slot unavailable");
                    return None;
                }
            }
        }
        let (slot, lock) = self.held.as_mut()?;
        let slot = *slot;
        let read = tokio::time::timeout(CHECK_EVERY * 5, lock.holders(&self.slots)).await;
        let why = match read {
            Ok(Ok(holders)) if holders.get(slot) == Some(&Holder::Us) => {
                let held = |h: &&Holder| **h != Holder::Free;
                let rank = holders[..slot].iter().filter(held).count();
                let members = holders.iter().filter(held).count();
                return Some(share_of(rank, members, self.slots.len() as u16));
            }
            Ok(Ok(_)) => "held by another connection".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer".to_owned(),
        };
        // Likely a broken connection, which has lost the slot anyway: take
        // one again on the next check.
        tracing::warn!(slot, why, "worker slot lost");
        self.held = None;
        None
    }

    /// The first free slot, taken; `None` when all are held.
    async fn take_slot(&self) -> sqlx::Result<Option<(usize, NamedLock)>> {
        let holders = {
            let mut connection = self.pool.acquire().await?;
            named_lock::holders(&mut connection, &self.slots).await?
        };
        for (slot, holder) in holders.into_iter().enumerate() {
            if holder != Holder::Free {
                continue;
            }
            // Another worker may take it first; then try the next.
            if let Some(lock) = named_lock::try_acquire(&self.pool, &self.slots[slot]).await? {
                return Ok(Some((slot, lock)));
            }
        }
        Ok(None)
    }

    /// Gives the slot up, so the others take this worker's partitions on
    /// their next check.
    pub async fn leave(self) {
        if let Some((_, lock)) = self.held {
            // Unanswered, the slot frees when the connection drops anyway.
            let _ = tokio::time::timeout(CHECK_EVERY * 2, lock.release()).await;
        }
    }
}

/// The partitions of the worker of `rank` among `members`: every
/// `members`-th, starting at `rank`.
pub fn share_of(rank: usize, members: usize, partitions: u16) -> Vec<u16> {
    (0..partitions)
        .filter(|&p| members > 0 && usize::from(p) % members == rank)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_share_every_partition_once() {
        for members in 1..=20 {
            let mut all: Vec<u16> = (0..members)
                .flat_map(|rank| share_of(rank, members, 16))
                .collect();
            all.sort_unstable();
            assert_eq!(all, (0..16).collect::<Vec<u16>>(), "{members} members");
        }
        assert_eq!(share_of(1, 2, 8), vec![1, 3, 5, 7]);
        assert_eq!(share_of(2, 3, 8), vec![2, 5]);
        assert!(share_of(0, 0, 8).is_empty());
    }
}
