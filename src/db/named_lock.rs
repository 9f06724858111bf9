//! MySQL named locks (`GET_LOCK`): a lock lives as long as the connection
//! that took it, so a process that dies (or loses its connection) frees it
//! at once. The scheduler elects its leader with one; each worker holds a
//! numbered slot with one (see `worker::membership`).

use sha2::{Digest, Sha256};
use sqlx::{Connection, MySqlConnection, MySqlPool, Row, mysql::MySqlRow};

use super::text::{Read, Sql};
use crate::sql;

/// MySQL lock names are at most 64 characters.
const MAX_LOCK_NAME: usize = 64;

/// The lock name for `purpose` in `database`. Lock names are global to the
/// server, so the database name is part of it: two stacks sharing a server
/// never block each other.
pub fn lock_name(purpose: &str, database: &str) -> String {
    let name = format!("flash-sale.{purpose}.{database}");
    if name.len() <= MAX_LOCK_NAME {
        name
    } else {
        let digest = hex::encode(Sha256::digest(database.as_bytes()));
        format!("flash-sale.{purpose}.{}", &digest[..40])
    }
}

/// The database the pool's connections use.
pub async fn database_name(pool: &MySqlPool) -> sqlx::Result<String> {
    let database = sqlx::query_scalar!(r#"SELECT DATABASE() AS "name?: String""#)
        .fetch_one(pool)
        .await?;
    Ok(database.unwrap_or_default())
}

/// A held lock: the connection that holds it.
pub struct NamedLock {
    connection: MySqlConnection,
    name: String,
}

/// Who holds a lock, as seen from one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Free,
    /// The connection that asked.
    Us,
    Other,
}

/// Tries once, without waiting. `Ok(None)`: another connection holds it.
pub async fn try_acquire(pool: &MySqlPool, name: &str) -> sqlx::Result<Option<NamedLock>> {
    // A pooled connection would keep the lock after going back to the pool;
    // a detached one lives and dies with the lock.
    let mut connection = pool.acquire().await?.detach();
    let got = sqlx::query_scalar!(r#"SELECT GET_LOCK(?, 0) AS "got?: i64""#, name)
        .fetch_one(&mut connection)
        .await?;
    if got == Some(1) {
        Ok(Some(NamedLock {
            connection,
            name: name.to_owned(),
        }))
    } else {
        let _ = connection.close().await;
        Ok(None)
    }
}

/// Who holds each of `names`, in one round trip on `connection`.
pub async fn holders(
    connection: &mut MySqlConnection,
    names: &[String],
) -> sqlx::Result<Vec<Holder>> {
    // Names are rendered as literals: their number varies with the
    // partitions, and one round trip reads them all.
    let mut sql = Sql::new();
    sql.push(sql!("SELECT CAST(CONNECTION_ID() AS SIGNED)"));
    for name in names {
        sql.push(sql!(", CAST(IS_USED_LOCK("))
            .text(name)
            .push(sql!(") AS SIGNED)"));
    }
    let count = names.len();
    let row = Read::new(sql, |rows: Vec<MySqlRow>| {
        rows.into_iter()
            .next()
            .ok_or_else(|| sqlx::Error::RowNotFound)
    })
    .fetch(&mut *connection)
    .await?;
    let us: i64 = row.try_get(0)?;
    (1..=count)
        .map(|i| {
            Ok(match row.try_get::<Option<i64>, _>(i)? {
                None => Holder::Free,
                Some(id) if id == us => Holder::Us,
                Some(_) => Holder::Other,
            })
        })
        .collect()
}

impl NamedLock {
    /// Whether the lock is still ours (the connection is alive and the
    /// server still names it as the holder).
    pub async fn still_held(&mut self) -> bool {
        let name = std::slice::from_ref(&self.name);
        matches!(
            holders(&mut self.connection, name).await.as_deref(),
            Ok([Holder::Us])
        )
    }

    /// Who holds each of `names`, read on this lock's connection: an error
    /// means this lock may be lost too.
    pub async fn holders(&mut self, names: &[String]) -> sqlx::Result<Vec<Holder>> {
        holders(&mut self.connection, names).await
    }

    pub async fn release(mut self) {
        let _ = sqlx::query!("SELECT RELEASE_LOCK(?) AS released", self.name)
            .fetch_optional(&mut self.connection)
            .await;
        let _ = self.connection.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_include_the_database_and_fit_64_characters() {
        assert_eq!(
            lock_name("scheduler", "flash_sale"),
            "flash-sale.scheduler.flash_sale"
        );
        for purpose in ["scheduler", "worker.1023"] {
            let long = lock_name(purpose, &"d".repeat(64));
            assert!(long.len() <= 64, "{long}");
            assert_ne!(long, lock_name(purpose, &"e".repeat(64)));
        }
    }
}
