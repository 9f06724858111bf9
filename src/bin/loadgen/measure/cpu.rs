//! CPU time of the stack's processes (`--cpu-pid`), read from
//! /proc/PID/stat every few tens of milliseconds during a run: what each
//! spent over a span of it, in all and per decided job. Reading all along
//! (rather than at the ends only) lets the span be chosen afterwards (the
//! end-to-end span is known only once the jobs are read back, and the
//! polling that reads them is loadgen's cost, not the pipeline's), and
//! keeps what a process spent before it exited.

use std::time::Instant;

use serde::Serialize;

use super::latency::round3;

/// Clock ticks per second of /proc's utime and stime (USER_HZ). libc is no
/// dependency of this crate (and `unsafe` is forbidden), so
/// sysconf(_SC_CLK_TCK) is not asked: this assumes 100, which Linux uses
/// for USER_HZ on x86 and arm whatever the kernel's own HZ.
pub(crate) const CLOCK_TICKS_PER_S: u64 = 100;

/// One reading of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CpuTime {
    /// utime + stime (fields 14 and 15), in clock ticks.
    pub(crate) ticks: u64,
    /// starttime (field 22): tells a reused pid from the process first read.
    pub(crate) started: u64,
}

/// Parses one /proc/PID/stat line. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so the fields
/// are counted from after the last ')'.
pub(crate) fn parse_stat(stat: &str) -> Option<CpuTime> {
    let (_, rest) = stat.rsplit_once(')')?;
    // rest starts at field 3 (state): field N is at index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(CpuTime {
        ticks: field(14)?.checked_add(field(15)?)?,
        started: field(22)?,
    })
}

/// Reads process `pid` now; `Err` says why not (it exited, most likely).
pub(crate) fn read_cpu(pid: u32) -> Result<CpuTime, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_stat(&stat).ok_or_else(|| format!("cannot parse {path}: {stat:?}"))
}

/// A process's CPU over the run.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub(crate) struct ProcessCpu {
    pub(crate) name: String,
    pub(crate) pid: u32,
    /// User + system CPU seconds; for a process that exited, up to its last
    /// reading; `None` when it was gone before the span began.
    pub(crate) cpu_s: Option<f64>,
    pub(crate) cpu_us_per_decided: Option<f64>,
    /// Gone (or its pid taken by another process) before the span ended.
    pub(crate) exited: bool,
}

/// CPU of the given processes over one span of a run.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub(crate) struct CpuReport {
    /// Wall time between the two readings the figures are taken from.
    pub(crate) window_s: f64,
    pub(crate) clock_ticks_per_s: u64,
    /// The jobs the per-decided figures divide by (granted + rejected).
    pub(crate) decided: usize,
    pub(crate) processes: Vec<ProcessCpu>,
    /// Over every process, an exited one up to its last reading.
    pub(crate) total_cpu_s: f64,
    pub(crate) total_cpu_us_per_decided: Option<f64>,
}

/// A process being read.
struct Tracked {
    name: String,
    pid: u32,
    /// The first reading's starttime; `None` once the process is gone.
    started: Option<u64>,
}

/// Readings of every `--cpu-pid` process, taken by [`CpuReadings::read`].
pub(crate) struct CpuReadings {
    processes: Vec<Tracked>,
    /// When, and each process's ticks then (`None`: gone).
    readings: Vec<(Instant, Vec<Option<u64>>)>,
}

impl CpuReadings {
    /// The processes, each read once now.
    pub(crate) fn start(processes: impl IntoIterator<Item = (String, u32)>) -> Self {
        let processes = processes
            .into_iter()
            .map(|(name, pid)| Tracked {
                name,
                pid,
                started: None,
            })
            .collect();
        let mut readings = Self {
            processes,
            readings: Vec::new(),
        };
        // The first reading sets who each pid is.
        let now = Instant::now();
        let first = readings
            .processes
            .iter_mut()
            .map(|p| match read_cpu(p.pid) {
                Ok(time) => {
                    p.started = Some(time.started);
                    Some(time.ticks)
                }
                Err(why) => {
                    warn_gone(p, &why);
                    None
                }
            })
            .collect();
        readings.readings.push((now, first));
        readings
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }

    /// Reads every process still there once more.
    pub(crate) fn read(&mut self) {
        let now = Instant::now();
        let ticks = self
            .processes
            .iter_mut()
            .map(|p| {
                let started = p.started?;
                let read = read_cpu(p.pid).and_then(|time| {
                    (time.started == started)
                        .then_some(time.ticks)
                        .ok_or_else(|| "its pid now belongs to another process".to_owned())
                });
                read.inspect_err(|why| {
                    warn_gone(p, why);
                    p.started = None;
                })
                .ok()
            })
            .collect();
        self.readings.push((now, ticks));
    }

    /// The report over `from..until`, widened to the readings around it
    /// (the last at or before `from`, the first at or after `until`), per
    /// `decided` job too; `None` when no process was given.
    pub(crate) fn report(
        &self,
        from: Instant,
        until: Instant,
        decided: usize,
    ) -> Option<CpuReport> {
        let (first, last) = (self.readings.first()?, self.readings.last()?);
        if self.processes.is_empty() {
            return None;
        }
        let begin = self
            .readings
            .iter()
            .rev()
            .find(|(at, _)| *at <= from)
            .unwrap_or(first);
        let end = self
            .readings
            .iter()
            .find(|(at, _)| *at >= until)
            .unwrap_or(last);
        let per_decided = |s: f64| (decided > 0).then(|| round3(s * 1_000_000.0 / decided as f64));
        let mut total_ticks = 0;
        let processes = self
            .processes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let at_begin = begin.1.get(i).copied().flatten();
                // An exited process: its last reading before the end.
                let at_end = self
                    .readings
                    .iter()
                    .rev()
                    .skip_while(|(at, _)| *at > end.0)
                    .find_map(|(_, ticks)| ticks.get(i).copied().flatten());
                let spent = at_begin.zip(at_end).map(|(b, e)| e.saturating_sub(b));
                total_ticks += spent.unwrap_or(0);
                let cpu_s = spent.map(seconds);
                ProcessCpu {
                    name: p.name.clone(),
                    pid: p.pid,
                    cpu_s,
                    cpu_us_per_decided: cpu_s.and_then(per_decided),
                    exited: end.1.get(i).copied().flatten().is_none(),
                }
            })
            .collect();
        let total_cpu_s = seconds(total_ticks);
        Some(CpuReport {
            window_s: round3(end.0.saturating_duration_since(begin.0).as_secs_f64()),
            clock_ticks_per_s: CLOCK_TICKS_PER_S,
            decided,
            processes,
            total_cpu_s,
            total_cpu_us_per_decided: per_decided(total_cpu_s),
        })
    }
}

fn seconds(ticks: u64) -> f64 {
    round3(ticks as f64 / CLOCK_TICKS_PER_S as f64)
}

fn warn_gone(p: &Tracked, why: &str) {
    eprintln!(
        "warning: --cpu-pid {}={}: {why} (did it exit?); its CPU counts up to its last \
         reading, if any",
        p.name, p.pid
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stat_fields_count_from_after_the_command_name() {
        // comm "(a) b) c" with spaces and parentheses; utime 250, stime 75,
        // starttime 98765.
        let line = "4242 ((a) b) c) S 1 4242 4242 0 -1 4194560 1200 0 3 0 250 75 0 0 20 0 \
                    9 0 98765 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 \
                    0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(line),
            Some(CpuTime {
                ticks: 325,
                started: 98765
            })
        );
        assert_eq!(parse_stat("4242 (no end"), None);
        assert_eq!(parse_stat("4242 (short) S 1 2 3"), None);
        assert_eq!(
            parse_stat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 y 1 0 0 20 0 1 0 5"),
            None
        );
    }

    #[test]
    fn this_process_can_be_read() {
        let first = read_cpu(std::process::id()).expect("our own /proc/PID/stat");
        spin();
        let again = read_cpu(std::process::id()).expect("read again");
        assert_eq!(again.started, first.started);
        assert!(again.ticks >= first.ticks);
        assert!(read_cpu(u32::MAX).is_err());
    }

    /// Some CPU, so a later reading is not below an earlier one.
    fn spin() {
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i * i));
        }
    }

    #[test]
    fn readings_report_each_process_and_the_total() {
        let me = std::process::id();
        let mut readings =
            CpuReadings::start([("me".to_owned(), me), ("gone".to_owned(), u32::MAX)]);
        let from = Instant::now();
        spin();
        readings.read();
        let until = Instant::now();
        readings.read();
        let Some(report) = readings.report(from, until, 1000) else {
            panic!("processes were given");
        };
        assert_eq!(report.decided, 1000);
        assert_eq!(report.clock_ticks_per_s, 100);
        assert!(report.window_s >= 0.0);
        let [mine, gone] = &report.processes[..] else {
            panic!("two processes: {:?}", report.processes);
        };
        assert_eq!(
            (mine.name.as_str(), mine.pid, mine.exited),
            ("me", me, false)
        );
        assert!(mine.cpu_s.is_some_and(|s| s >= 0.0));
        assert!(mine.cpu_us_per_decided.is_some());
        assert_eq!((gone.cpu_s, gone.exited), (None, true));
        assert_eq!(mine.cpu_s, Some(report.total_cpu_s));
        let now = Instant::now();
        assert!(CpuReadings::start([]).report(now, now, 10).is_none());
        let none_decided = CpuReadings::start([("me".to_owned(), me)]).report(now, now, 0);
        assert_eq!(
            none_decided.map(|report| report.total_cpu_us_per_decided),
            Some(None)
        );
    }

    /// The span picks the readings around it; an exited process counts up
    /// to its last reading.
    #[test]
    fn the_span_picks_its_readings() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let tracked = |name: &str, started| Tracked {
            name: name.to_owned(),
            pid: 1,
            started,
        };
        let readings = CpuReadings {
            processes: vec![tracked("api", Some(1)), tracked("worker", None)],
            readings: vec![
                (at(0), vec![Some(100), Some(50)]),
                (at(50), vec![Some(110), Some(60)]),
                (at(100), vec![Some(150), Some(70)]),
                (at(150), vec![Some(200), None]),
                (at(200), vec![Some(260), None]),
                (at(250), vec![Some(300), None]),
            ],
        };
        // From 60 ms (reading at 50) to 160 ms (reading at 200).
        let Some(report) = readings.report(at(60), at(160), 500) else {
            panic!("processes were given");
        };
        assert_eq!(report.window_s, 0.15);
        let [api, worker] = &report.processes[..] else {
            panic!("two processes");
        };
        assert_eq!((api.cpu_s, api.exited), (Some(1.5), false));
        assert_eq!(api.cpu_us_per_decided, Some(3000.0));
        assert_eq!((worker.cpu_s, worker.exited), (Some(0.1), true));
        assert_eq!(report.total_cpu_s, 1.6);
    }
}
