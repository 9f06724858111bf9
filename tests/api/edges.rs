//! Limits at the edge: slow and silent clients are dropped, heads are
//! capped, bodies have a deadline. Spoken over raw TCP, as such clients do.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Roles, TestApp, spawn_with};

const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack for the server's timers and this machine's scheduling.
const SLACK: Duration = Duration::from_secs(2);

async fn spawn_edge_app() -> TestApp {
    spawn_with(
        Roles::default(),
        &[
            ("HTTP_HEADER_TIMEOUT_SECS", "5"),
            ("HTTP_BODY_TIMEOUT_SECS", "2"),
        ],
    )
    .await
}

fn addr(app: &TestApp) -> String {
    app.apis[0].trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (EOF or reset) or
/// `deadline` passes; returns what arrived and whether it was closed.
async fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (received, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status code of a raw HTTP/1.1 answer, if one began.
fn status_of(raw: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(raw);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test]
async fn slow_clients_are_closed_while_buyers_are_served() {
    let app = spawn_edge_app().await;
    let product = app.create_product("Edge", 100, 10).await;
    let target = addr(&app);

    // 500 connections that send half a request head and then nothing.
    let opened = Instant::now();
    let connects = (0..500).map(|_| {
        let target = target.clone();
        async move {
            let mut stream = TcpStream::connect(target).await.expect("connect");
            stream
                .write_all(b"POST /api/v1/holds HTTP/1.1\r\nHost: edge\r\nContent-Ty")
                .await
                .expect("half a head");
            stream
        }
    });
    let mut slow: Vec<TcpStream> = join_all(connects).await;

    // Meanwhile a buyer is served as usual.
    let response = app
        .post_hold(
            &json!({"product_id": product, "qty": 1}),
            &[("prefer", "wait=4")],
        )
        .await;
    assert_eq!(response.status().as_u16(), 201, "the buyer was not served");
    assert!(
        opened.elapsed() < HEADER_TIMEOUT,
        "the buyer was only served after the slow clients' deadline"
    );

    // Every slow connection is closed by the server, without an answer,
    // within the header timeout plus slack.
    let deadline = opened + HEADER_TIMEOUT + SLACK;
    let closed = join_all(
        slow.iter_mut()
            .map(|stream| read_until_closed(stream, deadline)),
    )
    .await;
    let answered = closed.iter().filter(|(raw, _)| !raw.is_empty()).count();
    let closed = closed.iter().filter(|(_, closed)| *closed).count();
    assert_eq!(closed, 500, "slow connections closed by the server");
    assert_eq!(answered, 0, "a half head got an answer");
    app.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let app = spawn_edge_app().await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let request = b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n";
    for _ in 0..2 {
        // Keep-alive works: two requests on one connection.
        stream.write_all(request).await.expect("request");
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert_eq!(status_of(&buf[..n]), Some(200));
    }
    let idle_since = Instant::now();
    let (raw, closed) = read_until_closed(&mut stream, idle_since + HEADER_TIMEOUT + SLACK).await;
    assert!(closed, "an idle keep-alive connection stayed open");
    assert!(raw.is_empty());
    assert!(
        idle_since.elapsed() >= HEADER_TIMEOUT - Duration::from_millis(200),
        "closed after {:?}, before the header timeout",
        idle_since.elapsed()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_head_over_32_kib_is_refused_and_one_under_it_is_served() {
    let app = spawn_with(Roles::API_ONLY, &[]).await;
    for (pad, want_served) in [(30 * 1024, true), (40 * 1024, false), (200 * 1024, false)] {
        let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
        let head = format!(
            "GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(pad)
        );
        // The server may close before the whole head is written.
        let _ = stream.write_all(head.as_bytes()).await;
        let (raw, closed) =
            read_until_closed(&mut stream, Instant::now() + Duration::from_secs(10)).await;
        assert!(closed, "pad {pad}: connection left open");
        match status_of(&raw) {
            Some(200) => assert!(want_served, "pad {pad}: a head over 32 KiB was served"),
            Some(431) | None => assert!(!want_served, "pad {pad}: a head under 32 KiB refused"),
            Some(other) => panic!("pad {pad}: unexpected status {other}"),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408_and_records_nothing() {
    let app = spawn_edge_app().await;
    let product = app.create_product("Edge body", 100, 10).await;
    let mut stream = TcpStream::connect(addr(&app)).await.expect("connect");
    let body = format!(r#"{{"product_id":{product},"qty":1}}"#);
    let head = format!(
        "POST /api/v1/holds HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len() + 40
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(body.as_bytes())
        .await
        .expect("part of the body");
    let sent = Instant::now();

    let (raw, closed) = read_until_closed(&mut stream, sent + BODY_TIMEOUT + SLACK).await;
    assert!(closed, "the connection stayed open after the 408");
    assert_eq!(status_of(&raw), Some(408));
    let text = String::from_utf8_lossy(&raw);
    let (headers, json) = text.split_once("\r\n\r\n").expect("head and body");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json")
    );
    assert!(headers.to_ascii_lowercase().contains("connection: close"));
    let problem: Value = serde_json::from_str(json).expect("problem json");
    assert_eq!(problem["code"], "request_timeout");
    assert_eq!(problem["status"], 408);
    assert!(sent.elapsed() >= BODY_TIMEOUT - Duration::from_millis(200));
    assert_eq!(app.count("SELECT COUNT(*) FROM jobs").await, 0);
    app.stop().await;
}
