//! SQL sent as text: the batched statements (the api's job inserts, the
//! worker's hold batches), several in one round trip, no prepared statement.
//!
//! A hold batch writes a few hundred rows with statements whose shape (the
//! number of rows) changes every time: as prepared statements each would be
//! prepared anew (a round trip and a parse of thousands of placeholders),
//! then sent, one round trip each, all while the product row is locked and
//! every process is competing for the same cores. As text they go out
//! together and the server parses literals.
//!
//! Only values that cannot carry SQL are rendered: integers, timestamps in a
//! fixed numeric format, and everything else (ids, JSON, any string) as hex
//! literals. The SQL itself is `&'static str`.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{
    AssertSqlSafe, Either, MySql, MySqlExecutor, MySqlPool, mysql::MySqlRow, pool::PoolConnection,
};
use uuid::Uuid;

#[derive(Default)]
pub struct Sql(String);

impl Sql {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, sql: &'static str) -> &mut Self {
        self.0.push_str(sql);
        self
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        let _ = write!(self.0, "{value}");
        self
    }

    /// Any bytes, as `X'…'`: a binary string the server stores as is in a
    /// BINARY or a utf8mb4 text column.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.0.push_str("X'");
        for byte in value {
            let _ = write!(self.0, "{byte:02x}");
        }
        self.0.push('\'');
        self
    }

    /// As sqlx binds a `Uuid` for MySQL: its 16 bytes.
    pub fn uuid(&mut self, id: Uuid) -> &mut Self {
        self.bytes(id.as_bytes())
    }

    /// Ids separated by commas, for `IN (…)`.
    pub fn uuids<'a>(&mut self, ids: impl IntoIterator<Item = &'a Uuid>) -> &mut Self {
        self.join(ids, ", ", |sql, id| {
            sql.uuid(*id);
        })
    }

    pub fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// A `DATETIME(3)` value, in UTC like every timestamp the service writes.
    pub fn time(&mut self, at: &DateTime<Utc>) -> &mut Self {
        let _ = write!(self.0, "'{}'", at.format("%Y-%m-%d %H:%M:%S%.3f"));
        self
    }

    /// `items` rendered by `each`, separated by `separator`.
    pub fn join<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        separator: &'static str,
        mut each: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.0.push_str(separator);
            }
            each(self, item);
        }
        self
    }

    /// Appends another batch of statements.
    pub fn append(&mut self, other: Sql) -> &mut Self {
        self.0.push_str(&other.0);
        self
    }

    /// Runs every statement (each ends with `;`) in one round trip.
    pub async fn execute<'e>(self, db: impl MySqlExecutor<'e>) -> sqlx::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        sqlx::raw_sql(AssertSqlSafe(self.0)).execute(db).await?;
        Ok(())
    }

    /// Runs one query and returns its rows.
    pub async fn fetch_all<'e>(self, db: impl MySqlExecutor<'e>) -> sqlx::Result<Vec<MySqlRow>> {
        sqlx::raw_sql(AssertSqlSafe(self.0)).fetch_all(db).await
    }

    /// Runs every statement in one round trip and returns the rows of each,
    /// one list per statement (empty for a statement that returns none).
    async fn fetch_each<'e>(self, db: impl MySqlExecutor<'e>) -> sqlx::Result<Vec<Vec<MySqlRow>>> {
        let mut statements = Vec::new();
        let mut rows = Vec::new();
        let mut results = sqlx::raw_sql(AssertSqlSafe(self.0)).fetch_many(db);
        while let Some(item) = results.try_next().await? {
            match item {
                Either::Left(_end_of_statement) => statements.push(std::mem::take(&mut rows)),
                Either::Right(row) => rows.push(row),
            }
        }
        Ok(statements)
    }
}

/// The rows of each statement sent in one round trip, in order.
pub struct Results(Vec<Vec<MySqlRow>>);

impl Results {
    /// The rows of statement `index` (none for a statement past the end).
    pub fn of(&self, index: usize) -> &[MySqlRow] {
        self.0.get(index).map(Vec::as_slice).unwrap_or_default()
    }

    /// How many statements answered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A transaction begun together with its first statements and committed
/// together with its last, in one round trip each: a hold batch takes two
/// round trips instead of five (BEGIN, product lock, job locks, writes,
/// COMMIT), and on two busy cores every round trip is a wait for both
/// processes to be scheduled.
///
/// sqlx's own transaction cannot send its COMMIT with other statements, so
/// this one guards the connection itself: dropped before it committed (an
/// error, a cancelled future), it closes the connection instead of handing
/// it back to the pool inside a transaction, and the server rolls back.
pub struct TextTransaction {
    conn: PoolConnection<MySql>,
    committed: bool,
}

impl TextTransaction {
    /// Begins a transaction and runs `first` in it; returns the rows of each
    /// of its statements.
    pub async fn begin_with(pool: &MySqlPool, first: Sql) -> sqlx::Result<(Self, Results)> {
        let mut tx = Self {
            conn: pool.acquire().await?,
            committed: false,
        };
        let mut sql = Sql::new();
        sql.push("BEGIN;\n").append(first);
        let rows = sql.fetch_each(&mut *tx.conn).await?;
        Ok((tx, Results(rows.into_iter().skip(1).collect())))
    }

    /// Runs `last` and commits. A statement that fails stops the rest, the
    /// COMMIT with them.
    pub async fn commit_with(mut self, mut last: Sql) -> sqlx::Result<()> {
        last.push("COMMIT;\n");
        last.execute(&mut *self.conn).await?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TextTransaction {
    fn drop(&mut self) {
        if !self.committed {
            self.conn.close_on_drop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_literals_that_cannot_carry_sql() {
        let mut sql = Sql::new();
        sql.push("SELECT ")
            .int(-7)
            .push(", ")
            .text("it's'; DROP TABLE x; --")
            .push(", ")
            .uuid(Uuid::nil())
            .push(", ")
            .time(&DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("time"))
            .push(", ")
            .join([1, 2, 3], "|", |s, v| {
                s.int(v);
            });
        assert_eq!(
            sql.0,
            "SELECT -7, X'69742773273b2044524f50205441424c4520783b202d2d', \
             X'00000000000000000000000000000000', '2023-11-14 22:13:20.123', 1|2|3"
        );
    }
}
