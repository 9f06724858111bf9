//! The SVG chart of accept latency over time: p50 and p99 per run.

mod render;

use chrono::Utc;

use crate::{
    config::{Args, Flow},
    measure::TimelinePoint,
    report::{
        document::Report,
        svg::render::{Series, render_svg},
    },
    scenarios::records::RunReport,
};

/// p50 and p99 series of each run's timeline, one colour per series.
fn chart_series(runs: &[RunReport]) -> Vec<Series> {
    const PALETTE: [(&str, &str); 3] = [
        ("#1f77b4", "#17becf"),
        ("#d62728", "#ff7f0e"),
        ("#2ca02c", "#9467bd"),
    ];
    let mut series = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let Some(timeline) = &run.accept_latency_timeline else {
            continue;
        };
        let (c50, c99) = PALETTE[i % PALETTE.len()];
        let width = timeline.bucket_ms as f64 / 1000.0;
        let name = if run.flow == Flow::Full.as_str() {
            format!("{} (full)", run.mode)
        } else {
            run.mode.to_owned()
        };
        for (label, colour, dashed, pick) in [
            (
                "p50",
                c50,
                false,
                (|p: &TimelinePoint| p.p50) as fn(&TimelinePoint) -> f64,
            ),
            ("p99", c99, true, |p: &TimelinePoint| p.p99),
        ] {
            let mut segments: Vec<Vec<(f64, f64)>> = Vec::new();
            let mut previous: Option<f64> = None;
            for point in &timeline.points {
                let contiguous =
                    previous.is_some_and(|t| (point.t_s - t - width).abs() < width / 2.0);
                if !contiguous {
                    segments.push(Vec::new());
                }
                if let Some(segment) = segments.last_mut() {
                    segment.push((point.t_s + width / 2.0, pick(point)));
                }
                previous = Some(point.t_s);
            }
            series.push(Series {
                label: format!("{name} {label}"),
                colour,
                dashed,
                segments,
            });
        }
    }
    series
}

pub(in crate::report) fn chart(report: &Report, args: &Args) -> Result<String, std::fmt::Error> {
    let series = chart_series(&report.runs);
    let bucket = report
        .runs
        .iter()
        .find_map(|run| run.accept_latency_timeline.as_ref())
        .map_or(100, |t| t.bucket_ms);
    let title = format!("loadgen: accept latency per {bucket} ms, p50 and p99");
    let mut subtitle = vec![format!(
        "{}  clients={} requests={} qty={} mode={}  {}",
        report.url,
        args.clients,
        args.requests,
        args.qty,
        args.mode.as_str(),
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    )];
    if report
        .runs
        .iter()
        .any(|run| run.flow == Flow::Full.as_str())
    {
        subtitle.push(
            "full flow: the hold POST carries Prefer: wait=10, so its latency runs to the outcome"
                .to_owned(),
        );
    }
    // The chart has room for one more line: the buyers of the first run
    // that has them.
    subtitle.extend(report.runs.iter().find_map(buyers_line));
    render_svg(&title, &subtitle, &series)
}

/// The buyers' numbers in a line: the limit's verdict, the refusals, the
/// opening.
fn buyers_line(run: &RunReport) -> Option<String> {
    let buyers = run.buyers.as_ref()?;
    let r = &buyers.refused;
    let mut line = format!(
        "{}: {} buyers x {} holds; granted {}; refused: limit {}, stock {}, other {}",
        run.mode,
        buyers.buyers,
        buyers.holds_per_buyer,
        buyers.granted_holds,
        r.customer_limit_reached,
        r.insufficient_stock,
        r.other
    );
    if let Some(check) = &buyers.limit_check {
        let verdict = if check.pass { "PASS" } else { "FAIL" };
        line += &format!(
            "; max {} per buyer {verdict} (most {})",
            check.max_per_customer, check.most_units
        );
    }
    if let Some(opening) = &buyers.opening
        && let (Some(first), Some(last)) = (opening.first_grant_ms, opening.last_decision_ms)
    {
        line += &format!("; opening: first grant +{first:.0} ms, last +{last:.0} ms");
    }
    Some(line)
}
