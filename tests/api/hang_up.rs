//! A client that hangs up mid-request: a job recorded by then is published
//! at once, not left to the relay (`RELAY_AFTER_SECS`).

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, MySqlConnection};
use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::helpers::{Roles, spawn_with};

/// Sends a hold with an `Idempotency-Key` over a raw connection and
/// returns the connection, unanswered.
async fn send_hold(base: &str, product: i64, key: &str) -> TcpStream {
    let addr = base.trim_start_matches("http://");
    let body = json!({"product_id": product, "qty": 1}).to_string();
    let request = format!(
        "POST /api/v1/holds HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Idempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    stream
}

/// Waits until a statement of this database waits for a table lock: the
/// api's job insert has reached the locked `jobs` table.
async fn wait_for_blocked_insert(probe: &mut MySqlConnection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND STATE LIKE '%lock%' \
             AND INFO LIKE 'INSERT INTO jobs%'",
        )
        .fetch_one(&mut *probe)
        .await
        .expect("processlist");
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the job insert never blocked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_hold_whose_client_hung_up_is_published_at_once() {
    let app = spawn_with(Roles::ALL, &[("RELAY_AFTER_SECS", "3600")]).await;
    let product = app.create_product("Hang-up", 100, 5).await;
    let url = app.settings.database_url.expose().to_owned();

    // The jobs table is locked, so the request stops inside its insert,
    // after its idempotency key is claimed in the same transaction.
    let mut locker = MySqlConnection::connect(&url).await.expect("connect");
    sqlx::query("LOCK TABLES jobs WRITE")
        .execute(&mut locker)
        .await
        .expect("lock jobs");
    let stream = send_hold(&app.apis[0], product, "hang-up-1").await;
    let mut probe = MySqlConnection::connect(&url).await.expect("connect");
    wait_for_blocked_insert(&mut probe).await;

    // The buyer hangs up. Give the api the moment it needs to notice and
    // drop the request (before the fix, that dropped the job's publish).
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::query("UNLOCK TABLES")
        .execute(&mut locker)
        .await
        .expect("unlock");
    let unlocked = Instant::now();

    // The job found by its key is decided within 1 s, with the relay an
    // hour away.
    let deadline = unlocked + Duration::from_secs(1);
    let status = loop {
        let status: Option<String> = sqlx::query_scalar(
            "SELECT j.status FROM idempotency_keys k JOIN job_states j ON j.id = k.job_id \
             WHERE k.idem_key = 'hang-up-1'",
        )
        .fetch_optional(&mut probe)
        .await
        .expect("job by key");
        if status.as_deref().is_some_and(|s| s != "queued") || Instant::now() >= deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        status.as_deref(),
        Some("succeeded"),
        "decided within 1 s of the unlock ({:?} after it)",
        unlocked.elapsed()
    );
    assert_eq!(app.stock_books(product).await, (4, 4, 1));
    app.stop().await;
}
