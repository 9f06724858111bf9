//! A self-contained SVG line chart, knowing nothing of loadgen's runs.

use std::fmt::Write as _;

/// One line of the chart.
pub(super) struct Series {
    pub(super) label: String,
    pub(super) colour: &'static str,
    pub(super) dashed: bool,
    /// Runs of consecutive buckets: (x s, y ms).
    pub(super) segments: Vec<Vec<(f64, f64)>>,
}

/// A "nice" tick step (1, 2 or 5 × 10^k) giving about `target` ticks.
fn nice_step(range: f64, target: f64) -> f64 {
    if !(range.is_finite() && range > 0.0) {
        return 1.0;
    }
    let raw = range / target.max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A tick label: at most 3 decimals, no trailing zeros.
fn tick_label(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A self-contained SVG line chart: x = seconds, y = ms (log scale when the
/// values span more than 50×).
pub(super) fn render_svg(
    title: &str,
    subtitle: &[String],
    series: &[Series],
) -> Result<String, std::fmt::Error> {
    const W: f64 = 1000.0;
    const H: f64 = 560.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 230.0;
    const TOP: f64 = 92.0;
    const BOTTOM: f64 = 62.0;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);

    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.segments.iter().flatten().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let x_max = points.iter().map(|p| p.0).fold(0.0, f64::max).max(0.1);
    let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let y_min = points
        .iter()
        .map(|p| p.1)
        .filter(|y| *y > 0.0)
        .fold(f64::INFINITY, f64::min);
    let log = y_min.is_finite() && y_max / y_min > 50.0;

    let x_step = nice_step(x_max, 10.0);
    let x_ticks = (x_max / x_step).ceil().max(1.0) as usize;
    let x_hi = x_ticks as f64 * x_step;
    let map_x = |x: f64| LEFT + x / x_hi * pw;

    // (value, label?) ticks and the y mapping.
    let mut y_ticks: Vec<(f64, bool)> = Vec::new();
    let (y_lo, y_hi);
    if log {
        let lo = y_min.log10().floor() as i32;
        let mut hi = y_max.log10().ceil() as i32;
        if hi <= lo {
            hi = lo + 1;
        }
        let minor_labels = hi - lo <= 3;
        for e in lo..=hi {
            let decade = 10f64.powi(e);
            y_ticks.push((decade, true));
            if e < hi {
                y_ticks.push((2.0 * decade, minor_labels));
                y_ticks.push((5.0 * decade, minor_labels));
            }
        }
        (y_lo, y_hi) = (f64::from(lo), f64::from(hi));
    } else {
        let step = nice_step(y_max.max(0.001), 6.0);
        let n = (y_max / step).ceil().max(1.0) as usize;
        for i in 0..=n {
            y_ticks.push((i as f64 * step, true));
        }
        (y_lo, y_hi) = (0.0, n as f64 * step);
    }
    let map_y = |y: f64| {
        let fraction = if log {
            (y.max(10f64.powf(y_lo)).log10() - y_lo) / (y_hi - y_lo)
        } else {
            (y - y_lo) / (y_hi - y_lo)
        };
        TOP + ph - fraction * ph
    };

    let mut svg = String::new();
    writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    )?;
    writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#)?;
    writeln!(
        svg,
        r##"<text x="{LEFT}" y="30" font-size="18" font-weight="bold" fill="#222">{}</text>"##,
        xml_escape(title)
    )?;
    for (i, line) in subtitle.iter().enumerate() {
        writeln!(
            svg,
            r##"<text x="{LEFT}" y="{}" font-size="12" fill="#555">{}</text>"##,
            52 + 16 * i,
            xml_escape(line)
        )?;
    }

    // Grid and tick labels.
    writeln!(svg, r##"<g stroke="#e3e3e3" stroke-width="1">"##)?;
    for i in 0..=x_ticks {
        let x = map_x(i as f64 * x_step);
        writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/>"#,
            TOP + ph
        )?;
    }
    for &(v, _) in &y_ticks {
        let y = map_y(v);
        writeln!(
            svg,
            r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
            LEFT + pw
        )?;
    }
    writeln!(svg, "</g>")?;
    writeln!(
        svg,
        r##"<g fill="#333" font-size="11"><g text-anchor="middle">"##
    )?;
    for i in 0..=x_ticks {
        let v = i as f64 * x_step;
        writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            map_x(v),
            TOP + ph + 16.0,
            tick_label(v)
        )?;
    }
    writeln!(svg, r#"</g><g text-anchor="end">"#)?;
    for &(v, labelled) in &y_ticks {
        if labelled {
            writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT - 6.0,
                map_y(v) + 4.0,
                tick_label(v)
            )?;
        }
    }
    writeln!(svg, "</g></g>")?;
    // Axes and their titles.
    writeln!(
        svg,
        r##"<g stroke="#333" stroke-width="1.2"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b:.1}"/><line x1="{LEFT}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}"/></g>"##,
        b = TOP + ph,
        r = LEFT + pw
    )?;
    writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13" fill="#222">seconds since the phase start</text>"##,
        LEFT + pw / 2.0,
        H - 18.0
    )?;
    writeln!(
        svg,
        r##"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle" font-size="13" fill="#222">latency (ms){}</text>"##,
        TOP + ph / 2.0,
        if log { ", log scale" } else { "" }
    )?;

    // The series.
    if points.is_empty() {
        writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="16" fill="#999">no data</text>"##,
            LEFT + pw / 2.0,
            TOP + ph / 2.0
        )?;
    }
    for s in series {
        let dash = if s.dashed {
            r#" stroke-dasharray="7 4""#
        } else {
            ""
        };
        writeln!(svg, r#"<g stroke="{}" fill="{}">"#, s.colour, s.colour)?;
        for segment in &s.segments {
            if segment.len() == 1 {
                let (x, y) = segment[0];
                writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5"/>"#,
                    map_x(x),
                    map_y(y)
                )?;
                continue;
            }
            let coords: Vec<String> = segment
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", map_x(x), map_y(y)))
                .collect();
            writeln!(
                svg,
                r#"<polyline fill="none" stroke-width="2" stroke-linejoin="round"{dash} points="{}"/>"#,
                coords.join(" ")
            )?;
        }
        writeln!(svg, "</g>")?;
    }

    // Legend.
    let lx = LEFT + pw + 20.0;
    writeln!(
        svg,
        r##"<text x="{lx:.1}" y="{:.1}" font-size="12" font-weight="bold" fill="#222">accept latency</text>"##,
        TOP + 4.0
    )?;
    for (i, s) in series.iter().enumerate() {
        let y = TOP + 26.0 + i as f64 * 22.0;
        let dash = if s.dashed {
            r#" stroke-dasharray="7 4""#
        } else {
            ""
        };
        writeln!(
            svg,
            r#"<line x1="{lx:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="2.5"{dash}/>"#,
            lx + 30.0,
            s.colour
        )?;
        writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" fill="#222">{}</text>"##,
            lx + 38.0,
            y + 4.0,
            xml_escape(&s.label)
        )?;
    }
    writeln!(svg, "</svg>")?;
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_and_labels() {
        assert_eq!(nice_step(10.0, 10.0), 1.0);
        assert_eq!(nice_step(17.0, 10.0), 2.0);
        assert_eq!(nice_step(0.7, 10.0), 0.1);
        assert_eq!(nice_step(430.0, 6.0), 100.0);
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(100.0), "100");
        assert_eq!(tick_label(0.1 + 0.2), "0.3");
    }

    #[test]
    fn svg_has_the_series_axes_and_legend() {
        let series = vec![
            Series {
                label: "pipeline p50".into(),
                colour: "#d62728",
                dashed: false,
                segments: vec![vec![(0.05, 2.0), (0.15, 3.0)], vec![(0.45, 4.0)]],
            },
            Series {
                label: "pipeline p99 <&>".into(),
                colour: "#ff7f0e",
                dashed: true,
                segments: vec![vec![(0.05, 200.0), (0.15, 300.0)]],
            },
        ];
        let Ok(svg) = render_svg("title", &["sub".to_owned()], &series) else {
            panic!("render failed");
        };
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("log scale"));
        assert!(svg.contains("pipeline p99 &lt;&amp;&gt;"));
        let Ok(empty) = render_svg("t", &[], &[]) else {
            panic!("render failed");
        };
        assert!(empty.contains("no data"));
    }
}
