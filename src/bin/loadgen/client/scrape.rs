//! `GET` of a Prometheus endpoint (`--metrics-url`): a connection of its
//! own, since the endpoint may be another process's (a scheduler's
//! METRICS_ADDR). The endpoint needs no token (src/api/metrics.rs).

use hyper::{Method, StatusCode, Uri, body::Bytes, header::HeaderValue};

use crate::{
    client::{api::request, conn::Conn},
    config::BaseUrl,
};

/// The exposition text at `url`, or why not.
pub(crate) async fn scrape(url: &BaseUrl) -> Result<String, String> {
    let failed = |why: &dyn std::fmt::Display| format!("GET {} failed: {why}", url.text);
    let host = HeaderValue::from_str(&url.authority).map_err(|e| failed(&e))?;
    let path = if url.prefix.is_empty() {
        "/"
    } else {
        url.prefix.as_str()
    };
    let uri: Uri = path.parse().map_err(|e| failed(&e))?;
    let mut conn = Conn::new(url.authority.as_str().into(), host);
    let reply = conn
        .send(request(Method::GET, uri, Bytes::new()))
        .await
        .map_err(|key| failed(&key))?;
    if reply.status != StatusCode::OK {
        return Err(failed(&format!("answered {}", reply.status)));
    }
    String::from_utf8(reply.body.to_vec()).map_err(|e| failed(&e))
}
