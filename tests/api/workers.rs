//! Workers share the partitions out: one consumer per queue however many
//! workers run, and a worker that stops or dies has its partitions taken
//! over by the others.

use std::time::{Duration, Instant};

use flash_sale::{
    broker,
    worker::membership::{CHECK_EVERY, Membership},
};
use serde_json::json;

use crate::helpers::{Roles, TestApp, spawn_with};

async fn member(app: &TestApp) -> Membership {
    Membership::new(app.pool.clone(), app.settings.partitions)
        .await
        .expect("membership")
}

#[tokio::test]
async fn workers_share_the_partitions_by_their_rank_among_the_held_slots() {
    let app = spawn_with(Roles::NONE, &[("PARTITIONS", "4")]).await;
    let mut first = member(&app).await;
    assert_eq!(first.share().await, Some(vec![0, 1, 2, 3]));
    let mut second = member(&app).await;
    assert_eq!(second.share().await, Some(vec![1, 3]));
    assert_eq!(first.share().await, Some(vec![0, 2]));

    // A worker that stops gives its slot up at once.
    first.leave().await;
    assert_eq!(second.share().await, Some(vec![0, 1, 2, 3]));

    // A newcomer takes the lowest free slot, so it ranks first.
    let mut third = member(&app).await;
    assert_eq!(third.share().await, Some(vec![0, 2]));
    assert_eq!(second.share().await, Some(vec![1, 3]));

    // A worker that dies frees its slot when the server sees its
    // connection close.
    drop(second);
    let started = Instant::now();
    loop {
        let share = third.share().await;
        if share == Some(vec![0, 1, 2, 3]) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the dead worker's slot is still held: {share:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    third.leave().await;
    app.stop().await;
}

#[tokio::test]
async fn a_worker_beyond_the_partition_count_stands_by_until_a_slot_frees() {
    let app = spawn_with(Roles::NONE, &[("PARTITIONS", "2")]).await;
    let mut first = member(&app).await;
    let mut second = member(&app).await;
    let mut standby = member(&app).await;
    assert_eq!(first.share().await, Some(vec![0, 1]));
    assert_eq!(second.share().await, Some(vec![1]));
    assert_eq!(standby.share().await, Some(vec![]));
    assert_eq!(first.share().await, Some(vec![0]));

    first.leave().await;
    assert_eq!(standby.share().await, Some(vec![0]));
    assert_eq!(second.share().await, Some(vec![1]));
    second.leave().await;
    standby.leave().await;
    app.stop().await;
}

/// Consumers on each partition queue, in partition order.
async fn consumers(app: &TestApp) -> Vec<u32> {
    let mut counts = Vec::new();
    for partition in 0..app.settings.partitions {
        counts.push(
            app.queue_consumers(&broker::partition_queue(partition))
                .await,
        );
    }
    counts
}

/// Waits a few membership checks for the workers to settle, then reads the
/// consumers of each queue.
async fn settled_consumers(app: &TestApp) -> Vec<u32> {
    tokio::time::sleep(CHECK_EVERY * 3).await;
    consumers(app).await
}

#[tokio::test]
async fn each_queue_has_one_consumer_and_a_stopped_workers_partitions_move() {
    let app = spawn_with(Roles::API_ONLY, &[("PARTITIONS", "4")]).await;
    // One product per partition.
    let mut products = vec![None; 4];
    while products.iter().any(Option::is_none) {
        let id = app.create_product("Spread", 100, 1_000).await;
        let partition = broker::partition_for_product(id, 4) as usize;
        products[partition].get_or_insert(id);
    }
    let products: Vec<i64> = products.into_iter().flatten().collect();

    let (stop_first, first) = app.add_stoppable_worker().await;
    assert_eq!(settled_consumers(&app).await, vec![1, 1, 1, 1]);
    let (stop_second, second) = app.add_stoppable_worker().await;
    // Not two each: the second worker took half the partitions.
    assert_eq!(settled_consumers(&app).await, vec![1, 1, 1, 1]);
    for &product in &products {
        app.granted_hold(product, 1).await;
    }

    stop_first.cancel();
    tokio::time::timeout(Duration::from_secs(15), first)
        .await
        .expect("the first worker stops within 15 s")
        .expect("worker task")
        .expect("worker result");
    assert_eq!(settled_consumers(&app).await, vec![1, 1, 1, 1]);
    // Every partition is decided by the worker left.
    for &product in &products {
        app.granted_hold(product, 2).await;
    }
    for &product in &products {
        let response = app
            .post_hold(&json!({"product_id": product, "qty": 1}), &[])
            .await;
        assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    }
    app.wait_until_idle().await;
    for &product in &products {
        assert_eq!(app.stock_books(product).await, (996, 996, 4));
        app.assert_stock_accounted(product).await;
    }

    stop_second.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), second).await;
    app.stop().await;
}
