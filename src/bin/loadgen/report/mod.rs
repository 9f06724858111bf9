//! Layer 3: the report of all runs, as text, JSON (`--json`) and an SVG
//! chart (`--svg`). Reads the scenarios' records; nothing below imports it.

mod document;
mod svg;
mod text;

use anyhow::Context;

pub(crate) use document::Report;

use crate::config::Args;

/// Writes the chart if asked, then prints the report on stdout.
pub(crate) fn output(report: &Report, args: &Args) -> anyhow::Result<()> {
    if let Some(path) = &args.svg {
        let svg = svg::chart(report, args).context("cannot draw the chart")?;
        std::fs::write(path, svg)
            .with_context(|| format!("cannot write the chart to {}", path.display()))?;
        eprintln!("wrote the latency chart to {}", path.display());
    }
    if args.json {
        let text = serde_json::to_string_pretty(report).context("cannot encode the report")?;
        println!("{text}");
    } else {
        text::print_report(report, args);
    }
    Ok(())
}
