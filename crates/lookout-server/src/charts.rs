//! Server-rendered SVG charts: time series (several series, axes, tooltips), bar charts, a series
//! with its change points marked, and distributions side by side.
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

/// Compact number with three significant digits: 0.005, 0.0125, 950, 1.25k, 12.5k, 3.4M. Axis
/// ticks a quarter apart stay distinct (two decimals made 0.005, 0.01 and 0.015 all "0.01").
pub fn compact(v: f64) -> String {
    use lookout_core::units::number;
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", number(v / 1e9))
    } else if a >= 1e6 {
        format!("{}M", number(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", number(v / 1e3))
    } else {
        number(v)
    }
}

/// The colour of series `i`: the palette, then hues a golden angle apart, so a chart with more
/// series than the palette holds does not repeat a colour in its legend.
fn color(i: usize) -> String {
    match PALETTE.get(i) {
        Some(c) => (*c).to_string(),
        None => format!("hsl({:.0}, 55%, 45%)", (i as f64 * 137.508) % 360.0),
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

/// Opens a captioned chart of height `h` (close it with `</svg></figure>`).
fn figure(title: &str, h: f64) -> String {
    format!(
        r#"<figure class="chart"><figcaption>{}</figcaption><svg viewBox="0 0 {W} {h}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">"#,
        esc(title),
        esc(title)
    )
}

/// How a time series chart draws its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Lines with a dot per point.
    Line,
    /// Lines with the area under each filled, translucent.
    Area,
    /// One bar per bucket, the series stacked on each other (their points share buckets).
    StackedBar,
}

/// A time series chart of `series` over `[from, to]` (ms since the epoch).
pub fn time_series(title: &str, series: &[Series], from: i64, to: i64) -> String {
    series_chart(title, series, from, to, Style::Line)
}

/// A time series chart drawn in `style`.
pub fn series_chart(title: &str, series: &[Series], from: i64, to: i64, style: Style) -> String {
    let span = (to - from).max(1);
    let max = if style == Style::StackedBar {
        let mut totals: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
        for s in series {
            for (t, v) in &s.points {
                *totals.entry(*t).or_default() += v.max(0.0);
            }
        }
        totals.values().copied().fold(0.0, f64::max)
    } else {
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max)
    };
    let max = nice_ceiling(max);
    let x = |t: i64| LEFT + (W - LEFT - RIGHT) * ((t - from) as f64 / span as f64);
    let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - v / max);
    let mut svg = figure(title, H);
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
    // Stacked bars: each bucket's bar is as wide as the gap to the next bucket allows.
    let mut stacked: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
    let buckets: std::collections::BTreeSet<i64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let step = buckets
        .iter()
        .zip(buckets.iter().skip(1))
        .map(|(a, b)| b - a)
        .min()
        .unwrap_or(span);
    let bar_w = ((W - LEFT - RIGHT) * step as f64 / span as f64 * 0.8).max(1.0);
    for (i, s) in series.iter().enumerate() {
        let color = color(i);
        if style == Style::StackedBar {
            for (t, v) in &s.points {
                let base = stacked.entry(*t).or_default();
                let (y0, y1) = (y(*base), y(*base + v.max(0.0)));
                *base += v.max(0.0);
                let tip = format!("{} · {}", s.name, compact(*v));
                let _ = write!(
                    svg,
                    r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{bar_w:.1}" height="{:.1}" fill="{color}" data-tip="{}"><title>{}</title></rect>"#,
                    x(*t) - bar_w / 2.0,
                    y1,
                    (y0 - y1).max(0.0),
                    esc(&tip),
                    esc(&tip)
                );
            }
            continue;
        }
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
        if style == Style::Area {
            if let (Some(first), Some(last)) = (s.points.first(), s.points.last()) {
                let _ = write!(
                    svg,
                    r#"<path class="area" d="{d} L{:.1},{:.1} L{:.1},{:.1} Z" fill="{color}" fill-opacity="0.25" stroke="none"/>"#,
                    x(last.0),
                    H - BOTTOM,
                    x(first.0),
                    H - BOTTOM
                );
            }
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
    let mut svg = figure(title, H);
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
        let color = color(i);
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

/// A change point to mark on a [`change_chart`].
#[derive(Debug, Clone)]
pub struct Mark {
    /// Index of the first point of the new regime.
    pub index: usize,
    /// `abc1234 +23.4%`.
    pub label: String,
    pub regression: bool,
}

/// An axis range around `values` with a little room, so a benchmark at 100 ± 5 fills the chart.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-9);
    (lo - pad, hi + pad)
}

fn value_axis(out: &mut String, lo: f64, hi: f64, y: &dyn Fn(f64) -> f64) {
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}"/><text class="tick" x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            x2 = W - RIGHT,
            yy = y(v),
            tx = LEFT - 6.0,
            ty = y(v) + 4.0,
            label = compact(v)
        );
    }
}

/// A series by point (`(tooltip label, value)`, oldest first) with each regime's median drawn
/// across it and each change point marked by a labelled line (red for a regression).
pub fn change_chart(
    title: &str,
    points: &[(String, f64)],
    regimes: &[(usize, usize, f64)],
    marks: &[Mark],
) -> String {
    let n = points.len().max(2);
    let (lo, hi) = padded_range(points.iter().map(|p| p.1));
    let x = |i: f64| LEFT + (W - LEFT - RIGHT) * (i / (n - 1) as f64);
    let y = |v: f64| TOP + 14.0 + (H - TOP - 14.0 - BOTTOM) * (1.0 - (v - lo) / (hi - lo));
    let mut svg = figure(title, H);
    value_axis(&mut svg, lo, hi, &y);
    for i in 0..=4 {
        let idx = (n - 1) * i / 4;
        let _ = write!(
            svg,
            r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">#{}</text>"#,
            x(idx as f64),
            H - 8.0,
            idx + 1
        );
    }
    if points.is_empty() {
        let _ = write!(
            svg,
            r#"<text class="empty" x="{}" y="{}" text-anchor="middle">No points yet</text>"#,
            W / 2.0,
            H / 2.0
        );
    }
    for &(a, b, median) in regimes {
        let _ = write!(
            svg,
            r#"<line class="regime" x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-width="2" stroke-dasharray="6 3"><title>median {}</title></line>"#,
            x(a as f64),
            x(b.saturating_sub(1).max(a) as f64),
            PALETTE[1],
            compact(median),
            y = y(median)
        );
    }
    let mut d = String::new();
    for (i, (_, v)) in points.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1},{:.1}",
            if i == 0 { "M" } else { " L" },
            x(i as f64),
            y(*v)
        );
    }
    let _ = write!(
        svg,
        r#"<path class="line" d="{d}" stroke="{}"/>"#,
        PALETTE[0]
    );
    for (i, (label, v)) in points.iter().enumerate() {
        let tip = format!("#{} · {label} · {}", i + 1, compact(*v));
        let _ = write!(
            svg,
            r#"<circle class="pt" cx="{:.1}" cy="{:.1}" r="2.5" fill="{}" data-tip="{}"><title>{}</title></circle>"#,
            x(i as f64),
            y(*v),
            PALETTE[0],
            esc(&tip),
            esc(&tip)
        );
    }
    for m in marks {
        let color = if m.regression { "#c0392b" } else { "#2e8b57" };
        let xm = x(m.index as f64 - 0.5);
        let anchor = if xm > W * 0.75 { "end" } else { "start" };
        let _ = write!(
            svg,
            r#"<g class="change-point"><line x1="{xm:.1}" x2="{xm:.1}" y1="{TOP}" y2="{}" stroke="{color}" stroke-width="1.5"/><text x="{:.1}" y="{}" fill="{color}" font-size="11" text-anchor="{anchor}">{}</text></g>"#,
            H - BOTTOM,
            if anchor == "end" { xm - 4.0 } else { xm + 4.0 },
            TOP + 10.0,
            esc(&m.label)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

/// One row per sample: its values as dots, a box from the 25th to the 75th percentile with the
/// median, and whiskers from the 5th to the 95th, all on one axis.
pub fn distributions(title: &str, groups: &[(String, Vec<f64>)]) -> String {
    let row = 56.0;
    let h = TOP + BOTTOM + row * groups.len().max(1) as f64;
    let (lo, hi) = padded_range(groups.iter().flat_map(|g| g.1.iter().copied()));
    let left = 110.0;
    let x = |v: f64| left + (W - left - RIGHT) * (v - lo) / (hi - lo);
    let mut svg = figure(title, h);
    for i in 0..=4 {
        let v = lo + (hi - lo) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{xx:.1}" x2="{xx:.1}" y1="{TOP}" y2="{y2}"/><text class="tick" x="{xx:.1}" y="{ty}" text-anchor="middle">{}</text>"#,
            compact(v),
            xx = x(v),
            y2 = h - BOTTOM,
            ty = h - 8.0
        );
    }
    for (gi, (name, values)) in groups.iter().enumerate() {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| -> f64 {
            if sorted.is_empty() {
                return f64::NAN;
            }
            let r = p * (sorted.len() - 1) as f64;
            let (a, b) = (r.floor() as usize, r.ceil() as usize);
            sorted[a] + (sorted[b] - sorted[a]) * (r - a as f64)
        };
        let cy = TOP + row * gi as f64 + row / 2.0;
        let color = color(gi);
        let _ = write!(
            svg,
            r#"<text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            cy + 4.0,
            esc(&truncate(name, 16))
        );
        if sorted.is_empty() {
            continue;
        }
        let (p5, p25, p50, p75, p95) = (q(0.05), q(0.25), q(0.5), q(0.75), q(0.95));
        let tip = format!(
            "{name}: n={} · p5 {} · p25 {} · median {} · p75 {} · p95 {}",
            sorted.len(),
            compact(p5),
            compact(p25),
            compact(p50),
            compact(p75),
            compact(p95)
        );
        let _ = write!(
            svg,
            r#"<g class="box" data-tip="{tip}"><title>{tip}</title><line x1="{:.1}" x2="{:.1}" y1="{cy:.1}" y2="{cy:.1}" stroke="{color}"/><rect x="{:.1}" y="{:.1}" width="{:.1}" height="20" fill="{color}" fill-opacity="0.25" stroke="{color}"/><line x1="{m:.1}" x2="{m:.1}" y1="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="3"/></g>"#,
            x(p5),
            x(p95),
            x(p25),
            cy - 10.0,
            (x(p75) - x(p25)).max(1.0),
            cy - 12.0,
            cy + 12.0,
            m = x(p50),
            tip = esc(&tip)
        );
        for (k, v) in sorted.iter().enumerate() {
            // A little vertical jitter, deterministic, so equal values stay visible.
            let jitter = ((k * 7) % 5) as f64 * 3.0 - 6.0;
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{color}" fill-opacity="0.6"/>"#,
                x(*v),
                cy + 18.0 + jitter / 3.0
            );
        }
    }
    svg.push_str("</svg></figure>");
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
            color(i),
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
        assert_eq!(compact(1234.0), "1.23k");
        assert_eq!(compact(3.0), "3");
        // A quarter of a small maximum apart: every tick reads differently.
        let ticks: Vec<String> = (0..=4)
            .map(|i| compact(0.02 * f64::from(i) / 4.0))
            .collect();
        assert_eq!(ticks, ["0", "0.005", "0.01", "0.015", "0.02"]);
        // More series than the palette: no colour repeats.
        let colours: std::collections::BTreeSet<String> = (0..20).map(color).collect();
        assert_eq!(colours.len(), 20);
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
    fn change_points_are_marked_and_labels_escaped() {
        let points: Vec<(String, f64)> = (0..20)
            .map(|i| (format!("c{i}"), if i < 10 { 100.0 } else { 130.0 }))
            .collect();
        let svg = change_chart(
            "p95",
            &points,
            &[(0, 10, 100.0), (10, 20, 130.0)],
            &[Mark {
                index: 10,
                label: "<c10> +30%".into(),
                regression: true,
            }],
        );
        assert_eq!(svg.matches(r#"class="change-point""#).count(), 1);
        assert_eq!(svg.matches(r#"class="regime""#).count(), 2);
        assert!(svg.contains("&lt;c10&gt; +30%") && svg.contains("#c0392b"));
        let d = distributions(
            "before/after",
            &[
                ("before".into(), vec![1.0, 2.0, 3.0]),
                ("after".into(), vec![]),
            ],
        );
        assert_eq!(d.matches(r#"class="box""#).count(), 1);
        assert!(d.contains("median 2"));
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
