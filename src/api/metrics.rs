//! `GET /metrics` and the per-request counters behind it.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};

/// Counts every request by method, route template and status, and times it.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    // The route template, not the path: ids would explode the label set.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("flash_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("flash_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[utoipa::path(get, path = "/metrics", operation_id = "metrics", summary = "Prometheus metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain")))]
pub async fn render() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
}

/// A small server for `/metrics` (worker and scheduler, on `METRICS_ADDR`),
/// under the same connection limits as the api.
pub async fn serve(
    addr: std::net::SocketAddr,
    header_timeout: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(render))
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = super::bind(addr)?;
    tracing::info!(%addr, "metrics listening");
    super::server::serve_router(listener, app, header_timeout, shutdown).await
}
