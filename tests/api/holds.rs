//! Holds through the whole pipeline: api → RabbitMQ → worker → MySQL.

use std::{collections::HashSet, sync::Arc, time::Duration};

use flash_sale::{
    broker::{self, Broker},
    commands::{Command, HoldRequest, encode_message},
    db::jobs,
    domain::JobKind,
    worker::apply_holds,
};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Roles, TestApp, assert_problem, record_queued_holds, spawn_app, spawn_with};

const NO_WORKERS: Roles = Roles::API_ONLY;

/// Fires `bodies` at POST /holds all at once; returns (granted job ids,
/// immediate 409s, accepted job ids).
async fn storm(app: &TestApp, bodies: Vec<Value>) -> (Vec<Uuid>, usize) {
    let app = Arc::new(app);
    let responses = join_all(bodies.iter().map(|body| {
        let app = app.clone();
        async move { app.post_hold(body, &[]).await }
    }))
    .await;
    let mut accepted = Vec::new();
    let mut refused_at_once = 0;
    for response in responses {
        match response.status() {
            StatusCode::ACCEPTED => {
                let body: Value = response.json().await.expect("json");
                accepted
                    .push(Uuid::parse_str(body["job_id"].as_str().expect("job id")).expect("uuid"));
            }
            StatusCode::CONFLICT => {
                assert_problem(response, 409, "insufficient_stock").await;
                refused_at_once += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    (accepted, refused_at_once)
}

/// Jobs (succeeded, failed).
async fn decided_jobs(app: &TestApp) -> (i64, i64) {
    (
        app.count("SELECT COUNT(*) FROM job_states WHERE status = 'succeeded'")
            .await,
        app.count("SELECT COUNT(*) FROM job_states WHERE status = 'failed'")
            .await,
    )
}

#[tokio::test]
async fn a_storm_of_500_on_50_units_grants_exactly_50() {
    let app = spawn_with(
        Roles {
            apis: 1,
            workers: 2,
            scheduler: false,
        },
        &[],
    )
    .await;
    let product = app.create_product("Storm", 1000, 50).await;
    let bodies = (0..500)
        .map(|_| json!({"product_id": product, "qty": 1}))
        .collect();
    let (accepted, refused_at_once) = storm(&app, bodies).await;
    app.wait_until_idle().await;

    let holds = app.count("SELECT COUNT(*) FROM holds").await;
    let failed = app
        .count("SELECT COUNT(*) FROM job_states WHERE status = 'failed' AND error LIKE '%insufficient_stock%'")
        .await;
    let succeeded = app
        .count("SELECT COUNT(*) FROM job_states WHERE status = 'succeeded'")
        .await;
    assert_eq!(holds, 50);
    assert_eq!(succeeded, 50);
    assert_eq!(failed + refused_at_once as i64, 450);
    assert_eq!(accepted.len() + refused_at_once, 500);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM job_states WHERE status = 'queued'")
            .await,
        0
    );
    // Every decided job left the queue; no granted hold's job was updated.
    assert_eq!(app.count("SELECT COUNT(*) FROM job_queue").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
            .await,
        50
    );
    let (stock, ledger, held) = app.stock_books(product).await;
    assert_eq!((stock, ledger, held), (0, 0, 50));
    // One ledger row per grant plus the opening row.
    assert_eq!(app.count("SELECT COUNT(*) FROM stock_ledger").await, 51);
    app.stop().await;
}

#[tokio::test]
async fn a_mixed_quantity_storm_leaves_less_than_the_smallest_quantity() {
    let app = spawn_with(
        Roles {
            apis: 1,
            workers: 2,
            scheduler: false,
        },
        &[],
    )
    .await;
    let product = app.create_product("Mixed", 250, 173).await;
    // Quantities 2..=5 in a fixed, shuffled-looking pattern.
    let bodies = (0..300)
        .map(|i| json!({"product_id": product, "qty": 2 + (i * 7 % 4)}))
        .collect();
    let (_, _) = storm(&app, bodies).await;
    app.wait_until_idle().await;

    let (stock, ledger, held) = app.stock_books(product).await;
    assert!(stock < 2, "stock {stock} could still serve a qty-2 hold");
    assert!(stock >= 0);
    assert_eq!(ledger, stock);
    assert_eq!(stock + held, 173);
    let granted_qty: i64 = app
        .count("SELECT CAST(COALESCE(SUM(qty), 0) AS SIGNED) FROM holds")
        .await;
    assert_eq!(granted_qty, 173 - stock);
    app.stop().await;
}

#[tokio::test]
async fn the_same_command_published_three_times_holds_once() {
    let mut app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Thrice", 100, 10).await;
    let response = app
        .post_hold(&json!({"product_id": product, "qty": 3}), &[])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.expect("json");
    let job_id = body["job_id"].as_str().expect("job id").to_owned();

    let command: String = sqlx::query_scalar("SELECT command FROM jobs")
        .fetch_one(&app.pool)
        .await
        .expect("command");
    let command = Command::decode(command.as_bytes()).expect("stored command decodes");
    let partition = command.partition(app.settings.partitions);
    for _ in 0..2 {
        app.broker
            .publish_command(partition, &command.encode())
            .await
            .expect("duplicate publish");
    }
    app.add_worker().await;
    app.wait_until_idle().await;
    let first = app.job(&job_id).await;
    assert_eq!(first["status"], "succeeded");

    // And once more after it is decided.
    app.broker
        .publish_command(partition, &command.encode())
        .await
        .expect("late duplicate");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM stock_ledger").await, 2);
    assert_eq!(app.stock_books(product).await, (7, 7, 3));
    let again = app.job(&job_id).await;
    assert_eq!(again["completed_at"], first["completed_at"]);
    assert_eq!(again["result"], first["result"]);
    assert_partition_drained(&app, partition).await;
    app.stop().await;
}

#[tokio::test]
async fn a_redelivery_after_commit_but_before_ack_changes_nothing() {
    let mut app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Crash", 100, 5).await;
    let response = app
        .post_hold(&json!({"product_id": product, "qty": 2}), &[])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.expect("json");
    let job_id = Uuid::parse_str(body["job_id"].as_str().expect("id")).expect("uuid");

    // A worker that committed and died before acking: the effect is in the
    // database and the message is still in its queue.
    let decided = app.decide_hold(job_id, product, 2).await;
    assert_eq!(decided.jobs, vec![job_id]);
    assert_eq!(app.stock_books(product).await, (3, 3, 2));

    app.add_worker().await;
    let partition = broker::partition_for_product(product, app.settings.partitions);
    assert_partition_drained(&app, partition).await;
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM stock_ledger").await, 2);
    assert_eq!(app.stock_books(product).await, (3, 3, 2));
    app.stop().await;
}

/// Waits until a partition queue is empty (every delivery acked).
async fn assert_partition_drained(app: &TestApp, partition: u16) {
    let queue = broker::partition_queue(partition);
    for _ in 0..200 {
        if app.queue_depth(&queue).await == 0 {
            // Unacked deliveries are not counted; give acks a moment too.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("partition {partition} never drained");
}

async fn dead_letter_count(app: &TestApp) -> u32 {
    app.queue_depth(broker::DEAD_LETTER_QUEUE).await
}

#[tokio::test]
async fn a_garbage_message_is_dead_lettered_and_its_partition_keeps_flowing() {
    let app = spawn_app().await;
    let product = app.create_product("Poison", 100, 5).await;
    let partition = broker::partition_for_product(product, app.settings.partitions);
    for garbage in [
        &b"not json"[..],
        br#"{"type":"hold"}"#,
        br#"{"type":"unknown_kind","job_id":"x"}"#,
    ] {
        app.broker
            .publish_command(partition, garbage)
            .await
            .expect("publish garbage");
    }
    let response = app
        .post_hold(
            &json!({"product_id": product, "qty": 1}),
            &[("prefer", "wait=10")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    for _ in 0..100 {
        if dead_letter_count(&app).await == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(dead_letter_count(&app).await, 3);
    assert_eq!(app.stock_books(product).await, (4, 4, 1));
    app.stop().await;
}

#[tokio::test]
async fn prefer_wait_answers_like_a_synchronous_api() {
    let app = spawn_app().await;
    let product = app.create_product("Waiting", 1250, 3).await;

    let response = app
        .post_hold(
            &json!({"product_id": product, "qty": 2}),
            &[("prefer", "wait=5")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let hold: Value = response.json().await.expect("hold");
    let id = hold["id"].as_str().expect("id");
    assert_eq!(location, format!("/api/v1/holds/{id}"));
    assert_eq!(hold["product_id"], product);
    assert_eq!(hold["qty"], 2);
    assert_eq!(hold["unit_price"], 1250);
    assert_eq!(hold["amount"], 2500);
    assert_eq!(hold["status"], "active");
    let created = chrono::DateTime::parse_from_rfc3339(hold["created_at"].as_str().expect("t"))
        .expect("rfc3339");
    let expires = chrono::DateTime::parse_from_rfc3339(hold["expires_at"].as_str().expect("t"))
        .expect("rfc3339");
    assert_eq!((expires - created).num_seconds(), 120);
    assert!(hold["expires_at"].as_str().expect("t").ends_with('Z'));
    assert_eq!(
        hold["created_at"].as_str().expect("t").len(),
        24,
        "millisecond precision"
    );

    // The same hold through GET, and its job.
    let read: Value = app.get(&location).await.json().await.expect("hold");
    assert_eq!(read, hold);
    let job = app.job(id).await;
    assert_eq!(job["kind"], "hold");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["result"], hold);
    assert_eq!(job["error"], Value::Null);

    // The worker's refusal comes back as the problem itself. The cache may
    // already know only 1 is left (immediate 409) or not (the worker's 409):
    // both are the same problem.
    let response = app
        .post_hold(
            &json!({"product_id": product, "qty": 2}),
            &[("prefer", "wait=5")],
        )
        .await;
    assert_problem(response, 409, "insufficient_stock").await;
    app.stop().await;
}

#[tokio::test]
async fn a_refused_job_records_its_problem() {
    let two_apis = Roles {
        apis: 2,
        ..NO_WORKERS
    };
    let app = spawn_with(two_apis, &[]).await;
    let product = app.create_product("Refused", 100, 1).await;
    // One accepted by each replica, both of which see 1 left (neither counts
    // the other's claim); only one can win.
    let mut ids = Vec::new();
    for base in app.apis.clone() {
        let response = app
            .client
            .post(format!("{base}/api/v1/holds"))
            .json(&json!({"product_id": product, "qty": 1}))
            .send()
            .await
            .expect("POST hold");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], "queued");
        assert_eq!(body["kind"], "hold");
        assert_eq!(body["hold_id"], body["job_id"]);
        ids.push(body["job_id"].as_str().expect("id").to_owned());
    }
    // Queued: the job is visible, the hold is not yet.
    let queued = app.job(&ids[0]).await;
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["completed_at"], Value::Null);
    assert_problem(
        app.get(&format!("/api/v1/holds/{}", ids[0])).await,
        404,
        "not_found",
    )
    .await;

    let mut app = app;
    app.add_worker().await;
    app.wait_until_idle().await;
    let first = app.job(&ids[0]).await;
    let second = app.job(&ids[1]).await;
    assert_eq!(first["status"], "succeeded");
    assert_eq!(second["status"], "failed");
    assert_eq!(second["result"], Value::Null);
    assert_eq!(second["error"]["code"], "insufficient_stock");
    assert_eq!(second["error"]["status"], 409);
    assert!(second["completed_at"].is_string());
    assert_problem(
        app.get(&format!("/api/v1/holds/{}", ids[1])).await,
        404,
        "not_found",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_granted_claims_units_leave_the_cached_stock_with_the_claim() {
    let app = spawn_with(Roles::NONE, &[]).await;
    let product = app.insert_product("Counted once", 2).await;
    let cache = flash_sale::cache::ProductCache::new();
    cache.reload_all(&app.pool).await.expect("reload");
    let stock = |cache: &flash_sale::cache::ProductCache| cache.get(product).expect("cached").stock;
    let job = app
        .record_unpublished_hold(product, 2)
        .await
        .job_id()
        .expect("job");
    cache
        .claims()
        .claim(job, product, 2, stock(&cache), None)
        .expect("2 of 2")
        .expect("claimed")
        .keep();

    // A worker grants it and announces the job; the stock event has not
    // been heard yet.
    app.decide_hold(job, product, 2).await;
    cache.jobs_finished(&[job], &[job]);
    // Its units moved from the claim to the cached stock: still counted,
    // nothing is left to queue.
    assert_eq!((stock(&cache), cache.claims().claimed(product)), (0, 0));
    assert!(
        cache
            .claims()
            .claim(Uuid::now_v7(), product, 1, stock(&cache), None)
            .is_err()
    );

    // The reload agrees.
    cache.reload_all(&app.pool).await.expect("reload");
    assert_eq!((stock(&cache), cache.claims().claimed(product)), (0, 0));
    app.stop().await;
}

/// Grants whose "jobs finished" event has not arrived (late, or lost): a
/// reload must end their claims with the stock that holds their units, or
/// those units count twice and requests the stock covers are refused.
/// The first reload of a product asks the jobs table; later ones read the
/// product's hold rows in the ledger past the last one seen.
#[tokio::test]
async fn a_reload_ends_the_claims_of_grants_it_sees_without_their_events() {
    let app = spawn_with(Roles::NONE, &[]).await;
    let product = app.insert_product("Events late", 10).await;
    let cache = flash_sale::cache::ProductCache::new();
    let stock = |cache: &flash_sale::cache::ProductCache| cache.get(product).expect("cached").stock;
    let claim = |cache: &flash_sale::cache::ProductCache, job: Uuid| {
        cache
            .claims()
            .claim(job, product, 1, 10, None)
            .expect("stock covers it")
            .expect("claimed")
            .keep();
    };
    let mut jobs = Vec::new();
    for _ in 0..6 {
        let job = app
            .record_unpublished_hold(product, 1)
            .await
            .job_id()
            .expect("job");
        jobs.push(job);
    }
    // The product's first reload: two of three claims granted.
    jobs[..3].iter().for_each(|job| claim(&cache, *job));
    app.decide_hold(jobs[0], product, 1).await;
    app.decide_hold(jobs[1], product, 1).await;
    cache.reload_all(&app.pool).await.expect("reload");
    assert_eq!((stock(&cache), cache.claims().claimed(product)), (8, 1));

    // Later reloads: one more of the old claims and two of three new ones.
    jobs[3..].iter().for_each(|job| claim(&cache, *job));
    for job in [jobs[2], jobs[3], jobs[5]] {
        app.decide_hold(job, product, 1).await;
    }
    cache.reload_all(&app.pool).await.expect("reload");
    assert_eq!((stock(&cache), cache.claims().claimed(product)), (5, 1));
    // A reload with nothing new changes nothing; the last grant ends the last claim.
    cache.reload_all(&app.pool).await.expect("reload");
    assert_eq!((stock(&cache), cache.claims().claimed(product)), (5, 1));
    app.decide_hold(jobs[4], product, 1).await;
    cache.reload_all(&app.pool).await.expect("reload");
    assert_eq!((stock(&cache), cache.claims().claimed(product)), (4, 0));
    app.stop().await;
}

#[tokio::test]
async fn a_reload_checks_a_crowd_of_claims_in_one_read_and_exactly() {
    let app = spawn_with(Roles::NONE, &[]).await;
    // 1,500 claims (a range read), among other jobs of the same moments.
    let rows: Vec<jobs::NewJob> = (0..3000)
        .map(|i| {
            let id = Uuid::now_v7();
            jobs::NewJob {
                id,
                kind: JobKind::Hold,
                lane: Some(1 + i % 2),
                command: Command::Hold(HoldRequest {
                    job_id: id,
                    product_id: 1 + i % 2,
                    qty: 1,
                    customer_id: None,
                }),
                created_at: flash_sale::time::now(),
            }
        })
        .collect();
    jobs::insert_all(&rows)
        .execute(&app.pool)
        .await
        .expect("jobs");
    let claimed: Vec<Uuid> = rows.iter().step_by(2).map(|r| r.id).collect();
    // Every third claim's job is decided; one claim's job was withdrawn.
    let mut decided: Vec<jobs::Outcome> = Vec::new();
    for id in claimed.iter().step_by(3) {
        decided.push(jobs::Outcome {
            job_id: *id,
            kind: JobKind::Hold,
            decision: jobs::Decision::Created,
        });
    }
    jobs::complete_all(&decided, &flash_sale::time::now())
        .execute(&app.pool)
        .await
        .expect("decide");
    assert_eq!(
        jobs::withdraw_queued(&app.pool, &claimed[1..2])
            .await
            .expect("withdraw"),
        1
    );

    let mut tx = app.pool.begin().await.expect("tx");
    let queued = jobs::still_queued(&mut tx, &claimed).await.expect("read");
    tx.commit().await.expect("commit");
    // The withdrawn one has no row: it counts as not decided (its
    // request's claim ended when the request was refused).
    let expected: HashSet<Uuid> = claimed
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(claimed.len(), 1500);
    assert_eq!(queued.len(), 1000);
    assert_eq!(queued, expected);
    app.stop().await;
}

#[tokio::test]
async fn units_claimed_by_requests_ahead_refuse_at_once_until_their_jobs_end() {
    let two_apis = Roles {
        apis: 2,
        ..NO_WORKERS
    };
    let mut app = spawn_with(two_apis, &[]).await;
    let product = app.create_product("Claimed", 100, 3).await;
    let client = app.client.clone();
    let post = |base: String, qty: i64| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/api/v1/holds"))
                .json(&json!({"product_id": product, "qty": qty}))
                .send()
                .await
                .expect("POST hold")
        }
    };
    let (first, second) = (app.apis[0].clone(), app.apis[1].clone());
    // The second replica takes 2 of the 3 first (it is first in the queue).
    assert_eq!(post(second.clone(), 2).await.status(), StatusCode::ACCEPTED);
    // The first replica does not count that claim: it queues 2 more...
    assert_eq!(post(first.clone(), 2).await.status(), StatusCode::ACCEPTED);
    // ...and then counts its own: 3 - 2 cannot cover 2, refused without a job.
    let refused = assert_problem(post(first.clone(), 2).await, 409, "insufficient_stock").await;
    assert!(
        refused["detail"]
            .as_str()
            .expect("detail")
            .contains("claimed"),
        "{refused}"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 2);

    // The worker grants the second replica's 2 and refuses the first's; the
    // first replica hears of its job and its claim ends: the last unit is
    // for sale again.
    app.add_worker().await;
    app.wait_until_idle().await;
    let mut accepted = None;
    for _ in 0..100 {
        let response = post(first.clone(), 1).await;
        if response.status() == StatusCode::ACCEPTED {
            accepted = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        accepted.is_some(),
        "the ended claim still refused the last unit"
    );
    app.wait_until_idle().await;
    assert_eq!(decided_jobs(&app).await, (2, 1));
    assert_eq!(app.stock_books(product).await.0, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_sold_out_product_is_refused_from_the_cache_without_a_job() {
    let app = spawn_app().await;
    let product = app.create_product("Sold out", 100, 0).await;
    for _ in 0..20 {
        let response = app
            .post_hold(&json!({"product_id": product, "qty": 1}), &[])
            .await;
        assert_problem(response, 409, "insufficient_stock").await;
    }
    let response = app
        .post_hold(
            &json!({"product_id": product, "qty": 1}),
            &[("idempotency-key", "k-sold-out")],
        )
        .await;
    assert_problem(response, 409, "insufficient_stock").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn bad_hold_requests_get_their_problem_and_change_nothing() {
    let app = spawn_app().await;
    let product = app.create_product("Strict", 100, 50).await;
    for (body, field) in [
        (json!({"product_id": product, "qty": 0}), "qty"),
        (json!({"product_id": product, "qty": 11}), "qty"),
        (json!({"product_id": product, "qty": "1"}), "qty"),
        (json!({"product_id": product, "qty": 1.5}), "qty"),
        (json!({"product_id": product}), "qty"),
        (json!({"qty": 1}), "product_id"),
        (json!({"product_id": "1", "qty": 1}), "product_id"),
        (json!({"product_id": -1, "qty": 1}), "product_id"),
        (json!({"product_id": null, "qty": 1}), "product_id"),
    ] {
        let problem =
            assert_problem(app.post_hold(&body, &[]).await, 422, "validation_failed").await;
        assert!(problem["errors"][field].is_array(), "{body} → {problem}");
    }
    assert_problem(
        app.post_hold(&json!({"product_id": 987654, "qty": 1}), &[])
            .await,
        404,
        "not_found",
    )
    .await;
    let long_key = "k".repeat(256);
    let problem = assert_problem(
        app.post_hold(
            &json!({"product_id": product, "qty": 1}),
            &[("idempotency-key", &long_key)],
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(problem["errors"]["Idempotency-Key"].is_array());
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/holds"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_problem(
        raw("{", "application/json").await.expect("post"),
        400,
        "malformed_json",
    )
    .await;
    assert_problem(
        raw("[]", "application/json").await.expect("post"),
        400,
        "malformed_json",
    )
    .await;
    assert_problem(
        raw(r#"{"product_id":1,"qty":1}"#, "text/plain")
            .await
            .expect("post"),
        415,
        "unsupported_media_type",
    )
    .await;
    for path in [
        "/api/v1/jobs/nope",
        "/api/v1/holds/123",
        &format!("/api/v1/jobs/{}", Uuid::now_v7()),
    ] {
        assert_problem(app.get(path).await, 404, "not_found").await;
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 0);
    assert_eq!(app.stock_books(product).await, (50, 50, 0));
    app.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let app = spawn_app().await;
    let product = app.create_product("Keyed", 100, 50).await;
    let body = json!({"product_id": product, "qty": 2});

    // Twenty concurrent requests with one key: one job.
    let responses =
        join_all((0..20).map(|_| app.post_hold(&body, &[("idempotency-key", "order-42")]))).await;
    let mut job_ids = Vec::new();
    for response in responses {
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.expect("json");
        job_ids.push(body["job_id"].as_str().expect("id").to_owned());
    }
    job_ids.dedup();
    assert_eq!(job_ids.len(), 1, "{job_ids:?}");
    app.wait_until_idle().await;

    // A later repeat with Prefer: wait gets the final outcome of that job.
    let response = app
        .post_hold(
            &body,
            &[("idempotency-key", "order-42"), ("prefer", "wait=2")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let hold: Value = response.json().await.expect("json");
    assert_eq!(hold["id"], job_ids[0].as_str());

    // Same key, other body.
    let response = app
        .post_hold(
            &json!({"product_id": product, "qty": 3}),
            &[("idempotency-key", "order-42")],
        )
        .await;
    assert_problem(response, 422, "idempotency_key_reused").await;
    // Keys are exact: another case is another key.
    let response = app
        .post_hold(&body, &[("idempotency-key", "ORDER-42")])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    app.wait_until_idle().await;

    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 2);
    assert_eq!(app.stock_books(product).await, (46, 46, 4));
    app.stop().await;
}

#[tokio::test]
async fn a_broker_or_database_outage_is_a_503_that_records_nothing() {
    let app = spawn_with(Roles::NONE, &[]).await;
    let product = app.insert_product("Outage", 10).await;
    // Broker gone (its vhost deleted under the connection, so reconnecting
    // fails too): the job is withdrawn, the key released.
    let doomed = format!("{}-doomed", app.isolation.vhost);
    crate::helpers::rabbitmqctl(&["add_vhost", &doomed]);
    crate::helpers::rabbitmqctl(&["set_permissions", "-p", &doomed, "guest", ".*", ".*", ".*"]);
    let doomed_url = app.settings.amqp.nodes[0]
        .expose()
        .replace(&app.isolation.vhost, &doomed);
    let doomed_amqp = flash_sale::config::AmqpSettings {
        nodes: vec![flash_sale::config::Secret::new(doomed_url)],
        ca_pem: None,
        quorum_group_size: 3,
    };
    let dead_broker = Broker::connect(&doomed_amqp, app.settings.partitions, "doomed")
        .await
        .expect("broker");
    crate::helpers::rabbitmqctl(&["delete_vhost", &doomed]);
    // The broker closes the connection on its own time; a request sent
    // before the client has heard is accepted (its job waits for the relay).
    for _ in 0..100 {
        if !dead_broker.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !dead_broker.is_connected(),
        "the deleted vhost's connection stayed open"
    );
    let base = app.serve_api_with(app.pool.clone(), dead_broker).await;
    let response = app
        .client
        .post(format!("{base}/api/v1/holds"))
        .header("idempotency-key", "during-outage")
        .json(&json!({"product_id": product, "qty": 1}))
        .send()
        .await
        .expect("post");
    assert_problem(response, 503, "unavailable").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);

    // Database gone.
    let dead_pool =
        flash_sale::db::connect_lazy("mysql://root@127.0.0.1:1/nowhere", 2).expect("lazy");
    let base = app.serve_api_with(dead_pool, app.broker.clone()).await;
    let response = app
        .client
        .post(format!("{base}/api/v1/holds"))
        .json(&json!({"product_id": product, "qty": 1}))
        .send()
        .await
        .expect("post");
    assert_problem(response, 503, "unavailable").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
    let partition = broker::partition_for_product(product, app.settings.partitions);
    assert_partition_drained(&app, partition).await;
    app.stop().await;
}

#[tokio::test]
async fn a_message_of_several_commands_decides_each_once_and_is_acked() {
    let app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Packed", 100, 2).await;
    let mut commands = Vec::new();
    for _ in 0..3 {
        commands.push(app.record_unpublished_hold(product, 1).await);
    }
    // A repeat inside the same message changes nothing.
    commands.push(commands[0].clone());
    let partition = commands[0].partition(app.settings.partitions);
    app.broker
        .publish_command(
            partition,
            &encode_message(&commands.iter().collect::<Vec<_>>()),
        )
        .await
        .expect("publish");

    let (stop, worker) = app.add_stoppable_worker().await;
    app.wait_until_idle().await;
    assert_eq!(decided_jobs(&app).await, (2, 1));
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 2);
    // Acked: once the worker is gone nothing comes back to the queue.
    stop.cancel();
    worker.await.expect("join").expect("worker");
    assert_partition_drained(&app, partition).await;
    assert_eq!(dead_letter_count(&app).await, 0);
    app.stop().await;
}

/// One transaction decides a crowd of holds of different sizes: every job
/// gets its own hold as its result (the worker writes the results of
/// same-shaped holds with one statement built around each row's id), and
/// each refusal its own problem.
#[tokio::test]
async fn a_crowd_decided_together_gets_each_its_own_result() {
    let app = spawn_with(NO_WORKERS, &[]).await;
    let product = app.create_product("Crowd", 700, 20).await;
    let requests = record_queued_holds(&app.pool, product, &[1, 2, 3].repeat(4)).await;
    apply_holds(&app.pool, product, &requests, app.settings.hold_ttl)
        .await
        .expect("decide");

    // 1+2+3+1+2+3+1+2+3+1 = 19 of 20 units granted; then 2 and 3 do not fit.
    for (i, request) in requests.iter().enumerate() {
        let id = request.job_id.to_string();
        let job = app.job(&id).await;
        if i < 10 {
            assert_eq!(job["status"], "succeeded", "job {i}");
            let hold: Value = app
                .get(&format!("/api/v1/holds/{id}"))
                .await
                .json()
                .await
                .expect("hold");
            assert_eq!(job["result"], hold, "job {i}");
            assert_eq!(hold["id"], id.as_str());
            assert_eq!(hold["qty"], request.qty);
            assert_eq!(hold["amount"], 700 * request.qty);
        } else {
            assert_eq!(job["status"], "failed", "job {i}");
            assert_eq!(job["error"]["code"], "insufficient_stock");
            assert_eq!(
                job["error"]["detail"],
                format!("product {product} has 1 left, {} requested", request.qty)
            );
        }
    }
    assert_eq!(app.stock_books(product).await, (1, 1, 19));
    app.stop().await;
}
