//! One keep-alive HTTP/1.1 connection: loadgen's only HTTP client.
//!
//! The load generator shares the machine with the service it measures, so
//! every microsecond it spends per request is taken from the service. A
//! pooled client pays for a pool, a URL parse and a request builder on
//! every request; here each caller (a buyer, a poller) owns one hyper
//! connection, sends one request at a time on it, and builds nothing twice.

use std::{sync::Arc, time::Instant};

use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    client::conn::http1::{self, SendRequest},
    header::{self, HeaderValue},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::{CONNECT_TIMEOUT, IDLE_REUSE_LIMIT, REQUEST_TIMEOUT};

/// A whole answer.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    /// `Retry-After` in seconds (429, `sale_not_started`); the HTTP-date
    /// form is not used by the api.
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: Bytes,
}

/// A connection to one server, opened on first use and again whenever the
/// server closed it.
pub(crate) struct Conn {
    /// `host:port`, to connect to.
    authority: Arc<str>,
    /// The same, as the `Host` header.
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// When the last answer was read.
    last_used: Instant,
}

impl Conn {
    pub(crate) fn new(authority: Arc<str>, host: HeaderValue) -> Self {
        Self {
            authority,
            host,
            sender: None,
            last_used: Instant::now(),
        }
    }

    /// Sends `request` (origin-form URI; `Host` is added) and reads the
    /// whole answer, or names the transport failure: `transport (connect)`,
    /// `(timeout)`, `(request)` or `(body)`. A failed connection is dropped
    /// and the next request opens a new one.
    pub(crate) async fn send(
        &mut self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Reply, String> {
        request
            .headers_mut()
            .insert(header::HOST, self.host.clone());
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request)).await {
            Ok(Ok(reply)) => {
                self.last_used = Instant::now();
                Ok(reply)
            }
            Ok(Err(kind)) => {
                self.sender = None;
                Err(format!("transport ({kind})"))
            }
            Err(_) => {
                self.sender = None;
                Err("transport (timeout)".into())
            }
        }
    }

    async fn exchange(&mut self, mut request: Request<Full<Bytes>>) -> Result<Reply, &'static str> {
        let reusable = self
            .sender
            .take()
            .filter(|sender| !sender.is_closed() && self.last_used.elapsed() < IDLE_REUSE_LIMIT);
        if let Some(mut sender) = reusable
            && sender.ready().await.is_ok()
        {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.sender = Some(sender);
                    return read(response).await;
                }
                // The server closed the kept-alive connection before the
                // request was written: it goes out on a fresh one, as a
                // pooled client would do.
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err("request"),
                },
            }
        }
        let mut sender = self.connect().await?;
        sender.ready().await.map_err(|_| "request")?;
        let response = sender.send_request(request).await.map_err(|_| "request")?;
        self.sender = Some(sender);
        read(response).await
    }

    /// Opens the connection now, if it is not open, so that the first
    /// request does not pay for the handshake (buyers waiting for a sale
    /// to open).
    pub(crate) async fn open(&mut self) -> Result<(), String> {
        let open = self
            .sender
            .as_ref()
            .is_some_and(|sender| !sender.is_closed());
        if !open {
            let sender = self
                .connect()
                .await
                .map_err(|kind| format!("transport ({kind})"))?;
            self.sender = Some(sender);
        }
        self.last_used = Instant::now();
        Ok(())
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, &'static str> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&*self.authority))
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

async fn read(response: Response<Incoming>) -> Result<Reply, &'static str> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|_| "body")?.to_bytes();
    let text = |name| {
        parts
            .headers
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
    };
    Ok(Reply {
        status: parts.status,
        location: text(header::LOCATION).map(str::to_owned),
        retry_after: text(header::RETRY_AFTER).and_then(|v| v.trim().parse().ok()),
        body,
    })
}
