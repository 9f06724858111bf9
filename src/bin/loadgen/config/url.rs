//! `--url`: plain HTTP to a loopback host, split into what the client needs.

use std::net::IpAddr;

use anyhow::{Context, ensure};
use hyper::Uri;

/// Where the api lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    /// `http://host[:port][/prefix]`, no trailing slash: the report's `url`.
    pub(crate) text: String,
    /// `host:port` to connect to (port 80 when the URL has none), also the
    /// `Host` header.
    pub(crate) authority: String,
    /// What goes before `/api/v1/…` in every path: "" or `/prefix`.
    pub(crate) prefix: String,
}

/// Refuses anything but plain HTTP to a loopback host: loadgen floods what
/// it points at, so it must not be pointed at anything remote.
pub(crate) fn loopback_base_url(raw: &str) -> anyhow::Result<BaseUrl> {
    loopback_url("--url", raw)
}

/// [`loopback_base_url`] for any of loadgen's URL flags (`--metrics-url`
/// too: it is scraped during the run), named `flag` in its errors.
pub(crate) fn loopback_url(flag: &str, raw: &str) -> anyhow::Result<BaseUrl> {
    let uri: Uri = raw
        .parse()
        .with_context(|| format!("invalid {flag} {raw:?}"))?;
    ensure!(
        uri.scheme_str()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http")),
        "{flag} must use http:// (this build has no TLS), got {raw:?}"
    );
    let authority = uri
        .authority()
        .with_context(|| format!("{flag} has no host"))?;
    // Credentials in the URL would never be sent: say so rather than drop them.
    ensure!(
        !authority.as_str().contains('@'),
        "{flag} must not carry credentials, got {raw:?}"
    );
    ensure!(
        uri.query().is_none(),
        "{flag} must not have a query, got {raw:?}"
    );
    let host = authority.host().to_ascii_lowercase();
    ensure!(!host.is_empty(), "{flag} has no host");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    ensure!(
        loopback,
        "{flag} must point at a loopback address (127.0.0.0/8, ::1, localhost), got {host:?}"
    );
    let port = authority.port_u16().unwrap_or(80);
    let prefix = uri.path().trim_end_matches('/').to_owned();
    // Written like the URL standard does: no default port, no trailing slash.
    let shown_port = if port == 80 {
        String::new()
    } else {
        format!(":{port}")
    };
    Ok(BaseUrl {
        text: format!("http://{host}{shown_port}{prefix}"),
        authority: format!("{host}:{port}"),
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        assert!(loopback_base_url("http://127.0.0.1:8080").is_ok());
        assert!(loopback_base_url("http://localhost:8080/").is_ok());
        assert!(loopback_base_url("http://[::1]:8080").is_ok());
        assert!(loopback_base_url("http://127.0.0.2:9000").is_ok());
        assert!(loopback_base_url("http://10.0.0.1:8080").is_err());
        assert!(loopback_base_url("http://example.com").is_err());
        assert!(loopback_base_url("https://127.0.0.1").is_err());
        assert!(loopback_base_url("localhost:8080").is_err());
        assert!(loopback_base_url("http://user:pw@127.0.0.1").is_err());
        assert!(loopback_base_url("not a url").is_err());
        assert_eq!(
            loopback_base_url("http://127.0.0.1:8080/")
                .ok()
                .map(|url| url.text),
            Some("http://127.0.0.1:8080".to_owned())
        );
    }

    #[test]
    fn a_url_splits_into_where_to_connect_and_what_to_ask() {
        let url = |raw| loopback_base_url(raw).expect("url");
        let plain = url("http://127.0.0.1:8080");
        assert_eq!(plain.authority, "127.0.0.1:8080");
        assert_eq!(plain.prefix, "");
        let bare = url("http://LocalHost/x/");
        assert_eq!(bare.text, "http://localhost/x");
        assert_eq!(bare.authority, "localhost:80");
        assert_eq!(bare.prefix, "/x");
        let v6 = url("http://[::1]:9000");
        assert_eq!(v6.authority, "[::1]:9000");
        assert_eq!(v6.text, "http://[::1]:9000");
    }

    #[test]
    fn other_url_flags_are_named_in_their_errors() {
        let refused = loopback_url("--metrics-url", "http://10.0.0.1:9100/metrics");
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("--metrics-url must point at a loopback"),
            "{message}"
        );
        let metrics = loopback_url("--metrics-url", "http://127.0.0.1:9100/metrics").expect("url");
        assert_eq!(metrics.prefix, "/metrics");
    }
}
