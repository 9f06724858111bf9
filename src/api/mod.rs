//! The HTTP api (docs/API.md): thin handlers over the stores, the product
//! cache and the broker.

mod auth;
mod baseline;
mod commands;
mod docs;
mod error;
mod health;
mod holds;
mod input;
mod jobs;
pub mod metrics;
mod orders;
mod payments;
mod products;
mod publisher;
mod recorder;
mod server;

use std::{any::Any, sync::Arc};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use auth::constant_time_eq;
pub use error::{ApiError, ApiResult};
pub use input::BODY_LIMIT;
pub use publisher::{CommandPublisher, MAX_PER_MESSAGE};
pub use recorder::JobRecorder;
pub use server::{LISTEN_BACKLOG, MAX_HEAD_BYTES, bind, raise_file_limit};

use crate::{
    broker::Broker,
    cache::ProductCache,
    config::{Secret, Settings},
    problem::{Code, Problem},
    waiters::JobWaiters,
};

/// Everything a handler may touch. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: MySqlPool,
    pub broker: Broker,
    pub cache: ProductCache,
    pub waiters: JobWaiters,
    pub recorder: JobRecorder,
    pub publisher: CommandPublisher,
    pub settings: Arc<Settings>,
    pub admin_token: Secret,
    pub webhook_secret: Secret,
    /// The OpenAPI document, rendered once when the router is built.
    pub openapi: Arc<serde_json::Value>,
}

impl AppState {
    /// State over these dependencies, with an empty cache and no waiters;
    /// starts the job recorder and the command publisher.
    pub fn new(pool: MySqlPool, broker: Broker, settings: Arc<Settings>) -> anyhow::Result<Self> {
        let (admin_token, webhook_secret) = settings.require_secrets()?;
        Ok(Self {
            recorder: JobRecorder::start(pool.clone()),
            publisher: CommandPublisher::start(broker.clone()),
            pool,
            broker,
            cache: ProductCache::new(),
            waiters: JobWaiters::new(),
            settings,
            admin_token,
            webhook_secret,
            openapi: Arc::default(),
        })
    }
}

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
        .routes(routes!(payments::list))
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
        description = "Flash-sale checkout: stock holds, orders and payment webhooks. Errors are RFC 9457 problem documents with a machine-readable `code`."
    ),
    components(schemas(crate::problem::Problem))
)]
struct ApiDoc;

/// The OpenAPI document of every mounted route.
pub fn openapi_document(enable_baseline: bool) -> utoipa::openapi::OpenApi {
    routes(enable_baseline).split_for_parts().1
}

pub fn router(mut state: AppState) -> Router {
    let (router, document) = routes(state.settings.enable_baseline).split_for_parts();
    state.openapi = Arc::new(serde_json::to_value(&document).unwrap_or_default());
    router
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
