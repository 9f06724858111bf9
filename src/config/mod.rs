//! Settings read once from the environment (12-factor; every variable is
//! listed in README.md). A secret may come from a file instead: `NAME_FILE`
//! holds its path (container and orchestrator secrets).
//!
//! `vars` declares each variable for clap (name, default, range, words).

mod vars;

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use vars::Vars;
pub use vars::{LogFormat, Migrate};

/// A value that must never reach a log line or a `Debug` print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where RabbitMQ is: the nodes of one cluster, tried in order, and an
/// extra CA to trust for `amqps://`.
#[derive(Clone, Debug)]
pub struct AmqpSettings {
    /// One URL per node (`AMQP_URL` split at commas); never empty.
    pub nodes: Vec<Secret>,
    /// PEM text of `AMQP_CA_FILE`, read at start.
    pub ca_pem: Option<String>,
    /// Replicas of each quorum queue at its declaration
    /// (`QUORUM_GROUP_SIZE`); RabbitMQ caps it at the cluster's size.
    pub quorum_group_size: u16,
}

/// How buyer tokens are checked (`BUYER_JWT_SECRET`, `BUYER_JWT_AUDIENCE`).
#[derive(Clone, Debug)]
pub struct BuyerJwt {
    /// The HS256 key.
    pub secret: Secret,
    /// When set, a token's `aud` must name it.
    pub audience: Option<String>,
}

/// A token bucket per buyer or client address (`RATE_LIMIT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second (≥ 1).
    pub per_sec: u32,
    /// The bucket's size (≥ 1).
    pub burst: u32,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: Secret,
    pub amqp: AmqpSettings,
    pub migrate: Migrate,
    pub api_addr: SocketAddr,
    pub hold_ttl: Duration,
    pub max_hold_qty: u32,
    pub partitions: u16,
    pub sweep_interval: Duration,
    /// `None` only where the caller supplies a dev default (the quick start).
    pub webhook_secret: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub log_format: LogFormat,
    /// A job still queued this long after it was recorded (or last relayed)
    /// is published again by the scheduler.
    pub relay_after: Duration,
    /// Finished jobs, idempotency keys and payment events older than this
    /// are deleted (never under 24 h: keys must live at least that long).
    pub retention: Duration,
    /// How often the scheduler audits the stock books.
    pub audit_interval: Duration,
    /// Where the worker and scheduler serve `/metrics` (the api serves it on
    /// its own port); `None` serves nothing.
    pub metrics_addr: Option<SocketAddr>,
    /// The worker's name in its heartbeat (the admin overview); `None`:
    /// `<hostname>-<pid>`.
    pub worker_name: Option<String>,
    /// Mounts `POST /api/v1/baseline/holds`, the per-request locking design
    /// that `loadgen` compares against. Off in production.
    pub enable_baseline: bool,
    /// A connection that has not sent a whole request head this long after
    /// it opened, or after its previous answer, is closed.
    pub http_header_timeout: Duration,
    /// A request body not received this long after its head is 408.
    pub http_body_timeout: Duration,
    /// `None`: every buyer is anonymous, and a buyer token is refused.
    pub buyer_jwt: Option<BuyerJwt>,
    /// `None`: no rate limit (`RATE_LIMIT_PER_SEC=0`).
    pub rate_limit: Option<RateLimit>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long an operator console login lasts.
    pub console_session: Duration,
}

pub const DEFAULT_DATABASE_URL: &str = "mysql://root@127.0.0.1:3306/flash_sale";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl Settings {
    /// Reads the process environment (and the files `*_FILE` names).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let vars = Vars::parse(lookup)?;
        let database_url = secret("DATABASE_URL", vars.database_url, vars.database_url_file)?
            .unwrap_or_else(|| Secret::new(DEFAULT_DATABASE_URL));
        let amqp_url = secret("AMQP_URL", vars.amqp_url, vars.amqp_url_file)?
            .unwrap_or_else(|| Secret::new(DEFAULT_AMQP_URL));
        let ca_pem = match vars.amqp_ca_file {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("AMQP_CA_FILE: cannot read {path:?}"))?,
            ),
        };
        Ok(Self {
            database_url,
            amqp: AmqpSettings {
                nodes: split_nodes(&amqp_url)?,
                ca_pem,
                quorum_group_size: vars.quorum_group_size,
            },
            migrate: vars.migrate,
            api_addr: vars.api_addr,
            hold_ttl: Duration::from_secs(vars.hold_ttl_secs),
            max_hold_qty: vars.max_hold_qty,
            partitions: vars.partitions,
            sweep_interval: Duration::from_millis(vars.sweep_interval_ms),
            webhook_secret: secret(
                "WEBHOOK_SECRET",
                vars.webhook_secret,
                vars.webhook_secret_file,
            )?,
            admin_token: secret("ADMIN_TOKEN", vars.admin_token, vars.admin_token_file)?,
            log_format: vars.log_format,
            relay_after: Duration::from_secs(vars.relay_after_secs),
            retention: Duration::from_secs(vars.retention_hours * 3600),
            audit_interval: Duration::from_secs(vars.audit_interval_secs),
            metrics_addr: vars.metrics_addr,
            worker_name: match vars.worker_name {
                Some(name) if name.chars().count() > 255 => {
                    anyhow::bail!("WORKER_NAME: at most 255 characters")
                }
                name => name,
            },
            enable_baseline: vars.enable_baseline,
            http_header_timeout: Duration::from_secs(vars.http_header_timeout_secs),
            http_body_timeout: Duration::from_secs(vars.http_body_timeout_secs),
            buyer_jwt: secret(
                "BUYER_JWT_SECRET",
                vars.buyer_jwt_secret,
                vars.buyer_jwt_secret_file,
            )?
            .map(|secret| BuyerJwt {
                secret,
                audience: vars.buyer_jwt_audience,
            }),
            rate_limit: (vars.rate_limit_per_sec > 0).then(|| RateLimit {
                per_sec: vars.rate_limit_per_sec,
                burst: vars
                    .rate_limit_burst
                    .unwrap_or(vars.rate_limit_per_sec.saturating_mul(2)),
            }),
            trusted_proxies: trusted_proxies(&vars.trusted_proxies)?,
            console_session: Duration::from_secs(vars.console_session_secs),
        })
    }

    /// The name of every variable the settings read, `_FILE` forms included
    /// (for checks that a deployment names only real ones).
    pub fn variable_names() -> Vec<String> {
        Vars::names()
    }

    /// The secrets the api needs; `api` refuses to start without them.
    pub fn require_secrets(&self) -> anyhow::Result<(Secret, Secret)> {
        let admin = self
            .admin_token
            .clone()
            .context("ADMIN_TOKEN (or ADMIN_TOKEN_FILE) must be set for the api")?;
        let webhook = self
            .webhook_secret
            .clone()
            .context("WEBHOOK_SECRET (or WEBHOOK_SECRET_FILE) must be set for the api")?;
        Ok((admin, webhook))
    }
}

/// `NAME`, or the contents of the file `NAME_FILE` names (one trailing line
/// break dropped, as `echo` and most secret stores leave one). Both set is
/// a mistake worth stopping for: which one wins would be a guess.
fn secret(
    name: &str,
    direct: Option<String>,
    file: Option<PathBuf>,
) -> anyhow::Result<Option<Secret>> {
    match (direct, file) {
        (Some(_), Some(_)) => bail!("set {name} or {name}_FILE, not both"),
        (Some(value), None) => Ok(Some(Secret::new(value))),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("{name}_FILE: cannot read {path:?}"))?;
            let value = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            if value.trim().is_empty() {
                bail!("{name}_FILE: {path:?} is empty");
            }
            Ok(Some(Secret::new(value)))
        }
    }
}

/// `TRUSTED_PROXIES`: addresses (one host) or networks in CIDR form.
fn trusted_proxies(items: &[String]) -> anyhow::Result<Vec<ipnet::IpNet>> {
    items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!("TRUSTED_PROXIES: {item:?} is not an address or a CIDR network")
                })
        })
        .collect()
}

/// `AMQP_URL` may list the nodes of a cluster, separated by commas (a comma
/// inside a password is written `%2C`).
fn split_nodes(urls: &Secret) -> anyhow::Result<Vec<Secret>> {
    let nodes: Vec<Secret> = urls
        .expose()
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(Secret::new)
        .collect();
    if nodes.is_empty() {
        bail!("AMQP_URL lists no node");
    }
    for (i, node) in nodes.iter().enumerate() {
        let scheme = node.expose().split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("amqp" | "amqps")) {
            // The URL itself may hold a password: name its place, not its text.
            bail!(
                "AMQP_URL node {} must start with amqp:// or amqps://",
                i + 1
            );
        }
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests;
