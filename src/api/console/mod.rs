//! The operator console (`/console`): server-rendered pages over the admin
//! API's own calls, a login with `ADMIN_TOKEN`, and live numbers over SSE.
//!
//! Pages are maud templates (compiled in), with one stylesheet and one
//! script embedded in the binary ([`assets`]). A page needs a session
//! ([`session`]); every POST carries the session's CSRF token ([`form`]).
//! Nothing changes on a GET: an action redirects to its page with what it
//! did ([`notice`]).

mod assets;
mod form;
mod jobs;
mod layout;
mod login;
mod notice;
mod payments;
mod products;
mod queues;
mod sale;
mod session;
mod view;

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue, header},
    middleware::Next,
    response::Response,
    routing::{get, post},
};

use super::state::AppState;

/// Every console route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(sale::show))
        .route("/console/live", get(sale::live))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", post(login::logout))
        .route("/console/queues", get(queues::show))
        .route("/console/dead-letters/redrive", post(queues::redrive))
        .route(
            "/console/dead-letters/drop-undecodable",
            post(queues::drop_undecodable),
        )
        .route("/console/payments", get(payments::show))
        .route(
            "/console/payments/{job_id}/resolve",
            post(payments::resolve),
        )
        .route("/console/jobs", get(jobs::show))
        .route(
            "/console/products",
            get(products::show).post(products::create),
        )
        .route("/console/products/{id}/restock", post(products::restock))
        .route("/console/products/{id}/edit", post(products::edit))
        .route("/console/assets/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn(guard))
}

/// Headers every console answer carries: only our own scripts and styles
/// run, no site may frame the console, and pages are not cached.
async fn guard(request: Request, next: Next) -> Response {
    let is_asset = request.uri().path().starts_with("/console/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    response
}
