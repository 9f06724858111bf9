//! What the stack spent on the pipeline's hold run: the CPU of the
//! `--cpu-pid` processes over its end-to-end span, and the jobs the
//! scheduler relayed (its `flash_jobs_relayed_total` on the
//! `--metrics-url`s, scraped just before the burst and again once the
//! last outcome is known).
//!
//! The processes are read every CPU_READ_EVERY by a task of their own from
//! the start to the end; the scrapes come before the first reading and
//! after the last, so that loadgen's own requests cost the span nothing.

use std::time::Instant;

use tokio::{sync::oneshot, task::JoinHandle, time::MissedTickBehavior};

use crate::{
    client::{Api, scrape},
    config::{Args, BaseUrl, CPU_READ_EVERY},
    measure::{CpuReadings, CpuReport, family_sum},
};

const RELAYED: &str = "flash_jobs_relayed_total";

/// What was read at the start, and the task reading the processes.
pub(crate) struct CostWatch {
    metrics: Vec<BaseUrl>,
    /// `None`: a scrape failed, so no count can be reported.
    relayed: Option<Relayed>,
    stop: oneshot::Sender<()>,
    reader: JoinHandle<CpuReadings>,
}

/// What the run spent, read at its end.
pub(crate) struct Spent {
    cpu: Option<CpuReadings>,
    pub(crate) jobs_relayed: Option<u64>,
}

impl Spent {
    /// The processes' CPU over `from..until` (the end-to-end span).
    pub(crate) fn cpu(&self, from: Instant, until: Instant, decided: usize) -> Option<CpuReport> {
        self.cpu.as_ref()?.report(from, until, decided)
    }
}

/// The counter's sum over every endpoint.
#[derive(Clone, Copy)]
struct Relayed {
    sum: f64,
    /// Whether any endpoint had the family at all.
    seen: bool,
}

impl CostWatch {
    pub(crate) async fn start(api: &Api, args: &Args) -> anyhow::Result<Self> {
        let metrics = args.cost.metrics_urls(api.base())?;
        let relayed = relayed(&metrics).await;
        let mut readings = CpuReadings::start(
            args.cost
                .cpu_pids
                .iter()
                .map(|process| (process.name.clone(), process.pid)),
        );
        let (stop, mut stopped) = oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            if readings.is_empty() {
                return readings;
            }
            let mut every = tokio::time::interval(CPU_READ_EVERY);
            // A late tick is read late, not twice.
            every.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = every.tick() => readings.read(),
                }
            }
            readings.read();
            readings
        });
        Ok(Self {
            metrics,
            relayed,
            stop,
            reader,
        })
    }

    pub(crate) async fn finish(self) -> Spent {
        // The receiver is gone only if the task ended, which the join says.
        let _ = self.stop.send(());
        let cpu = self
            .reader
            .await
            .inspect_err(|e| eprintln!("warning: the CPU readings were lost: {e}"))
            .ok();
        // A failed first scrape has been warned about; no second one.
        let after = match self.relayed {
            Some(_) => relayed(&self.metrics).await,
            None => None,
        };
        let jobs_relayed = match (self.relayed, after) {
            (Some(before), Some(after)) if after.sum >= before.sum => {
                if !before.seen && !after.seen {
                    eprintln!(
                        "warning: no {RELAYED} at {}; jobs relayed counts 0 (is the scheduler \
                         a process of its own? add its METRICS_ADDR with --metrics-url)",
                        urls_text(&self.metrics)
                    );
                }
                Some((after.sum - before.sum).round() as u64)
            }
            (Some(_), Some(_)) => {
                eprintln!(
                    "warning: {RELAYED} went down during the run (a restart?); jobs relayed \
                     is not reported"
                );
                None
            }
            _ => None,
        };
        Spent { cpu, jobs_relayed }
    }
}

/// Scrapes every endpoint; `None` (with a warning) when one fails.
async fn relayed(metrics: &[BaseUrl]) -> Option<Relayed> {
    let mut total = Relayed {
        sum: 0.0,
        seen: false,
    };
    for url in metrics {
        let read = scrape(url).await.and_then(|text| {
            family_sum(&text, RELAYED).map_err(|why| format!("{}: {why}", url.text))
        });
        match read {
            Ok(sum) => {
                total.sum += sum.unwrap_or(0.0);
                total.seen |= sum.is_some();
            }
            Err(why) => {
                eprintln!("warning: {why}; jobs relayed is not reported");
                return None;
            }
        }
    }
    Some(total)
}

fn urls_text(urls: &[BaseUrl]) -> String {
    urls.iter()
        .map(|url| url.text.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
