//! Reaching MySQL and RabbitMQ: which failures are worth retrying, and the
//! one line that says why a process cannot start.
//!
//! A refused certificate, a failed TLS handshake, a refused password or a
//! missing database will not fix itself: the process stops at once and says
//! which connection failed and why. A refused connection or a timeout is a
//! server still starting (compose and orchestrators start everything at
//! once): retried, and reported the same way when retries run out.

use std::io;

use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};

/// Why a dependency could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("{connection}: {reason}")]
pub struct ConnectError {
    /// Which connection, without its password: `database mysql://app@db:3306/flash_sale`.
    pub connection: String,
    pub reason: String,
    /// True when the failure looks transient and trying again may help.
    pub retry: bool,
}

impl ConnectError {
    pub fn fatal(connection: &str, reason: impl Into<String>) -> Self {
        Self {
            connection: connection.to_owned(),
            reason: reason.into(),
            retry: false,
        }
    }

    pub fn transient(connection: &str, reason: impl Into<String>) -> Self {
        Self {
            retry: true,
            ..Self::fatal(connection, reason)
        }
    }
}

/// `scheme://user@host:port/path?query` without the password, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a URL)".to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Sorts a failure to connect to (or set up) the database.
pub fn database(connection: &str, err: &sqlx::Error) -> ConnectError {
    use sqlx::Error;
    let plain = connection
        .to_ascii_lowercase()
        .contains("ssl-mode=disabled");
    match err {
        Error::Database(db) => {
            let number = crate::db::error_number(err);
            let message = db.message();
            match number {
                // Too many connections, server shutting down, lost connection.
                Some(1040 | 1053 | 1203 | 2006 | 2013) => ConnectError::transient(
                    connection,
                    format!("server busy or restarting: {message}"),
                ),
                Some(1045) if plain => ConnectError::fatal(
                    connection,
                    format!(
                        "access denied ({message}); the account may require TLS, and ssl-mode=disabled sends none"
                    ),
                ),
                Some(1045) => ConnectError::fatal(
                    connection,
                    format!("access denied: wrong user or password ({message})"),
                ),
                Some(1044 | 1142 | 1227) => ConnectError::fatal(
                    connection,
                    format!(
                        "the user lacks a right it needs ({message}); see README \"Database user\""
                    ),
                ),
                Some(1049) => ConnectError::fatal(
                    connection,
                    format!(
                        "the database does not exist ({message}): create it with `admin migrate`"
                    ),
                ),
                _ => ConnectError::fatal(connection, format!("refused by the server: {message}")),
            }
        }
        Error::Tls(e) => ConnectError::fatal(connection, format!("TLS: {e}")),
        Error::Configuration(e) if e.to_string().contains("RSA") => ConnectError::fatal(
            connection,
            "the server wants caching_sha2_password full authentication, which this build only does over TLS: use ssl-mode=required (or preferred) instead of disabled",
        ),
        Error::Configuration(e) => {
            ConnectError::fatal(connection, format!("bad connection settings: {e}"))
        }
        Error::Io(e) => io_failure(connection, e, "the database server"),
        Error::Protocol(e) => ConnectError::fatal(
            connection,
            format!("the server did not speak the MySQL protocol as expected: {e}"),
        ),
        Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed => ConnectError::transient(
            connection,
            format!("no connection could be made in time ({err})"),
        ),
        other => ConnectError::fatal(connection, other.to_string()),
    }
}

/// Sorts a failure to connect to (or set up the topology of) RabbitMQ.
/// `err` is the whole chain; the first `lapin::Error` in it decides.
pub fn broker(connection: &str, err: &anyhow::Error) -> ConnectError {
    use lapin::ErrorKind;
    let Some(lapin) = err.chain().find_map(|e| e.downcast_ref::<lapin::Error>()) else {
        return ConnectError::transient(connection, format!("{err:#}"));
    };
    match lapin.kind() {
        ErrorKind::IOError(io) => io_failure(connection, io, "RabbitMQ"),
        ErrorKind::ProtocolError(amqp) => {
            let message = amqp.get_message().as_str();
            match amqp.kind() {
                AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => ConnectError::fatal(
                    connection,
                    format!("access refused: wrong user or password, or no permission ({message})"),
                ),
                AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => ConnectError::fatal(
                    connection,
                    format!(
                        "not allowed: the vhost is missing or the user has no access to it ({message})"
                    ),
                ),
                AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => ConnectError::fatal(
                    connection,
                    format!("the broker refused our topology: {message}"),
                ),
                AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED) => {
                    ConnectError::transient(connection, format!("closed by the broker: {message}"))
                }
                _ => ConnectError::fatal(connection, format!("refused by the broker: {message}")),
            }
        }
        ErrorKind::ParsingError(_) => ConnectError::fatal(
            connection,
            "the server did not answer in AMQP 0-9-1: if it is a TLS listener, use amqps://",
        ),
        ErrorKind::InvalidProtocolVersion(v) => ConnectError::fatal(
            connection,
            format!("the server speaks another AMQP version ({v:?})"),
        ),
        ErrorKind::AuthProviderError(e) => {
            ConnectError::fatal(connection, format!("authentication failed: {e}"))
        }
        _ => ConnectError::transient(connection, format!("{err:#}")),
    }
}

/// An I/O failure: TLS trouble (rustls reports it as invalid data) is
/// fatal; a refused, reset or timed-out connection is a server not up yet.
fn io_failure(connection: &str, err: &io::Error, server: &str) -> ConnectError {
    let detail = match err.get_ref() {
        Some(inner) => chain(inner),
        None => err.to_string(),
    };
    match err.kind() {
        io::ErrorKind::InvalidData => {
            ConnectError::fatal(connection, format!("TLS handshake failed: {detail}"))
        }
        io::ErrorKind::ConnectionRefused => ConnectError::transient(
            connection,
            format!("{server} refused the connection ({detail})"),
        ),
        _ => ConnectError::transient(connection, format!("{server} unreachable: {detail}")),
    }
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_keeps_everything_but_the_password() {
        assert_eq!(
            redact("mysql://app:s3cret@db:3306/flash?ssl-mode=VERIFY_IDENTITY"),
            "mysql://app@db:3306/flash?ssl-mode=VERIFY_IDENTITY"
        );
        assert_eq!(
            redact("amqps://u:p%40ss@mq:5671/%2f"),
            "amqps://u@mq:5671/%2f"
        );
        assert_eq!(
            redact("mysql://root@127.0.0.1/x"),
            "mysql://root@127.0.0.1/x"
        );
        assert_eq!(redact("amqp://mq"), "amqp://mq");
        assert_eq!(redact("nonsense"), "(not a URL)");
    }

    #[test]
    fn tls_trouble_is_fatal_and_a_refused_connection_is_not() {
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        let e = database("database x", &sqlx::Error::Io(tls));
        assert!(!e.retry);
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        assert!(database("database x", &sqlx::Error::Io(refused)).retry);
        assert!(database("database x", &sqlx::Error::PoolTimedOut).retry);
        assert!(!database("database x", &sqlx::Error::Tls("bad".into())).retry);
    }
}
