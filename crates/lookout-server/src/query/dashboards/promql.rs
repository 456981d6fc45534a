//! PromQL widgets: the query evaluated over the dashboard's time range through the same path
//! as `/prometheus/api/v1/query_range` ([`crate::prometheus::promql::evaluate`]) in the first
//! project; charts draw the range, billboards and tables show the instant at its end.

use std::time::Duration;

use crate::AppState;
use lookout_promql::{RangeSeries, Value};

use super::spec::{Kind, Widget};
use super::{billboard, esc, View};
use crate::charts::{self, Series, Style};
use crate::prometheus::promql::{evaluate, When};

/// Points per line: the step is the range divided by this.
const POINTS: i64 = 240;
/// Lines drawn at most.
const MAX_LINES: usize = 12;
/// A dashboard holds many widgets: each gets a short deadline.
/// Rows a PromQL table widget shows (as billboards cap their tiles).
pub const MAX_TABLE_ROWS: usize = 500;

const WIDGET_TIMEOUT: Duration = Duration::from_secs(20);

/// A label set as PromQL writes it: `name{a="x"}`.
pub fn series_name(labels: &[(String, String)]) -> String {
    let name = labels
        .iter()
        .find(|(k, _)| k == "__name__")
        .map_or("", |(_, v)| v.as_str());
    let rest: Vec<(&str, &str)> = labels
        .iter()
        .filter(|(k, _)| k != "__name__")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    lookout_promql::selector(name, &rest)
}

/// A value as people read it (`0.62`, `12.3`, `4,210`), NaN and infinities as Prometheus
/// writes them.
pub fn value_text(v: f64) -> String {
    if v.is_finite() {
        crate::ui::fmt::number(v)
    } else {
        lookout_promql::format_value(v)
    }
}

/// A range result as chart lines (at most [`MAX_LINES`]), named as PromQL writes label sets.
pub fn lines(series: &[RangeSeries]) -> Vec<Series> {
    series
        .iter()
        .take(MAX_LINES)
        .map(|s| Series {
            name: series_name(&s.labels),
            points: s.points.clone(),
        })
        .collect()
}

/// The instant result as (series, value) rows.
pub fn rows(v: &Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(samples) => samples
            .iter()
            .map(|s| (series_name(&s.labels), s.v))
            .collect(),
        Value::Scalar { v, .. } => vec![("scalar".into(), *v)],
        Value::String { .. } => Vec::new(),
        Value::Matrix(series) => series
            .iter()
            .map(|s| {
                let last = s.points.last().map_or(f64::NAN, |p| p.1);
                (series_name(&s.labels), last)
            })
            .collect(),
    }
}

/// Runs a PromQL widget: its HTML, or the error to show in its place.
pub async fn run(
    state: &AppState,
    projects: &[i64],
    w: &Widget,
    view: &View<'_>,
) -> Result<String, String> {
    let Some(&project) = projects.first() else {
        return Err("no project".into());
    };
    let text = w.query.as_deref().unwrap_or_default();
    let chart = matches!(w.kind, Kind::Line | Kind::Area | Kind::StackedBar);
    let when = if chart {
        let step = ((view.until - view.since) / POINTS).max(1_000);
        When::Range {
            start: view.since - view.since.rem_euclid(step),
            end: view.until,
            step,
        }
    } else {
        When::Instant(view.until)
    };
    let v = evaluate(state, project, text, when, WIDGET_TIMEOUT)
        .await
        .map_err(|e| format!("PromQL: {}", e.message()))?;
    if let (true, Value::Matrix(series)) = (chart, &v) {
        let style = match w.kind {
            Kind::Area => Style::Area,
            Kind::StackedBar => Style::StackedBar,
            _ => Style::Line,
        };
        return Ok(charts::series_chart(
            "",
            &lines(series),
            view.since,
            view.until,
            style,
        ));
    }
    let rows = rows(&v);
    if w.kind == Kind::Billboard && !rows.is_empty() {
        return Ok(rows
            .iter()
            .take(MAX_LINES)
            .map(|(name, v)| {
                let state = w.thresholds.as_ref().map_or("ok", |t| t.state(*v));
                // A result without labels (`sum(...)`) is named by the widget's title alone.
                let name = if name == "{}" { "" } else { name.as_str() };
                billboard(
                    state,
                    &lookout_promql::format_value(*v),
                    &value_text(*v),
                    name,
                )
            })
            .collect());
    }
    let mut s = String::from(
        "<table class=\"result\"><thead><tr><th>Series</th><th class=\"num\">Value</th></tr></thead><tbody>",
    );
    // A table shows at most MAX_TABLE_ROWS rows and says how many more there are: a query of
    // 100,000 series must not become a page of 100,000 rows.
    for (name, v) in rows.iter().take(MAX_TABLE_ROWS) {
        s.push_str(&format!(
            "<tr><td class=\"mono wrap-any\">{}</td><td class=\"num\">{}</td></tr>",
            esc(name),
            esc(&value_text(*v))
        ));
    }
    if rows.len() > MAX_TABLE_ROWS {
        s.push_str(&format!(
            "<tr><td class=\"muted\" colspan=\"2\">{} more series not shown; narrow the query.</td></tr>",
            crate::ui::fmt::number((rows.len() - MAX_TABLE_ROWS) as f64)
        ));
    }
    if rows.is_empty() {
        s.push_str("<tr><td class=\"muted\" colspan=\"2\">No series.</td></tr>");
    }
    s.push_str("</tbody></table>");
    Ok(s)
}
