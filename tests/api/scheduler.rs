//! The scheduler: expiry without reads, leader election, the relay,
//! retention and the stock audit.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use flash_sale::{audit, db::products, scheduler::apply_retention, time};
use reqwest::StatusCode;
use uuid::Uuid;

use crate::helpers::{self, Roles, TestApp, spawn_with};

const WORKER_AND_SCHEDULER: Roles = Roles::ALL;

/// [`helpers::grant_directly`] for this app.
async fn grant_directly(app: &TestApp, product_id: i64, count: usize, qty: i64) -> Vec<Uuid> {
    helpers::grant_directly(&app.pool, app.settings.hold_ttl, product_id, count, qty).await
}

async fn latest_expiry(app: &TestApp, product_id: i64) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT MAX(expires_at) FROM holds WHERE product_id = ?")
        .bind(product_id)
        .fetch_one(&app.pool)
        .await
        .expect("expiry")
}

/// Waits (reading the database, never the api) until the product's stock is
/// `expected`; returns how long after `since` that was.
async fn stock_back_after(
    app: &TestApp,
    product_id: i64,
    expected: i64,
    since: DateTime<Utc>,
) -> chrono::Duration {
    let started = Instant::now();
    loop {
        let (stock, _, _) = app.stock_books(product_id).await;
        if stock == expected {
            return Utc::now() - since;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stock stuck at {stock}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn expired_holds_return_their_stock_within_two_seconds_without_any_read() {
    let app = spawn_with(WORKER_AND_SCHEDULER, &[("HOLD_TTL_SECS", "1")]).await;
    let product = app.create_product("Fleeting", 100, 10).await;
    for _ in 0..3 {
        app.granted_hold(product, 2).await;
    }
    assert_eq!(app.stock_books(product).await.0, 4);
    let expires_at = latest_expiry(&app, product).await;
    let lag = stock_back_after(&app, product, 10, expires_at).await;
    assert!(
        lag <= chrono::Duration::milliseconds(2000),
        "stock came back {lag} after expiry"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM holds WHERE status = 'expired'")
            .await,
        3
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stock_ledger WHERE reason = 'hold_expired'")
            .await,
        3
    );
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn a_hold_turned_into_an_order_before_expiry_stays_used() {
    let app = spawn_with(WORKER_AND_SCHEDULER, &[("HOLD_TTL_SECS", "2")]).await;
    let product = app.create_product("Just in time", 100, 5).await;
    let hold_id = app.granted_hold(product, 2).await;
    let expiring = app.granted_hold(product, 1).await;
    let response = app.post_order(&hold_id, &[("prefer", "wait=10")]).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let expires_at = latest_expiry(&app, product).await;
    // The other hold is released; the used one keeps its stock.
    stock_back_after(&app, product, 3, expires_at).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = |id: &str| {
        let id = Uuid::parse_str(id).expect("uuid");
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM holds WHERE id = ?")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("status")
        }
    };
    assert_eq!(status(&hold_id).await, "used");
    assert_eq!(status(&expiring).await, "expired");
    assert_eq!(app.stock_books(product).await.0, 3);
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn a_thousand_holds_expiring_at_once_are_all_released() {
    let app = spawn_with(WORKER_AND_SCHEDULER, &[("HOLD_TTL_SECS", "1")]).await;
    let product = app.create_product("Crowd", 100, 1500).await;
    grant_directly(&app, product, 1000, 1).await;
    assert_eq!(app.stock_books(product).await, (500, 500, 1000));
    let expires_at = latest_expiry(&app, product).await;
    stock_back_after(&app, product, 1500, expires_at).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM holds WHERE status = 'expired'")
            .await,
        1000
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stock_ledger WHERE reason = 'hold_expired'")
            .await,
        1000
    );
    assert_eq!(app.stock_books(product).await, (1500, 1500, 0));
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn one_of_two_schedulers_leads_and_the_other_takes_over_within_five_seconds() {
    let mut app = spawn_with(
        Roles {
            apis: 1,
            workers: 1,
            scheduler: false,
        },
        &[("HOLD_TTL_SECS", "1")],
    )
    .await;
    let product = app.create_product("Leaders", 100, 100).await;
    let (a, stop_a) = app.start_scheduler().await;
    let (b, stop_b) = app.start_scheduler().await;
    let started = Instant::now();
    while !a.leader.load(Ordering::SeqCst) && !b.leader.load(Ordering::SeqCst) {
        assert!(started.elapsed() < Duration::from_secs(5), "nobody leads");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (leader, standby, stop_leader) = if a.leader.load(Ordering::SeqCst) {
        (a, b, stop_a)
    } else {
        (b, a, stop_b)
    };

    // Expiring holds give the leader sweeps to publish, one product at a time.
    for round in 0..3 {
        grant_directly(&app, product, 5, 1).await;
        tokio::time::sleep(Duration::from_millis(1700)).await;
        assert!(leader.leader.load(Ordering::SeqCst), "round {round}");
        assert!(!standby.leader.load(Ordering::SeqCst), "round {round}");
    }
    assert!(leader.sweeps_published.load(Ordering::SeqCst) >= 1);
    assert_eq!(standby.sweeps_published.load(Ordering::SeqCst), 0);

    stop_leader.cancel();
    let stopped = Instant::now();
    while !standby.leader.load(Ordering::SeqCst) {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the standby did not take over within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And it does the work now.
    grant_directly(&app, product, 5, 1).await;
    let expires_at = latest_expiry(&app, product).await;
    stock_back_after(&app, product, 100, expires_at).await;
    assert!(standby.sweeps_published.load(Ordering::SeqCst) >= 1);
    app.stop().await;
}

#[tokio::test]
async fn two_stacks_on_one_server_each_have_their_own_leader() {
    let no_roles = Roles::NONE;
    let mut first = spawn_with(no_roles, &[]).await;
    let mut second = spawn_with(no_roles, &[]).await;
    let (a, _) = first.start_scheduler().await;
    let (b, _) = second.start_scheduler().await;
    let started = Instant::now();
    while !(a.leader.load(Ordering::SeqCst) && b.leader.load(Ordering::SeqCst)) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "both stacks must lead"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_job_whose_publish_was_lost_is_relayed_and_completes_once() {
    let app = spawn_with(WORKER_AND_SCHEDULER, &[("RELAY_AFTER_SECS", "1")]).await;
    let product = app.create_product("Lost", 100, 5).await;
    let command = app.record_unpublished_hold(product, 2).await;
    let job_id = command.job_id().expect("hold job");

    app.wait_until_idle().await;
    let job = app.job(&job_id.to_string()).await;
    assert_eq!(job["status"], "succeeded");
    // Relayed more than once or not, it applied once. A copy published
    // now (what a relay racing the worker's commit sends) is consumed and
    // changes nothing.
    app.broker
        .publish_command(
            command.partition(app.settings.partitions),
            &command.encode(),
        )
        .await
        .expect("publish");
    app.wait_until_drained().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stock_ledger WHERE reason = 'hold'")
            .await,
        1
    );
    assert_eq!(app.stock_books(product).await.0, 3);
    app.stop().await;
}

#[tokio::test]
async fn the_audit_reports_a_corrupted_ledger_row() {
    let app = spawn_with(
        Roles {
            apis: 1,
            workers: 1,
            scheduler: false,
        },
        &[],
    )
    .await;
    let good = app.create_product("Good books", 100, 5).await;
    let bad = app.create_product("Cooked books", 100, 5).await;
    app.granted_hold(bad, 2).await;
    assert!(
        audit::Auditor::new()
            .run(&app.pool)
            .await
            .expect("audit")
            .is_empty()
    );

    sqlx::query(
        "UPDATE stock_ledger SET delta = delta + 7 WHERE product_id = ? AND reason = 'hold'",
    )
    .bind(bad)
    .execute(&app.pool)
    .await
    .expect("corrupt");
    let report = audit::Auditor::new().run(&app.pool).await.expect("audit");
    assert_eq!(report.len(), 1);
    let (books, problems) = &report[0];
    assert_eq!(books.product_id, bad);
    assert_eq!((books.stock, books.ledger, books.held), (3, 10, 2));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("ledger sum 10 differs from stock 3")),
        "{problems:?}"
    );
    assert!(report.iter().all(|(b, _)| b.product_id != good));
    app.stop().await;
}

#[tokio::test]
async fn the_audit_sums_only_new_ledger_rows_and_still_finds_a_bad_one() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let product = app.create_product("Audited", 100, 10).await;
    grant_directly(&app, product, 3, 1).await;
    let mut auditor = audit::Auditor::new();
    assert!(auditor.run(&app.pool).await.expect("audit").is_empty());

    grant_directly(&app, product, 2, 2).await;
    products::restock(&app.pool, product, 5)
        .await
        .expect("restock");
    let books = auditor.books(&app.pool).await.expect("books");
    assert_eq!(books, audit::books(&app.pool).await.expect("full books"));
    assert_eq!(
        (
            books[0].stock,
            books[0].ledger,
            books[0].stocked,
            books[0].held
        ),
        (8, 8, 15, 7)
    );

    // A row written without its stock change is new, so the next pass sees it.
    sqlx::query("INSERT INTO stock_ledger (product_id, delta, reason) VALUES (?, 4, 'restock')")
        .bind(product)
        .execute(&app.pool)
        .await
        .expect("stray row");
    let report = auditor.run(&app.pool).await.expect("audit");
    assert_eq!(report.len(), 1);
    assert!(
        report[0]
            .1
            .iter()
            .any(|p| p.contains("ledger sum 12 differs from stock 8")),
        "{report:?}"
    );

    // An old row changed in place is left to the full pass (`FULL_EVERY`).
    sqlx::query(
        "UPDATE stock_ledger SET delta = delta + 3 WHERE product_id = ? AND reason = 'initial'",
    )
    .bind(product)
    .execute(&app.pool)
    .await
    .expect("cook the opening row");
    let books = auditor.books(&app.pool).await.expect("books");
    assert_eq!(books[0].ledger, 12);
    let full = audit::Auditor::new()
        .run(&app.pool)
        .await
        .expect("full audit");
    assert_eq!(full.len(), 1, "{full:?}");
    assert_eq!((full[0].0.ledger, full[0].0.stocked), (15, 22));
    app.stop().await;
}

#[tokio::test]
async fn audits_during_concurrent_grants_and_restocks_never_miss_a_row() {
    const PRODUCTS: usize = 3;
    const WRITERS: usize = 4;
    const ROUNDS: usize = 20;
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let mut products = Vec::new();
    for i in 0..PRODUCTS {
        products.push(app.create_product(&format!("Storm {i}"), 100, 500).await);
    }
    let done = tokio_util::sync::CancellationToken::new();
    let auditing = {
        let pool = app.pool.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut auditor = audit::Auditor::new();
            let mut passes = 0;
            loop {
                let wrong = auditor.run(&pool).await.expect("audit");
                assert!(wrong.is_empty(), "pass {passes}: {wrong:?}");
                passes += 1;
                if done.is_cancelled() {
                    return (auditor, passes);
                }
            }
        })
    };
    let mut writers = tokio::task::JoinSet::new();
    for &product in &products {
        for _ in 0..WRITERS {
            let pool = app.pool.clone();
            let hold_ttl = app.settings.hold_ttl;
            writers.spawn(async move {
                for _ in 0..ROUNDS {
                    helpers::grant_directly(&pool, hold_ttl, product, 5, 1).await;
                    products::restock(&pool, product, 2).await.expect("restock");
                }
            });
        }
    }
    while let Some(writer) = writers.join_next().await {
        writer.expect("writer");
    }
    done.cancel();
    let (mut auditor, passes) = auditing.await.expect("auditor");
    assert!(passes >= 2, "only {passes} passes");

    let books = auditor.books(&app.pool).await.expect("books");
    assert_eq!(books, audit::books(&app.pool).await.expect("full books"));
    for book in &books {
        let granted = (WRITERS * ROUNDS * 5) as i64;
        let stocked = 500 + (WRITERS * ROUNDS * 2) as i64;
        assert_eq!(
            (book.stock, book.ledger, book.stocked, book.held),
            (stocked - granted, stocked - granted, stocked, granted)
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn retention_deletes_only_what_is_old_and_finished() {
    let app = spawn_with(Roles::NONE, &[]).await;
    let old = time::now() - chrono::Duration::days(8);
    let recent = time::now() - chrono::Duration::hours(1);
    for (status, created, completed) in [
        ("succeeded", old, Some(old)),
        ("failed", old, Some(old)),
        ("queued", old, None),
        ("succeeded", recent, Some(recent)),
    ] {
        // A job's id carries the millisecond it was recorded (UUIDv7).
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            u64::try_from(created.timestamp()).expect("after 1970"),
            created.timestamp_subsec_nanos(),
        ));
        sqlx::query(
            "INSERT INTO jobs (id, kind, status, command, created_at, completed_at, lane) VALUES (?, 'hold', ?, '{}', ?, ?, 1)",
        )
        .bind(id)
        .bind(status)
        .bind(created)
        .bind(completed)
        .execute(&app.pool)
        .await
        .expect("job");
        if status == "queued" {
            sqlx::query("INSERT INTO job_queue (kind, lane, id) VALUES ('hold', 1, ?)")
                .bind(id)
                .execute(&app.pool)
                .await
                .expect("queue row");
        }
    }
    for (key, created) in [("old", old), ("new", recent)] {
        sqlx::query(
            "INSERT INTO idempotency_keys (key_hash, route, idem_key, request_hash, job_id, created_at) \
             VALUES (?, 'holds', ?, ?, ?, ?)",
        )
        .bind(&flash_sale::domain::idempotency::fingerprint(&[key])[..])
        .bind(key)
        .bind(&[0u8; 32][..])
        .bind(Uuid::now_v7())
        .bind(created)
        .execute(&app.pool)
        .await
        .expect("key");
    }
    let deleted = apply_retention(&app.pool, app.settings.retention)
        .await
        .expect("retention");
    assert_eq!(deleted, 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM job_states WHERE status = 'queued'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM idempotency_keys").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_grant_is_decided_for_the_relay_retention_and_a_redelivery() {
    let app = spawn_with(Roles::NONE, &[]).await;
    let product = app.insert_product("granted", 10).await;
    let requests = helpers::record_queued_holds(&app.pool, product, &[1, 1, 1]).await;
    let ttl = app.settings.hold_ttl;
    let later = time::now() + chrono::Duration::minutes(1);
    let relayable = || flash_sale::db::jobs::stuck(&app.pool, later, 100);
    assert_eq!(relayable().await.expect("stuck").len(), 3);

    // Two granted; the third stays queued.
    flash_sale::worker::apply_holds(&app.pool, product, &requests[..2], ttl)
        .await
        .expect("granted");
    let stuck: Vec<Uuid> = relayable()
        .await
        .expect("stuck")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(stuck, vec![requests[2].job_id]);
    // A redelivery of the same two (and the third) grants only the third.
    let again = flash_sale::worker::apply_holds(&app.pool, product, &requests, ttl)
        .await
        .expect("redelivered");
    assert_eq!(again.jobs, vec![requests[2].job_id]);
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 3);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM stock_ledger WHERE reason = 'hold'")
            .await,
        3
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM job_queue").await, 0);
    for request in &requests {
        let job = flash_sale::db::jobs::get(&app.pool, request.job_id)
            .await
            .expect("read")
            .expect("job");
        assert_eq!(job.status, flash_sale::domain::JobStatus::Succeeded);
        assert!(job.completed_at.is_some() && job.result.is_some());
    }

    // Retention takes the grants as decided; a queued job stays.
    let queued = helpers::record_queued_holds(&app.pool, product, &[1]).await;
    let deleted = flash_sale::db::jobs::delete_decided_before(&app.pool, later, 100)
        .await
        .expect("retention");
    assert_eq!(deleted, 3);
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_all(&app.pool)
        .await
        .expect("jobs");
    assert_eq!(left, vec![queued[0].job_id]);
    app.stop().await;
}
