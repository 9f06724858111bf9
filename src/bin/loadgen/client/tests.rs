//! The client against a tiny local server.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    routing::{get, post},
};
use hyper::body::Bytes;
use serde_json::json;

use super::{Answer, Api, Crowd, scrape};
use crate::config::loopback_base_url;

fn api_at(addr: SocketAddr) -> Api {
    let base = loopback_base_url(&format!("http://{addr}")).expect("url");
    Api::new(&base, None).expect("api")
}

/// Three POSTs go over one connection, and each answer carries its status,
/// its JSON body and its `Location`; the request carries the JSON body, its
/// type and `Prefer`.
#[tokio::test]
async fn posts_share_one_connection_and_read_the_whole_answer() {
    let peers: Arc<Mutex<HashSet<SocketAddr>>> = Arc::default();
    let app = Router::new()
        .route(
            "/holds",
            post(
                |State(peers): State<Arc<Mutex<HashSet<SocketAddr>>>>,
                 ConnectInfo(peer): ConnectInfo<SocketAddr>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    if let Ok(mut peers) = peers.lock() {
                        peers.insert(peer);
                    }
                    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
                    let echo = json!({
                        "bytes": body.len(),
                        "type": text(header::CONTENT_TYPE),
                        "prefer": text(header::HeaderName::from_static("prefer")),
                        "host": text(header::HOST),
                    });
                    (
                        StatusCode::ACCEPTED,
                        [(header::LOCATION, "/api/v1/jobs/7")],
                        echo.to_string(),
                    )
                },
            ),
        )
        .with_state(peers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });

    let mut api = api_at(addr);
    let post = api
        .prepare_post(
            "/holds",
            &json!({ "product_id": 1, "qty": 1 }),
            Some("wait=10"),
        )
        .expect("post");
    for _ in 0..3 {
        match api.post_as(&post, None).await {
            Answer::Http {
                status,
                body: Some(echo),
                location,
                ..
            } => {
                assert_eq!(status, StatusCode::ACCEPTED);
                assert_eq!(echo["bytes"], 24);
                assert_eq!(echo["type"], "application/json");
                assert_eq!(echo["prefer"], "wait=10");
                assert_eq!(echo["host"], addr.to_string());
                assert_eq!(location.as_deref(), Some("/api/v1/jobs/7"));
            }
            Answer::Http { status, body, .. } => panic!("{status}: {body:?}"),
            Answer::Transport(key) => panic!("{key}"),
        }
    }
    assert_eq!(peers.lock().map(|p| p.len()).unwrap_or(0), 1);
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut api = api_at(addr);
    let post = api.prepare_post("/holds", &json!({}), None).expect("post");
    match api.post_as(&post, None).await {
        Answer::Transport(key) => assert_eq!(key, "transport (connect)"),
        Answer::Http { status, .. } => panic!("answered {status}"),
    }
}

/// The server closing a kept-alive connection between two requests costs
/// no error: the next request goes out on a fresh connection.
#[tokio::test]
async fn a_connection_the_server_closed_is_replaced() {
    let app = Router::new().route(
        "/x",
        post(|| async { ([(header::CONNECTION, "close")], "{}") }),
    );
    let addr = serve(app).await;
    let mut api = api_at(addr);
    let post = api.prepare_post("/x", &json!({}), None).expect("post");
    for _ in 0..3 {
        match api.post_as(&post, None).await {
            Answer::Http { status, .. } => assert_eq!(status, StatusCode::OK),
            Answer::Transport(key) => panic!("{key}"),
        }
    }
}

/// A buyer's POST carries its token; a 429's `Retry-After` is read.
#[tokio::test]
async fn a_buyer_post_carries_its_token_and_reads_retry_after() {
    let app = Router::new().route(
        "/holds",
        post(|headers: HeaderMap| async move {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "2")],
                json!({ "code": "rate_limited", "auth": auth }).to_string(),
            )
        }),
    );
    let addr = serve(app).await;
    let mut api = api_at(addr);
    api.open().await.expect("connects ahead");
    let crowd = Crowd::signed("k", None, "t", 2).expect("tokens");
    let post = api.prepare_post("/holds", &json!({}), None).expect("post");
    match api.post_as(&post, crowd.auth(1)).await {
        Answer::Http {
            status,
            body: Some(body),
            retry_after,
            ..
        } => {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(retry_after, Some(2));
            let sent = crowd.auth(1).and_then(|v| v.to_str().ok()).unwrap_or("-");
            assert_eq!(body["auth"], sent);
            assert!(sent.starts_with("Bearer "));
        }
        Answer::Http { status, .. } => panic!("answered {status}"),
        Answer::Transport(key) => panic!("{key}"),
    }
}

/// A metrics scrape reads the whole text at the URL's path; any other
/// status is an error that names the URL.
#[tokio::test]
async fn a_scrape_reads_the_exposition_at_its_path() {
    let app = Router::new().route("/metrics", get(|| async { "flash_jobs_relayed_total 3\n" }));
    let addr = serve(app).await;
    let url = |path: &str| loopback_base_url(&format!("http://{addr}{path}")).expect("url");
    assert_eq!(
        scrape(&url("/metrics")).await.as_deref(),
        Ok("flash_jobs_relayed_total 3\n")
    );
    let missing = scrape(&url("/")).await;
    assert_eq!(
        missing,
        Err(format!("GET http://{addr} failed: answered 404 Not Found"))
    );
}

/// The webhooks are signed by the library's signer, which the api checks
/// with; this is the vector loadgen's own copy used to be tested against.
#[test]
fn webhook_signature_matches_a_known_vector() {
    // printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac dev-webhook-secret
    assert_eq!(
        flash_sale::signature::sign("dev-webhook-secret", 1_700_000_000, br#"{"a":1}"#),
        concat!(
            "t=1700000000,v1=",
            "85a8297cf9fae53850953fb4e8e09924ba64293bdfaac2ecfd7d0ad5067cb957"
        )
    );
}

/// Serves `app` on a free loopback port until the test ends.
async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}
