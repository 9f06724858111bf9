//! The settings' parsing, defaults and refusals.
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
fn defaults_match_the_contract() {
    let s = settings(&[]).expect("defaults are valid");
    assert_eq!(s.database_url.expose(), DEFAULT_DATABASE_URL);
    assert_eq!(s.amqp.nodes.len(), 1);
    assert_eq!(s.amqp.nodes[0].expose(), DEFAULT_AMQP_URL);
    assert!(s.amqp.ca_pem.is_none());
    assert_eq!(s.migrate, Migrate::Auto);
    assert_eq!(s.api_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(s.hold_ttl, Duration::from_secs(120));
    assert_eq!(s.max_hold_qty, 10);
    assert_eq!(s.partitions, 16);
    assert_eq!(s.sweep_interval, Duration::from_millis(500));
    assert!(s.admin_token.is_none());
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.http_header_timeout, Duration::from_secs(10));
    assert_eq!(s.http_body_timeout, Duration::from_secs(10));
    assert!(s.buyer_jwt.is_none());
    assert!(s.rate_limit.is_none());
    assert!(s.trusted_proxies.is_empty());
}

#[test]
fn buyer_tokens_rate_limits_and_proxies() {
    let s = settings(&[
        ("BUYER_JWT_SECRET", "k"),
        ("BUYER_JWT_AUDIENCE", "shop"),
        ("RATE_LIMIT_PER_SEC", "5"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1"),
    ])
    .expect("valid");
    let jwt = s.buyer_jwt.expect("buyer tokens on");
    assert_eq!(jwt.secret.expose(), "k");
    assert_eq!(jwt.audience.as_deref(), Some("shop"));
    assert_eq!(
        s.rate_limit,
        Some(RateLimit {
            per_sec: 5,
            burst: 10
        })
    );
    let proxies: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
    assert_eq!(proxies, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
    let s = settings(&[("RATE_LIMIT_PER_SEC", "5"), ("RATE_LIMIT_BURST", "7")]).expect("ok");
    assert_eq!(s.rate_limit.map(|r| r.burst), Some(7));
    let s = settings(&[("RATE_LIMIT_PER_SEC", "0"), ("RATE_LIMIT_BURST", "7")]).expect("ok");
    assert!(s.rate_limit.is_none());
    assert!(settings(&[("TRUSTED_PROXIES", "10.0.0.0/33")]).is_err());
    assert!(settings(&[("TRUSTED_PROXIES", "proxy.local")]).is_err());
    assert!(settings(&[("RATE_LIMIT_BURST", "0")]).is_err());
}

#[test]
fn bad_values_are_refused_with_the_variable_name() {
    let err = settings(&[("PARTITIONS", "zero")]).expect_err("not a number");
    assert_eq!(
        err.to_string(),
        "invalid value 'zero' for PARTITIONS: invalid digit found in string"
    );
    let err = settings(&[("MIGRATE", "sometimes")]).expect_err("not a word");
    assert!(err.to_string().contains("MIGRATE"), "{err}");
    assert!(settings(&[("PARTITIONS", "0")]).is_err());
    assert!(settings(&[("HOLD_TTL_SECS", "0")]).is_err());
    assert!(settings(&[("LOG_FORMAT", "xml")]).is_err());
    assert!(settings(&[("RETENTION_HOURS", "23")]).is_err());
    assert!(settings(&[("METRICS_ADDR", "9100")]).is_err());
    assert!(settings(&[("API_ADDR", "nowhere")]).is_err());
    assert!(settings(&[("MIGRATE", "sometimes")]).is_err());
    assert!(settings(&[("HTTP_HEADER_TIMEOUT_SECS", "0")]).is_err());
    assert!(settings(&[("HTTP_BODY_TIMEOUT_SECS", "-1")]).is_err());
    assert!(settings(&[("AMQP_CA_FILE", "/nonexistent/ca.pem")]).is_err());
}

#[test]
fn blank_variables_count_as_unset_and_words_ignore_case() {
    let s = settings(&[
        ("PARTITIONS", " "),
        ("ENABLE_BASELINE", ""),
        ("ADMIN_TOKEN", "  "),
        ("LOG_FORMAT", "JSON"),
        ("MIGRATE", "Off"),
        ("HOLD_TTL_SECS", " 30 "),
    ])
    .expect("valid settings");
    assert_eq!(s.partitions, 16);
    assert!(!s.enable_baseline);
    assert!(s.admin_token.is_none());
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.migrate, Migrate::Off);
    assert_eq!(s.hold_ttl, Duration::from_secs(30));
    let s = settings(&[("LOG_FORMAT", "pretty"), ("ENABLE_BASELINE", "yes")]).expect("valid");
    assert_eq!(s.log_format, LogFormat::Text);
    assert!(s.enable_baseline);
    assert!(settings(&[("ENABLE_BASELINE", "maybe")]).is_err());
}

#[test]
fn every_variable_is_in_the_readme() {
    let readme = include_str!("../../README.md");
    let names = Settings::variable_names();
    assert_eq!(names.len(), 32, "{names:?}");
    for name in names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md lacks `{name}`"
        );
    }
}

#[test]
fn secrets_never_print() {
    let s = settings(&[
        ("ADMIN_TOKEN", "hunter2"),
        ("WEBHOOK_SECRET", "s3"),
        ("DATABASE_URL", "mysql://app:pw-db-42@db/flash_sale"),
        ("AMQP_URL", "amqps://app:pw-mq-42@mq/%2f"),
    ])
    .expect("valid settings");
    let printed = format!("{s:?}");
    for secret in ["hunter2", "pw-db-42", "pw-mq-42"] {
        assert!(!printed.contains(secret), "{secret} printed");
    }
    assert!(s.require_secrets().is_ok());
    assert!(settings(&[]).expect("valid").require_secrets().is_err());
    let err = settings(&[("AMQP_URL", "http://u:pw-mq-42@mq")]).expect_err("scheme");
    assert!(!format!("{err:#}").contains("pw-mq-42"));
}

#[test]
fn secrets_come_from_files_without_their_line_break() {
    let dir = std::env::temp_dir().join(format!("fs-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("admin");
    std::fs::write(&token, "from-a-file\n").expect("write");
    let path = token.to_string_lossy().into_owned();
    let s = settings(&[("ADMIN_TOKEN_FILE", &path)]).expect("valid");
    assert_eq!(
        s.admin_token.as_ref().map(Secret::expose),
        Some("from-a-file")
    );

    let both = settings(&[("ADMIN_TOKEN_FILE", &path), ("ADMIN_TOKEN", "x")]);
    assert!(format!("{:#}", both.expect_err("both")).contains("not both"));
    let missing = settings(&[("DATABASE_URL_FILE", "/nonexistent/db-url")]);
    assert!(format!("{:#}", missing.expect_err("missing")).contains("DATABASE_URL_FILE"));
    std::fs::write(&token, "\n").expect("write");
    assert!(settings(&[("ADMIN_TOKEN_FILE", &path)]).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn amqp_url_lists_cluster_nodes_in_order() {
    let s = settings(&[(
        "AMQP_URL",
        "amqps://u:p@mq-1:5671/%2f, amqps://u:p@mq-2:5671/%2f,amqp://u:p@mq-3/%2f",
    )])
    .expect("valid");
    let nodes: Vec<&str> = s.amqp.nodes.iter().map(Secret::expose).collect();
    assert_eq!(
        nodes,
        [
            "amqps://u:p@mq-1:5671/%2f",
            "amqps://u:p@mq-2:5671/%2f",
            "amqp://u:p@mq-3/%2f"
        ]
    );
    assert!(settings(&[("AMQP_URL", " , ")]).is_err());
    assert!(settings(&[("AMQP_URL", "amqp://a,mq-2")]).is_err());
}
