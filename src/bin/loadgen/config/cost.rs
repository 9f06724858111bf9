//! What the stack spent on a run, and where loadgen reads it: the processes
//! whose CPU time it reads from /proc (`--cpu-pid`) and the `/metrics`
//! endpoints it scrapes for relayed jobs (`--metrics-url`).

use std::{collections::BTreeSet, path::Path, str::FromStr};

use anyhow::{Context, ensure};

use crate::config::url::{BaseUrl, loopback_url};

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CostArgs {
    /// A process whose CPU time (user + system, from /proc/PID/stat) the
    /// pipeline's hold run reports over its end-to-end span, in all and
    /// per decided job, under NAME (say flash-sale=1234, mariadbd=$(pgrep
    /// -xo mariadbd)). Repeatable; the process must be running when
    /// loadgen starts.
    #[arg(long = "cpu-pid", value_name = "NAME=PID")]
    pub(crate) cpu_pids: Vec<CpuPid>,
    /// A Prometheus endpoint (loopback only) scraped before and after the
    /// pipeline's hold run for `flash_jobs_relayed_total`, summed over all
    /// given: the run's relayed jobs. Repeatable, for a scheduler with a
    /// METRICS_ADDR of its own [default: <--url>/metrics].
    #[arg(long = "metrics-url", value_name = "URL")]
    pub(crate) metrics_urls: Vec<String>,
}

/// `--cpu-pid NAME=PID`, well-formed (whether the process runs is checked
/// by [`CostArgs::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CpuPid {
    pub(crate) name: String,
    pub(crate) pid: u32,
}

impl FromStr for CpuPid {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (name, pid) = raw
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=PID, got {raw:?}"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("NAME must not be empty in {raw:?}"));
        }
        let pid = pid
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|pid| *pid > 0)
            .ok_or_else(|| format!("PID must be a positive integer, got {pid:?}"))?;
        Ok(Self {
            name: name.to_owned(),
            pid,
        })
    }
}

impl CostArgs {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let mut names = BTreeSet::new();
        for CpuPid { name, pid } in &self.cpu_pids {
            // The report is keyed by name: two of one name would read as one.
            ensure!(
                names.insert(name.as_str()),
                "--cpu-pid {name} is given twice"
            );
            ensure!(
                Path::new(&format!("/proc/{pid}")).exists(),
                "--cpu-pid {name}={pid}: no such process (/proc/{pid} does not exist)"
            );
        }
        for raw in &self.metrics_urls {
            loopback_url("--metrics-url", raw)?;
        }
        Ok(())
    }

    /// Where to scrape `flash_jobs_relayed_total`: the given URLs, else the
    /// api's own `/metrics` (an all-in-one `flash-sale` serves its
    /// scheduler's counters there).
    pub(crate) fn metrics_urls(&self, api: &BaseUrl) -> anyhow::Result<Vec<BaseUrl>> {
        if self.metrics_urls.is_empty() {
            let default = format!("{}/metrics", api.text);
            return loopback_url("--url", &default)
                .map(|url| vec![url])
                .with_context(|| format!("the default --metrics-url {default}"));
        }
        self.metrics_urls
            .iter()
            .map(|raw| loopback_url("--metrics-url", raw))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::loopback_base_url;

    #[test]
    fn cpu_pids_parse_as_name_equals_pid() {
        assert_eq!(
            "flash-sale=1234".parse(),
            Ok(CpuPid {
                name: "flash-sale".into(),
                pid: 1234
            })
        );
        for bad in [
            "flash-sale",
            "=12",
            "x=",
            "x=0",
            "x=-3",
            "x=12a",
            "x=99999999999",
        ] {
            assert!(bad.parse::<CpuPid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_pids_must_be_running_and_named_once() {
        let me = CpuPid {
            name: "loadgen".into(),
            pid: std::process::id(),
        };
        let args = |cpu_pids: Vec<CpuPid>| CostArgs {
            cpu_pids,
            metrics_urls: Vec::new(),
        };
        assert!(args(vec![me.clone()]).validate().is_ok());
        assert!(args(vec![me.clone(), me.clone()]).validate().is_err());
        // Above the kernel's pid_max (at most 2^22): never a process.
        let gone = CpuPid {
            name: "gone".into(),
            pid: u32::MAX,
        };
        assert!(args(vec![gone]).validate().is_err());
    }

    #[test]
    fn metrics_urls_default_to_the_apis_and_stay_on_loopback() {
        let api = loopback_base_url("http://127.0.0.1:8080/").expect("url");
        let none = CostArgs {
            cpu_pids: Vec::new(),
            metrics_urls: Vec::new(),
        };
        let urls = none.metrics_urls(&api).expect("the default");
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].text, "http://127.0.0.1:8080/metrics");
        assert_eq!(urls[0].prefix, "/metrics");
        let given = CostArgs {
            cpu_pids: Vec::new(),
            metrics_urls: vec![
                "http://127.0.0.1:8080/metrics".into(),
                "http://localhost:9100/metrics".into(),
            ],
        };
        assert!(given.validate().is_ok());
        assert_eq!(
            given.metrics_urls(&api).map(|urls| urls.len()).ok(),
            Some(2)
        );
        let remote = CostArgs {
            cpu_pids: Vec::new(),
            metrics_urls: vec!["http://192.0.2.1:9100/metrics".into()],
        };
        assert!(remote.validate().is_err());
    }
}
