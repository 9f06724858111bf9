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
    render_svg(&title, &subtitle, &series)
}
