//! Rate limits at the edge: a token bucket per buyer, or per client address
//! for anonymous requests, on `POST /holds` and `POST /orders`; a refusal
//! is 429 `rate_limited` with `Retry-After` and records nothing.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Roles, TestApp, assert_problem, buyer_token, spawn_with};

/// What a volley of concurrent requests got.
struct Volley {
    accepted: usize,
    refused: usize,
    /// From before the first send to after the last answer.
    elapsed: Duration,
}

impl Volley {
    /// The most a bucket of `burst` refilled at `per_sec` can grant while
    /// the volley lasted: its checks all fall within `elapsed`.
    fn grantable(&self, per_sec: u32, burst: u32) -> usize {
        burst as usize + (f64::from(per_sec) * self.elapsed.as_secs_f64()).ceil() as usize
    }

    /// At least the burst and at most what the bucket could grant were
    /// accepted, the rest refused, and `app` recorded a job per 202 only.
    async fn assert_limited(&self, app: &TestApp, sent: usize, per_sec: u32, burst: u32) {
        assert_eq!(self.accepted + self.refused, sent);
        assert!(
            self.accepted >= burst as usize,
            "the burst is granted: {} accepted",
            self.accepted
        );
        assert!(
            self.accepted <= self.grantable(per_sec, burst),
            "{} accepted in {:?}",
            self.accepted,
            self.elapsed
        );
        let jobs = app.count("SELECT COUNT(*) FROM jobs").await;
        assert_eq!(jobs, self.accepted as i64, "a job per 202, none per 429");
    }
}

/// Sends `n` requests at once (`request(i)` builds the i-th). Each answer
/// must be 202 or a complete 429 `rate_limited` problem with `Retry-After:
/// 1` (at `per_sec` ≥ 1 a token is never more than a second away).
async fn volley(n: usize, request: impl Fn(usize) -> RequestBuilder) -> Volley {
    let started = Instant::now();
    let responses = join_all((0..n).map(|i| request(i).send())).await;
    let elapsed = started.elapsed();
    let (mut accepted, mut refused) = (0, 0);
    // Seen only when a test fails (or under --nocapture).
    let statuses: Vec<u16> = responses
        .iter()
        .flatten()
        .map(|r| r.status().as_u16())
        .collect();
    eprintln!("volley of {n} in {elapsed:?}: {statuses:?}");
    for response in responses {
        let response = response.expect("answered");
        match response.status() {
            StatusCode::ACCEPTED => {
                let body: Value = response.json().await.expect("202 json");
                assert!(body["job_id"].is_string(), "202 without a job: {body}");
                accepted += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                assert_eq!(retry_after, Some(1), "Retry-After of a 429");
                assert_problem(response, 429, "rate_limited").await;
                refused += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    Volley {
        accepted,
        refused,
        elapsed,
    }
}

async fn limited(extra: &[(&str, &str)]) -> (TestApp, i64) {
    let app = spawn_with(Roles::API_ONLY, extra).await;
    let product = app.create_product("Limited", 1000, 100_000).await;
    (app, product)
}

fn hold(app: &TestApp, product: i64) -> RequestBuilder {
    app.client
        .post(app.url("/api/v1/holds"))
        .json(&json!({"product_id": product, "qty": 1}))
}

#[tokio::test]
async fn rate_limit_one_buyer_gets_the_rate_and_nothing_else_is_recorded() {
    let (app, product) = limited(&[("RATE_LIMIT_PER_SEC", "5"), ("RATE_LIMIT_BURST", "5")]).await;
    let token = buyer_token("buyer-1");
    // Each with its own key, so a refused request that recorded anything
    // would leave a key behind.
    let v = volley(50, |_| {
        hold(&app, product)
            .bearer_auth(&token)
            .header("idempotency-key", Uuid::new_v4().to_string())
    })
    .await;

    v.assert_limited(&app, 50, 5, 5).await;
    let keys = app.count("SELECT COUNT(*) FROM idempotency_keys").await;
    assert_eq!(keys, v.accepted as i64, "a key per 202, none per 429");

    // Another buyer from the same address has a bucket of its own.
    let other = hold(&app, product)
        .bearer_auth(buyer_token("buyer-2"))
        .send()
        .await
        .expect("answered");
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_anonymous_requests_share_their_address_bucket() {
    let (app, product) = limited(&[("RATE_LIMIT_PER_SEC", "1"), ("RATE_LIMIT_BURST", "2")]).await;
    // Plain requests from 127.0.0.1, and some naming other clients in
    // X-Forwarded-For: without TRUSTED_PROXIES that header is the client's
    // own word, so all of them draw from 127.0.0.1's bucket.
    let v = volley(20, |i| match i % 2 {
        0 => hold(&app, product),
        _ => hold(&app, product).header("x-forwarded-for", format!("203.0.113.{i}")),
    })
    .await;
    v.assert_limited(&app, 20, 1, 2).await;
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_a_trusted_proxy_forwards_each_clients_own_bucket() {
    let (app, product) = limited(&[
        ("RATE_LIMIT_PER_SEC", "1"),
        ("RATE_LIMIT_BURST", "1"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    // Twenty clients behind the proxy: one request each, all granted.
    let v = volley(20, |i| {
        hold(&app, product).header("x-forwarded-for", format!("203.0.113.{}", i + 1))
    })
    .await;
    assert_eq!((v.accepted, v.refused), (20, 0));

    // One of them again: its own bucket (refilled by now, perhaps) limits
    // it.
    let again = volley(10, |_| {
        hold(&app, product).header("x-forwarded-for", "203.0.113.1")
    })
    .await;
    let most = again.grantable(1, 1);
    assert!(
        again.accepted <= most,
        "{} accepted in {:?}",
        again.accepted,
        again.elapsed
    );
    assert!(again.refused > 0 && again.refused == 10 - again.accepted);

    // Entries left of the client's are its own word, not believed: the
    // proxy appended 203.0.113.2, and that bucket limits them all.
    let spoofed = volley(10, |i| {
        hold(&app, product).header("x-forwarded-for", format!("198.51.100.{i}, 203.0.113.2"))
    })
    .await;
    let most = spoofed.grantable(1, 1);
    assert!(
        spoofed.accepted <= most,
        "{} accepted in {:?}",
        spoofed.accepted,
        spoofed.elapsed
    );
    assert!(spoofed.refused > 0 && spoofed.refused == 10 - spoofed.accepted);

    let jobs = app.count("SELECT COUNT(*) FROM jobs").await;
    assert_eq!(jobs, (20 + again.accepted + spoofed.accepted) as i64);
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_applies_to_orders() {
    let (app, _) = limited(&[("RATE_LIMIT_PER_SEC", "5"), ("RATE_LIMIT_BURST", "5")]).await;
    let token = buyer_token("buyer-1");
    let v = volley(30, |_| {
        app.client
            .post(app.url("/api/v1/orders"))
            .bearer_auth(&token)
            .json(&json!({"hold_id": Uuid::now_v7()}))
    })
    .await;
    v.assert_limited(&app, 30, 5, 5).await;

    // The limit is checked before the body is read: with the bucket empty,
    // a body that is not even JSON is refused for the rate, not the syntax
    // (but for any token refilled meanwhile).
    let started = Instant::now();
    let answers = join_all((0..10).map(|_| {
        app.client
            .post(app.url("/api/v1/orders"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("not json")
            .send()
    }))
    .await;
    let refill = (5.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    let mut malformed = 0;
    for answer in answers {
        let answer = answer.expect("answered");
        match answer.status().as_u16() {
            429 => {
                assert_problem(answer, 429, "rate_limited").await;
            }
            400 => malformed += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        malformed <= refill,
        "{malformed} bodies read past an empty bucket"
    );
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_off_by_default() {
    let (app, product) = limited(&[]).await;
    let v = volley(30, |_| hold(&app, product)).await;
    assert_eq!((v.accepted, v.refused), (30, 0));
    app.stop().await;
}
