//! Dashboards: pages of widgets backed by NRQL or PromQL ([`promql`]) queries ([`spec`]), run over a chosen time range
//! with facet filters ([`run_widget`]), kept per organization (`lookout_store::dashboards`),
//! applied as code (`lookout apply -f`, the config file's `dashboards:`), and the default pack
//! ([`pack`]).

pub mod pack;
pub mod promql;
pub mod spec;

use lookout_nrql::ast::{BinOp, Expr, Query, Time, Timeseries};
use serde_json::Value;

use crate::charts::{self, Bar, Style};
use crate::query::nrql::{self, QueryResult};
use crate::query::ui::console::{bars_of, cell, numbers_of, series_of};
use lookout_store::{dashboards as dstore, tenancy, Result as StoreResult, Store};
use spec::{Dashboard, Kind, Language, Widget};

/// A widget, run and rendered.
pub struct WidgetView {
    pub title: String,
    pub width: u8,
    /// Trusted HTML (charts are escaped SVG, text is escaped, markdown has raw HTML escaped).
    pub html: String,
    pub error: Option<String>,
    pub warnings: Vec<String>,
}

/// What a dashboard view applies to every widget.
pub struct View<'a> {
    pub since: i64,
    pub until: i64,
    /// `attribute = value` for each chosen filter.
    pub filters: &'a [(String, String)],
}

/// The widget's query as run: the view's range instead of its own, the filters added to its
/// `WHERE`, and `TIMESERIES` for chart kinds that draw time.
pub fn prepare(query: &str, kind: Kind, view: &View<'_>) -> Result<Query, String> {
    let mut q = lookout_nrql::parse(query).map_err(|e| e.render(query))?;
    q.since = Some(Time::Epoch(view.since));
    q.until = Some(Time::Epoch(view.until));
    if matches!(kind, Kind::Line | Kind::Area | Kind::StackedBar) && q.timeseries.is_none() {
        q.timeseries = Some(Timeseries::Auto);
    }
    for (attr, value) in view.filters {
        let cond = Expr::Binary {
            op: BinOp::Eq,
            left: Box::new(Expr::Attr(attr.clone())),
            right: Box::new(Expr::Str(value.clone())),
        };
        q.filter = Some(match q.filter.take() {
            Some(f) => Expr::Binary {
                op: BinOp::And,
                left: Box::new(f),
                right: Box::new(cond),
            },
            None => cond,
        });
    }
    Ok(q)
}

/// Runs one widget.
pub async fn run_widget(
    state: &crate::AppState,
    projects: &[i64],
    w: &Widget,
    view: &View<'_>,
    now: i64,
) -> WidgetView {
    let mut out = WidgetView {
        title: w.title.clone(),
        width: w.width,
        html: String::new(),
        error: None,
        warnings: Vec::new(),
    };
    if w.kind == Kind::Markdown {
        out.html = crate::ui::markdown(w.text.as_deref().unwrap_or_default());
        return out;
    }
    if w.language == Language::Promql {
        match promql::run(state, projects, w, view).await {
            Ok(html) => out.html = html,
            Err(e) => out.error = Some(e),
        }
        return out;
    }
    let store = state.store();
    let result = async {
        let q = prepare(w.query.as_deref().unwrap_or_default(), w.kind, view)?;
        let window = lookout_nrql::time::window(&q, now).map_err(|e| e.0)?;
        nrql::execute(store, projects, &q, window)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(r) => {
            out.html = render(w, &r, view);
            out.warnings = r.warnings;
        }
        Err(e) => out.error = Some(e),
    }
    out
}

pub(crate) fn esc(s: &str) -> String {
    charts::esc(s)
}

fn render(w: &Widget, r: &QueryResult, view: &View<'_>) -> String {
    match w.kind {
        Kind::Line | Kind::Area | Kind::StackedBar => {
            let style = match w.kind {
                Kind::Area => Style::Area,
                Kind::StackedBar => Style::StackedBar,
                _ => Style::Line,
            };
            match series_of(r) {
                Some((series, _, _)) => {
                    charts::series_chart("", &series, view.since, view.until, style)
                }
                None => table(r),
            }
        }
        Kind::Billboard => {
            let numbers = numbers_of(r);
            if numbers.is_empty() {
                return table(r);
            }
            numbers
                .iter()
                .map(|(name, shown)| {
                    let state = w
                        .thresholds
                        .as_ref()
                        .zip(shown.parse::<f64>().ok())
                        .map_or("ok", |(t, v)| t.state(v));
                    // In the figure's unit (620 ms, 5.2 %), not the raw number NRQL answers.
                    let display = match shown.parse::<f64>() {
                        Ok(v) => crate::query::words::of_column(name).show(v),
                        Err(_) if shown.is_empty() => "—".into(),
                        Err(_) => shown.clone(),
                    };
                    billboard(state, shown, &display, name)
                })
                .collect()
        }
        Kind::Histogram => {
            // histogram() answers buckets; a faceted count answers bars.
            let buckets = r
                .rows
                .first()
                .and_then(|row| row.iter().find_map(Value::as_array));
            if let Some(b) = buckets {
                let bars: Vec<Bar> = b
                    .iter()
                    .map(|x| Bar {
                        // Each bar is labelled with where its bucket starts.
                        label: charts::compact(x["from"].as_f64().unwrap_or(0.0)),
                        value: x["count"].as_f64().unwrap_or(0.0),
                    })
                    .collect();
                return charts::bar_chart("", &bars);
            }
            match bars_of(r) {
                Some((title, bars)) => charts::bar_chart(&title, &bars),
                None => table(r),
            }
        }
        Kind::Table | Kind::Markdown => table(r),
    }
}

/// One billboard figure: its state (`ok`, `warning`, `critical`), the raw value (on hover), the
/// value as shown and its name; all escaped.
pub(crate) fn billboard(state: &str, raw: &str, display: &str, name: &str) -> String {
    format!(
        r#"<div class="billboard {state}" data-state="{state}" title="{}"><strong>{}</strong><span class="muted">{}</span></div>"#,
        esc(raw),
        esc(display),
        esc(name)
    )
}

/// A result as an HTML table (escaped).
pub fn table(r: &QueryResult) -> String {
    let mut s = String::from("<table class=\"result\"><thead><tr>");
    for c in &r.columns {
        s.push_str(&format!("<th>{}</th>", esc(&c.name)));
    }
    s.push_str("</tr></thead><tbody>");
    for row in &r.rows {
        s.push_str("<tr>");
        for (v, c) in row.iter().zip(&r.columns) {
            let class = if c.kind == "number" {
                " class=\"num\""
            } else {
                ""
            };
            s.push_str(&format!("<td{class}>{}</td>", esc(&cell(v, c.kind))));
        }
        s.push_str("</tr>");
    }
    if r.rows.is_empty() {
        s.push_str(&format!(
            "<tr><td class=\"muted\" colspan=\"{}\">No rows.</td></tr>",
            r.columns.len().max(1)
        ));
    }
    s.push_str("</tbody></table>");
    s
}

/// The values a filter offers, from its `values_from` query over the view's range.
pub async fn filter_values(
    store: &Store,
    projects: &[i64],
    query: &str,
    view: &View<'_>,
    now: i64,
) -> Vec<String> {
    let Ok(mut q) = lookout_nrql::parse(query) else {
        return Vec::new();
    };
    q.since = Some(Time::Epoch(view.since));
    q.until = Some(Time::Epoch(view.until));
    let Ok(w) = lookout_nrql::time::window(&q, now) else {
        return Vec::new();
    };
    match nrql::execute(store, projects, &q, w).await {
        Ok(r) => r
            .rows
            .first()
            .and_then(|row| row.iter().find_map(Value::as_array))
            .map(|a| a.iter().map(|v| cell(v, "string")).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Validates and saves a dashboard by its slug; the stored row and whether it is new.
pub async fn save(
    store: &Store,
    d: &Dashboard,
    managed_by: Option<&str>,
) -> Result<(dstore::DashboardRow, bool), String> {
    d.validate()?;
    let org = tenancy::default_org(store)
        .await
        .map_err(|e| e.to_string())?;
    let spec = serde_json::to_value(d).map_err(|e| e.to_string())?;
    let (row, created) = dstore::save(
        store,
        org.id,
        &d.slug(),
        &d.name,
        &spec,
        managed_by,
        lookout_core::time::now_ms(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok((row, created))
}

/// Reconciles the config file's `dashboards:` (managed by `config`): saves each, deletes the
/// config's dashboards no longer declared. A bad file changes nothing.
pub async fn apply_config(store: &Store, path: &std::path::Path) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "Config file not read for dashboards.");
            return;
        }
    };
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let declared: std::result::Result<Vec<Dashboard>, String> = if yaml {
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| match v.get("dashboards") {
                Some(d) => serde_yaml_ng::from_value(d.clone()).map_err(|e| e.to_string()),
                None => Ok(Vec::new()),
            })
    } else {
        toml::from_str::<toml::Value>(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| match v.get("dashboards") {
                Some(d) => d
                    .clone()
                    .try_into()
                    .map_err(|e: toml::de::Error| e.to_string()),
                None => Ok(Vec::new()),
            })
    };
    let result = async {
        let declared = declared?;
        for d in &declared {
            d.validate()
                .map_err(|e| format!("dashboard {:?}: {e}", d.name))?;
        }
        let mut kept = Vec::new();
        for d in &declared {
            save(store, d, Some("config")).await?;
            kept.push(d.slug());
        }
        let org = tenancy::default_org(store)
            .await
            .map_err(|e| e.to_string())?;
        for row in dstore::list(store, org.id)
            .await
            .map_err(|e| e.to_string())?
        {
            if row.managed_by.as_deref() == Some("config") && !kept.contains(&row.slug) {
                dstore::delete(store, row.id)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok::<usize, String>(declared.len())
    }
    .await;
    match result {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(file = %path.display(), dashboards = n, "Dashboards from the config file applied.")
        }
        Err(e) => tracing::error!(error = %e, "Dashboards in the config file not applied."),
    }
}

/// Every dashboard, for the list and the pack.
pub async fn list(store: &Store) -> StoreResult<Vec<dstore::DashboardRow>> {
    let org = tenancy::default_org(store).await?;
    dstore::list(store, org.id).await
}
