//! The query console: an NRQL box, the answer as a table, and the chart that fits it — a line
//! per facet value and column for `TIMESERIES`, bars for facets, big numbers otherwise. It runs
//! the same executor as `POST /api/v1/query`, so what it shows is what the API and the CLI say.

use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::Value;

use crate::charts::{self, Bar, Series};
use crate::query::nrql::{self, QueryError, QueryResult};
use crate::state::AppState;
use crate::ui::error::{UiError, UiResult};
use crate::ui::extract;
use crate::ui::layout::{render, PageCtx};

/// Queries offered to start from.
const EXAMPLES: &[&str] = &[
    "SELECT count(*), percentile(duration, 95) FROM Transaction FACET appName SINCE 1 day ago",
    "SELECT percentile(duration, 50, 95, 99) FROM Transaction SINCE 1 hour ago TIMESERIES",
    "SELECT percentage(count(*), WHERE error IS TRUE) FROM Transaction FACET name SINCE 1 day ago",
    "SELECT apdex(duration, t: 0.5) FROM Transaction FACET appName SINCE 1 week ago",
];

#[derive(Template)]
#[template(path = "query.html")]
struct Page {
    title: String,
    ctx: PageCtx,
    nrql: String,
    examples: Vec<(String, String)>,
    error: Option<String>,
    warnings: Vec<String>,
    head: Vec<String>,
    rows: Vec<Vec<(String, bool)>>,
    chart: String,
    numbers: Vec<(String, String)>,
    ran: bool,
}

/// `?nrql=`.
#[derive(Debug, Deserialize)]
pub struct ConsoleQuery {
    #[serde(default)]
    pub nrql: String,
}

/// A cell as shown, as `lookout query`'s table shows it: whole numbers as they are, others to
/// three significant digits (`0.62`, `12.3`), timestamps as UTC date-times, null empty.
pub(crate) fn cell(v: &Value, kind: &str) -> String {
    match (v, kind) {
        (Value::Null, _) => String::new(),
        (Value::Number(n), "timestamp") => n
            .as_i64()
            .map_or_else(|| n.to_string(), lookout_core::units::datetime_utc),
        (Value::Number(n), _) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            Some(f) => crate::ui::fmt::number(f),
            None => n.to_string(),
        },
        (Value::String(s), _) => s.clone(),
        (other, _) => other.to_string(),
    }
}

/// The facet columns (strings and booleans) and numeric columns of a result.
fn shape(r: &QueryResult) -> (Vec<usize>, Vec<usize>) {
    let pick = |f: &dyn Fn(&str) -> bool| -> Vec<usize> {
        r.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| f(c.kind))
            .map(|(i, _)| i)
            .collect()
    };
    (
        pick(&|k| k == "string" || k == "boolean"),
        pick(&|k| k == "number"),
    )
}

/// A row's facet values, joined.
pub(crate) fn facet_label(r: &QueryResult, row: &[Value]) -> String {
    shape(r)
        .0
        .iter()
        .map(|&i| cell(&row[i], r.columns[i].kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `TIMESERIES` result as chart series (a line per facet value and numeric column, at most
/// 12) with its time span; `None` without a `begin_time` column.
pub(crate) fn series_of(r: &QueryResult) -> Option<(Vec<Series>, i64, i64)> {
    let t = r.columns.iter().position(|c| c.kind == "timestamp")?;
    let (_, numeric) = shape(r);
    let mut series: Vec<Series> = Vec::new();
    for row in &r.rows {
        let at = row[t].as_i64().unwrap_or_default();
        for &i in &numeric {
            let name = match (facet_label(r, row), numeric.len()) {
                (l, 1) if !l.is_empty() => l,
                (l, _) if !l.is_empty() => format!("{l} · {}", r.columns[i].name),
                _ => r.columns[i].name.clone(),
            };
            let Some(v) = row[i].as_f64() else { continue };
            match series.iter().position(|s| s.name == name) {
                Some(k) => series[k].points.push((at, v)),
                // At most 12 lines: more is not readable.
                None if series.len() < 12 => series.push(Series {
                    name,
                    points: vec![(at, v)],
                }),
                None => {}
            }
        }
    }
    let from = r
        .rows
        .iter()
        .filter_map(|row| row[t].as_i64())
        .min()
        .unwrap_or(0);
    let to = r
        .rows
        .iter()
        .filter_map(|row| row[t].as_i64())
        .max()
        .unwrap_or(0);
    let buckets = r
        .rows
        .iter()
        .filter_map(|row| row[t].as_i64())
        .collect::<std::collections::BTreeSet<_>>();
    let step = buckets
        .iter()
        .zip(buckets.iter().skip(1))
        .map(|(a, b)| b - a)
        .min()
        .unwrap_or(60_000);
    Some((series, from, to + step))
}

/// Bars of the first numeric column per facet value.
pub(crate) fn bars_of(r: &QueryResult) -> Option<(String, Vec<Bar>)> {
    let (facets, numeric) = shape(r);
    let first = *numeric.first()?;
    if facets.is_empty() {
        return None;
    }
    Some((
        r.columns[first].name.clone(),
        r.rows
            .iter()
            .map(|row| Bar {
                label: facet_label(r, row),
                value: row[first].as_f64().unwrap_or(0.0),
            })
            .collect(),
    ))
}

/// The numbers of the first row (a result without facets): (column, value as shown).
pub(crate) fn numbers_of(r: &QueryResult) -> Vec<(String, String)> {
    let (_, numeric) = shape(r);
    match r.rows.first() {
        Some(row) => numeric
            .iter()
            .map(|&i| (r.columns[i].name.clone(), cell(&row[i], "number")))
            .collect(),
        None => Vec::new(),
    }
}

/// The chart that fits the result, and big numbers for a single row without facets.
fn chart_of(r: &QueryResult) -> (String, Vec<(String, String)>) {
    if let Some((series, from, to)) = series_of(r) {
        return (charts::time_series("Result", &series, from, to), Vec::new());
    }
    if let Some((title, bars)) = bars_of(r) {
        return (charts::bar_chart(&title, &bars), Vec::new());
    }
    if !shape(r).0.is_empty() {
        return (String::new(), Vec::new());
    }
    (String::new(), numbers_of(r))
}

/// `GET /query?nrql=…`.
pub async fn console(
    State(state): State<AppState>,
    extract::Page { ctx, .. }: extract::Page,
    Query(q): Query<ConsoleQuery>,
) -> UiResult {
    let nrql_text = q.nrql.trim().to_string();
    let mut page = Page {
        title: "Query".into(),
        ctx,
        examples: EXAMPLES
            .iter()
            .map(|e| {
                let href: String = url::form_urlencoded::byte_serialize(e.as_bytes()).collect();
                (e.to_string(), format!("/query?nrql={href}"))
            })
            .collect(),
        error: None,
        warnings: Vec::new(),
        head: Vec::new(),
        rows: Vec::new(),
        chart: String::new(),
        numbers: Vec::new(),
        ran: !nrql_text.is_empty(),
        nrql: nrql_text.clone(),
    };
    if page.ran {
        let projects = lookout_store::tenancy::project_ids(state.store()).await?;
        match nrql::run(
            state.store(),
            &projects,
            &nrql_text,
            lookout_core::time::now_ms(),
        )
        .await
        {
            Ok(r) => {
                page.head = r.columns.iter().map(|c| c.name.clone()).collect();
                page.rows = r
                    .rows
                    .iter()
                    .map(|row| {
                        row.iter()
                            .zip(&r.columns)
                            .map(|(v, c)| (cell(v, c.kind), c.kind == "number"))
                            .collect()
                    })
                    .collect();
                (page.chart, page.numbers) = chart_of(&r);
                page.warnings = r.warnings;
            }
            Err(QueryError::Store(e)) => return Err(UiError::from(e)),
            Err(e) => page.error = Some(e.to_string()),
        }
    }
    Ok(render(&page))
}
