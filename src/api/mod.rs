//! The HTTP api (docs/API.md): thin handlers over the data layer, the
//! product cache and the broker.
//!
//! A request is read by [`extract`] (path, headers) and [`input`] (body,
//! into a type of [`requests`]); a command is accepted by [`accept`]
//! (recorded by [`recorder`] or with its key, published by [`publisher`]);
//! answers are [`responses`] or domain types. [`docs`] renders the OpenAPI
//! document from the handlers' attributes. Every handler shares the
//! [`state`] ([`AppState`]).

mod accept;
mod baseline;
mod buyer;
mod console;
mod dead_letters;
mod docs;
mod error;
mod extract;
mod health;
mod holds;
mod input;
mod jobs;
pub mod metrics;
mod orders;
mod overview;
mod payments;
mod products;
mod publisher;
pub mod rate_limit;
mod recorder;
mod requests;
mod responses;
mod server;
mod state;

use std::any::Any;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use error::{ApiError, ApiResult};
pub use extract::constant_time_eq;
pub use input::BODY_LIMIT;
pub use publisher::CommandPublisher;
pub use recorder::JobRecorder;
pub use server::{LISTEN_BACKLOG, MAX_HEAD_BYTES, bind, raise_file_limit};
pub use state::AppState;

use self::docs::Security;
use crate::problem::{Code, Problem};

/// Every route, each registered with its OpenAPI operation.
fn routes(enable_baseline: bool) -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::render))
        .routes(routes!(docs::openapi))
        .routes(routes!(products::list))
        .routes(routes!(products::get))
        .routes(routes!(products::create))
        .routes(routes!(products::restock))
        .routes(routes!(products::update))
        .routes(routes!(payments::list))
        .routes(routes!(payments::resolve))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::redrive))
        .routes(routes!(dead_letters::drop_undecodable))
        .routes(routes!(overview::get))
        .routes(routes!(holds::create))
        .routes(routes!(holds::get))
        .routes(routes!(orders::create))
        .routes(routes!(orders::get))
        .routes(routes!(payments::webhook))
        .routes(routes!(jobs::get));
    if enable_baseline {
        routes.routes(routes!(baseline::create))
    } else {
        routes
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "flash-sale",
        description = "Flash-sale checkout: stock holds, orders and payment webhooks.\n\n\
Errors are RFC 9457 problem documents (`application/problem+json`) with a machine-readable `code`. \
Every path answers a method this document does not list for it with 405 `method_not_allowed` and an \
`Allow` header (`#/components/responses/MethodNotAllowed`); an unknown path is 404 `not_found`. \
`HEAD` is answered wherever `GET` is. A request head over 32 KiB is refused by the HTTP layer (431, \
or a closed connection), without a problem document."
    ),
    components(
        schemas(crate::problem::Problem, docs::PaymentEventFilter),
        responses(
            docs::MalformedJson,
            docs::Unauthorized,
            docs::RequestTimeout,
            docs::PayloadTooLarge,
            docs::UnsupportedMediaType,
            docs::Unavailable,
            docs::MethodNotAllowed,
            docs::RateLimited
        )
    ),
    modifiers(&Security),
    tags(
        (name = "products", description = "The catalogue, read from each replica's cache"),
        (name = "holds", description = "Stock reservations, decided by the workers"),
        (name = "orders", description = "Holds turned into orders, decided by the workers"),
        (name = "jobs", description = "Every asynchronous command's handle"),
        (name = "payments", description = "The payment provider's signed webhook"),
        (name = "admin", description = "Operators' routes: `Authorization: Bearer $ADMIN_TOKEN`"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "benchmark", description = "Mounted only with `ENABLE_BASELINE=true`")
    )
)]
struct ApiDoc;

/// The OpenAPI document as served by a router of these settings: every
/// mounted route, with `max_hold_qty` as the running `MAX_HOLD_QTY`.
pub fn openapi_document(enable_baseline: bool, max_hold_qty: u32) -> serde_json::Value {
    docs::render(&routes(enable_baseline).split_for_parts().1, max_hold_qty)
}

pub fn router(state: AppState) -> Router {
    let (router, document) = routes(state.settings.enable_baseline).split_for_parts();
    // A second router over the same state serves the same document.
    let _ = state
        .openapi
        .set(docs::render(&document, state.settings.max_hold_qty));
    router
        .merge(console::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(metrics::track))
        // Failures are logged where they are classified (ApiError), once.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .layer(CatchPanicLayer::custom(panic_to_problem))
        .with_state(state)
}

/// Serves until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let header_timeout = state.settings.http_header_timeout;
    server::serve_router(listener, router(state), header_timeout, shutdown).await
}

async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::new(Code::NotFound, format!("no route for {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

fn panic_to_problem(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "handler panicked");
    let mut response = Problem::new(Code::Internal, "an unexpected error occurred").into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
