//! Leader election through MySQL `GET_LOCK`: the lock lives as long as the
//! connection that took it, so a leader that dies (or loses its connection)
//! frees it at once and a standby takes over on its next attempt.

use sha2::{Digest, Sha256};
use sqlx::{Connection, MySqlConnection, MySqlPool};

/// MySQL lock names are at most 64 characters.
const MAX_LOCK_NAME: usize = 64;

/// The lock name for a database. Lock names are global to the server, so
/// the database name is part of it: two stacks sharing a server each elect
/// their own leader.
pub fn lock_name(database: &str) -> String {
    let name = format!("flash-sale.scheduler.{database}");
    if name.len() <= MAX_LOCK_NAME {
        name
    } else {
        let digest = hex::encode(Sha256::digest(database.as_bytes()));
        format!("flash-sale.scheduler.{}", &digest[..40])
    }
}

/// A held leadership: the connection that holds the lock.
pub struct Leadership {
    connection: MySqlConnection,
    name: String,
}

/// Tries once, without waiting. `Ok(None)`: another process leads.
pub async fn try_acquire(pool: &MySqlPool, name: &str) -> sqlx::Result<Option<Leadership>> {
    // A pooled connection would keep the lock after going back to the pool;
    // a detached one lives and dies with the leadership.
    let mut connection = pool.acquire().await?.detach();
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
        .bind(name)
        .fetch_one(&mut connection)
        .await?;
    if got == Some(1) {
        Ok(Some(Leadership {
            connection,
            name: name.to_owned(),
        }))
    } else {
        let _ = connection.close().await;
        Ok(None)
    }
}

impl Leadership {
    /// Whether the lock is still ours (the connection is alive and the
    /// server still names it as the holder).
    pub async fn still_held(&mut self) -> bool {
        let held: sqlx::Result<Option<i64>> =
            sqlx::query_scalar("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
                .bind(&self.name)
                .fetch_one(&mut self.connection)
                .await;
        matches!(held, Ok(Some(1)))
    }

    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
            .bind(&self.name)
            .execute(&mut self.connection)
            .await;
        let _ = self.connection.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_include_the_database_and_fit_64_characters() {
        assert_eq!(lock_name("flash_sale"), "flash-sale.scheduler.flash_sale");
        let long = lock_name(&"d".repeat(64));
        assert!(long.len() <= 64);
        assert_ne!(long, lock_name(&"e".repeat(64)));
    }
}
