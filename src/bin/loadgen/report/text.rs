//! The text report (the default output).

use crate::{
    config::{Args, Flow, INSUFFICIENT_STOCK, Mode},
    measure::{CpuReport, ProcessCpu, counts_text},
    report::document::Report,
    scenarios::records::{BuyersReport, RunReport},
};

/// The whole report: a header line, each run, the ratio, the verdict.
pub(super) fn print_report(report: &Report, args: &Args) {
    let flows: Vec<&str> = report.runs.iter().map(|run| run.flow).collect();
    println!(
        "loadgen {}  clients={} requests={} qty={} mode={} flow={}{}",
        report.url,
        args.clients,
        args.requests,
        args.qty,
        args.mode.as_str(),
        flows.join("+"),
        args.rate
            .map(|rate| format!(" rate={rate}/s (open loop)"))
            .unwrap_or_default()
    );
    for run in &report.runs {
        println!();
        print_run(run);
    }
    if let Some(ratio) = report.pipeline_to_baseline_ratio {
        println!();
        println!("pipeline / baseline (decided holds/s, end to end): {ratio:.2}x");
    }
    println!();
    println!("{}", if report.pass { "PASS" } else { "FAIL" });
}

fn print_run(run: &RunReport) {
    let s = |d: f64| format!("{d:.3} s");
    let full = run.flow == Flow::Full.as_str();
    if full {
        println!("== {}, full flow (product {}) ==", run.mode, run.product_id);
        println!(
            "  buyers               {} purchases by {} concurrent buyers",
            run.requests, run.clients
        );
    } else {
        println!("== {} (product {}) ==", run.mode, run.product_id);
        println!("  requests             {}", run.requests);
    }
    println!(
        "  accept               {} ({:.1} req/s){}",
        s(run.accept_elapsed_s),
        run.accept_requests_per_s,
        if full {
            ", hold POSTs with Prefer: wait=10"
        } else {
            ""
        }
    );
    let source = run
        .end_to_end_source
        .map_or_else(String::new, |src| format!(", end from {src}"));
    println!(
        "  end to end           {} ({:.1} decided/s{source})",
        s(run.end_to_end_elapsed_s),
        run.end_to_end_decided_per_s
    );
    println!("  accept latency ms    {}", run.accept_latency_ms.text());
    if let Some(to_outcome) = &run.time_to_outcome_ms {
        println!("  time to outcome ms   {}", to_outcome.text());
    }
    match (run.rejected_at_once, &run.full) {
        (_, Some(full)) => println!(
            "  granted / rejected   {} / {} ({} learnt by polling after the wait)",
            run.granted, run.rejected, full.holds_polled_after_wait
        ),
        (Some(at_once), None) if run.mode == Mode::Pipeline.as_str() => println!(
            "  granted / rejected   {} / {} ({at_once} of them at once, from the cache)",
            run.granted, run.rejected
        ),
        _ => println!("  granted / rejected   {} / {}", run.granted, run.rejected),
    }
    // Only insufficient_stock is the long-standing "rejected": the line
    // shows only when there is more to say.
    if run.buyers.is_some() || run.refused.keys().any(|code| code != INSUFFICIENT_STOCK) {
        println!("  refused by code      {}", counts_text(&run.refused));
    }
    println!("  errors               {}", counts_text(&run.errors));
    if run.rate_limited > 0 {
        println!(
            "  rate limited (429)   {} answers, each retried after its Retry-After",
            run.rate_limited
        );
    }
    if !run.poll_errors.is_empty() {
        println!("  poll errors (retried) {}", counts_text(&run.poll_errors));
    }
    if run.mode == Mode::Pipeline.as_str() {
        println!("  unfinished jobs      {}", run.unfinished_jobs);
    }
    if let Some(relayed) = run.jobs_relayed {
        println!("  jobs relayed         {relayed}");
    }
    if let Some(cpu) = &run.cpu {
        for line in cpu_lines(cpu) {
            println!("{line}");
        }
    }
    if let Some(full) = &run.full {
        let o = &full.orders;
        println!(
            "  orders               {} created of {} ({:.1} req/s); refused: {}; errors: {}{}",
            o.created,
            o.attempted,
            o.requests_per_s,
            counts_text(&o.refused),
            counts_text(&o.errors),
            if o.unfinished > 0 || o.polled_after_wait > 0 {
                format!(
                    "; {} polled after the wait, {} unfinished",
                    o.polled_after_wait, o.unfinished
                )
            } else {
                String::new()
            }
        );
        println!("  order latency ms     {}", o.latency_ms.text());
        let p = &full.payments;
        println!(
            "  payments             {} webhooks accepted ({:.1} req/s): success {} / failed {} \
             / abandoned {}; errors: {}",
            p.accepted,
            p.requests_per_s,
            p.to_pay_success,
            p.to_pay_failed,
            p.abandoned,
            counts_text(&p.errors)
        );
        println!("  webhook latency ms   {}", p.webhook_latency_ms.text());
        println!(
            "  payment jobs         {} (all final {:.3} s after the buyers); unfinished {}{}",
            counts_text(&p.job_outcomes),
            p.settle_s,
            p.unfinished_jobs,
            if p.poll_errors.is_empty() {
                String::new()
            } else {
                format!("; poll errors (retried) {}", counts_text(&p.poll_errors))
            }
        );
        let st = &full.order_states;
        println!(
            "  order states         {}: {} read: {} (expected {}){}",
            if st.pass { "PASS" } else { "FAIL" },
            st.read,
            counts_text(&st.states),
            counts_text(&st.expected),
            if st.mismatches.is_empty() {
                String::new()
            } else {
                format!("; mismatches: {}", counts_text(&st.mismatches))
            }
        );
        if !full.holds_without_order.is_empty() {
            println!(
                "  holds without order  {}",
                counts_text(&full.holds_without_order)
            );
        }
    }
    if let Some(check) = &run.stock_check {
        let returned = match (check.canceled_units, check.released_hold_units) {
            (Some(canceled), Some(0)) => format!(" + canceled {canceled} units"),
            (Some(canceled), Some(released)) => {
                format!(" + canceled {canceled} units + expired holds {released} units")
            }
            _ => String::new(),
        };
        println!(
            "  stock check          {}: stock {} (expected {} = initial {} - granted {} units{returned})",
            if check.pass { "PASS" } else { "FAIL" },
            check.actual_stock,
            check.expected_stock,
            check.initial_stock,
            check.granted_units
        );
    }
    if let Some(buyers) = &run.buyers {
        print_buyers(buyers);
    }
    if let Some(eta) = &run.queue_eta {
        println!(
            "  queue eta            {} jobs: |actual - eta| ms {}; actual/eta {}",
            eta.jobs,
            eta.abs_error_ms.text(1),
            eta.actual_to_eta.text(2)
        );
    }
    if !run.phases.is_empty() {
        println!("  requests/s by phase");
        for phase in &run.phases {
            println!(
                "    {:<22} {:>7} requests in {:>8.3} s  {:>9.1} req/s",
                phase.name, phase.requests, phase.elapsed_s, phase.requests_per_s
            );
        }
    }
    if let Some(sold_out) = &run.sold_out {
        let verdict = match sold_out.pass {
            Some(true) => "PASS: ",
            Some(false) => "FAIL: ",
            None => "",
        };
        println!(
            "  sold-out             {verdict}{} holds in {} ({:.1} req/s) on stock {}{}",
            sold_out.requests,
            s(sold_out.elapsed_s),
            sold_out.requests_per_s,
            sold_out.stock_before,
            if sold_out.drained_units > 0 {
                format!(
                    " (after draining {} returned units)",
                    sold_out.drained_units
                )
            } else {
                String::new()
            }
        );
        println!(
            "    immediate 409 (no job) {}, queued {}, granted {}; errors: {}",
            sold_out.rejected_at_once,
            sold_out.queued,
            sold_out.granted,
            counts_text(&sold_out.errors)
        );
        println!("    latency ms         {}", sold_out.latency_ms.text());
    }
}

/// A line per process, then the total.
fn cpu_lines(cpu: &CpuReport) -> Vec<String> {
    let mut lines: Vec<String> = cpu.processes.iter().map(process_line).collect();
    let exited = cpu.processes.iter().any(|p| p.exited);
    lines.push(format!(
        "  {:<20} {:.2} s  ({}; over {:.3} s{})",
        "cpu total",
        cpu.total_cpu_s,
        per_decided_text(cpu.total_cpu_us_per_decided),
        cpu.window_s,
        if exited { "; short of what exited" } else { "" }
    ));
    lines
}

fn process_line(p: &ProcessCpu) -> String {
    let label = format!("cpu {}", p.name);
    match (p.cpu_s, p.exited) {
        (Some(s), false) => format!(
            "  {label:<20} {s:.2} s  ({})",
            per_decided_text(p.cpu_us_per_decided)
        ),
        (Some(s), true) => format!(
            "  {label:<20} {s:.2} s  ({}; pid {} exited: up to its last reading)",
            per_decided_text(p.cpu_us_per_decided),
            p.pid
        ),
        (None, _) => format!("  {label:<20} - (pid {} gone before the run)", p.pid),
    }
}

fn per_decided_text(us: Option<f64>) -> String {
    us.map_or_else(
        || "no decided job".to_owned(),
        |us| format!("{us:.1} µs per decided job"),
    )
}

fn print_buyers(buyers: &BuyersReport) {
    println!(
        "  buyers               {} buyers x {} holds = {} hold requests, {}",
        buyers.buyers,
        buyers.holds_per_buyer,
        buyers.hold_requests,
        if buyers.tokens {
            "each with a token of its own"
        } else {
            "anonymous"
        }
    );
    let r = &buyers.refused;
    println!(
        "    granted / refused  {} holds ({} units) / customer_limit_reached {}, \
         insufficient_stock {}, other {}",
        buyers.granted_holds,
        buyers.granted_units,
        r.customer_limit_reached,
        r.insufficient_stock,
        r.other
    );
    if let Some(check) = &buyers.limit_check {
        println!(
            "    limit per buyer    {}: no buyer over max_per_customer {} (most units one buyer \
             got {}; {} buyers granted, {} over the limit, {} holds misattributed)",
            if check.pass { "PASS" } else { "FAIL" },
            check.max_per_customer,
            check.most_units,
            check.buyers_granted,
            check.buyers_over_limit,
            check.misattributed_holds
        );
    }
    if let Some(opening) = &buyers.opening {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
        println!(
            "    sale opening       {}: {} sale_not_started refusals ({} requests) waited for \
             the start; first grant {}, last decision {} after it",
            opening.sale_starts_at,
            opening.refused_not_started,
            opening.requests_refused_not_started,
            ms(opening.first_grant_ms),
            ms(opening.last_decision_ms)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lines_show_each_process_and_the_total() {
        let process = |name: &str, pid, cpu_s, cpu_us_per_decided, exited| ProcessCpu {
            name: name.to_owned(),
            pid,
            cpu_s,
            cpu_us_per_decided,
            exited,
        };
        let cpu = CpuReport {
            window_s: 2.5,
            clock_ticks_per_s: 100,
            decided: 220_000,
            processes: vec![
                process("flash-sale", 10, Some(12.34), Some(56.09), false),
                process("worker", 11, Some(1.5), Some(6.82), true),
                process("rabbitmq", 12, None, None, true),
            ],
            total_cpu_s: 13.84,
            total_cpu_us_per_decided: Some(62.91),
        };
        assert_eq!(
            cpu_lines(&cpu),
            [
                "  cpu flash-sale       12.34 s  (56.1 µs per decided job)",
                "  cpu worker           1.50 s  (6.8 µs per decided job; pid 11 exited: up to \
                 its last reading)",
                "  cpu rabbitmq         - (pid 12 gone before the run)",
                "  cpu total            13.84 s  (62.9 µs per decided job; over 2.500 s; short \
                 of what exited)",
            ]
        );
    }
}
