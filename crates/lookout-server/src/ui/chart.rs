//! Server-rendered SVG charts: time series (several series, axes, tooltips) and bar charts.
//!
//! Written here rather than taken from a plotting crate because what we need is small and
//! specific: SVG that is embedded in HTML, themed by our CSS, readable on a phone (it scales with
//! its `viewBox`), and with a `<title>` on every point so tooltips work without JavaScript.
//! `app.js` adds a nicer floating tooltip from the same `data-tip` attributes when it can.
//! All text from data is XML-escaped here, so callers may insert the output as trusted HTML.

use std::fmt::Write as _;

/// One line of a time series chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend and tooltip name.
    pub name: String,
    /// (ms since the epoch, value), in time order.
    pub points: Vec<(i64, f64)>,
}

/// One bar of a bar chart.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Height.
    pub value: f64,
}

/// Colours of series, in order; chosen to stay distinct for common colour blindness.
const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
];

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// Escapes text for SVG/HTML content and attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (a "nice" axis maximum).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * mag)
}

/// Compact number: 950, 1.2k, 3.4M.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn time_label(ms: i64, span_ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return String::new();
    };
    if span_ms <= 2 * 86_400_000 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%m-%d").to_string()
    }
}

/// Tick times at a round step (1 min … 1 week) giving at most 7 ticks inside `[from, to]`.
fn time_ticks(from: i64, to: i64) -> Vec<i64> {
    const MIN: i64 = 60_000;
    const STEPS: &[i64] = &[
        MIN,
        5 * MIN,
        15 * MIN,
        30 * MIN,
        60 * MIN,
        180 * MIN,
        360 * MIN,
        720 * MIN,
        1440 * MIN,
        10_080 * MIN,
    ];
    let span = (to - from).max(1);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 6)
        .unwrap_or(span);
    let first = (from + step - 1).div_euclid(step) * step;
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to)
        .collect()
}

/// Fills the buckets of `[from, to)` that have no point with zero, so a sparse count series
/// draws as a line over the whole period instead of scattered dots.
pub fn zero_filled(points: &[(i64, f64)], from: i64, to: i64, bucket: i64) -> Vec<(i64, f64)> {
    let bucket = bucket.max(1);
    let mut out = Vec::new();
    let mut t = from.div_euclid(bucket) * bucket;
    while t < to {
        let v = points.iter().find(|p| p.0 == t).map_or(0.0, |p| p.1);
        out.push((t, v));
        t += bucket;
    }
    out
}

fn y_axis(out: &mut String, max: f64) {
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = TOP + (H - TOP - BOTTOM) * (1.0 - f64::from(i) / 4.0);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            x2 = W - RIGHT,
            tx = LEFT - 6.0,
            ty = y + 4.0,
            label = compact(v)
        );
    }
}

/// A time series chart of `series` over `[from, to]` (ms since the epoch).
pub fn time_series(title: &str, series: &[Series], from: i64, to: i64) -> String {
    let span = (to - from).max(1);
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let max = nice_ceiling(max);
    let x = |t: i64| LEFT + (W - LEFT - RIGHT) * ((t - from) as f64 / span as f64);
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / max);
    let mut svg = format!(
        r#"<figure class="chart"><figcaption>{}</figcaption><svg viewBox="0 0 {W} {H}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">"#,
        esc(title),
        esc(title)
    );
    y_axis(&mut svg, max);
    for t in time_ticks(from, to) {
        let _ = write!(
            svg,
            r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(t),
            H - 8.0,
            time_label(t, span)
        );
    }
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" x2="{}" y1="{}" y2="{}"/>"#,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    let has_points = series.iter().any(|s| !s.points.is_empty());
    if !has_points {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{}" y="{}" text-anchor="middle">No data in this period</text>"#,
            W / 2.0,
            H / 2.0
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut d = String::new();
        for (j, (t, v)) in s.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if j == 0 { "M" } else { " L" },
                x(*t),
                y(*v)
            );
        }
        let _ = write!(svg, r#"<path class="line" d="{d}" stroke="{color}"/>"#);
        for (t, v) in &s.points {
            let tip = format!(
                "{} · {} · {}",
                s.name,
                chrono::DateTime::from_timestamp_millis(*t)
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default(),
                compact(*v)
            );
            let _ = write!(
                svg,
                r#"<circle class="pt" cx="{:.1}" cy="{:.1}" r="3" fill="{color}" data-tip="{}"><title>{}</title></circle>"#,
                x(*t),
                y(*v),
                esc(&tip),
                esc(&tip)
            );
        }
    }
    svg.push_str("</svg>");
    legend(&mut svg, series.iter().map(|s| s.name.as_str()));
    svg.push_str("</figure>");
    svg
}

/// A vertical bar chart.
pub fn bar_chart(title: &str, bars: &[Bar]) -> String {
    let max = nice_ceiling(bars.iter().map(|b| b.value).fold(0.0, f64::max));
    let mut svg = format!(
        r#"<figure class="chart"><figcaption>{}</figcaption><svg viewBox="0 0 {W} {H}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">"#,
        esc(title),
        esc(title)
    );
    y_axis(&mut svg, max);
    if bars.is_empty() {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{}" y="{}" text-anchor="middle">No data in this period</text>"#,
            W / 2.0,
            H / 2.0
        );
    }
    let n = bars.len().max(1) as f64;
    let slot = (W - LEFT - RIGHT) / n;
    let width = (slot * 0.7).min(64.0);
    for (i, b) in bars.iter().enumerate() {
        let h = (H - TOP - BOTTOM) * (b.value / max);
        let cx = LEFT + slot * (i as f64 + 0.5);
        let color = PALETTE[i % PALETTE.len()];
        let tip = format!("{} · {}", b.label, compact(b.value));
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{width:.1}" height="{h:.1}" fill="{color}" data-tip="{}"><title>{}</title></rect><text class="tick" x="{cx:.1}" y="{}" text-anchor="middle">{}</text>"#,
            cx - width / 2.0,
            H - BOTTOM - h,
            esc(&tip),
            esc(&tip),
            H - 8.0,
            esc(&truncate(&b.label, 18))
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// A small inline bar sparkline (no axes) of `values`, with the total as its tooltip.
pub fn sparkline(values: &[f64], label: &str) -> String {
    let max = values.iter().copied().fold(0.0, f64::max).max(1.0);
    let w = 2.0 * values.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg class="spark" viewBox="0 0 {w} 20" width="{w}" height="20" role="img" aria-label="{}"><title>{}</title>"#,
        esc(label),
        esc(label)
    );
    for (i, v) in values.iter().enumerate() {
        let h = (18.0 * v / max).max(if *v > 0.0 { 1.0 } else { 0.0 });
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{:.1}" width="1.6" height="{h:.1}"/>"#,
            i * 2,
            20.0 - h
        );
    }
    svg.push_str("</svg>");
    svg
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn legend<'a>(out: &mut String, names: impl Iterator<Item = &'a str>) {
    out.push_str(r#"<ul class="legend">"#);
    for (i, n) in names.enumerate() {
        let _ = write!(
            out,
            r#"<li><span class="swatch" style="background:{}"></span>{}</li>"#,
            PALETTE[i % PALETTE.len()],
            esc(n)
        );
    }
    out.push_str("</ul>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_use_nice_maxima() {
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(compact(1234.0), "1.2k");
        assert_eq!(compact(3.0), "3");
    }

    #[test]
    fn every_series_gets_a_line_tooltips_and_a_legend_entry() {
        let s = vec![
            Series {
                name: "errors".into(),
                points: vec![(0, 1.0), (60_000, 4.0)],
            },
            Series {
                name: "<script>".into(),
                points: vec![(0, 2.0)],
            },
        ];
        let svg = time_series("Events", &s, 0, 60_000);
        assert_eq!(svg.matches(r#"<path class="line""#).count(), 2);
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
        assert!(
            svg.contains(">5<"),
            "y axis should top out at 5 for a max of 4"
        );
        assert!(!svg.contains("No data"));
        assert!(time_series("x", &[], 0, 1).contains("No data in this period"));
    }

    #[test]
    fn time_ticks_fall_on_round_times() {
        let hour = 3_600_000;
        let ticks = time_ticks(10 * hour + 5, 34 * hour);
        assert!(ticks.len() <= 7 && ticks.len() >= 4, "{ticks:?}");
        assert!(ticks.iter().all(|t| t % (3 * hour) == 0));
        let filled = zero_filled(&[(2 * hour, 5.0)], 0, 4 * hour, hour);
        assert_eq!(
            filled,
            vec![(0, 0.0), (hour, 0.0), (2 * hour, 5.0), (3 * hour, 0.0)]
        );
    }

    #[test]
    fn sparklines_scale_and_escape() {
        let s = sparkline(&[0.0, 2.0, 4.0], "6 events <24h>");
        assert_eq!(s.matches("<rect").count(), 3);
        assert!(s.contains(r#"height="18.0""#) && s.contains(r#"height="9.0""#));
        assert!(s.contains("&lt;24h&gt;"));
    }

    #[test]
    fn bars_scale_to_the_largest() {
        let svg = bar_chart(
            "Kinds",
            &[
                Bar {
                    label: "a".into(),
                    value: 10.0,
                },
                Bar {
                    label: "b".into(),
                    value: 5.0,
                },
            ],
        );
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains(r#"height="200.0""#) && svg.contains(r#"height="100.0""#));
    }
}
