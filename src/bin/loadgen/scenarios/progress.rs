//! The once-a-second progress line on stderr.

use std::{
    io::{IsTerminal, Write as _},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::measure::per_second;

/// A once-a-second progress line on stderr while a phase runs:
/// `[pipeline holds] 12000/40000 (30%) 11874 req/s`, rewritten in place
/// (`\r`) on a terminal, one line per second otherwise.
pub(crate) struct Progress {
    done: Arc<AtomicUsize>,
    /// HTTP requests, when the unit is something else (buyers).
    http: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(label: String, total: usize, unit: &'static str, quiet: bool) -> Self {
        let done = Arc::new(AtomicUsize::new(0));
        let http = Arc::new(AtomicUsize::new(0));
        if quiet || total == 0 {
            return Self {
                done,
                http,
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let counter = Arc::clone(&done);
        let requests = Arc::clone(&http);
        let task = tokio::spawn(async move {
            let tty = std::io::stderr().is_terminal();
            let started = Instant::now();
            let mut last = (started, 0usize, 0usize);
            let mut printed = false;
            let period = Duration::from_secs(1);
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {
                        let now = Instant::now();
                        let n = counter.load(Ordering::Relaxed);
                        let sent = requests.load(Ordering::Relaxed);
                        let rate = per_second(n.saturating_sub(last.1), now - last.0);
                        let http_rate = per_second(sent.saturating_sub(last.2), now - last.0);
                        last = (now, n, sent);
                        let http = if sent > 0 {
                            format!(", {http_rate:.0} req/s")
                        } else {
                            String::new()
                        };
                        emit_progress(tty, &format!(
                            "{label} {n}/{total} ({}%) {rate:.0} {unit}{http}",
                            percent(n, total)
                        ));
                        printed = true;
                    }
                }
            }
            if printed {
                let n = counter.load(Ordering::Relaxed);
                let elapsed = started.elapsed();
                emit_progress(
                    tty,
                    &format!(
                        "{label} {n}/{total} ({}%) in {:.1} s, {:.0} {unit} on average",
                        percent(n, total),
                        elapsed.as_secs_f64(),
                        per_second(n, elapsed)
                    ),
                );
                if tty {
                    eprintln!();
                }
            }
        });
        Self {
            done,
            http,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) fn counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.done)
    }

    /// Counts HTTP requests for a second rate on the line.
    pub(crate) fn http_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.http)
    }

    pub(crate) fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Stops the ticker and waits for its last line.
    pub(crate) async fn finish(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn percent(n: usize, total: usize) -> usize {
    (n * 100).checked_div(total).unwrap_or(100)
}

fn emit_progress(tty: bool, line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = if tty {
        write!(err, "\r{line}\x1b[K")
    } else {
        writeln!(err, "{line}")
    };
    let _ = err.flush();
}
