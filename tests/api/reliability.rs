//! Faults: workers stopped mid-storm, poison messages, lost messages,
//! dropped broker and database connections.

use std::{sync::Arc, time::Duration};

use flash_sale::{
    broker,
    commands::{Command, HoldRequest},
    db::jobs,
    dead_letters,
};
use futures_util::future::join_all;
use lapin::options::{BasicGetOptions, QueuePurgeOptions};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Roles, spawn_app, spawn_with};

#[tokio::test]
async fn a_worker_stopped_mid_storm_loses_and_doubles_nothing() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let product = app.create_product("Interrupted", 100, 150).await;
    let (stop, first) = app.add_stoppable_worker().await;
    let app = Arc::new(app);
    let storm = {
        let app = app.clone();
        tokio::spawn(async move {
            join_all((0..400).map(|_| {
                let app = app.clone();
                async move {
                    app.post_hold(&json!({"product_id": product, "qty": 1}), &[])
                        .await
                        .status()
                }
            }))
            .await
        })
    };
    // Stop the worker while the storm is on; it finishes the batch in hand.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), first)
        .await
        .expect("the worker stops within 15 s")
        .expect("worker task")
        .expect("worker result");
    let statuses = storm.await.expect("storm");
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::ACCEPTED)
        .count() as i64;
    let refused_at_once = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count() as i64;
    assert_eq!(accepted + refused_at_once, 400);

    // A fresh worker takes over what was left (unacked messages came back).
    let (_, _second) = app.add_stoppable_worker().await;
    app.wait_until_idle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, accepted);
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 150);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM job_states WHERE status = 'succeeded'")
            .await,
        150
    );
    // Never applied twice: one ledger row per hold.
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM (SELECT ref_id FROM stock_ledger WHERE reason = 'hold' \
             GROUP BY ref_id HAVING COUNT(*) > 1) doubled"
        )
        .await,
        0
    );
    assert_eq!(app.stock_books(product).await, (0, 0, 150));
    app.assert_stock_accounted(product).await;
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}

#[tokio::test]
async fn dead_letters_are_listed_and_the_decodable_ones_redriven() {
    let app = spawn_with(
        Roles {
            apis: 1,
            workers: 1,
            scheduler: false,
        },
        &[],
    )
    .await;
    let product = app.create_product("Second chance", 100, 5).await;
    // A valid command that ended in the dead-letter queue (as after too many
    // failed deliveries) with its job still queued…
    let command = app.record_unpublished_hold(product, 2).await;
    app.dead_letter(&command.encode()).await;
    // …and garbage the worker rejects.
    app.broker
        .publish_command(0, b"\xff not a command")
        .await
        .expect("garbage");
    let mut waited = 0;
    while dead_letters::count(&app.broker).await.expect("count") < 2 {
        waited += 1;
        assert!(waited < 200, "dead letters never arrived");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let letters = dead_letters::list(&app.broker, 10).await.expect("list");
    assert_eq!(letters.len(), 2);
    assert_eq!(letters.iter().filter(|l| l.decodable).count(), 1);
    let garbage = letters
        .iter()
        .find(|l| !l.decodable)
        .expect("garbage listed");
    assert_eq!(garbage.reason.as_deref(), Some("rejected"));
    // Listing removed nothing (the broker puts them back asynchronously).
    let mut waited = 0;
    while dead_letters::count(&app.broker).await.expect("count") != 2 {
        waited += 1;
        assert!(waited < 200, "listed dead letters did not come back");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let report = dead_letters::redrive(&app.broker, 100, false)
        .await
        .expect("redrive");
    assert_eq!(
        report,
        dead_letters::Redrive {
            redriven: 1,
            kept: 1,
            dropped: 0
        }
    );
    app.wait_until_idle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 1);
    assert_eq!(app.stock_books(product).await, (3, 3, 2));
    let mut waited = 0;
    while dead_letters::count(&app.broker).await.expect("count") != 1 {
        waited += 1;
        assert!(waited < 200, "the kept dead letter did not come back");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let report = dead_letters::redrive(&app.broker, 100, true)
        .await
        .expect("drop");
    assert_eq!(
        report,
        dead_letters::Redrive {
            redriven: 0,
            kept: 0,
            dropped: 1
        }
    );
    assert_eq!(dead_letters::count(&app.broker).await.expect("count"), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_hold_answered_202_is_decided_even_if_its_message_is_lost() {
    let mut app = spawn_with(Roles::API_ONLY, &[("RELAY_AFTER_SECS", "1")]).await;
    let product = app.create_product("Outbox", 100, 5).await;
    let response = app
        .post_hold(&json!({"product_id": product, "qty": 2}), &[])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = response.json().await.expect("body");
    let job_id = body["job_id"].as_str().expect("job id").to_owned();

    // The 202 does not wait for the broker's confirm; the message arrives
    // just after it. Then the broker loses it.
    let queue = broker::partition_queue(broker::partition_for_product(
        product,
        app.settings.partitions,
    ));
    let mut arrived = 0;
    for _ in 0..200 {
        arrived = app.queue_depth(&queue).await;
        if arrived > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(arrived, 1);
    let channel = app.broker.channel().await.expect("channel");
    let purged = channel
        .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await
        .expect("purge");
    assert_eq!(purged, 1);

    // The job row is the outbox: the relay publishes it again.
    app.add_worker().await;
    app.start_scheduler().await;
    app.wait_until_idle().await;
    let job = app.job(&job_id).await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 1);
    assert_eq!(app.stock_books(product).await, (3, 3, 2));
    app.stop().await;
}

#[tokio::test]
async fn a_withdrawn_job_whose_command_arrives_anyway_changes_nothing() {
    let app = spawn_app().await;
    let product = app.create_product("Withdrawn", 100, 5).await;
    let applied = app.granted_hold(product, 1).await;
    let applied = uuid::Uuid::parse_str(&applied).expect("uuid");
    // What the api does after an INSERT whose answer was lost: it answered
    // 503 and withdraws whichever of those jobs are still queued. A job a
    // worker already decided stays.
    let command = app.record_unpublished_hold(product, 1).await;
    let job_id = command.job_id().expect("hold job");
    assert_eq!(
        jobs::withdraw_queued(&app.pool, &[applied, job_id])
            .await
            .expect("withdraw"),
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 1);
    app.broker
        .publish_command(
            command.partition(app.settings.partitions),
            &command.encode(),
        )
        .await
        .expect("publish");
    // Consumed and acked: the worker has seen it and done what it does.
    app.wait_until_drained().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 1);
    assert_eq!(app.stock_books(product).await.0, 4);
    app.stop().await;
}

/// Retries a hold (with `Prefer: wait`) until it is granted; 503s on the way
/// are the outage, anything else is a failure.
async fn hold_once_recovered(app: &crate::helpers::TestApp, product: i64) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let response = app
            .post_hold(
                &json!({"product_id": product, "qty": 1}),
                &[("prefer", "wait=2")],
            )
            .await;
        match response.status() {
            StatusCode::CREATED => return started.elapsed(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::ACCEPTED => {}
            other => panic!("unexpected {other} while recovering"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the stack did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_stack_recovers_when_the_broker_drops_every_connection() {
    let app = spawn_with(Roles::ALL, &[]).await;
    let product = app.create_product("Reconnect", 100, 10).await;
    app.granted_hold(product, 1).await;

    // What a broker restart does to its clients, for this test's vhost only.
    crate::helpers::rabbitmqctl(&[
        "close_all_connections",
        "-p",
        &app.isolation.vhost,
        "chaos: connection closed by the test",
    ]);
    hold_once_recovered(&app, product).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    app.wait_until_idle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 2);
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn the_stack_recovers_when_the_database_drops_every_connection() {
    let app = spawn_with(Roles::ALL, &[]).await;
    let product = app.create_product("Reconnect DB", 100, 10).await;
    app.granted_hold(product, 1).await;

    // Kill every server-side connection to this test's database (what a
    // database restart does), from a connection of its own.
    let admin = sqlx::MySqlPool::connect(
        &app.settings
            .database_url
            .expose()
            .replace(&app.isolation.db_name, "mysql"),
    )
    .await
    .expect("admin pool");
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
    )
    .bind(&app.isolation.db_name)
    .fetch_all(&admin)
    .await
    .expect("processlist");
    assert!(!ids.is_empty());
    for id in ids {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("KILL {id}")))
            .execute(&admin)
            .await;
    }
    admin.close().await;

    hold_once_recovered(&app, product).await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    app.wait_until_idle().await;
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 2);
    app.assert_stock_accounted(product).await;
    app.stop().await;
}

#[tokio::test]
async fn a_worker_locking_queued_jobs_does_not_block_new_jobs() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let product = app.create_product("Unblocked", 100, 10).await;
    let mut queued = Vec::new();
    for _ in 0..3 {
        let command = app.record_unpublished_hold(product, 1).await;
        queued.extend(command.job_id());
    }
    // What a hold batch does first: lock its queued jobs, and keep them
    // until commit.
    let mut worker_tx = app.pool.begin().await.expect("tx");
    let locked = jobs::lock_queued(&queued[..2])
        .fetch(&mut *worker_tx)
        .await
        .expect("lock");
    assert_eq!(locked.len(), 2);

    // Meanwhile the api records new jobs, and a 503 withdraws another one.
    // Either would wait for the worker's commit if those statements locked
    // the `queued` range of an index rather than rows by primary key.
    let recorded = tokio::time::timeout(
        Duration::from_secs(5),
        app.record_unpublished_hold(product, 1),
    )
    .await;
    let withdrawn = tokio::time::timeout(
        Duration::from_secs(5),
        jobs::withdraw_queued(&app.pool, &queued[2..]),
    )
    .await;
    // Release the locks before asserting, so a failure does not leave the
    // blocked statements waiting.
    worker_tx.rollback().await.expect("rollback");
    assert!(recorded.is_ok(), "a new job waited for the worker's locks");
    assert!(
        matches!(withdrawn, Ok(Ok(1))),
        "withdrawing a job waited for the worker's locks"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 3);
    app.stop().await;
}

#[tokio::test]
async fn a_stopping_api_waits_until_the_commands_it_handed_over_are_confirmed() {
    let app = spawn_with(Roles::NONE, &[]).await;
    let publisher = flash_sale::api::CommandPublisher::start(app.broker.clone());
    let product = 7;
    let mut places = Vec::new();
    for _ in 0..300 {
        places.push(publisher.place().await.expect("place"));
    }
    for place in places {
        place.publish(Command::Hold(HoldRequest {
            job_id: uuid::Uuid::now_v7(),
            product_id: product,
            qty: 1,
            customer_id: None,
        }));
    }
    // What `run_api` does once its last request is answered, before the
    // process exits and takes unsent messages with it.
    assert!(publisher.settled(Duration::from_secs(10)).await);

    // Settled means in the queue already, not on the way.
    let queue = broker::partition_queue(broker::partition_for_product(
        product,
        app.settings.partitions,
    ));
    let channel = app.broker.channel().await.expect("channel");
    let mut commands = 0;
    while let Some(message) = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
    {
        commands += flash_sale::commands::decode_message(&message.delivery.data)
            .expect("decode")
            .len();
    }
    assert_eq!(commands, 300);
    app.stop().await;
}

/// The worker's hold batches begin and commit as text, with their first and
/// last statements. A batch abandoned before its COMMIT (an error, a
/// cancelled future) must not hand its connection back to the pool inside
/// the transaction: its writes roll back, its locks go, and the next user of
/// the pool starts clean.
#[tokio::test]
async fn an_abandoned_text_transaction_leaves_nothing_behind() {
    use flash_sale::{
        db::text::{Batch, Read, Sql, TextTransaction, Writes},
        sql,
    };
    use sqlx::mysql::MySqlPoolOptions;

    let app = spawn_with(Roles::API_ONLY, &[]).await;
    let product = app.create_product("Abandoned", 100, 10).await;
    // One connection: whatever the abandoned transaction left on it, the
    // next acquire would get.
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .connect(app.settings.database_url.expose())
        .await
        .expect("pool");
    let stock = |pool: sqlx::MySqlPool| async move {
        sqlx::query_scalar::<_, i64>("SELECT stock FROM products WHERE id = ?")
            .bind(product)
            .fetch_one(&pool)
            .await
            .expect("stock")
    };

    // Dropped after a write, before its COMMIT.
    let mut lock = Sql::new();
    lock.push(sql!("SELECT stock FROM products WHERE id = "))
        .int(product)
        .push(sql!(" FOR UPDATE"));
    let mut update = Sql::new();
    update
        .push(sql!("UPDATE products SET stock = 3 WHERE id = "))
        .int(product);
    let mut reads = Batch::new();
    let locked = reads.read(Read::new(lock, |rows| Ok(rows.len())));
    let updated = reads.read(Read::new(update, |rows| Ok(rows.len())));
    let (tx, mut rows) = TextTransaction::begin_with(&pool, reads)
        .await
        .expect("begin");
    assert_eq!(rows.take(locked).expect("lock"), 1, "the locked row");
    assert_eq!(
        rows.take(updated).expect("update"),
        0,
        "an UPDATE has no rows"
    );
    drop(tx);
    let in_transaction: i64 = sqlx::query_scalar("SELECT CAST(@@in_transaction AS SIGNED)")
        .fetch_one(&pool)
        .await
        .expect("next user");
    let stock_seen = stock(pool.clone()).await;
    // Its row lock went with it (as soon as the server saw the connection
    // close): another session gets the row within a second.
    let mut other = app.pool.begin().await.expect("other");
    sqlx::query("SET SESSION innodb_lock_wait_timeout = 1")
        .execute(&mut *other)
        .await
        .expect("timeout");
    let locked = sqlx::query("SELECT stock FROM products WHERE id = ? FOR UPDATE")
        .bind(product)
        .execute(&mut *other)
        .await;
    other.rollback().await.expect("rollback");
    if in_transaction != 0 {
        // Else the open transaction would keep the test's database from
        // being dropped.
        pool.close().await;
    }
    assert_eq!(in_transaction, 0);
    assert_eq!(stock_seen, 10);
    assert!(locked.is_ok(), "the lock is free: {locked:?}");

    // A statement that fails stops the COMMIT sent with it.
    let mut lock = Sql::new();
    lock.push(sql!("SELECT stock FROM products WHERE id = "))
        .int(product)
        .push(sql!(" FOR UPDATE"));
    let mut reads = Batch::new();
    let _locked = reads.read(Read::new(lock, |rows| Ok(rows.len())));
    let (tx, _) = TextTransaction::begin_with(&pool, reads)
        .await
        .expect("begin");
    let mut last = Writes::new();
    for stock in [4, -1] {
        let mut update = Sql::new();
        update
            .push(sql!("UPDATE products SET stock = "))
            .int(stock)
            .push(sql!(" WHERE id = "))
            .int(product);
        last.push(update);
    }
    tx.commit_with(last)
        .await
        .expect_err("the CHECK refuses negative stock");
    assert_eq!(stock(pool.clone()).await, 10);

    // And one that commits keeps its writes.
    let (tx, _) = TextTransaction::begin_with(&pool, Batch::new())
        .await
        .expect("begin");
    let mut update = Sql::new();
    update
        .push(sql!("UPDATE products SET stock = 7 WHERE id = "))
        .int(product);
    let mut last = Writes::new();
    last.push(update);
    tx.commit_with(last).await.expect("commit");
    assert_eq!(stock(pool.clone()).await, 7);
    app.stop().await;
}
