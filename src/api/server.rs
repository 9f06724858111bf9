//! The HTTP server under the router: the listening socket, the limits every
//! connection lives under, and graceful shutdown.
//!
//! Written on hyper directly (not `axum::serve`) for the limits at the edge
//! (docs/API.md, "Limits at the edge"): a connection that has not sent a
//! whole request head within `HTTP_HEADER_TIMEOUT_SECS` is closed, idle
//! keep-alive connections included, so slow or silent clients cannot hold
//! every file descriptor; a head over [`MAX_HEAD_BYTES`] is answered 431.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, extract::ConnectInfo, http::Request};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Connections the kernel completes and queues before the api accepts
/// them (capped by `net.core.somaxconn`). A sale opens a crowd of them at
/// once; with tokio's default of 128 a few hundred buyers overflowed the
/// queue while the cores were busy, and every connection dropped there
/// waits a full second for its client to try again (docs/BENCHMARKS.md).
pub const LISTEN_BACKLOG: u32 = 4096;

/// The largest request head (request line and headers) the api reads.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// How long a stopping api waits for open connections to finish their
/// request before it drops them.
const DRAIN_WITHIN: Duration = Duration::from_secs(15);

/// After a failed accept (out of file descriptors, say), a pause before the
/// next, so the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Raises this process's soft limit on open files to its hard limit (as Go
/// programs do at start): each connection is a file, and the common default
/// of 1,024 would let a thousand slow clients lock every buyer out even
/// with the header timeout. Logged; a failure only warns.
pub fn raise_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open file limit"),
    }
}

/// The api's listening socket, with room for a crowd ([`LISTEN_BACKLOG`]).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As tokio's own bind does: a restarted api rebinds at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets open
/// requests finish (at most [`DRAIN_WITHIN`]). Every request carries the
/// peer's address as [`ConnectInfo`].
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Timeouts, resets and 431s end here; they are the client's doing.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_WITHIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing them");
    }
    Ok(())
}
