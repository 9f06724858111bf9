//! Sale windows (guarantee 10): refused at once outside them by the api's
//! clock, and judged by the worker by when each job was recorded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Now plus `millis`, cut to the millisecond the database keeps.
fn at(millis: i64) -> DateTime<Utc> {
    let now = chrono::Utc::now().timestamp_millis() + millis;
    DateTime::from_timestamp_millis(now).expect("time")
}

fn rfc3339(at: DateTime<Utc>) -> String {
    flash_sale::time::format(&at)
}

/// Sleeps until the wall clock passes `until`.
async fn until_past(until: DateTime<Utc>) {
    while chrono::Utc::now() <= until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One request of the crowd: when it was sent and answered, and how.
struct Shot {
    sent: DateTime<Utc>,
    answered: DateTime<Utc>,
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

#[tokio::test]
async fn a_crowd_from_before_the_start_is_granted_only_from_the_start() {
    let app = spawn_app().await;
    let starts = at(1_500);
    let product = app
        .create_product_with(100_000, json!({"sale_starts_at": rfc3339(starts)}))
        .await;
    let stop_at = starts + chrono::Duration::milliseconds(1_000);
    // 20 buyers fire back to back from 1.5 s before the start to 1 s after.
    let buyers = (0..20).map(|_| {
        let app = &app;
        async move {
            let mut shots = Vec::new();
            while chrono::Utc::now() < stop_at {
                let sent = chrono::Utc::now();
                let response = app
                    .post_hold(&json!({"product_id": product, "qty": 1}), &[])
                    .await;
                let answered = chrono::Utc::now();
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let body = response.json().await.expect("json");
                shots.push(Shot {
                    sent,
                    answered,
                    status,
                    retry_after,
                    body,
                });
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            shots
        }
    });
    let shots: Vec<Shot> = join_all(buyers).await.into_iter().flatten().collect();

    let mut refused = 0;
    for shot in &shots {
        match shot.status {
            409 => {
                assert_eq!(shot.body["code"], "sale_not_started", "{}", shot.body);
                assert_eq!(shot.body["starts_at"], rfc3339(starts));
                assert!(shot.sent < starts, "refused a request sent after the start");
                // Rounded up from when the api saw it, between send and answer,
                // by its clock cut to the millisecond (so up to 1 ms before `sent`).
                let secs = |t: DateTime<Utc>| {
                    let t = DateTime::from_timestamp_millis(t.timestamp_millis()).expect("time");
                    ((starts - t).num_milliseconds().max(0) as u64)
                        .div_ceil(1000)
                        .max(1)
                };
                let retry = shot.retry_after.expect("Retry-After");
                assert!(
                    (secs(shot.answered)..=secs(shot.sent)).contains(&retry),
                    "Retry-After {retry} for a request sent {} ms before the start",
                    (starts - shot.sent).num_milliseconds()
                );
                refused += 1;
            }
            202 => assert!(shot.answered >= starts, "accepted before the start"),
            other => panic!("unexpected {other}: {}", shot.body),
        }
    }
    assert!(refused > 0, "the crowd started before the sale");
    app.wait_until_idle().await;
    let early: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE created_at < ?")
        .bind(starts)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(early, 0, "no job is recorded before the start");
    let failed = app
        .count("SELECT COUNT(*) FROM job_states WHERE status <> 'succeeded'")
        .await;
    assert_eq!(failed, 0, "every accepted request is granted");
    let first: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT MIN(j.created_at) FROM jobs j JOIN holds h ON h.id = j.id")
            .fetch_one(&app.pool)
            .await
            .expect("first grant");
    let first = first.expect("some hold granted");
    assert!(
        first < starts + chrono::Duration::milliseconds(500),
        "the first grant was recorded {} ms after the start",
        (first - starts).num_milliseconds()
    );
    app.stop().await;
}

#[tokio::test]
async fn recorded_before_the_end_and_decided_after_it_is_still_granted() {
    let mut app = spawn_with(Roles::API_ONLY, &[]).await;
    let ends = at(1_000);
    let product = app
        .create_product_with(100_000, json!({"sale_ends_at": rfc3339(ends)}))
        .await;
    let response = app
        .post_hold(&json!({"product_id": product, "qty": 1}), &[])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let inside: Value = response.json().await.expect("json");
    until_past(ends).await;
    let late = app
        .post_hold(
            &json!({"product_id": product, "qty": 1}),
            &[("idempotency-key", "late")],
        )
        .await;
    let problem = assert_problem(late, 409, "sale_ended").await;
    assert!(problem.get("starts_at").is_none());
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM idempotency_keys").await, 0);

    app.add_worker().await;
    app.wait_until_idle().await;
    let job = app.job(inside["job_id"].as_str().expect("id")).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    app.stop().await;
}

#[tokio::test]
async fn the_worker_judges_each_job_by_when_it_was_recorded() {
    let mut app = spawn_with(Roles::API_ONLY, &[]).await;
    let product = app.create_product_with(100_000, json!({})).await;
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let response = app
            .post_hold(&json!({"product_id": product, "qty": 1}), &[])
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.expect("json");
        jobs.push(body["job_id"].as_str().expect("id").to_owned());
        // Record times a few milliseconds apart.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let created: Vec<DateTime<Utc>> = sqlx::query_scalar("SELECT created_at FROM jobs ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .expect("created");
    // While they wait, the window moves to [second, second + 1 ms): the
    // first job was recorded before it, the third after it.
    let window = json!({
        "sale_starts_at": rfc3339(created[1]),
        "sale_ends_at": rfc3339(created[1] + chrono::Duration::milliseconds(1)),
    });
    let response = app
        .client
        .patch(app.url(&format!("/api/v1/admin/products/{product}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&window)
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), StatusCode::OK);
    app.add_worker().await;
    app.wait_until_idle().await;
    let job = app.job(&jobs[0]).await;
    assert_eq!(job["error"]["code"], "sale_not_started", "{job}");
    assert_eq!(job["error"]["starts_at"], rfc3339(created[1]));
    let job = app.job(&jobs[1]).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let job = app.job(&jobs[2]).await;
    assert_eq!(job["error"]["code"], "sale_ended", "{job}");
    app.stop().await;
}
