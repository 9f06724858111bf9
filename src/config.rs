//! Settings read once from the environment (12-factor, DESIGN.md §6).

use std::{fmt, net::SocketAddr, time::Duration};

use anyhow::{Context, bail};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: String,
    pub amqp_url: String,
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
    /// Mounts `POST /api/v1/baseline/holds`, the per-request locking design
    /// that `loadgen` compares against. Off in production.
    pub enable_baseline: bool,
}

pub const DEFAULT_DATABASE_URL: &str = "mysql://root@127.0.0.1:3306/flash_sale";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can supply their own values.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let parsed = |name: &str, default: u64| -> anyhow::Result<u64> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .with_context(|| format!("{name} must be a whole number, got {v:?}")),
            }
        };

        let api_addr = get("API_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let api_addr = api_addr
            .parse()
            .with_context(|| format!("API_ADDR must be host:port, got {api_addr:?}"))?;

        let hold_ttl_secs = parsed("HOLD_TTL_SECS", 120)?;
        if hold_ttl_secs == 0 {
            bail!("HOLD_TTL_SECS must be at least 1");
        }
        let max_hold_qty = parsed("MAX_HOLD_QTY", 10)?;
        if !(1..=1_000_000).contains(&max_hold_qty) {
            bail!("MAX_HOLD_QTY must be between 1 and 1000000");
        }
        let partitions = parsed("PARTITIONS", 16)?;
        if !(1..=1024).contains(&partitions) {
            bail!("PARTITIONS must be between 1 and 1024");
        }
        let sweep_ms = parsed("SWEEP_INTERVAL_MS", 500)?;
        if sweep_ms < 10 {
            bail!("SWEEP_INTERVAL_MS must be at least 10");
        }
        let log_format = match get("LOG_FORMAT").as_deref().map(str::to_ascii_lowercase) {
            None => LogFormat::Text,
            Some(f) if f == "json" => LogFormat::Json,
            Some(f) if f == "text" || f == "pretty" => LogFormat::Text,
            Some(f) => bail!("LOG_FORMAT must be json or text, got {f:?}"),
        };

        let relay_after_secs = parsed("RELAY_AFTER_SECS", 10)?;
        if relay_after_secs == 0 {
            bail!("RELAY_AFTER_SECS must be at least 1");
        }
        let retention_hours = parsed("RETENTION_HOURS", 7 * 24)?;
        if retention_hours < 24 {
            bail!("RETENTION_HOURS must be at least 24 (idempotency keys live 24 h)");
        }
        let audit_secs = parsed("AUDIT_INTERVAL_SECS", 30)?;
        if audit_secs == 0 {
            bail!("AUDIT_INTERVAL_SECS must be at least 1");
        }
        let metrics_addr = match get("METRICS_ADDR") {
            None => None,
            Some(v) => Some(
                v.parse()
                    .with_context(|| format!("METRICS_ADDR must be host:port, got {v:?}"))?,
            ),
        };
        let enable_baseline = match get("ENABLE_BASELINE")
            .as_deref()
            .map(str::to_ascii_lowercase)
        {
            None => false,
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => true,
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => false,
            Some(v) => bail!("ENABLE_BASELINE must be true or false, got {v:?}"),
        };

        Ok(Self {
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            amqp_url: get("AMQP_URL").unwrap_or_else(|| DEFAULT_AMQP_URL.into()),
            api_addr,
            hold_ttl: Duration::from_secs(hold_ttl_secs),
            max_hold_qty: max_hold_qty as u32,
            partitions: partitions as u16,
            sweep_interval: Duration::from_millis(sweep_ms),
            webhook_secret: get("WEBHOOK_SECRET").map(Secret::new),
            admin_token: get("ADMIN_TOKEN").map(Secret::new),
            log_format,
            relay_after: Duration::from_secs(relay_after_secs),
            retention: Duration::from_secs(retention_hours * 3600),
            audit_interval: Duration::from_secs(audit_secs),
            metrics_addr,
            enable_baseline,
        })
    }

    /// The secrets the api needs; `api` refuses to start without them.
    pub fn require_secrets(&self) -> anyhow::Result<(Secret, Secret)> {
        let admin = self
            .admin_token
            .clone()
            .context("ADMIN_TOKEN must be set for the api")?;
        let webhook = self
            .webhook_secret
            .clone()
            .context("WEBHOOK_SECRET must be set for the api")?;
        Ok((admin, webhook))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_design() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(s.amqp_url, DEFAULT_AMQP_URL);
        assert_eq!(s.api_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.hold_ttl, Duration::from_secs(120));
        assert_eq!(s.max_hold_qty, 10);
        assert_eq!(s.partitions, 16);
        assert_eq!(s.sweep_interval, Duration::from_millis(500));
        assert!(s.admin_token.is_none());
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_name() {
        let err = settings(&[("PARTITIONS", "zero")]).expect_err("not a number");
        assert!(err.to_string().contains("PARTITIONS"));
        assert!(settings(&[("PARTITIONS", "0")]).is_err());
        assert!(settings(&[("HOLD_TTL_SECS", "0")]).is_err());
        assert!(settings(&[("LOG_FORMAT", "xml")]).is_err());
        assert!(settings(&[("RETENTION_HOURS", "23")]).is_err());
        assert!(settings(&[("METRICS_ADDR", "9100")]).is_err());
        assert!(settings(&[("API_ADDR", "nowhere")]).is_err());
    }

    #[test]
    fn secrets_never_print() {
        let s = settings(&[("ADMIN_TOKEN", "hunter2"), ("WEBHOOK_SECRET", "s3")])
            .expect("valid settings");
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"));
        assert!(s.require_secrets().is_ok());
        assert!(settings(&[]).expect("valid").require_secrets().is_err());
    }
}
