//! `workers`: each worker's latest heartbeat (its name, the partitions it
//! consumes, when it was last seen), for the admin overview. Times are the
//! server's (`NOW(3)`), so hosts with skewed clocks compare fairly.

use chrono::{DateTime, Utc};
use sqlx::{MySqlExecutor, Row, mysql::MySqlRow};

use super::text::{Read, Sql, Writes};
use crate::sql;

/// A worker not seen this long is left out of the overview (spelled out
/// in the SQL of [`seen`], which takes only constant text).
pub const SEEN_WITHIN_SECS: i64 = 10;

/// A worker's latest heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub name: String,
    /// Ascending.
    pub partitions: Vec<u16>,
    pub seen_at: DateTime<Utc>,
}

/// Records that worker `name` consumes `partitions` now.
pub async fn beat<'e>(
    db: impl MySqlExecutor<'e>,
    name: &str,
    partitions: &[u16],
) -> sqlx::Result<()> {
    let listed = partitions
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut sql = Sql::new();
    sql.push(sql!("INSERT INTO workers (name, partitions, seen_at) VALUES ("))
        .text(name)
        .push(sql!(", "))
        .text(&listed)
        .push(sql!(
            ", NOW(3)) ON DUPLICATE KEY UPDATE partitions = VALUES(partitions), seen_at = VALUES(seen_at)"
        ));
    let mut writes = Writes::new();
    writes.push(sql);
    writes.execute(db).await.map(|_| ())
}

/// Deletes worker `name`'s row (it stops).
pub async fn forget<'e>(db: impl MySqlExecutor<'e>, name: &str) -> sqlx::Result<()> {
    let mut sql = Sql::new();
    sql.push(sql!("DELETE FROM workers WHERE name = "))
        .text(name);
    let mut writes = Writes::new();
    writes.push(sql);
    writes.execute(db).await.map(|_| ())
}

/// Deletes the rows of workers not seen for an hour (they died without
/// deleting theirs). Returns how many.
pub async fn prune<'e>(db: impl MySqlExecutor<'e>) -> sqlx::Result<u64> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "DELETE FROM workers WHERE seen_at < NOW(3) - INTERVAL 1 HOUR"
    ));
    let mut writes = Writes::new();
    writes.push(sql);
    writes.execute(db).await
}

/// The workers seen in the last [`SEEN_WITHIN_SECS`], by name.
pub fn seen() -> Read<Vec<Heartbeat>> {
    let mut sql = Sql::new();
    sql.push(sql!(
        "SELECT name, partitions, seen_at FROM workers \
         WHERE seen_at > NOW(3) - INTERVAL 10 SECOND ORDER BY name"
    ));
    Read::new(sql, |rows: Vec<MySqlRow>| {
        rows.iter()
            .map(|row| {
                let listed: String = row.try_get("partitions")?;
                Ok(Heartbeat {
                    name: row.try_get("name")?,
                    partitions: parse_partitions(&listed),
                    seen_at: row.try_get("seen_at")?,
                })
            })
            .collect()
    })
}

/// The stored list back as numbers; anything else in it is skipped (the
/// column is ours, but a bad row must not fail the overview).
fn parse_partitions(listed: &str) -> Vec<u16> {
    let mut partitions: Vec<u16> = listed
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    partitions.sort_unstable();
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_read_back_in_order() {
        assert_eq!(parse_partitions(""), Vec::<u16>::new());
        assert_eq!(parse_partitions("3,0,12"), vec![0, 3, 12]);
        assert_eq!(parse_partitions("1,x,2"), vec![1, 2]);
    }
}
