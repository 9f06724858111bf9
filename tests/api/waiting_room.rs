//! The waiting room: a queued job's place in line (`queue`), polled and
//! streamed, and what it costs the database.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, future::join_all};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Roles, TestApp, assert_problem, grant_directly, spawn_with};

/// Waits until `condition` holds, failing after `within`.
async fn until<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn queued_hold(app: &TestApp, product_id: i64) -> String {
    let response = app
        .post_hold(&json!({"product_id": product_id, "qty": 1}), &[])
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.expect("accepted json");
    assert_eq!(body["status"], "queued");
    body["job_id"].as_str().expect("job id").to_owned()
}

fn position(job: &Value) -> u64 {
    job["queue"]["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("no queue position in {job}"))
}

/// A client for streams: no overall deadline (a stream lasts as long as
/// its job waits), and a connection per stream.
fn stream_client() -> Client {
    Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn open_stream(client: &Client, base: &str, job_id: &str) -> Response {
    client
        .get(format!("{base}/api/v1/jobs/{job_id}"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("GET stream")
}

/// Reads server-sent events from a response body, chunk by chunk.
struct Events {
    response: Response,
    buffer: String,
}

impl Events {
    fn new(response: Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next `job` event's document, or None when the body ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push_str(value);
                    }
                }
                // Comments (keep-alives) carry no data.
                if data.is_empty() {
                    continue;
                }
                assert_eq!(name.as_deref(), Some("job"), "{block}");
                return Some(serde_json::from_str(&data).expect("event json"));
            }
            let chunk = self.response.chunk().await.expect("stream chunk")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    async fn next_within(&mut self, within: Duration) -> Option<Value> {
        tokio::time::timeout(within, self.next())
            .await
            .expect("no event or end in time")
    }

    /// The first event past `queued`, each within `within` of the last.
    async fn final_state(&mut self, within: Duration) -> Value {
        loop {
            let job = self
                .next_within(within)
                .await
                .expect("the final state before the end");
            if job["status"] != "queued" {
                return job;
            }
        }
    }
}

#[tokio::test]
async fn waiting_room_places_are_exact_in_arrival_order_and_never_grow() {
    let mut app = spawn_with(Roles::NONE, &[]).await;
    app.start_api().await;
    let product = app.create_product("Queue sneaker", 100, 1000).await;
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(queued_hold(&app, product).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let job = app.job(id).await;
        assert_eq!(job["status"], "queued");
        assert_eq!(position(&job), i as u64 + 1, "{job}");
        assert!(job["queue"]["eta_ms"].as_u64().is_some(), "{job}");
    }

    app.add_worker().await;
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut decided = HashSet::new();
    let mut observations = 0;
    let started = Instant::now();
    while decided.len() < ids.len() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not all decided"
        );
        for id in &ids {
            let job = app.job(id).await;
            observations += 1;
            if job["status"] == "queued" {
                assert!(
                    !decided.contains(id.as_str()),
                    "decided, then queued: {job}"
                );
                let now = position(&job);
                if let Some(before) = last.insert(id, now) {
                    assert!(now <= before, "{id} moved back from {before} to {now}");
                }
                assert!(job["queue"]["eta_ms"].as_u64().is_some(), "{job}");
            } else {
                assert_eq!(job["status"], "succeeded", "{job}");
                assert!(
                    job.get("queue").is_none(),
                    "a decided job has no queue: {job}"
                );
                decided.insert(id.as_str());
            }
        }
    }
    eprintln!("{observations} observations, {} while queued", last.len());
    app.stop().await;
}

#[tokio::test]
async fn waiting_room_orders_queue_behind_their_partition() {
    let mut app = spawn_with(Roles::NONE, &[]).await;
    app.start_api().await;
    let product = app.create_product("Queue jacket", 100, 100).await;
    let holds = grant_directly(&app.pool, app.settings.hold_ttl, product, 8, 1).await;
    let partitions = app.settings.partitions;
    let mut jobs = Vec::new();
    for hold in &holds {
        let response = app.post_order(&hold.to_string(), &[]).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let body: Value = response.json().await.expect("accepted json");
        jobs.push(body["job_id"].as_str().expect("job id").to_owned());
    }
    // Read once all are recorded: a job recorded after its lane's last
    // snapshot (less than 250 ms before) does not count the ones recorded
    // in between yet.
    let mut ahead: HashMap<u16, u64> = HashMap::new();
    for (hold, job_id) in holds.iter().zip(&jobs) {
        let job = app.job(job_id).await;
        assert_eq!(job["status"], "queued");
        let partition = flash_sale::broker::partition_for_uuid(*hold, partitions);
        let before = ahead.entry(partition).or_default();
        assert_eq!(position(&job), *before + 1, "partition {partition}: {job}");
        assert!(job["queue"]["eta_ms"].as_u64().is_some(), "{job}");
        *before += 1;
    }
    assert!(
        ahead.values().any(|&n| n > 1),
        "8 orders over {partitions} partitions share one"
    );
    app.stop().await;
}

#[tokio::test]
async fn waiting_room_streams_a_job_until_its_final_state() {
    let mut app = spawn_with(Roles::NONE, &[]).await;
    app.start_api().await;
    let product = app.create_product("Queue cap", 100, 10).await;
    let job_id = queued_hold(&app, product).await;
    let client = stream_client();
    let mut events = Events::new(open_stream(&client, &app.apis[0], &job_id).await);
    let first = events
        .next_within(Duration::from_secs(10))
        .await
        .expect("a first event");
    assert_eq!(first["job_id"], job_id.as_str());
    assert_eq!(first["status"], "queued");
    assert_eq!(position(&first), 1);
    assert!(first["queue"]["eta_ms"].as_u64().is_some(), "{first}");

    app.add_worker().await;
    let last = events.final_state(Duration::from_secs(30)).await;
    assert_eq!(last["status"], "succeeded", "{last}");
    assert_eq!(last["result"]["id"], job_id.as_str());
    assert!(last.get("queue").is_none(), "{last}");
    assert!(
        events.next_within(Duration::from_secs(10)).await.is_none(),
        "the stream ends after the final state"
    );

    // A decided job's stream is its final state alone.
    let mut decided = Events::new(open_stream(&client, &app.apis[0], &job_id).await);
    let only = decided
        .next_within(Duration::from_secs(10))
        .await
        .expect("the final state");
    assert_eq!(only["status"], "succeeded", "{only}");
    assert!(decided.next_within(Duration::from_secs(10)).await.is_none());

    let unknown = open_stream(&client, &app.apis[0], &Uuid::now_v7().to_string()).await;
    assert_problem(unknown, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn waiting_room_a_stream_ends_when_its_job_leaves_the_lane_without_an_event() {
    let mut app = spawn_with(Roles::NONE, &[]).await;
    let state = app.start_api().await;
    let product = app.create_product("Queue scarf", 100, 10).await;
    let job_id = queued_hold(&app, product).await;
    let client = stream_client();
    let mut events = Events::new(open_stream(&client, &app.apis[0], &job_id).await);
    let first = events
        .next_within(Duration::from_secs(10))
        .await
        .expect("a first event");
    assert_eq!(first["status"], "queued");
    let (rows, _, finals) = state.room.reads.counts();

    // Decided as a worker decides, but no worker announces it: only the
    // lane's next snapshot can tell the stream (a lost event).
    let id = Uuid::parse_str(&job_id).expect("uuid");
    app.decide_hold(id, product, 1).await;
    let last = events.final_state(Duration::from_secs(10)).await;
    assert_eq!(last["status"], "succeeded", "{last}");
    assert!(
        events.next_within(Duration::from_secs(10)).await.is_none(),
        "the stream ends after the final state"
    );
    let (rows_after, _, finals_after) = state.room.reads.counts();
    assert_eq!(rows_after, rows, "no job row read per stream");
    assert_eq!(finals_after, finals + 1, "one final-state read");
    app.stop().await;
}

#[tokio::test]
async fn waiting_room_a_thousand_open_streams_cost_no_queries_while_they_wait() {
    const STREAMS: usize = 1000;
    let mut app = spawn_with(Roles::NONE, &[]).await;
    let state = app.start_api().await;
    let product = app
        .create_product("Queue console", 100, STREAMS as i64)
        .await;
    let ids: Vec<String> = futures_util::stream::iter(0..STREAMS)
        .map(|_| queued_hold(&app, product))
        .buffer_unordered(100)
        .collect()
        .await;

    let client = stream_client();
    let first_seen = Arc::new(AtomicUsize::new(0));
    let streams: Vec<_> = ids
        .iter()
        .map(|id| {
            let (client, base, id, first_seen) = (
                client.clone(),
                app.apis[0].clone(),
                id.clone(),
                first_seen.clone(),
            );
            tokio::spawn(async move {
                let mut events = Events::new(open_stream(&client, &base, &id).await);
                let first = events.next().await.expect("first event");
                assert_eq!(first["status"], "queued", "{first}");
                let mut told = position(&first);
                first_seen.fetch_add(1, Ordering::Relaxed);
                let mut last = first;
                // Every event until the body ends.
                while let Some(job) = events.next().await {
                    if job["status"] == "queued" {
                        let now = position(&job);
                        assert!(now <= told, "{id}: from {told} to {now}");
                        told = now;
                    }
                    last = job;
                }
                last
            })
        })
        .collect();
    until(
        Duration::from_secs(120),
        "every stream's first event",
        || {
            let seen = first_seen.load(Ordering::Relaxed);
            async move { seen == STREAMS }
        },
    )
    .await;
    assert_eq!(state.room.streams.len(), STREAMS);

    // Some snapshot cycles (about 2 s) with every stream open.
    let (rows_before, lanes_before, _) = state.room.reads.counts();
    let measured_from = Instant::now();
    until(Duration::from_secs(20), "eight lane snapshots", || {
        let lanes = state.room.reads.counts().1;
        async move { lanes >= lanes_before + 8 }
    })
    .await;
    let elapsed = measured_from.elapsed();
    let (rows_after, lanes_after, _) = state.room.reads.counts();
    let allowed = elapsed.as_millis().div_ceil(250) as u64 + 1;
    eprintln!(
        "{STREAMS} open streams over {elapsed:?}: {} job row reads, {} lane snapshot reads (at most {allowed})",
        rows_after - rows_before,
        lanes_after - lanes_before
    );
    assert_eq!(rows_after, rows_before, "open streams read job rows");
    assert!(lanes_after - lanes_before <= allowed);

    let (_, lanes_before, finals_before) = state.room.reads.counts();
    let draining = Instant::now();
    app.add_worker().await;
    let ends = tokio::time::timeout(Duration::from_secs(120), join_all(streams))
        .await
        .expect("every stream ends");
    for last in ends {
        let last = last.expect("stream task");
        assert_eq!(last["status"], "succeeded", "{last}");
        assert!(last.get("queue").is_none(), "{last}");
    }
    let (rows_end, lanes_end, finals_end) = state.room.reads.counts();
    let finals = finals_end - finals_before;
    eprintln!(
        "{STREAMS} streams ended in {:?}: {finals} final-state reads, {} lane snapshot reads, {} job row reads",
        draining.elapsed(),
        lanes_end - lanes_before,
        rows_end - rows_after
    );
    assert!(finals < STREAMS as u64, "{finals} final-state reads");
    assert_eq!(rows_end, rows_after, "ending streams read no job row");
    until(Duration::from_secs(10), "streams unregistered", || {
        let open = state.room.streams.len();
        async move { open == 0 }
    })
    .await;
    app.stop().await;
}
