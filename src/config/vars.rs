//! The environment variables as clap declares them: each field is one
//! variable (`env`), with its default, range and accepted words, and clap
//! parses and refuses. Clap is handed the values as arguments rather than
//! reading the process environment itself, for two reasons: a blank
//! variable counts as unset (compose files write `NAME: ${NAME:-}`), which
//! clap's own `env` reading does not do, and tests supply their variables
//! without touching the process-global environment.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum, builder::BoolishValueParser};

/// `LOG_FORMAT`: human-readable lines, or one JSON object per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[value(alias = "pretty")]
    Text,
    Json,
}

/// Whether a process creates and migrates the database at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Migrate {
    /// Create the database when missing and apply pending migrations.
    Auto,
    /// Only check that the schema is current: `admin migrate` applies it, so
    /// the run-time user needs no DDL rights.
    Off,
}

/// The environment variables, one field each. Secrets are plain strings
/// here (`hide_env_values`); `super::secret` picks the value or its `_FILE`.
#[derive(Parser, Debug)]
#[command(
    name = "flash-sale",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub(super) struct Vars {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: Option<String>,
    #[arg(long, env = "DATABASE_URL_FILE")]
    pub(super) database_url_file: Option<PathBuf>,
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub(super) amqp_url: Option<String>,
    #[arg(long, env = "AMQP_URL_FILE")]
    pub(super) amqp_url_file: Option<PathBuf>,
    #[arg(long, env = "AMQP_CA_FILE")]
    pub(super) amqp_ca_file: Option<PathBuf>,
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub(super) admin_token: Option<String>,
    #[arg(long, env = "ADMIN_TOKEN_FILE")]
    pub(super) admin_token_file: Option<PathBuf>,
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub(super) webhook_secret: Option<String>,
    #[arg(long, env = "WEBHOOK_SECRET_FILE")]
    pub(super) webhook_secret_file: Option<PathBuf>,
    #[arg(long, env = "BUYER_JWT_SECRET", hide_env_values = true)]
    pub(super) buyer_jwt_secret: Option<String>,
    #[arg(long, env = "BUYER_JWT_SECRET_FILE")]
    pub(super) buyer_jwt_secret_file: Option<PathBuf>,
    #[arg(long, env = "BUYER_JWT_AUDIENCE")]
    pub(super) buyer_jwt_audience: Option<String>,
    /// Commands per second per buyer or address; 0 is off.
    #[arg(long, env = "RATE_LIMIT_PER_SEC", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub(super) rate_limit_per_sec: u32,
    /// Defaults to twice the rate.
    #[arg(long, env = "RATE_LIMIT_BURST",
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub(super) rate_limit_burst: Option<u32>,
    /// Addresses or networks (CIDR), separated by commas, whose
    /// `X-Forwarded-For` is believed.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub(super) trusted_proxies: Vec<String>,
    #[arg(
        long,
        env = "MIGRATE",
        value_enum,
        ignore_case = true,
        default_value = "auto"
    )]
    pub(super) migrate: Migrate,
    #[arg(long, env = "API_ADDR", default_value = "127.0.0.1:8080")]
    pub(super) api_addr: SocketAddr,
    #[arg(long, env = "HOLD_TTL_SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) hold_ttl_secs: u64,
    #[arg(long, env = "MAX_HOLD_QTY", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(super) max_hold_qty: u32,
    /// Replicas of each quorum queue when it is first declared.
    #[arg(long, env = "QUORUM_GROUP_SIZE", default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..=15))]
    pub(super) quorum_group_size: u16,
    /// Every process of a stack must agree.
    #[arg(long, env = "PARTITIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(super) partitions: u16,
    #[arg(long, env = "SWEEP_INTERVAL_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub(super) sweep_interval_ms: u64,
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        ignore_case = true,
        default_value = "text"
    )]
    pub(super) log_format: LogFormat,
    #[arg(long, env = "RELAY_AFTER_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) relay_after_secs: u64,
    /// Idempotency keys live at least 24 h.
    #[arg(long, env = "RETENTION_HOURS", default_value_t = 7 * 24,
          value_parser = clap::value_parser!(u64).range(24..))]
    pub(super) retention_hours: u64,
    #[arg(long, env = "AUDIT_INTERVAL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) audit_interval_secs: u64,
    /// How a worker names itself in the admin overview.
    #[arg(long, env = "WORKER_NAME")]
    pub(super) worker_name: Option<String>,
    #[arg(long, env = "METRICS_ADDR")]
    pub(super) metrics_addr: Option<SocketAddr>,
    #[arg(long, env = "ENABLE_BASELINE", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub(super) enable_baseline: bool,
    #[arg(long, env = "HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) http_header_timeout_secs: u64,
    #[arg(long, env = "HTTP_BODY_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) http_body_timeout_secs: u64,
    #[arg(long, env = "CONSOLE_SESSION_SECS", default_value_t = 28_800,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub(super) console_session_secs: u64,
}

impl Vars {
    /// Parses the variables `lookup` finds (blank ones count as unset).
    pub(super) fn parse(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        // Clap must not read the process environment behind `lookup`'s back.
        let command = Self::command().mut_args(|arg| arg.env(None));
        let mut argv: Vec<OsString> = Vec::new();
        for arg in Self::command().get_arguments() {
            let (Some(name), Some(long)) = (arg.get_env().and_then(|n| n.to_str()), arg.get_long())
            else {
                continue;
            };
            let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            // Secrets are taken byte for byte; numbers and words may carry
            // stray spaces.
            let value = if arg.is_hide_env_values_set() {
                value.as_str()
            } else {
                value.trim()
            };
            argv.push(format!("--{long}={value}").into());
        }
        let mut matches = command
            .try_get_matches_from(argv)
            .map_err(|e| anyhow::anyhow!(readable(&e)))?;
        Self::from_arg_matches_mut(&mut matches).map_err(|e| anyhow::anyhow!(readable(&e)))
    }

    /// The name of every variable, `_FILE` forms included.
    pub(super) fn names() -> Vec<String> {
        Self::command()
            .get_arguments()
            .filter_map(|arg| Some(arg.get_env()?.to_str()?.to_owned()))
            .collect()
    }
}

/// Clap's message with the variable's name where it says `'--flag <NAME>'`
/// (every value name here is the variable's name), on one line.
fn readable(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let line = rendered.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match (line.find("'--"), line.find(">'")) {
        (Some(start), Some(end)) if start < end => {
            let flag = &line[start..end + 2];
            let name = flag
                .split_once('<')
                .map_or(flag, |(_, n)| n.trim_end_matches(">'"));
            line.replacen(flag, name, 1)
        }
        _ => line.to_owned(),
    }
}
