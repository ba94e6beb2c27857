//! `switchboard-bench plot`: a line chart as a standalone SVG file, from CSV
//! rows `series,x,y` (a header row is skipped), so that a sweep's results
//! can be shown in docs/benchmarks.md without a plotting toolchain.
//!
//! One polyline with point markers per series, in the order the series first
//! appear; axes with round ticks, an optional logarithmic x axis (for
//! subscriber counts 10 … 10,000), a legend, and the title and axis labels
//! given. Text is escaped; nothing else in the SVG comes from the input.

use std::fmt::Write as _;

/// One point of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Position on the x axis.
    pub x: f64,
    /// Position on the y axis.
    pub y: f64,
}

/// A named line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's label.
    pub name: String,
    /// The points, drawn in x order.
    pub points: Vec<Point>,
}

/// What the chart says around the lines.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Above the chart.
    pub title: String,
    /// Under the x axis.
    pub x: String,
    /// Beside the y axis.
    pub y: String,
}

/// Why the input cannot be plotted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlotError {
    /// A row is not `series,x,y` with two finite numbers.
    #[error("line {line}: expected `series,x,y` with numbers, got {text:?}")]
    Row {
        /// 1-based line number.
        line: usize,
        /// The row.
        text: String,
    },
    /// No data row at all.
    #[error("no data rows")]
    Empty,
    /// A logarithmic axis needs positive values.
    #[error("a logarithmic x axis needs x > 0 (series {series:?} has {x})")]
    NotPositive {
        /// The series.
        series: String,
        /// The offending x.
        x: f64,
    },
}

/// Reads `series,x,y` rows; skips blank lines and a first row whose x is not
/// a number (a header).
pub fn parse_csv(text: &str) -> Result<Vec<Series>, PlotError> {
    let mut out: Vec<Series> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let row = raw.trim();
        if row.is_empty() {
            continue;
        }
        let bad = || PlotError::Row {
            line: i + 1,
            text: row.to_owned(),
        };
        let mut cols = row.rsplitn(3, ',');
        let (Some(y), Some(x), Some(name)) = (cols.next(), cols.next(), cols.next()) else {
            return Err(bad());
        };
        let (Ok(x), Ok(y)) = (x.trim().parse::<f64>(), y.trim().parse::<f64>()) else {
            if i == 0 {
                continue; // the header
            }
            return Err(bad());
        };
        if !x.is_finite() || !y.is_finite() {
            return Err(bad());
        }
        let name = name.trim();
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(Point { x, y }),
            None => out.push(Series {
                name: name.to_owned(),
                points: vec![Point { x, y }],
            }),
        }
    }
    if out.is_empty() {
        return Err(PlotError::Empty);
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    Ok(out)
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// The chart as an SVG document.
pub fn svg(series: &[Series], labels: &Labels, log_x: bool) -> Result<String, PlotError> {
    let points = || series.iter().flat_map(|s| s.points.iter());
    if points().next().is_none() {
        return Err(PlotError::Empty);
    }
    if log_x
        && let Some((s, p)) = series
            .iter()
            .flat_map(|s| s.points.iter().map(move |p| (s, p)))
            .find(|(_, p)| p.x <= 0.0)
    {
        return Err(PlotError::NotPositive {
            series: s.name.clone(),
            x: p.x,
        });
    }
    let fx = |x: f64| if log_x { x.log10() } else { x };
    let (mut x0, mut x1) = points().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(fx(p.x)), b.max(fx(p.x)))
    });
    if x1 <= x0 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    let y_max = points().fold(0.0f64, |m, p| m.max(p.y));
    let (y_step, y_top) = round_axis(y_max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let px = |x: f64| LEFT + (fx(x) - x0) / (x1 - x0) * plot_w;
    let py = |y: f64| TOP + plot_h - y / y_top * plot_h;

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(&labels.title)
    );
    // y grid and ticks
    let mut y = 0.0;
    while y <= y_top + y_step / 2.0 {
        let yy = py(y);
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            yy + 4.0,
            tick_label(y)
        );
        y += y_step;
    }
    // x ticks: every distinct x of the data
    let mut xs: Vec<f64> = points().map(|p| p.x).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let xx = px(x);
        let _ = writeln!(
            o,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h + 18.0,
            tick_label(x)
        );
    }
    let _ = writeln!(
        o,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0,
        escape(&labels.x)
    );
    let _ = writeln!(
        o,
        r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        escape(&labels.y)
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.x), py(p.y)))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for p in &s.points {
            let _ = writeln!(
                o,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                px(p.x),
                py(p.y)
            );
        }
        let ly = TOP + 10.0 + i as f64 * 20.0;
        let lx = WIDTH - RIGHT + 15.0;
        let _ = writeln!(
            o,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    o.push_str("</svg>\n");
    Ok(o)
}

/// A round tick step for values up to `max`, and the axis top (a multiple
/// of the step at or above `max`).
fn round_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 1.0);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    (step, (max / step).ceil() * step)
}

/// `1.5M`, `250k`, `12` …
fn tick_label(v: f64) -> String {
    let a = v.abs();
    let (scaled, unit) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_group_into_series_in_first_seen_order() {
        let csv = "series,x,y\n2 cores,100,900000\n1 core,10,500000\n2 cores,10,800000\n\n1 core,100,600000\n";
        let s = parse_csv(csv).expect("parses");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "2 cores");
        assert_eq!(
            s[0].points,
            [
                Point {
                    x: 10.0,
                    y: 800_000.0
                },
                Point {
                    x: 100.0,
                    y: 900_000.0
                }
            ]
        );
        assert_eq!(s[1].name, "1 core");
    }

    #[test]
    fn bad_rows_are_named() {
        assert_eq!(
            parse_csv("a,1,2\nb,x,3\n"),
            Err(PlotError::Row {
                line: 2,
                text: "b,x,3".into()
            })
        );
        assert_eq!(parse_csv("series,x,y\n"), Err(PlotError::Empty));
        assert!(matches!(parse_csv("a,1,inf"), Err(PlotError::Row { .. })));
    }

    #[test]
    fn the_svg_has_a_line_per_series_and_escapes_text() {
        let s = parse_csv("1 core,10,5\n1 core,1000,7\n<2> cores,10,9\n").expect("parses");
        let labels = Labels {
            title: "fan-out & cores".into(),
            x: "subscribers".into(),
            y: "deliveries/s".into(),
        };
        let doc = svg(&s, &labels, true).expect("plots");
        assert!(doc.starts_with("<svg "));
        assert!(doc.trim_end().ends_with("</svg>"));
        assert_eq!(doc.matches("<polyline").count(), 2);
        assert_eq!(doc.matches("<circle").count(), 3);
        assert!(doc.contains("fan-out &amp; cores"));
        assert!(doc.contains("&lt;2&gt; cores"));
        assert!(!doc.contains("<2>"));
        // A logarithmic axis refuses x = 0.
        let zero = parse_csv("a,0,1\n").expect("parses");
        assert!(matches!(
            svg(&zero, &labels, true),
            Err(PlotError::NotPositive { .. })
        ));
        assert!(svg(&zero, &labels, false).is_ok());
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(round_axis(1_000_000.0), (200_000.0, 1_000_000.0));
        assert_eq!(round_axis(930_000.0), (200_000.0, 1_000_000.0));
        assert_eq!(round_axis(12.0), (2.5, 12.5));
        assert_eq!(tick_label(1_500_000.0), "1.5M");
        assert_eq!(tick_label(250_000.0), "250k");
        assert_eq!(tick_label(10.0), "10");
    }
}
