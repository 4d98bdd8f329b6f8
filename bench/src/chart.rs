//! `docs/benchmarks.svg`: Envoy CPU per request against policy size, native (c) and
//! xcluster (d), both axes logarithmic, with the empty filter (b) as a reference line.

use std::fmt::Write as _;

use crate::report::Results;
use crate::sim::RequestKind;

const WIDTH: f64 = 840.0;
const HEIGHT: f64 = 420.0;
/// Plot area: left, top, right, bottom.
const AREA: (f64, f64, f64, f64) = (70.0, 40.0, 560.0, 360.0);

/// One line of the chart: label, colour, dash pattern, points (rules, µs).
struct Series {
    label: String,
    colour: &'static str,
    dash: &'static str,
    points: Vec<(f64, f64)>,
}

fn series(r: &Results, prefix: &str, kind: RequestKind) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = r
        .arms
        .iter()
        .filter(|a| a.kind == kind && a.rules > 0 && a.arm == format!("{prefix}{}", a.rules))
        .map(|a| (a.rules as f64, a.cpu_us_per_request))
        .filter(|(_, y)| y.is_finite() && *y > 0.0)
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// The decades-and-1-2-5 ticks covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t >= lo && t <= hi {
                out.push(t);
            }
        }
        decade *= 10.0;
    }
    out
}

fn label(x: f64) -> String {
    if x >= 1000.0 {
        format!("{}k", x / 1000.0)
    } else {
        format!("{x}")
    }
}

/// The chart as an SVG document (empty string when there is nothing to plot).
pub fn svg(r: &Results) -> String {
    let lines = [
        (
            "(c) native RBAC + weighted_clusters, allowed",
            "#d62728",
            "",
            "c",
            RequestKind::Allowed,
        ),
        (
            "(c) native, denied",
            "#d62728",
            "6 4",
            "c",
            RequestKind::Denied,
        ),
        (
            "(d) xcluster, allowed",
            "#1f77b4",
            "",
            "d",
            RequestKind::Allowed,
        ),
        (
            "(d) xcluster, denied",
            "#1f77b4",
            "6 4",
            "d",
            RequestKind::Denied,
        ),
    ];
    let all: Vec<Series> = lines
        .iter()
        .map(|(label, colour, dash, prefix, kind)| Series {
            label: (*label).to_string(),
            colour,
            dash,
            points: series(r, prefix, *kind),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if all.is_empty() {
        return String::new();
    }
    let b = r
        .arm("b", RequestKind::Allowed)
        .map(|a| a.cpu_us_per_request)
        .filter(|y| y.is_finite() && *y > 0.0);
    let xs = all.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = all
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(b);
    let (x_lo, x_hi) = bounds(xs);
    let (y_lo, y_hi) = bounds(ys);
    let (x_lo, x_hi) = (
        10f64.powf(x_lo.log10().floor()),
        10f64.powf(x_hi.log10().ceil()),
    );
    let (y_lo, y_hi) = (y_lo / 1.25, y_hi * 1.25);
    let (left, top, right, bottom) = AREA;
    let px =
        |x: f64| left + (x.log10() - x_lo.log10()) / (x_hi.log10() - x_lo.log10()) * (right - left);
    let py = |y: f64| {
        bottom - (y.log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10()) * (bottom - top)
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="22" font-size="14">Envoy CPU per request (µs) against authorization rules — {}</text>"#,
        xml(&r.commit)
    );
    for t in ticks(x_lo, x_hi) {
        let x = px(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 16.0,
            label(t)
        );
    }
    for t in ticks(y_lo, y_hi) {
        let y = py(t);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 6.0,
            y + 4.0,
            label(t)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{}" height="{}" fill="none" stroke="#444"/>"##,
        right - left,
        bottom - top
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">authorization rules (log scale)</text>"#,
        (left + right) / 2.0,
        bottom + 34.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">µs of Envoy CPU per request (log scale)</text>"#,
        (top + bottom) / 2.0
    );
    let mut legend: Vec<(String, &str, &str)> = Vec::new();
    if let Some(b) = b {
        let y = py(b);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#2ca02c" stroke-dasharray="2 3"/>"##
        );
        legend.push((
            format!("(b) empty wasm filter, {b:.1} µs"),
            "#2ca02c",
            "2 3",
        ));
    }
    for line in &all {
        let points: Vec<String> = line
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2" stroke-dasharray="{}"/>"#,
            points.join(" "),
            line.colour,
            line.dash
        );
        for &(x, y) in &line.points {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{} rules: {y:.1} µs</title></circle>"#,
                px(x),
                py(y),
                line.colour,
                x
            );
        }
        legend.push((line.label.clone(), line.colour, line.dash));
    }
    for (i, (text, colour, dash)) in legend.iter().enumerate() {
        let y = top + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{:.1}" y="{:.1}" font-size="10">{}</text>"#,
            right + 8.0,
            right + 28.0,
            right + 32.0,
            y + 3.5,
            xml(text)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, 0.0), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_decades_and_one_two_five() {
        assert_eq!(
            ticks(10.0, 10_000.0),
            vec![10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10_000.0]
        );
        assert_eq!(ticks(30.0, 90.0), vec![50.0]);
        assert_eq!(label(2000.0), "2k");
        assert_eq!(label(50.0), "50");
    }

    #[test]
    fn the_committed_results_plot_both_arms() {
        let json = include_str!("../results.json");
        let r: Results = serde_json::from_str(json).unwrap();
        let svg = svg(&r);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("(d) xcluster, allowed"));
    }
}
