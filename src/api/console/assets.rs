//! The console's stylesheet and script, compiled into the binary: the
//! console needs nothing from the network. Their paths carry a hash of
//! their content, so a browser may keep them for good.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// `/console/assets/console.<hash>.css`.
pub static CSS_PATH: LazyLock<String> = LazyLock::new(|| path("console", CSS, "css"));
/// `/console/assets/console.<hash>.js`.
pub static JS_PATH: LazyLock<String> = LazyLock::new(|| path("console", JS, "js"));

fn path(name: &str, content: &str, ext: &str) -> String {
    let hash = hex::encode(&Sha256::digest(content.as_bytes())[..6]);
    format!("/console/assets/{name}.{hash}.{ext}")
}

/// `GET /console/assets/{file}`: one of the two, else 404.
pub async fn serve(Path(file): Path<String>) -> Response {
    let requested = format!("/console/assets/{file}");
    let (body, content_type) = if requested == *CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if requested == *JS_PATH {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        body,
    )
        .into_response()
}
