//! A buyer's own keep-alive HTTP/1.1 connection, for the bursts.
//!
//! The load generator shares the machine with the service it measures, so
//! every microsecond it spends per request is taken from the service. The
//! shared `reqwest` client pays for a connection pool, a URL parse and a
//! request builder on every request; a burst only ever sends the same body
//! to the same path, one request at a time per buyer, so each buyer keeps
//! one hyper connection of its own and builds nothing twice.

use anyhow::{Context, ensure};
use http_body_util::{BodyExt, Full};
use hyper::{
    Request,
    body::Bytes,
    client::conn::http1::{self, SendRequest},
    header::{self, HeaderValue},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{CONNECT_TIMEOUT, REQUEST_TIMEOUT, burst::Answer};

/// POSTs to one URL, over a connection of its own.
pub(crate) struct BuyerConn {
    /// `host:port`, to connect to and to send as `Host`.
    authority: String,
    host: HeaderValue,
    path: hyper::Uri,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl BuyerConn {
    /// For a URL like `http://127.0.0.1:8080/api/v1/holds`; connects on
    /// first use.
    pub(crate) fn to(url: &str) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("not a URL: {url:?}"))?;
        ensure!(
            uri.scheme_str() == Some("http"),
            "the bursts speak plain http, not {url:?}"
        );
        let authority = uri
            .authority()
            .with_context(|| format!("no host in {url:?}"))?;
        let authority = match authority.port() {
            Some(_) => authority.to_string(),
            None => format!("{authority}:80"),
        };
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .with_context(|| format!("no path in {url:?}"))?;
        Ok(Self {
            host: HeaderValue::from_str(&authority).context("host header")?,
            authority,
            path,
            sender: None,
        })
    }

    /// POSTs `body` (JSON). A connection that failed is dropped and the
    /// next request opens a new one.
    pub(crate) async fn post(&mut self, body: &Bytes) -> Answer {
        let request = Request::post(self.path.clone())
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()));
        let request = match request {
            Ok(request) => request,
            Err(_) => return Answer::Transport("transport (request)".into()),
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, self.send(request)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(kind)) => {
                self.sender = None;
                Answer::Transport(format!("transport ({kind})"))
            }
            Err(_) => {
                self.sender = None;
                Answer::Transport("transport (timeout)".into())
            }
        }
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, &'static str> {
        let sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => self.sender.insert(sender),
            _ => self.sender.insert(self.connect().await?),
        };
        sender.ready().await.map_err(|_| "request")?;
        let response = sender.send_request(request).await.map_err(|_| "request")?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map_err(|_| "body")?.to_bytes();
        Ok(Answer::http(
            parts.status,
            parts.headers.get(header::LOCATION),
            &bytes,
        ))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, &'static str> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| "timeout")?
            .map_err(|_| "connect")?;
        stream.set_nodelay(true).map_err(|_| "connect")?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "connect")?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes; the
            // next request then reconnects.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashSet,
        net::SocketAddr,
        sync::{Arc, Mutex},
    };

    use axum::{
        Router,
        extract::{ConnectInfo, State},
        http::{HeaderMap, StatusCode},
        routing::post,
    };

    use super::*;

    #[test]
    fn a_url_splits_into_where_to_connect_and_what_to_ask() {
        let conn = BuyerConn::to("http://127.0.0.1:8080/api/v1/holds").expect("url");
        assert_eq!(conn.authority, "127.0.0.1:8080");
        assert_eq!(conn.path, "/api/v1/holds");
        let conn = BuyerConn::to("http://localhost/x?y=1").expect("url");
        assert_eq!(conn.authority, "localhost:80");
        assert_eq!(conn.path, "/x?y=1");
        assert!(BuyerConn::to("https://127.0.0.1/x").is_err());
        assert!(BuyerConn::to("not a url").is_err());
    }

    /// Three POSTs go over one connection, and each answer carries its
    /// status, its JSON body and its `Location`.
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
                        let echo = serde_json::json!({
                            "bytes": body.len(),
                            "type": headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
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

        let mut conn = BuyerConn::to(&format!("http://{addr}/holds")).expect("url");
        let body = Bytes::from_static(br#"{"product_id":1,"qty":1}"#);
        for _ in 0..3 {
            match conn.post(&body).await {
                Answer::Http {
                    status,
                    body: Some(echo),
                    location,
                } => {
                    assert_eq!(status, StatusCode::ACCEPTED);
                    assert_eq!(echo["bytes"], 24);
                    assert_eq!(echo["type"], "application/json");
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
        let mut conn = BuyerConn::to(&format!("http://{addr}/holds")).expect("url");
        match conn.post(&Bytes::new()).await {
            Answer::Transport(key) => assert_eq!(key, "transport (connect)"),
            Answer::Http { status, .. } => panic!("answered {status}"),
        }
    }
}
