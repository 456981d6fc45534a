//! The metrics explorer (`/explore/metrics`, "Metrics" in the navigation): pick a metric from
//! the stored metric names, narrow it by its labels' values, or write PromQL; the range is
//! charted with the dashboards' chart code and the instant result at the range's end is listed
//! in a table. It runs [`promql::evaluate`], the path of `/prometheus/api/v1/query_range`, so
//! what it shows is what Grafana and promtool are answered.

use std::time::Duration;

use askama::Template;
use axum::extract::{RawQuery, State};
use lookout_promql::Value;
use lookout_store::prom::query::{self, ReadError};
use lookout_store::prom::{MatchOp, Matcher};

use super::promql::{self, When};
use crate::charts;
use crate::query::dashboards::promql::{lines, rows, value_text};
use crate::state::AppState;
use crate::ui::error::UiResult;
use crate::ui::extract;
use crate::ui::layout::{render, PageCtx};

/// The ranges offered: (parameter, label, span in ms).
const RANGES: &[(&str, &str, i64)] = &[
    ("15m", "15 minutes", 15 * 60_000),
    ("1h", "1 hour", 3_600_000),
    ("6h", "6 hours", 6 * 3_600_000),
    ("24h", "24 hours", 86_400_000),
    ("7d", "7 days", 7 * 86_400_000),
];
/// Points per line of the chart: the step is the range divided by this.
const POINTS: i64 = 240;
/// Values offered per label filter; past this the filter is a text box.
const MAX_OPTIONS: usize = 200;
/// The explorer's queries have a shorter deadline than the API's: a page should answer fast.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Metric names the picker lists.
const MAX_METRICS: i64 = 2_000;
/// Series the instant table lists.
const MAX_ROWS: usize = 500;

/// A label filter: the label, the value chosen, and the values to offer.
struct Filter {
    label: String,
    param: String,
    value: String,
    options: Vec<String>,
}

#[derive(Template)]
#[template(path = "metrics.html")]
struct Page {
    title: String,
    ctx: PageCtx,
    metrics: Vec<String>,
    metric: String,
    filters: Vec<Filter>,
    promql: String,
    ranges: Vec<(String, String, bool)>,
    error: Option<String>,
    chart: String,
    /// The instant result: (labels as PromQL writes them, value as shown).
    rows: Vec<(String, String)>,
    /// Series of the instant answer past [`MAX_ROWS`], not listed.
    more_rows: usize,
    ran: bool,
    at: crate::ui::fmt::When,
}

/// The selector the metric and filters make.
fn selector(metric: &str, filters: &[Filter]) -> String {
    // Label names come from the store (or the URL): one PromQL cannot write bare is left out
    // rather than spliced into the text.
    let set: Vec<(&str, &str)> = filters
        .iter()
        .filter(|f| !f.value.is_empty() && lookout_promql::is_label_name(&f.label))
        .map(|f| (f.label.as_str(), f.value.as_str()))
        .collect();
    lookout_promql::selector(metric, &set)
}

/// One filter per label of `series` (but the name), with the label's values as options when
/// there are few enough to pick from; what the request set is kept.
fn filters(series: &[Vec<(String, String)>], one: &dyn Fn(&str) -> String) -> Vec<Filter> {
    let mut by_label: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        std::collections::BTreeMap::new();
    for labels in series {
        for (k, v) in labels {
            if k != "__name__" {
                by_label.entry(k).or_default().insert(v);
            }
        }
    }
    by_label
        .into_iter()
        .map(|(label, values)| {
            let options = if values.len() > MAX_OPTIONS {
                Vec::new()
            } else {
                values.into_iter().map(str::to_string).collect()
            };
            let param = format!("l.{label}");
            Filter {
                value: one(&param),
                param,
                label: label.to_string(),
                options,
            }
        })
        .collect()
}

fn read_error(e: ReadError) -> String {
    match e {
        ReadError::Store(_) => "storage unavailable; retry later".into(),
        other => other.to_string(),
    }
}

/// `GET /explore/metrics?metric=&l.<label>=&promql=&range=&project=`.
pub async fn explorer(
    State(state): State<AppState>,
    extract::Page { ctx, .. }: extract::Page,
    RawQuery(raw): RawQuery,
) -> UiResult {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let one = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let range = Some(one("range"))
        .filter(|r| RANGES.iter().any(|(p, _, _)| p == r))
        .unwrap_or_else(|| "1h".into());
    let span = RANGES
        .iter()
        .find(|(p, _, _)| *p == range)
        .map_or(3_600_000, |r| r.2);
    let mut page = Page {
        title: "Metrics".into(),
        ctx,
        metrics: Vec::new(),
        metric: one("metric"),
        filters: Vec::new(),
        promql: one("promql"),
        ranges: RANGES
            .iter()
            .map(|(p, l, _)| (p.to_string(), l.to_string(), *p == range))
            .collect(),
        error: None,
        chart: String::new(),
        rows: Vec::new(),
        more_rows: 0,
        ran: false,
        at: crate::ui::fmt::When::at(lookout_core::time::now_ms()),
    };
    let project = match crate::api::scope::project_of(
        &state,
        Some(one("project")).filter(|p| !p.is_empty()).as_deref(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => {
            page.error = Some(e.to_string());
            return Ok(render(&page));
        }
    };
    let store = state.store();
    let end = lookout_core::time::now_ms();
    let start = end - span;
    let window = Some((start - lookout_promql::DEFAULT_LOOKBACK_MS, end));
    // The picker lists metric names from the names index, not from every label set.
    match query::metric_names(store, project, MAX_METRICS).await {
        Ok(names) => page.metrics = names,
        Err(e) => page.error = Some(read_error(ReadError::Store(e))),
    }
    if !page.metric.is_empty() {
        match Matcher::new("__name__", MatchOp::Eq, &page.metric) {
            Ok(m) => {
                // The metric's series are read once (at most query::MAX_SERIES, within the
                // page's time), and its labels and their values taken from them.
                let sel = vec![vec![m]];
                match tokio::time::timeout(
                    PAGE_TIMEOUT,
                    query::series(store, project, &sel, window),
                )
                .await
                {
                    Ok(Ok(series)) => page.filters = filters(&series, &one),
                    Ok(Err(e)) => page.error = Some(read_error(e)),
                    Err(_) => {
                        page.error = Some(format!(
                            "reading the series of {} took over {} s; type a narrower query",
                            page.metric,
                            PAGE_TIMEOUT.as_secs()
                        ))
                    }
                }
            }
            Err(e) => page.error = Some(e),
        }
        // Picking a metric (or a filter) writes the selector into the PromQL box; a query
        // typed there wins.
        if page.promql.is_empty() || one("picked") == "1" {
            page.promql = selector(&page.metric, &page.filters);
        }
    }
    if page.promql.is_empty() || page.error.is_some() {
        return Ok(render(&page));
    }
    page.ran = true;
    let step = (span / POINTS).max(1_000);
    let when = When::Range {
        start: start - start.rem_euclid(step),
        end: end - end.rem_euclid(step),
        step,
    };
    match promql::evaluate(&state, project, &page.promql, when, PAGE_TIMEOUT).await {
        Ok(Value::Matrix(series)) => {
            let lines = lines(&series);
            if !lines.is_empty() {
                page.chart = charts::time_series(&page.promql, &lines, start, end);
            }
        }
        Ok(_) => {}
        Err(e) => {
            page.error = Some(format!("PromQL: {}", e.message()));
            return Ok(render(&page));
        }
    }
    match promql::evaluate(
        &state,
        project,
        &page.promql,
        When::Instant(end),
        PAGE_TIMEOUT,
    )
    .await
    {
        Ok(Value::String { v, .. }) => page.rows = vec![("string".into(), v)],
        Ok(v) => {
            let all = rows(&v);
            page.more_rows = all.len().saturating_sub(MAX_ROWS);
            page.rows = all
                .into_iter()
                .take(MAX_ROWS)
                .map(|(name, v)| (name, value_text(v)))
                .collect()
        }
        Err(e) => page.error = Some(format!("PromQL: {}", e.message())),
    }
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::dashboards::promql::series_name;

    #[test]
    fn label_sets_and_selectors_read_as_promql() {
        let labels = vec![
            ("__name__".to_string(), "up".to_string()),
            ("job".to_string(), "node".to_string()),
        ];
        assert_eq!(series_name(&labels), "up{job=\"node\"}");
        assert_eq!(series_name(&labels[..1]), "up");
        assert_eq!(value_text(3.0), "3");
        assert_eq!(value_text(f64::NAN), "NaN");
        let f = |label: &str, value: &str| Filter {
            label: label.into(),
            param: format!("l.{label}"),
            value: value.into(),
            options: vec![],
        };
        assert_eq!(selector("up", &[f("job", "")]), "up");
        assert_eq!(
            selector("up", &[f("job", "node"), f("instance", "a\"b")]),
            "up{job=\"node\", instance=\"a\\\"b\"}"
        );
    }
}
