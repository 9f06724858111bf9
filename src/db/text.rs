//! SQL sent as text: the batched statements (the api's job inserts, the
//! worker's batches), several in one round trip, no prepared statement.
//!
//! One file past 400 lines on purpose: the builder, the typed read slots,
//! the batch and the transaction are one mechanism, and the argument below
//! that nothing from outside can become SQL covers them together (a fifth
//! of the file is its tests).
//!
//! A hold batch writes a few hundred rows with statements whose shape (the
//! number of rows) changes every time: as prepared statements each would be
//! prepared anew (a round trip and a parse of thousands of placeholders),
//! then sent, one round trip each, all while the product row is locked and
//! every process is competing for the same cores. As text they go out
//! together and the server parses literals.
//!
//! Nothing from outside can become SQL here. The SQL itself is only ever a
//! [`StaticSql`], which the [`sql!`](crate::sql) macro makes from a
//! constant: a `const` cannot hold a string made at run time, so there is
//! no way to pass one. Values are rendered as literals that cannot carry
//! SQL: integers, timestamps in a fixed numeric format, enum spellings the
//! data layer declares (lower-case words), and everything else (ids, JSON,
//! any string) as hex.
//!
//! ```
//! use flash_sale::{db::text::Sql, sql};
//! let table = String::from("holds; DROP TABLE products");
//! let mut q = Sql::new();
//! q.push(sql!("SELECT id FROM holds WHERE note = ")).text(&table);
//! ```
//!
//! A string made at run time is refused by the compiler, `&'static` or not:
//!
//! ```compile_fail
//! use flash_sale::db::text::Sql;
//! let table = String::from("holds");
//! let mut q = Sql::new();
//! q.push(table.as_str());
//! ```
//!
//! ```compile_fail
//! use flash_sale::db::text::Sql;
//! let leaked: &'static str = Box::leak(String::from("holds").into_boxed_str());
//! let mut q = Sql::new();
//! q.push(leaked);
//! ```
//!
//! ```compile_fail
//! use flash_sale::{db::text::Sql, sql};
//! let leaked: &'static str = Box::leak(String::from("holds").into_boxed_str());
//! let mut q = Sql::new();
//! q.push(sql!(leaked));
//! ```
//!
//! Statements sent together come back through typed [`Slot`]s: whoever adds
//! a read to a [`Batch`] gets the slot that decodes its rows, so results are
//! never picked out by position.
//!
//! Past 400 lines with its tests and the doctests above: the builder, the
//! batch and the transaction guard are one safety argument, read together.

use std::{
    collections::HashSet,
    fmt::Write,
    marker::PhantomData,
    sync::atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Datelike, Timelike, Utc};
use futures_util::TryStreamExt;
use sqlx::{
    AssertSqlSafe, Either, FromRow, MySql, MySqlExecutor, MySqlPool, Row, mysql::MySqlRow,
    pool::PoolConnection,
};
use uuid::Uuid;

/// A piece of SQL fixed at compile time. Made by [`sql!`](crate::sql) only.
pub trait StaticSql {
    const TEXT: &'static str;
}

/// SQL text from a constant expression (a literal, `concat!`):
/// `sql.push(sql!("SELECT …"))`.
#[macro_export]
macro_rules! sql {
    ($text:expr) => {{
        struct Text;
        impl $crate::db::text::StaticSql for Text {
            const TEXT: &'static str = $text;
        }
        Text
    }};
}

/// A value whose SQL spelling the data layer declares (a status enum):
/// rendered as a quoted literal. See [`crate::db::columns`].
pub trait SqlWord: Copy {
    fn sql_word(self) -> &'static str;
}

/// SQL text being built: fixed fragments and rendered values.
#[derive(Default)]
pub struct Sql(String);

impl Sql {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push<S: StaticSql>(&mut self, _sql: S) -> &mut Self {
        self.0.push_str(S::TEXT);
        self
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        let _ = write!(self.0, "{value}");
        self
    }

    /// Any bytes, as `X'…'`: a binary string the server stores as is in a
    /// BINARY or a utf8mb4 text column.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        // By table, not `write!`: a batch renders thousands of ids.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.reserve(value.len() * 2 + 3);
        self.0.push_str("X'");
        for byte in value {
            self.0.push(char::from(HEX[usize::from(byte >> 4)]));
            self.0.push(char::from(HEX[usize::from(byte & 0xf)]));
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
        self.list(ids, |sql, id| {
            sql.uuid(*id);
        })
    }

    pub fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// `NULL` for `None`.
    pub fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.text(value),
            None => {
                self.0.push_str("NULL");
                self
            }
        }
    }

    /// An enum value, as the data layer spells it.
    pub fn word(&mut self, value: impl SqlWord) -> &mut Self {
        self.0.push('\'');
        self.0.push_str(value.sql_word());
        self.0.push('\'');
        self
    }

    /// Enum values separated by commas, for `IN (…)`.
    pub fn words<W: SqlWord>(&mut self, values: &[W]) -> &mut Self {
        self.list(values, |sql, value| {
            sql.word(*value);
        })
    }

    /// A `DATETIME(3)` value, in UTC like every timestamp the service writes.
    /// `'YYYY-MM-DD hh:mm:ss.fff'`, digit by digit: chrono's `format`
    /// parses its pattern on every call, and a batch renders hundreds.
    pub fn time(&mut self, at: &DateTime<Utc>) -> &mut Self {
        let millis = at.timestamp_subsec_millis().min(999);
        self.0.push('\'');
        self.digits(at.year().clamp(0, 9999).unsigned_abs(), 4)
            .sep('-')
            .digits(at.month(), 2)
            .sep('-')
            .digits(at.day(), 2)
            .sep(' ')
            .digits(at.hour(), 2)
            .sep(':')
            .digits(at.minute(), 2)
            .sep(':')
            .digits(at.second(), 2)
            .sep('.')
            .digits(millis, 3)
            .sep('\'')
    }

    /// `value`'s last `width` decimal digits, zero-padded.
    fn digits(&mut self, value: u32, width: u32) -> &mut Self {
        for place in (0..width).rev() {
            let digit = value / 10u32.pow(place) % 10;
            self.0.push(char::from(b'0' + digit as u8));
        }
        self
    }

    fn sep(&mut self, c: char) -> &mut Self {
        self.0.push(c);
        self
    }

    /// `items` rendered by `each`, separated by commas.
    pub fn list<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        self.join(items, sql!(", "), |sql, item| each(sql, item))
    }

    /// `items` rendered by `each`, separated by `separator`.
    pub fn join<T, S: StaticSql>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        _separator: S,
        mut each: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.0.push_str(S::TEXT);
            }
            each(self, item);
        }
        self
    }

    fn append(&mut self, other: Sql) {
        self.0.push_str(&other.0);
    }

    fn into_query(self) -> AssertSqlSafe<String> {
        // Safe by construction: see the module documentation.
        AssertSqlSafe(self.0)
    }
}

/// One statement that returns rows, and how to read them.
pub struct Read<T> {
    sql: Sql,
    decode: fn(Vec<MySqlRow>) -> sqlx::Result<T>,
}

impl<T> Read<T> {
    /// `sql` is a single statement, without its `;`.
    pub fn new(sql: Sql, decode: fn(Vec<MySqlRow>) -> sqlx::Result<T>) -> Self {
        Self { sql, decode }
    }

    /// Runs it alone.
    pub async fn fetch<'e>(self, db: impl MySqlExecutor<'e>) -> sqlx::Result<T> {
        let rows = sqlx::raw_sql(self.sql.into_query()).fetch_all(db).await?;
        (self.decode)(rows)
    }
}

/// Every row, as `R`.
pub fn all<R: for<'r> FromRow<'r, MySqlRow>>(rows: Vec<MySqlRow>) -> sqlx::Result<Vec<R>> {
    rows.iter().map(R::from_row).collect()
}

/// The first row, if any, as `R`.
pub fn first<R: for<'r> FromRow<'r, MySqlRow>>(rows: Vec<MySqlRow>) -> sqlx::Result<Option<R>> {
    rows.first().map(R::from_row).transpose()
}

/// The first column of every row, as ids.
pub fn id_list(rows: Vec<MySqlRow>) -> sqlx::Result<Vec<Uuid>> {
    rows.iter().map(|row| row.try_get::<Uuid, _>(0)).collect()
}

/// The first column of every row, as a set of ids.
pub fn id_set(rows: Vec<MySqlRow>) -> sqlx::Result<HashSet<Uuid>> {
    rows.iter().map(|row| row.try_get::<Uuid, _>(0)).collect()
}

/// Writes (statements that return no rows), in order.
#[derive(Default)]
pub struct Writes(Sql);

impl Writes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one statement (`sql`, without its `;`).
    pub fn push(&mut self, sql: Sql) -> &mut Self {
        if !sql.is_empty() {
            self.0.append(sql);
            self.0.0.push_str(";\n");
        }
        self
    }

    pub fn append(&mut self, other: Writes) -> &mut Self {
        self.0.append(other.0);
        self
    }

    /// `update` (`UPDATE <table> SET status = `) the rows `ids` to `status`
    /// as of `now`; nothing when `ids` is empty. Holds and orders share it.
    pub fn set_status<'a, S: StaticSql>(
        update: S,
        status: impl SqlWord,
        now: &DateTime<Utc>,
        ids: impl IntoIterator<Item = &'a Uuid>,
    ) -> Self {
        let mut ids = ids.into_iter().peekable();
        let mut writes = Self::new();
        if ids.peek().is_none() {
            return writes;
        }
        let mut sql = Sql::new();
        sql.push(update)
            .word(status)
            .push(crate::sql!(", updated_at = "))
            .time(now)
            .push(crate::sql!(" WHERE id IN ("))
            .uuids(ids)
            .push(crate::sql!(")"));
        writes.push(sql);
        writes
    }

    /// Runs them all in one transaction, in one round trip (BEGIN and
    /// COMMIT sent with them); returns the rows they affected. A statement
    /// that fails stops the rest, and the connection is closed, which rolls
    /// the transaction back.
    pub async fn apply(self, pool: &MySqlPool) -> sqlx::Result<u64> {
        let mut tx = TextTransaction {
            conn: pool.acquire().await?,
            committed: false,
        };
        let mut sql = Sql::new();
        sql.push(crate::sql!("BEGIN;\n")).append(self.0);
        sql.push(crate::sql!("COMMIT;\n"));
        let affected = Writes(sql).execute(&mut *tx.conn).await?;
        tx.committed = true;
        Ok(affected)
    }

    /// Runs them all in one round trip; returns the rows they affected.
    pub async fn execute<'e>(self, db: impl MySqlExecutor<'e>) -> sqlx::Result<u64> {
        if self.is_empty() {
            return Ok(0);
        }
        let done = sqlx::raw_sql(self.0.into_query()).execute(db).await?;
        Ok(done.rows_affected())
    }
}

static BATCHES: AtomicU64 = AtomicU64::new(0);

/// Reads sent together in one round trip. Each [`Batch::read`] returns the
/// [`Slot`] its rows come back in.
pub struct Batch {
    sql: Sql,
    reads: usize,
    id: u64,
}

/// Where one read's rows come back: taken from the [`Rows`] of its batch.
#[must_use = "a slot is how its rows are read"]
pub struct Slot<T> {
    index: usize,
    batch: u64,
    decode: fn(Vec<MySqlRow>) -> sqlx::Result<T>,
    _read: PhantomData<T>,
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

impl Batch {
    pub fn new() -> Self {
        Self {
            sql: Sql::new(),
            reads: 0,
            id: BATCHES.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub fn read<T>(&mut self, read: Read<T>) -> Slot<T> {
        self.sql.append(read.sql);
        self.sql.0.push_str(";\n");
        self.reads += 1;
        Slot {
            index: self.reads - 1,
            batch: self.id,
            decode: read.decode,
            _read: PhantomData,
        }
    }

    /// Runs every read in one round trip.
    pub async fn fetch<'e>(self, db: impl MySqlExecutor<'e>) -> sqlx::Result<Rows> {
        let id = self.id;
        let sets = fetch_each(self.sql, db).await?;
        Ok(Rows::new(sets, id))
    }
}

/// The rows of a batch's reads, taken out by their slots.
pub struct Rows {
    sets: Vec<Option<Vec<MySqlRow>>>,
    batch: u64,
}

impl Rows {
    fn new(sets: Vec<Vec<MySqlRow>>, batch: u64) -> Self {
        Self {
            sets: sets.into_iter().map(Some).collect(),
            batch,
        }
    }

    pub fn take<T>(&mut self, slot: Slot<T>) -> sqlx::Result<T> {
        let misuse = |what: &str| sqlx::Error::Protocol(format!("batch result {what}"));
        if slot.batch != self.batch {
            return Err(misuse("taken from another batch"));
        }
        let rows = self
            .sets
            .get_mut(slot.index)
            .ok_or_else(|| misuse("missing"))?
            .take()
            .ok_or_else(|| misuse("taken twice"))?;
        (slot.decode)(rows)
    }
}

/// Runs every statement of `sql` in one round trip and returns the rows of
/// each, one list per statement.
async fn fetch_each<'e>(sql: Sql, db: impl MySqlExecutor<'e>) -> sqlx::Result<Vec<Vec<MySqlRow>>> {
    let mut statements = Vec::new();
    let mut rows = Vec::new();
    let mut results = sqlx::raw_sql(sql.into_query()).fetch_many(db);
    while let Some(item) = results.try_next().await? {
        match item {
            Either::Left(_end_of_statement) => statements.push(std::mem::take(&mut rows)),
            Either::Right(row) => rows.push(row),
        }
    }
    Ok(statements)
}

/// A transaction begun together with its first reads and committed
/// together with its writes, in one round trip each: a hold batch takes two
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
    /// Begins a transaction and runs `reads` in it.
    pub async fn begin_with(pool: &MySqlPool, reads: Batch) -> sqlx::Result<(Self, Rows)> {
        let mut tx = Self {
            conn: pool.acquire().await?,
            committed: false,
        };
        let id = reads.id;
        let mut sql = Sql::new();
        sql.push(sql!("BEGIN;\n")).append(reads.sql);
        let sets = fetch_each(sql, &mut *tx.conn).await?;
        // The first result is BEGIN's.
        Ok((tx, Rows::new(sets.into_iter().skip(1).collect(), id)))
    }

    /// Runs `writes` and commits. A statement that fails stops the rest,
    /// the COMMIT with them.
    pub async fn commit_with(mut self, mut writes: Writes) -> sqlx::Result<()> {
        writes.0.push(sql!("COMMIT;\n"));
        writes.execute(&mut *self.conn).await?;
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

    #[derive(Clone, Copy)]
    struct Word;

    impl SqlWord for Word {
        fn sql_word(self) -> &'static str {
            "queued"
        }
    }

    #[test]
    fn values_render_as_literals_that_cannot_carry_sql() {
        let mut sql = Sql::new();
        sql.push(sql!("SELECT "))
            .int(-7)
            .push(sql!(", "))
            .text("it's'; DROP TABLE x; --")
            .push(sql!(", "))
            .uuid(Uuid::nil())
            .push(sql!(", "))
            .time(&DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("time"))
            .push(sql!(", "))
            .word(Word)
            .push(sql!(", "))
            .opt_text(None)
            .push(sql!(", "))
            .join([1, 2, 3], sql!("|"), |s, v| {
                s.int(v);
            });
        assert_eq!(
            sql.0,
            "SELECT -7, X'69742773273b2044524f50205441424c4520783b202d2d', \
             X'00000000000000000000000000000000', '2023-11-14 22:13:20.123', 'queued', NULL, 1|2|3"
        );
    }

    #[test]
    fn times_and_bytes_render_as_chrono_and_format_would() {
        let mut at = DateTime::from_timestamp(0, 0).expect("epoch");
        // Every field's width and carry: from 1970 by odd steps to past 2100.
        while at.year() < 2110 {
            let mut sql = Sql::new();
            sql.time(&at);
            assert_eq!(sql.0, format!("'{}'", at.format("%Y-%m-%d %H:%M:%S%.3f")));
            at += chrono::Duration::milliseconds(86_399_997 * 13 + 7);
        }
        let bytes: Vec<u8> = (0..=255).collect();
        let mut sql = Sql::new();
        sql.bytes(&bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sql.0, format!("X'{hex}'"));
    }

    #[test]
    fn a_slot_reads_only_its_own_batch_once() {
        let read = || Read::new(Sql::new(), |rows: Vec<MySqlRow>| Ok(rows.len()));
        let mut ours = Batch::new();
        let first = ours.read(read());
        let second = ours.read(read());
        let mut theirs = Batch::new();
        let foreign = theirs.read(read());
        let mut rows = Rows::new(vec![Vec::new(), Vec::new()], ours.id);
        assert_eq!(rows.take(second).expect("second"), 0);
        assert!(rows.take(foreign).is_err());
        assert_eq!(rows.take(first).expect("first"), 0);
        let again = Slot {
            index: 0,
            batch: ours.id,
            decode: |rows: Vec<MySqlRow>| Ok(rows.len()),
            _read: PhantomData,
        };
        assert!(rows.take(again).is_err());
    }
}
