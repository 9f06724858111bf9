//! Tracing setup: human-readable by default, JSON with `LOG_FORMAT=json`.
//! `RUST_LOG` filters (default `info`).
//!
//! Metrics: one Prometheus recorder per process, shared by every role in
//! it. [`FAMILIES`] describes every metric family the code emits, so each
//! renders with a `# HELP` line, and says which role emits it and which
//! of its series [`register_all`] registers at 0 at that role's start, so
//! an idle process already exports them (dashboards read 0, not "no data").

use std::{sync::OnceLock, time::Duration};

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    // try_init: a second call (tests, the all-in-one binary) keeps the first.
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Text => registry.with(fmt::layer()).try_init(),
    };
}

/// How a metric family is emitted (`counter!`, `gauge!` or `histogram!`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family the code emits, and what its `# HELP` line says.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    /// `None` for 0/1 flags, which have no unit.
    pub unit: Option<Unit>,
    pub help: &'static str,
    /// The process role that emits it; [`register_all`] of that role
    /// registers its idle series.
    pub role: Role,
    /// The series registered at 0 at start-up, each a label set as the
    /// code records it. Empty when the labels are known only once a
    /// sample is recorded (per route, per product): those series appear
    /// with their first sample.
    pub idle: &'static [Labels],
}

/// One series' labels, as `(name, value)` pairs.
pub type Labels = &'static [(&'static str, &'static str)];

/// The process roles; the all-in-one `flash-sale` runs all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Api,
    Worker,
    Scheduler,
}

const fn family(
    name: &'static str,
    kind: Kind,
    unit: Option<Unit>,
    help: &'static str,
    role: Role,
    idle: &'static [Labels],
) -> Family {
    Family {
        name,
        kind,
        unit,
        help,
        role,
        idle,
    }
}

use Kind::{Counter, Gauge, Histogram};
use Role::{Api, Scheduler, Worker};
const COUNT: Option<Unit> = Some(Unit::Count);
const SECONDS: Option<Unit> = Some(Unit::Seconds);

/// Idle series: one without labels.
const ONE: &[Labels] = &[&[]];
/// None before the first sample (labels such as route or product id).
const RECORDED: &[Labels] = &[];
/// One per job kind, as `JobKind::as_str` spells it.
const BY_KIND: &[Labels] = &[
    &[("kind", "hold")],
    &[("kind", "order")],
    &[("kind", "payment")],
];
/// One per job kind and outcome, as `Decided::record_metrics` spells them.
const BY_KIND_OUTCOME: &[Labels] = &[
    &[("kind", "hold"), ("outcome", "succeeded")],
    &[("kind", "hold"), ("outcome", "failed")],
    &[("kind", "order"), ("outcome", "succeeded")],
    &[("kind", "order"), ("outcome", "failed")],
    &[("kind", "payment"), ("outcome", "succeeded")],
    &[("kind", "payment"), ("outcome", "failed")],
];
/// One per product-cache reload kind (`ProductCache::run_refresher`).
const BY_RELOAD: &[Labels] = &[&[("kind", "full")], &[("kind", "changed")]];

/// Every metric family the code emits, worded as README's Metrics table.
/// A family missing here renders without `# HELP`, which `promtool check
/// metrics` rejects; the test below fails when `src/` emits one that is not
/// listed.
#[rustfmt::skip]
pub const FAMILIES: &[Family] = &[
    family("flash_http_requests_total", Counter, COUNT,
        "HTTP requests, by method, route template and status.",
        Api, RECORDED),
    family("flash_http_request_duration_seconds", Histogram, SECONDS,
        "HTTP request latency, by method and route template.",
        Api, RECORDED),
    family("flash_jobs_total", Counter, COUNT,
        "Jobs decided, by kind and outcome (succeeded / failed).",
        Worker, BY_KIND_OUTCOME),
    family("flash_job_commit_latency_seconds", Histogram, SECONDS,
        "From enqueue (the job id's time) to the worker's commit, holds and orders.",
        Worker, BY_KIND),
    family("flash_worker_batch_size", Histogram, COUNT,
        "Holds, orders or payments a worker decided in one transaction.",
        Worker, BY_KIND),
    family("flash_worker_batch_seconds", Histogram, SECONDS,
        "Time of one worker transaction deciding holds, orders or payments.",
        Worker, BY_KIND),
    family("flash_worker_partitions", Gauge, COUNT,
        "Partitions this worker consumes (its share).",
        Worker, ONE),
    family("flash_worker_lock_retries_total", Counter, COUNT,
        "Deadlock / lock-wait retries in the worker.",
        Worker, ONE),
    family("flash_worker_dead_lettered_total", Counter, COUNT,
        "Messages rejected to the dead-letter queue.",
        Worker, ONE),
    family("flash_worker_commands_per_message", Histogram, COUNT,
        "Commands in each message a worker took.",
        Worker, ONE),
    family("flash_api_job_insert_batch_size", Histogram, COUNT,
        "Jobs per batched insert in the api.",
        Api, ONE),
    family("flash_api_job_insert_seconds", Histogram, SECONDS,
        "Time of one batched job insert in the api (commit included).",
        Api, ONE),
    family("flash_api_publish_confirm_seconds", Histogram, SECONDS,
        "From sending a message to the broker's confirm (off the request's path).",
        Api, ONE),
    family("flash_api_commands_left_to_relay_total", Counter, COUNT,
        "Commands whose message the broker never confirmed after retries (their jobs wait for the relay).",
        Api, ONE),
    family("flash_api_commands_per_message", Histogram, COUNT,
        "Commands the api packed into one message.",
        Api, ONE),
    family("flash_api_cache_reload_seconds", Histogram, SECONDS,
        "One product-cache reload (full every 500 ms, changed on events), claims check included.",
        Api, BY_RELOAD),
    family("flash_api_holds_unchecked_total", Counter, COUNT,
        "Hold requests queued without the sold-out check, because the product's cache entry was over 1 s old.",
        Api, ONE),
    family("flash_expiry_lag_seconds", Histogram, SECONDS,
        "Release time minus expires_at, per expired hold.",
        Worker, ONE),
    family("flash_holds_expired_total", Counter, COUNT,
        "Holds released by sweeps.",
        Worker, ONE),
    family("flash_product_stock", Gauge, COUNT,
        "Stock as the api's cache last saw it, by product.",
        Api, RECORDED),
    family("flash_audit_stock", Gauge, COUNT,
        "Stock as the scheduler's audit last read it, by product.",
        Scheduler, RECORDED),
    family("flash_audit_mismatch", Gauge, None,
        "1 when the audit found a product's books wrong, else 0.",
        Scheduler, RECORDED),
    family("flash_audit_mismatched_products", Gauge, COUNT,
        "Products failing the last audit.",
        Scheduler, ONE),
    family("flash_audit_seconds", Histogram, SECONDS,
        "How long one audit pass took.",
        Scheduler, ONE),
    family("flash_scheduler_leader", Gauge, None,
        "1 on the leading scheduler, else 0.",
        Scheduler, ONE),
    family("flash_sweeps_published_total", Counter, COUNT,
        "Expiry sweeps the leading scheduler published.",
        Scheduler, ONE),
    family("flash_jobs_relayed_total", Counter, COUNT,
        "Queued jobs the leading scheduler published again (their first publish was lost).",
        Scheduler, ONE),
    family("flash_retention_deleted_total", Counter, COUNT,
        "Finished jobs, idempotency keys and payment events deleted by retention.",
        Scheduler, ONE),
];

/// Gives every family in [`FAMILIES`] its HELP text on the current recorder.
pub fn describe() {
    for f in FAMILIES {
        match (f.kind, f.unit) {
            (Counter, Some(unit)) => metrics::describe_counter!(f.name, unit, f.help),
            (Counter, None) => metrics::describe_counter!(f.name, f.help),
            (Gauge, Some(unit)) => metrics::describe_gauge!(f.name, unit, f.help),
            (Gauge, None) => metrics::describe_gauge!(f.name, f.help),
            (Histogram, Some(unit)) => metrics::describe_histogram!(f.name, unit, f.help),
            (Histogram, None) => metrics::describe_histogram!(f.name, f.help),
        }
    }
}

/// Registers every series `role` emits that [`Family::idle`] lists, at 0,
/// on the process-wide recorder (installed first if need be), so a
/// dashboard finds them before the first sample: counters and gauges read
/// 0, histograms render empty buckets, `_sum` and `_count` 0. A gauge keeps
/// the value it may already have. Call it once per role at its start.
pub fn register_all(role: Role) {
    metrics();
    register(role);
}

/// [`register_all`] on the current recorder.
fn register(role: Role) {
    for f in FAMILIES.iter().filter(|f| f.role == role) {
        for labels in f.idle {
            match f.kind {
                Counter => metrics::counter!(f.name, *labels).increment(0),
                Gauge => metrics::gauge!(f.name, *labels).increment(0.0),
                // Registered, a histogram renders (empty) without a sample.
                Histogram => drop(metrics::histogram!(f.name, *labels)),
            }
        }
    }
}

/// How often the recorder folds recorded histogram samples into its
/// buckets. Without it they pile up until the next scrape, unbounded when
/// nothing scrapes. The crate's own exporter uses 5 s.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Installs the process-wide Prometheus recorder once, with every family
/// described and its upkeep running, and returns its handle (every role in
/// a process shares it).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> PrometheusHandle {
    let seconds = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let sizes = [1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 512.0];
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), &sizes));
    let recorder = match builder {
        Ok(builder) => builder.build_recorder(),
        Err(_) => PrometheusBuilder::new().build_recorder(),
    };
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, describe);
    // Another recorder (a test harness) may be installed already; this
    // handle then renders an empty registry, which is harmless.
    if metrics::set_global_recorder(recorder).is_ok() {
        // A thread, not a task: the first caller's runtime may be a test's,
        // which ends before the process does.
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no metrics upkeep thread; histograms drain on scrape only");
        }
    }
    handle
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, path::Path};

    use super::*;

    /// Every `counter!("…")`, `gauge!("…")` and `histogram!("…")` in the
    /// files under `dir`, with the file and line it is on.
    fn emitted(dir: &Path, found: &mut Vec<(String, Kind, String)>) {
        let entries = std::fs::read_dir(dir).expect("read src");
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                emitted(&path, found);
                continue;
            }
            // This file describes metrics and names the macros in its test;
            // it emits none.
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("src/telemetry.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            for (needle, kind) in [
                ("counter!(", Counter),
                ("gauge!(", Gauge),
                ("histogram!(", Histogram),
            ] {
                for (at, _) in text.match_indices(needle) {
                    let before = text[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue; // describe_counter! and the like
                    }
                    let line = text[..at].matches('\n').count() + 1;
                    let place = format!("{}:{line}", path.display());
                    let name = text[at + needle.len()..]
                        .trim_start()
                        .strip_prefix('"')
                        .and_then(|rest| rest.split_once('"'))
                        .map(|(name, _)| name.to_owned())
                        .unwrap_or_else(|| {
                            panic!("{place}: metric name is not a string literal; this test cannot check it")
                        });
                    found.push((name, kind, place));
                }
            }
        }
    }

    #[test]
    fn every_emitted_metric_is_described_and_every_described_one_emitted() {
        let mut found = Vec::new();
        emitted(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(
            found.len() > 20,
            "the scan found too few metrics: {found:?}"
        );
        for (name, kind, place) in &found {
            let family = FAMILIES.iter().find(|f| f.name == name);
            let family = family.unwrap_or_else(|| {
                panic!("{place}: {name} is emitted but not in telemetry::FAMILIES (no HELP)")
            });
            assert_eq!(
                family.kind, *kind,
                "{place}: {name} is described as another kind"
            );
        }
        for f in FAMILIES {
            assert!(
                found.iter().any(|(name, ..)| name == f.name),
                "{} is described but no longer emitted",
                f.name
            );
        }
    }

    #[test]
    fn families_follow_prometheus_naming() {
        let mut seen = HashSet::new();
        for f in FAMILIES {
            assert!(seen.insert(f.name), "{} is listed twice", f.name);
            assert!(
                !f.help.is_empty() && !f.help.contains(['\n', '\\']),
                "{}",
                f.name
            );
            assert_eq!(
                f.kind == Counter,
                f.name.ends_with("_total"),
                "{}: counters, and only counters, end in _total",
                f.name
            );
            if f.unit == SECONDS {
                assert!(f.name.ends_with("_seconds"), "{}: unit in the name", f.name);
            }
        }
    }

    #[test]
    fn a_described_family_renders_its_help() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            for f in FAMILIES {
                match f.kind {
                    Counter => metrics::counter!(f.name).increment(1),
                    Gauge => metrics::gauge!(f.name).set(1.0),
                    Histogram => metrics::histogram!(f.name).record(1.0),
                }
            }
        });
        let text = handle.render();
        for f in FAMILIES {
            assert!(
                text.contains(&format!("# HELP {} {}\n", f.name, f.help)),
                "{} has no HELP in:\n{text}",
                f.name
            );
        }
    }

    #[test]
    fn register_all_renders_every_idle_series_at_zero() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            for role in [Api, Worker, Scheduler] {
                register(role);
            }
        });
        let text = handle.render();
        for f in FAMILIES {
            let series = match f.kind {
                Histogram => format!("{}_count", f.name),
                Counter | Gauge => f.name.to_owned(),
            };
            for labels in f.idle {
                let found = text.lines().any(|line| {
                    line.strip_prefix(series.as_str())
                        .is_some_and(|rest| rest.starts_with([' ', '{']))
                        && labels
                            .iter()
                            .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
                        && line.ends_with(" 0")
                });
                assert!(found, "{series} {labels:?} is not at 0 in:\n{text}");
            }
        }
    }
}
